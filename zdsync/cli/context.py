"""What every command shares: the settings and services it works with, the exit codes,
and the few ways a command ends early (``fail``, a service error, a held lock)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn

import click

from zdsync import agents, checks, logs
from zdsync.config import LogSettings, Settings, load
from zdsync.errors import ApiError, ConfigError, LockHeld
from zdsync.lease import SyncLock
from zdsync.metrics import Metrics
from zdsync.rules import Record, parse_id
from zdsync.store import Store

if TYPE_CHECKING:
    from zdsync.services import Services
    from zdsync.teamwork import TeamworkClient
    from zdsync.zendesk import ZendeskClient

EXIT_OK, EXIT_PARTIAL, EXIT_CONFIG, EXIT_LOCKED = 0, 1, 2, 75


class IdType(click.ParamType):
    """A Zendesk or Teamwork id: ASCII digits, 1 to 2**63 - 1 (``rules.parse_id``)."""

    name = "id"

    def convert(self, value: Any, param: click.Parameter | None,
                ctx: click.Context | None) -> int:
        number = parse_id(value)
        if number is None:
            self.fail(f"{str(value)[:40]!r} is not an id (a positive whole number)", param, ctx)
        return number


ID = IdType()


def fail(message: str, code: int = EXIT_PARTIAL) -> NoReturn:
    click.echo(f"zdsync: {message}", err=True)
    sys.exit(code)


@dataclass
class Context:
    """The top-level options; settings, Redis and the services are made when a command
    first needs them, so ``users list`` runs without Zendesk credentials."""

    config_path: str | None
    options: dict[str, Any]
    _settings: dict[bool, Settings] = field(default_factory=dict)
    _store: Store | None = None

    def start_logging(self) -> None:
        """Log as ``[log]`` says from the first line on. With an invalid configuration,
        INFO as text: the command that needs the settings reports the error itself."""
        try:
            log = load(self.config_path, self.options, require_services=False).log
        except ConfigError:
            log = LogSettings()
        logs.setup(log.level, log.format)

    def settings(self, require_services: bool = True) -> Settings:
        """The settings; an invalid configuration ends the command (exit 2)."""
        if require_services not in self._settings:
            try:
                self._settings[require_services] = load(self.config_path, self.options,
                                                        require_services=require_services)
            except ConfigError as exc:
                fail(str(exc), EXIT_CONFIG)
        return self._settings[require_services]

    def store(self) -> Store:
        """The Redis store; a Redis that does not answer ends the command (exit 1) within
        ``CHECK_REDIS_TIMEOUT_SECONDS``, one that refuses the settings (a certificate, a
        login, TLS on one side only) too (exit 2), with the fix ``zdsync check`` gives: one
        quick ping, no retries, before the store (which retries, for the work) is made."""
        if self._store is not None:
            return self._store
        settings = self.settings(require_services=False)
        reached, _ = checks.redis_reachable(settings)
        if reached.state == checks.FAIL:
            fail(f"{reached.detail}\n  fix: {reached.hint}",
                 EXIT_CONFIG if checks.misconfigured([reached]) else EXIT_PARTIAL)
        self._store = Store.from_settings(settings.redis)
        return self._store


    def clients(self, settings: Settings | None = None) -> tuple[ZendeskClient, TeamworkClient]:
        from zdsync.teamwork import TeamworkClient
        from zdsync.zendesk import ZendeskClient

        settings = settings or self.settings()
        return ZendeskClient(settings.zendesk), TeamworkClient(settings.teamwork)

    def services(self, metrics: Metrics | None = None) -> Services:
        """The services, once ``[teamwork]``'s project and list are known to exist."""
        from zdsync.services import services

        built = services(self.settings(), self.store(), metrics=metrics)
        verify_place(built.reconciler.lists.verify)
        return built


@contextmanager
def api_errors(doing: str) -> Iterator[None]:
    """An unreachable or refusing service ends the command with exit 1 and one line."""
    try:
        yield
    except ApiError as exc:
        fail(f"{doing}: {exc}")


def verify_place(verify: Callable[[], object]) -> None:
    """Run a check of the configured project and list before any work: a 404 on either,
    or a list of another project, is a configuration error (exit 2) naming the setting."""
    try:
        with api_errors("could not read the Teamwork project and task list"):
            verify()
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)


@contextmanager
def sync_lock(ctx: Context, store: Store) -> Iterator[SyncLock]:
    """The lease ``sync`` and the daemon's leader hold: one writer of the sync state at a
    time. Exit 75 when another process holds it."""
    lock = store.lock(ttl_seconds=ctx.settings(require_services=False).sync.lock_ttl)
    try:
        lock.acquire_or_raise()
    except LockHeld as exc:
        fail(f"{exc}; a running daemon holds it for as long as it leads: try again once its "
             "pass is over, or stop the daemon", EXIT_LOCKED)
    try:
        yield lock
    finally:
        lock.release()


def load_users_file(ctx: Context, store: Store) -> None:
    """Apply ``[users] file`` (validated with the configuration) before a pass."""
    path = ctx.settings(require_services=False).users.file
    if path:
        store.merge_mappings(agents.read_mappings_file(path))


def record_or_fail(store: Store, ticket_id: int) -> Record:
    record = store.record(ticket_id)
    if record is None:
        fail(f"ticket {ticket_id} is not known to zdsync (no stored record; zdsync tickets "
             "list shows the known ones)")
    return record
