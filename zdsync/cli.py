"""The ``zdsync`` command line. Every setting is also an option of the top-level group
(``zdsync --redis-host r1 sync --once``); see ``zdsync.config`` for the naming rule.

Exit codes: 0 success; 1 the command ran but work is left (tickets in the retry set, a
service unreachable, a failed check); 2 configuration or usage error; 75 another process
holds the sync lock (EX_TEMPFAIL: try again later).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import click
import redis

from zdsync import logs
from zdsync.config import OPTIONS, Settings, load
from zdsync.errors import ConfigError, LockHeld
from zdsync.metrics import Metrics
from zdsync.store import Store

EXIT_OK, EXIT_PARTIAL, EXIT_CONFIG, EXIT_LOCKED = 0, 1, 2, 75


@dataclass
class Context:
    config_path: str | None
    options: dict[str, Any]
    _settings: dict[bool, Settings] = field(default_factory=dict)

    def settings(self, require_services: bool = True) -> Settings:
        if require_services not in self._settings:
            try:
                settings = load(self.config_path, self.options,
                                require_services=require_services)
            except ConfigError as exc:
                click.echo(f"zdsync: {exc}", err=True)
                sys.exit(EXIT_CONFIG)
            logs.setup(settings.log.level, settings.log.format)
            self._settings[require_services] = settings
        return self._settings[require_services]

    def store(self) -> Store:
        store = Store.from_settings(self.settings(require_services=False).redis)
        try:
            store.ping()
        except redis.RedisError as exc:
            r = self.settings(require_services=False).redis
            where = (f"Sentinels {r.sentinel_hosts} (master {r.sentinel_master})"
                     if r.use_sentinel else f"{r.host}:{r.port}")
            click.echo(f"zdsync: Redis at {where} does not answer: {exc}", err=True)
            sys.exit(EXIT_PARTIAL)
        return store


def settings_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """One option per setting, generated from the settings table (never out of sync)."""
    for opt in reversed(OPTIONS):
        kwargs: dict[str, Any] = {"default": None, "help": opt.help}
        if opt.kind == "bool":
            kwargs["type"] = click.BOOL
        func = click.option(opt.flag, opt.dest, **kwargs)(func)
    return func


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_path", metavar="PATH", envvar="ZDSYNC_CONFIG",
              help="TOML config file (or ZDSYNC_CONFIG).")
@settings_options
@click.pass_context
def main(ctx: click.Context, config_path: str | None, **options: Any) -> None:
    """zdsync keeps one Teamwork task per Zendesk ticket.

    Settings come from the environment (SECTION_KEY), then these options
    (--section-key), then the config file ([section] key), then defaults.
    """
    ctx.obj = Context(config_path, options)


def _reconciler(ctx: Context, metrics: Metrics | None = None, **kwargs: Any):
    from zdsync.reconciler import Reconciler
    from zdsync.teamwork import TeamworkClient
    from zdsync.zendesk import ZendeskClient

    settings = ctx.settings()
    metrics = metrics or Metrics()
    return Reconciler(settings, ctx.store(), ZendeskClient(settings.zendesk, metrics=metrics),
                      TeamworkClient(settings.teamwork, metrics=metrics), metrics, **kwargs)


@main.command()
@click.option("--once", is_flag=True, required=True, help="Run one pass and exit.")
@click.option("--dry-run", is_flag=True,
              help="Print the plan ticket by ticket; write nothing, move no cursor.")
@click.pass_obj
def sync(ctx: Context, once: bool, dry_run: bool) -> None:
    """Run one reconciliation pass from the saved cursor."""
    ctx.settings()  # configuration errors first, before any network call
    store = ctx.store()
    lock = store.lock()
    try:
        lock.acquire_or_raise()
    except LockHeld as exc:
        click.echo(f"zdsync: {exc}", err=True)
        sys.exit(EXIT_LOCKED)
    try:
        reconciler = _reconciler(ctx, should_stop=lock.lost.is_set)
        summary = reconciler.run_pass(dry_run=dry_run)
    finally:
        lock.release()
    if dry_run:
        for ticket_id, actions in summary.planned:
            click.echo(f"ticket {ticket_id}: " + "; ".join(actions))
        click.echo(f"dry run: {len(summary.planned)} ticket(s) would change; " + summary.line())
        sys.exit(EXIT_PARTIAL if summary.error else EXIT_OK)
    click.echo(summary.line())
    if summary.stopped:
        click.echo("zdsync: the pass lost its lock and stopped early", err=True)
    sys.exit(EXIT_PARTIAL if summary.error or summary.stopped or store.retry_depth()
             else EXIT_OK)


# -- agent mappings -----------------------------------------------------------------------


@main.group()
def users() -> None:
    """Agent mappings: Zendesk user id -> Teamwork person id."""


@users.command("add")
@click.argument("zendesk_user_id", type=click.IntRange(min=1))
@click.argument("teamwork_person_id", type=click.IntRange(min=1))
@click.pass_obj
def users_add(ctx: Context, zendesk_user_id: int, teamwork_person_id: int) -> None:
    """Map a Zendesk agent to a Teamwork person."""
    store = ctx.store()
    store.set_mappings({zendesk_user_id: teamwork_person_id})
    click.echo(f"mapped Zendesk user {zendesk_user_id} -> Teamwork person {teamwork_person_id}"
               "; their open tickets are reassigned on the next pass")


@users.command("remove")
@click.argument("zendesk_user_id", type=click.IntRange(min=1))
@click.pass_obj
def users_remove(ctx: Context, zendesk_user_id: int) -> None:
    """Forget a mapping: that agent's tasks go to "Anyone" on the next pass."""
    if not ctx.store().remove_mapping(zendesk_user_id):
        click.echo(f"zdsync: Zendesk user {zendesk_user_id} has no mapping", err=True)
        sys.exit(EXIT_PARTIAL)
    click.echo(f"removed the mapping of Zendesk user {zendesk_user_id}")


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output for scripts.")
@click.pass_obj
def users_list(ctx: Context, as_json: bool) -> None:
    """List the mappings."""
    pairs = sorted(ctx.store().mappings().items())
    if as_json:
        click.echo(json.dumps([{"zendesk_user_id": z, "teamwork_person_id": t}
                               for z, t in pairs]))
        return
    click.echo(f"{'ZENDESK USER':>14}  {'TEAMWORK PERSON':>15}")
    for z, t in pairs:
        click.echo(f"{z:>14}  {t:>15}")
    click.echo(f"{len(pairs)} mapping(s)")


# -- the daemon and the demo ---------------------------------------------------------------


@main.command()
@click.pass_obj
def run(ctx: Context) -> None:
    """Run the daemon: scheduled passes, leader election, health, metrics, webhooks."""
    from zdsync.daemon import Daemon

    settings = ctx.settings()
    sys.exit(Daemon(settings).run())


@main.command()
@click.option("--tickets", default=60, show_default=True, type=click.IntRange(min=1),
              help="Tickets the activity generator creates.")
@click.option("--duration", default=30.0, show_default=True, type=click.FloatRange(min=1),
              help="Seconds of simulated activity.")
@click.option("--seed", default=1, show_default=True, help="Seed of the activity generator.")
@click.option("--faults", is_flag=True,
              help="Turn on latency, errors and lost create responses in the simulators.")
@click.option("--keep-running", is_flag=True,
              help="Leave the simulators up at the end, for curl, until Ctrl-C.")
@click.pass_obj
def demo(ctx: Context, tickets: int, duration: float, seed: int, faults: bool,
         keep_running: bool) -> None:
    """Show zdsync at work against the built-in simulators: no accounts, no set-up."""
    from zdsync.demo import run_demo

    settings = ctx.settings(require_services=False)
    sys.exit(run_demo(settings, tickets=tickets, duration_seconds=duration, seed=seed,
                      faults=faults, keep_running=keep_running))


def _register_optional() -> None:
    try:
        from zdsync.sim.cli import sim
    except ImportError:  # the simulators ship with the package; this guards partial checkouts
        return
    main.add_command(sim)


_register_optional()
