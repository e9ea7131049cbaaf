"""The ``zdsync`` command line. Every setting is also an option of the top-level group
(``zdsync --redis-host r1 sync --once``); see ``zdsync.config`` for the naming rule.

Exit codes: 0 success; 1 the command ran but work is left (tickets in the retry set, a
service unreachable, a failed check, drift found) or what it names is not there (an
unknown ticket, a Zendesk user who is no agent, a person not on the project: nothing is
changed); 2 configuration or usage error (bad options, a malformed CSV file); 75 another
process holds the sync lock (EX_TEMPFAIL: try again later).

Command reference with real output: docs/cli.md.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import IO, Any, NoReturn

import click
import redis

from zdsync import agents, audit, checks, logs
from zdsync.config import OPTIONS, Settings, load
from zdsync.errors import ApiError, ConfigError, Interrupted, LockHeld
from zdsync.lease import SyncLock
from zdsync.metrics import Metrics
from zdsync.people import Person, User
from zdsync.routes import Target
from zdsync.rules import KNOWN_STATUSES, Record, parse_id, plan, who
from zdsync.store import Store
from zdsync.teamwork import TASKS_BY_IDS_BATCH
from zdsync.times import for_people as _utc
from zdsync.values import parse_time

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


def _clients(ctx: Context, settings: Settings | None = None) -> tuple[Any, Any]:
    """(ZendeskClient, TeamworkClient) for the configured services."""
    from zdsync.teamwork import TeamworkClient
    from zdsync.zendesk import ZendeskClient

    settings = settings or ctx.settings()
    return ZendeskClient(settings.zendesk), TeamworkClient(settings.teamwork)


def _pass(ctx: Context, lock: SyncLock, metrics: Metrics | None = None, **kwargs: Any):
    """A ``passes.Pass`` under ``lock``, with the configured services."""
    from zdsync.services import services

    return services(ctx.settings(), ctx.store(), metrics=metrics).new_pass(lock, **kwargs)


def _load_users_file(ctx: Context, store: Store) -> None:
    """Apply ``[users] file`` (validated with the configuration) before a pass."""
    path = ctx.settings(require_services=False).users.file
    if path:
        store.merge_mappings(agents.read_mappings_file(path))


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


class Progress:
    """A backfill's progress on a terminal (tqdm, on standard error): tickets, pages,
    Teamwork requests a minute, and an ETA from the rate limit for the tickets queued."""

    REFRESH_SECONDS = 0.5

    def __init__(self, enabled: bool, metrics: Metrics) -> None:
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        self.metrics = metrics
        self.started = time.monotonic()
        self.bar = tqdm(unit=" tickets", file=sys.stderr, disable=not enabled,
                        dynamic_ncols=True, mininterval=self.REFRESH_SECONDS)
        # Log lines go above the bar instead of through it.
        self.logs = logging_redirect_tqdm() if enabled else nullcontext()
        self.logs.__enter__()

    def teamwork_requests(self) -> float:
        return sum(s.value for family in self.metrics.api_requests.collect()
                   for s in family.samples
                   if s.name.endswith("_total") and s.labels.get("service") == "teamwork")

    def __call__(self, p: Any) -> None:
        if self.bar.disable:
            return
        requests_done = self.teamwork_requests()
        minutes = max((time.monotonic() - self.started) / 60, 1e-6)
        pacer = p.reconciler.teamwork.pacer
        per_minute = pacer.limit or (60 / pacer.interval if pacer.interval else 0.0)
        per_ticket = requests_done / max(p.handled, 1)
        queued = len(p.queue)
        eta = (f"{queued * per_ticket / per_minute:.0f} min" if per_minute and queued
               else "-")
        self.bar.set_postfix_str(f"pages {p.summary.pages}, Teamwork "
                                 f"{requests_done / minutes:.0f}/min, queued {queued}, "
                                 f"ETA {eta}", refresh=False)
        self.bar.update(p.handled - self.bar.n)

    def close(self) -> None:
        self.bar.close()
        self.logs.__exit__(None, None, None)


@main.command()
@click.option("--once", is_flag=True, help="Accepted for compatibility: sync always runs one "
              "pass.")
@click.option("--dry-run", is_flag=True,
              help="Print the plan for the export, ticket by ticket; write nothing, move no "
                   "cursor (mapping changes and retries are not previewed).")
@click.option("--quiet", "-q", is_flag=True, help="No progress display on a terminal.")
@click.pass_obj
def sync(ctx: Context, once: bool, dry_run: bool, quiet: bool) -> None:
    """Run one reconciliation pass from the saved cursor, then exit.

    On a terminal, a backfill shows its progress on standard error (tickets, pages,
    Teamwork requests a minute, ETA); not with --quiet, nor when not a terminal.
    """
    ctx.settings()  # configuration errors first, before any network call
    store = ctx.store()
    metrics = Metrics()
    progress = Progress(_stderr_is_terminal() and not quiet, metrics)
    with _sync_lock(ctx, store) as lock:
        try:
            if not dry_run:
                _load_users_file(ctx, store)
            summary = _pass(ctx, lock, metrics, dry_run=dry_run, on_progress=progress).run()
        except redis.RedisError as exc:
            fail(f"Redis failed during the pass ({exc}); nothing past the work done was "
                 "committed, the next pass resumes")
        finally:
            progress.close()
    if summary.rebuilt:
        click.echo("the ticket->task links were rebuilt from Teamwork first (Redis had no "
                   "zdsync state)", err=True)
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


# -- output helpers -----------------------------------------------------------------------


def fail(message: str, code: int = EXIT_PARTIAL) -> NoReturn:
    click.echo(f"zdsync: {message}", err=True)
    sys.exit(code)


def _span(seconds: float) -> str:
    """A duration for people: 42 s, 5 min 3 s, 3 h 12 min, 4 d 2 h."""
    total = int(abs(seconds))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    cells = [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@contextmanager
def _api_errors(doing: str) -> Iterator[None]:
    """An unreachable or refusing service ends the command with exit 1 and one line."""
    try:
        yield
    except ApiError as exc:
        fail(f"{doing}: {exc}")


@contextmanager
def _sync_lock(ctx: Context, store: Store) -> Iterator[SyncLock]:
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


# -- agent mappings -----------------------------------------------------------------------


@main.group()
def users() -> None:
    """Agent mappings: Zendesk user id -> Teamwork person id."""


def _lookup(ctx: Context, pairs: dict[int, int]) -> tuple[dict[int, Any], dict[int, Any],
                                                          dict[int, Any]]:
    """(Zendesk users, project members, Teamwork people) among the pairs' ids: a few
    batched requests however many pairs there are."""
    settings = ctx.settings()
    zendesk, teamwork = _clients(ctx)
    with _api_errors("could not verify the mappings (nothing was changed)"):
        found_users = zendesk.users_by_ids(pairs)
        members = teamwork.people_by_ids(pairs.values(), settings.teamwork.project_id)
        outside = [p for p in pairs.values() if p not in members]
        people = {**members, **(teamwork.people_by_ids(outside) if outside else {})}
    return found_users, members, people


def _verified(ctx: Context, pairs: dict[int, int]) -> tuple[dict[int, Any], dict[int, Any]]:
    """Zendesk users and Teamwork people of the pairs; exit 1 listing every problem when a
    user is no agent or a person is not on the project."""
    found_users, members, people = _lookup(ctx, pairs)
    problems = agents.verify(pairs, found_users, members, people,
                             ctx.settings().teamwork.project_id or 0)
    if problems:
        click.echo("zdsync: nothing was changed:", err=True)
        for problem in problems:
            click.echo(f"  - {problem}", err=True)
        click.echo("  (--no-verify stores mappings without these checks)", err=True)
        sys.exit(EXIT_PARTIAL)
    return found_users, people


def _display(who: User | Person | None) -> str | None:
    return who.display if who is not None else None


def _describe_user(user: User | None) -> str:
    if user is None:
        return ""
    email = f" <{user.email}>" if user.email else ""
    return f" ({user.display}{email}, {user.role})"


@users.command("add")
@click.argument("zendesk_user_id", type=ID)
@click.argument("teamwork_person_id", type=ID)
@click.option("--no-verify", is_flag=True,
              help="Store without asking Zendesk and Teamwork (no names shown).")
@click.pass_obj
def users_add(ctx: Context, zendesk_user_id: int, teamwork_person_id: int,
              no_verify: bool) -> None:
    """Map a Zendesk agent to a Teamwork person.

    Checks first that the Zendesk user is an agent or admin and that the Teamwork person
    exists and is on the project; nothing is stored when a check fails.
    """
    pairs = {zendesk_user_id: teamwork_person_id}
    found_users: dict[int, Any] = {}
    people: dict[int, Any] = {}
    if not no_verify:
        ctx.settings()  # configuration errors first, before any network call
    store = ctx.store()
    if not no_verify:
        found_users, people = _verified(ctx, pairs)
    previous = store.mappings().get(zendesk_user_id)
    store.set_mappings(pairs)
    found = people.get(teamwork_person_id)
    person = found.display if found else None
    click.echo(f"mapped Zendesk user {zendesk_user_id}"
               f"{_describe_user(found_users.get(zendesk_user_id))} -> Teamwork person "
               f"{teamwork_person_id}{f' ({person})' if person else ''}"
               + (" [not verified]" if no_verify else ""))
    if previous not in (None, teamwork_person_id):
        click.echo(f"  (was Teamwork person {previous})")
    click.echo("their open tickets are reassigned on the next pass")


@users.command("remove", short_help="Forget a mapping.")
@click.argument("zendesk_user_id", type=ID)
@click.pass_obj
def users_remove(ctx: Context, zendesk_user_id: int) -> None:
    """Forget a mapping: that agent's tasks go to "Anyone" on the next pass."""
    if not ctx.store().remove_mapping(zendesk_user_id):
        fail(f"Zendesk user {zendesk_user_id} has no mapping (zdsync users list shows them)")
    click.echo(f"removed the mapping of Zendesk user {zendesk_user_id}; their open tickets go "
               "to Anyone on the next pass")


def _names(ctx: Context, pairs: dict[int, int]) -> tuple[dict[int, Any], dict[int, Any]]:
    """Best effort: names make the list readable, but the list must work without them."""
    if not pairs:
        return {}, {}
    try:
        load(ctx.config_path, ctx.options)
    except ConfigError:
        click.echo("zdsync: no names: the Zendesk and Teamwork settings are incomplete",
                   err=True)
        return {}, {}
    zendesk, teamwork = (checks.impatient(c) for c in _clients(ctx))
    try:
        return zendesk.users_by_ids(pairs), teamwork.people_by_ids(pairs.values())
    except ApiError as exc:
        click.echo(f"zdsync: no names: {exc}", err=True)
        return {}, {}


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output for scripts.")
@click.option("--no-names", is_flag=True, help="Do not look names up in Zendesk and Teamwork.")
@click.pass_obj
def users_list(ctx: Context, as_json: bool, no_names: bool) -> None:
    """List the mappings, with names when Zendesk and Teamwork answer."""
    pairs = dict(sorted(ctx.store().mappings().items()))
    found_users, people = ({}, {}) if no_names else _names(ctx, pairs)
    rows = [{"zendesk_user_id": z, "zendesk_name": _display(found_users.get(z)),
             "zendesk_email": (found_users[z].email or None) if z in found_users else None,
             "teamwork_person_id": t, "teamwork_name": _display(people.get(t))}
            for z, t in pairs.items()]
    if as_json:
        _json(rows)
        return
    _table(["ZENDESK USER", "NAME", "E-MAIL", "TEAMWORK PERSON", "NAME"],
           [(r["zendesk_user_id"], r["zendesk_name"], r["zendesk_email"],
             r["teamwork_person_id"], r["teamwork_name"]) for r in rows])
    click.echo(f"{len(rows)} mapping(s)")


@users.command("import", short_help="Add mappings from a CSV file.")
@click.argument("file", type=click.File("r", encoding="utf-8"))
@click.option("--no-verify", is_flag=True, help="Skip the Zendesk and Teamwork checks.")
@click.option("--dry-run", is_flag=True, help="Validate and verify only; store nothing.")
@click.pass_obj
def users_import(ctx: Context, file: IO[str], no_verify: bool, dry_run: bool) -> None:
    """Add or change mappings from a CSV file (header zendesk_user_id,teamwork_person_id).

    Every row is checked (and, unless --no-verify, verified like users add) before any
    is stored: one bad row rejects the whole file, and every bad row is listed. Mappings
    not in the file are kept. FILE may be - for standard input.
    """
    try:
        text = file.read()
    except UnicodeDecodeError as exc:
        fail(f"{file.name}: not UTF-8 text ({exc}); nothing was imported", EXIT_CONFIG)
    try:
        pairs = agents.parse_csv(text)
    except agents.CsvError as exc:
        click.echo(f"zdsync: {file.name}: {len(exc.problems)} problem(s); nothing was "
                   "imported:", err=True)
        for problem in exc.problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(EXIT_CONFIG)
    if not no_verify:
        ctx.settings()
    store = ctx.store()
    if not no_verify:
        _verified(ctx, pairs)
    current = store.mappings()
    changes = {z: t for z, t in pairs.items() if current.get(z) != t}
    new = sum(1 for z in changes if z not in current)
    counts = (f"{new} new, {len(changes) - new} changed, {len(pairs) - len(changes)} "
              "unchanged")
    if dry_run:
        click.echo(f"{file.name}: {len(pairs)} valid mapping(s) ({counts}); dry run: nothing "
                   "stored")
        return
    store.set_mappings(changes)
    click.echo(f"imported {len(pairs)} mapping(s) from {file.name}: {counts}"
               + ("; their open tickets are reassigned on the next pass" if changes else ""))


@users.command("export")
@click.argument("file", type=click.File("w", encoding="utf-8", lazy=True), default="-")
@click.pass_obj
def users_export(ctx: Context, file: IO[str]) -> None:
    """Write the mappings as CSV to FILE (standard output without one)."""
    pairs = ctx.store().mappings()
    file.write(agents.render_csv(pairs))
    if file.name != "<stdout>" and file.name != "-":
        click.echo(f"exported {len(pairs)} mapping(s) to {file.name}", err=True)


@users.command("auto", short_help="Pair agents with people by e-mail.")
@click.option("--apply", "apply_", is_flag=True, help="Store the new pairs.")
@click.option("--json", "as_json", is_flag=True, help="JSON output for scripts.")
@click.pass_obj
def users_auto(ctx: Context, apply_: bool, as_json: bool) -> None:
    """Pair Zendesk agents with the project's Teamwork people by e-mail address.

    Prints the proposed pairs and the agents left unmatched; --apply stores the new
    pairs. A mapping made by hand is never replaced (shown as "kept").
    """
    settings = ctx.settings()
    store = ctx.store()
    zendesk, teamwork = _clients(ctx)
    with _api_errors("could not read the agents and people"):
        found_agents = zendesk.agents()
        members = teamwork.people(settings.teamwork.project_id)
    proposals = agents.match_by_email(found_agents, members, store.mappings())
    new = {p.zendesk_user_id: p.person_id for p in proposals
           if p.status == "new" and p.person_id is not None}
    if apply_:
        store.set_mappings(new)
    if as_json:
        _json({"proposals": [p.as_dict() for p in proposals],
               "applied": len(new) if apply_ else 0})
        return
    matched = [p for p in proposals if p.status != "unmatched"]
    unmatched = [p for p in proposals if p.status == "unmatched"]
    if matched:
        _table(["ZENDESK USER", "NAME", "E-MAIL", "TEAMWORK PERSON", "NAME", "STATUS"],
               [(p.zendesk_user_id, p.name, p.email, p.person_id, p.person_name,
                 p.status if p.status != "kept" else f"kept (mapped to {p.mapped_to})")
                for p in matched])
    if unmatched:
        click.echo(f"\nunmatched agents ({len(unmatched)}):")
        _table(["ZENDESK USER", "NAME", "E-MAIL", "WHY"],
               [(p.zendesk_user_id, p.name, p.email or None,
                 p.reason + (f"; mapped by hand to {p.mapped_to}" if p.mapped_to else ""))
                for p in unmatched])
    counts = {s: sum(1 for p in proposals if p.status == s)
              for s in ("new", "same", "kept", "unmatched")}
    click.echo(f"\n{len(proposals)} agent(s): {counts['new']} new pair(s), {counts['same']} "
               f"already mapped, {counts['kept']} kept as mapped by hand, "
               f"{counts['unmatched']} unmatched")
    if apply_:
        click.echo(f"stored {len(new)} new mapping(s)"
                   + ("; their open tickets are reassigned on the next pass" if new else ""))
    elif new:
        click.echo("run again with --apply to store the new pairs")


# -- tickets ------------------------------------------------------------------------------


@main.group(short_help="Tracked tickets: list, show, resync, unlink.")
def tickets() -> None:
    """The tickets zdsync tracks: their tasks, history, resync and unlink."""


def _record_or_fail(store: Store, ticket_id: int) -> Record:
    record = store.record(ticket_id)
    if record is None:
        fail(f"ticket {ticket_id} is not known to zdsync (no stored record; zdsync tickets "
             "list shows the known ones)")
    return record


@tickets.command("list", short_help="List the tracked tickets.")
@click.option("--state", "states", multiple=True, type=click.Choice(sorted(KNOWN_STATUSES)),
              help="Only tickets with this Zendesk status (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="JSON output for scripts.")
@click.pass_obj
def tickets_list(ctx: Context, states: tuple[str, ...], as_json: bool) -> None:
    """List the tracked tickets: Zendesk status, task, assignee, retry attempts."""
    store = ctx.store()
    retrying = {e.ticket_id: e.attempts for e in store.retries()}
    records = sorted((r for r in store.all_records() if not states or r.ticket.status in states),
                     key=lambda r: r.ticket.id)
    rows = [{"ticket_id": r.ticket.id, "status": r.ticket.status, "task_id": r.applied.task_id,
             "in_flight": r.in_flight, "assignee": r.applied.assignee,
             "zendesk_assignee_id": r.ticket.assignee_id, "title": r.applied.title,
             "completed": r.applied.completed, "retry_attempts": retrying.get(r.ticket.id),
             "route": r.route, "tasklist_id": r.applied.tasklist_id}
            for r in records]
    if as_json:
        _json(rows)
        return
    _table(["TICKET", "STATE", "TASK", "ASSIGNEE", "RETRY", "TITLE"],
           [(r["ticket_id"], r["status"],
             r["task_id"] or ("create in flight" if r["in_flight"] else None),
             who(r["assignee"]) if r["task_id"] else None,
             f"{r['retry_attempts']} attempt(s)" if r["retry_attempts"] else None, r["title"])
            for r in rows])
    click.echo(f"{len(rows)} ticket(s)")


@tickets.command("show", short_help="Record, live task, drift, plan, history.")
@click.argument("ticket_id", type=ID)
@click.option("--json", "as_json", is_flag=True, help="JSON output for scripts.")
@click.pass_obj
def tickets_show(ctx: Context, ticket_id: int, as_json: bool) -> None:
    """The stored record, the live Teamwork task, drift, the next plan and the history."""
    from zdsync.services import services

    settings = ctx.settings()
    store = ctx.store()
    record = _record_or_fail(store, ticket_id)
    mappings = store.mappings()
    template = settings.sync.title_template
    task = None
    task_error = None
    wired = services(settings, store)
    if record.applied.task_id is not None:
        try:
            task = wired.teamwork.get_task(record.applied.task_id)
        except ApiError as exc:
            task_error = str(exc)
    routing = settings.routing()
    target = Target(title_template=template)
    if routing.explicit:  # which route wants it now, and where (a lookup: nothing made)
        try:
            target = wired.reconciler.target(record.ticket, dry_run=True)
            record = wired.reconciler.placed(record)
        except ApiError as exc:
            task_error = task_error or f"could not resolve its route: {exc}"
    finding = (None if task_error else audit.compare(
        record, task, mappings, audit.audit_target(record, routing, template)))
    actions = [str(a) for a in plan(record, mappings, target)]
    retry = next((e for e in store.retries() if e.ticket_id == ticket_id), None)
    history = store.history(ticket_id)
    if as_json:
        _json({"record": record.to_json(),
               "task": None if task is None else {
                   "id": task.id, "name": task.name, "status": task.status,
                   "assignees": list(task.assignees), "tasklist_id": task.tasklist_id,
                   "project_id": task.project_id},
               "route": target.route, "unrouted": target.on_unmatch is not None,
               "task_error": task_error,
               "drift": finding.as_dict()["drift"] if finding else [],
               "next_pass": actions,
               "retry": None if retry is None else {
                   "attempts": retry.attempts, "error": retry.error, "next_at": retry.next_at},
               "history": history})
        sys.exit(EXIT_PARTIAL if task_error else EXIT_OK)
    t, a = record.ticket, record.applied
    click.echo(f"ticket {t.id}: {t.status}, subject {t.subject!r}")
    click.echo(f"  Zendesk assignee {t.assignee_id or '-'}, submitter {t.submitter_id or '-'}"
               f", tags {', '.join(t.tags) or '-'}, updated {t.updated_at or '-'}")
    if routing.explicit:
        route = next((r for r in routing.routes if r.name == target.route), None)
        click.echo(f"route: {route.name} ({route.place}; task list id "
                   f"{target.tasklist_id or 'not made yet'})" if route is not None else
                   f"route: none matches (sync.on_unmatch = {target.on_unmatch})"
                   + (f"; it was last routed by {record.route!r}"
                      if record.route and record.route != target.route else ""))
    click.echo("applied (what zdsync last wrote to Teamwork):")
    if a.task_id is None:
        click.echo("  no task" + (" (a create was in flight: the next attempt looks for its "
                                  "task first)" if record.in_flight else ""))
    else:
        click.echo(f"  task {a.task_id}: {a.title!r}, {who(a.assignee)}, "
                   f"{'completed' if a.completed else 'open'}"
                   + (f", task list {a.tasklist_id}" if a.tasklist_id is not None else "")
                   + (" (a write was in flight: the next attempt reads the task first)"
                      if record.in_flight else ""))
    if a.task_id is not None:
        click.echo("live Teamwork task:")
        if task_error:
            click.echo(f"  could not read it: {task_error}")
        elif task is None:
            click.echo(f"  task {a.task_id} is gone (deleted, or never existed)")
        else:
            people = ", ".join(f"person {p}" for p in task.assignees) or "Anyone"
            click.echo(f"  task {task.id}: {task.name!r}, {people}, status {task.status}, "
                       f"task list {task.tasklist_id}")
    if finding:
        click.echo("drift (zdsync audit --repair fixes it):")
        for drift in finding.drifts:
            click.echo(f"  {drift.kind.value}: {drift.detail}")
    click.echo("next pass: " + ("; ".join(actions) if actions else "nothing to do"))
    if retry:
        click.echo(f"retry: attempt {retry.attempts} failed ({retry.error}); next try "
                   f"{_utc(retry.next_at)}")
    click.echo(f"history ({len(history)}, newest first):")
    for entry in history:
        click.echo(f"  {_utc(entry.get('at'))}  {entry.get('what')}")
    if task_error:
        sys.exit(EXIT_PARTIAL)


@tickets.command("resync")
@click.argument("ticket_id", type=ID)
@click.pass_obj
def tickets_resync(ctx: Context, ticket_id: int) -> None:
    """Read the ticket afresh from Zendesk and reconcile its task now.

    Takes the sync lock like sync --once (exit 75 while another process holds it).
    """
    ctx.settings()
    store = ctx.store()
    started = time.time()
    with _sync_lock(ctx, store) as lock:
        summary = _pass(ctx, lock).fetch([ticket_id])
    record = store.record(ticket_id)
    retry = next((e for e in store.retries() if e.ticket_id == ticket_id), None)
    if record is None and retry is None:
        fail(f"ticket {ticket_id} was not found in Zendesk and zdsync has no record of it")
    for entry in reversed(store.history(ticket_id)):
        if entry.get("at", 0) >= started:
            click.echo(f"  {entry.get('what')}")
    if record is not None:
        a = record.applied
        state = (f"task {a.task_id}: {a.title!r}, {who(a.assignee)}, "
                 f"{'completed' if a.completed else 'open'}" if a.task_id else "no task")
        click.echo(f"ticket {ticket_id} ({record.ticket.status}): {state}")
    if summary.error:
        fail(f"ticket {ticket_id} could not be brought in sync: {summary.error}")
    if summary.failed or retry is not None:
        fail(f"ticket {ticket_id} could not be brought in sync; it is in the retry set"
             + (f": {retry.error}" if retry else ""))


@tickets.command("unlink", short_help="Forget a ticket; Teamwork untouched.")
@click.argument("ticket_id", type=ID)
@click.pass_obj
def tickets_unlink(ctx: Context, ticket_id: int) -> None:
    """Forget a ticket's record (and any retry) without touching Teamwork.

    The task stays in Teamwork as it is; if the ticket changes again, zdsync treats it as
    new and creates another task.
    """
    store = ctx.store()
    record = _record_or_fail(store, ticket_id)
    store.delete_record(ticket_id)
    task = record.applied.task_id
    click.echo(f"forgot ticket {ticket_id}"
               + (f"; task {task} is left in Teamwork untouched" if task else "")
               + "; a later change to the ticket creates a new task")


# -- export cursor ------------------------------------------------------------------------


@main.group()
def cursor() -> None:
    """Where the Zendesk export resumes."""


@cursor.command("show", short_help="Position, lag and last pass.")
@click.option("--json", "as_json", is_flag=True, help="JSON output for scripts.")
@click.pass_obj
def cursor_show(ctx: Context, as_json: bool) -> None:
    """The position reached (a UTC time), how far behind now, and the last pass."""
    store = ctx.store()
    state = store.cursor()
    last = store.last_pass()
    rebuilt = store.last_rebuild()
    now = time.time()
    lag = None if state.position is None else max(0.0, now - state.position)
    if as_json:
        _json({"cursor": state.cursor, "position": state.position,
               "position_utc": None if state.position is None else _utc(state.position),
               "behind_seconds": None if lag is None else round(lag),
               "updated": state.updated, "last_pass": last or None,
               "last_rebuild": rebuilt or None})
        return
    if state.position is None:
        click.echo("position:  none yet: the first pass starts at sync.start_time (default: "
                   "now)")
    else:
        click.echo(f"position:  {_utc(state.position)} ({_span(lag or 0)} behind now)")
    click.echo("cursor:    " + ("saved: the next pass resumes the export from it"
                                if state.cursor else
                                "none: the next pass starts a fresh export at the position"))
    click.echo(f"updated:   {_utc(state.updated)}")
    if last:
        at = float(last["at"]) if last.get("at") else None
        click.echo(f"last pass: {_utc(at)}, {last.get('result')}, "
                   f"{last.get('duration')} s: {last.get('summary')}")
    if rebuilt:
        at = float(rebuilt["at"]) if rebuilt.get("at") else None
        click.echo(f"rebuilt:   {_utc(at)}: the links of {rebuilt.get('tickets')} ticket(s) "
                   f"were read back from {rebuilt.get('tasks')} task(s) in Teamwork "
                   f"(duplicates deleted: {rebuilt.get('duplicates')}) after Redis had lost "
                   "them")


def _start_time(_ctx: click.Context, _param: click.Parameter, value: str) -> int:
    try:
        epoch = parse_time(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if epoch <= 0:
        raise click.BadParameter("must be after 1970-01-01")
    if epoch > time.time():
        raise click.BadParameter(f"{_utc(epoch)} is in the future")
    return epoch


@cursor.command("reset", short_help="Restart the export at a given time.")
@click.option("--start-time", "start", required=True, callback=_start_time, metavar="WHEN",
              help="ISO-8601 (2026-01-31T12:00:00Z) or epoch seconds.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def cursor_reset(ctx: Context, start: int, yes: bool) -> None:
    """Discard the export cursor: the next pass exports every ticket changed since WHEN.

    Replaying tickets is harmless (unchanged tasks are not written). Takes the sync lock
    (exit 75 while a pass or the daemon's leader holds it) so that no running pass puts
    its own cursor back.
    """
    store = ctx.store()
    state = store.cursor()
    click.echo(f"now at:   {_utc(state.position) if state.position else 'no position yet'}")
    click.echo(f"reset to: {_utc(start)} ({_span(time.time() - start)} ago)")
    if not yes and not click.confirm("The next pass re-exports every ticket changed since "
                                     "then. Reset the cursor?", default=False):
        fail("cursor left unchanged")
    with _sync_lock(ctx, store) as lock:
        store.restart_export(lock.token, start)
    click.echo(f"cursor reset: the next pass starts a fresh export at {_utc(start)}")


# -- retry set ----------------------------------------------------------------------------


@main.group()
def retries() -> None:
    """Tickets whose last attempt failed, retried with backoff."""


@retries.command("list")
@click.option("--json", "as_json", is_flag=True, help="JSON output for scripts.")
@click.pass_obj
def retries_list(ctx: Context, as_json: bool) -> None:
    """Ticket, attempts, last error and next try of every queued ticket."""
    entries = ctx.store().retries()
    now = time.time()
    if as_json:
        _json([{"ticket_id": e.ticket_id, "attempts": e.attempts, "error": e.error,
                "next_at": e.next_at, "since": e.since} for e in entries])
        return
    _table(["TICKET", "ATTEMPTS", "NEXT TRY", "FAILING SINCE", "LAST ERROR"],
           [(e.ticket_id, e.attempts,
             "due now" if e.next_at <= now else f"in {_span(e.next_at - now)}",
             _utc(e.since), e.error.splitlines()[0][:100] if e.error else None)
            for e in entries])
    click.echo(f"{len(entries)} ticket(s) waiting")


def _queued_or_fail(store: Store, ticket_ids: tuple[int, ...]) -> list[int]:
    ids = list(dict.fromkeys(ticket_ids))
    unknown = [t for t in ids if t not in store.queued_for_retry(ids)]
    if unknown:
        fail(f"not in the retry set: {', '.join(map(str, unknown))}; nothing was changed "
             "(zdsync retries list shows the queued tickets)")
    return ids


@retries.command("retry")
@click.argument("ticket_ids", nargs=-1, type=ID)
@click.option("--all", "all_", is_flag=True, help="Every queued ticket.")
@click.pass_obj
def retries_retry(ctx: Context, ticket_ids: tuple[int, ...], all_: bool) -> None:
    """Make queued tickets due now: the next pass retries them."""
    if bool(ticket_ids) == all_:
        raise click.UsageError("give ticket ids or --all (not both)")
    store = ctx.store()
    ids = ([e.ticket_id for e in store.retries()] if all_
           else _queued_or_fail(store, ticket_ids))
    store.retry_now(ids)
    click.echo(f"{len(ids)} ticket(s) due now; the next pass retries them")


@retries.command("drop", short_help="Stop retrying tickets.")
@click.argument("ticket_ids", nargs=-1, required=True, type=ID)
@click.pass_obj
def retries_drop(ctx: Context, ticket_ids: tuple[int, ...]) -> None:
    """Stop retrying tickets (their stored records stay; a later change retries them)."""
    store = ctx.store()
    ids = _queued_or_fail(store, ticket_ids)
    store.drop_retries(ids)
    click.echo(f"dropped {len(ids)} ticket(s) from the retry set")


# -- check --------------------------------------------------------------------------------


@main.command(short_help="Check configuration, Redis and both services.")
@click.option("--json", "as_json", is_flag=True, help="JSON output for scripts.")
@click.pass_obj
def check(ctx: Context, as_json: bool) -> None:
    """Check that this installation can sync; a checklist with a fix for each failure.

    Configuration, Redis (the master, with Sentinel), Zendesk credentials of an admin,
    Teamwork credentials, the project and the task list. Exit 2 if the configuration is
    invalid, 1 if another check fails.
    Every check gives up within seconds: no retries, short timeouts.
    """
    results = checks.run(ctx.config_path, ctx.options,
                         lambda settings: _clients(ctx, settings))
    failed = [c for c in results if c.state in (checks.FAIL, checks.SKIP)]
    misconfigured = any(c.name == "configuration" and c.state == checks.FAIL for c in results)
    if as_json:
        _json({"ok": not failed, "checks": [c.as_dict() for c in results]})
    else:
        for c in results:
            click.echo(f"{checks.MARKS[c.state]} {c.name}: {c.detail}")
            if c.hint and c.state in (checks.FAIL, checks.WARN):
                click.echo(f"    fix: {c.hint}")
        bad = sum(1 for c in results if c.state == checks.FAIL)
        click.echo(f"{bad} of {len(results)} check(s) failed" if failed
                   else "all checks passed")
    sys.exit(EXIT_CONFIG if misconfigured else EXIT_PARTIAL if failed else EXIT_OK)


# -- audit --------------------------------------------------------------------------------


@main.command("audit", short_help="Report tasks that drifted; --repair fixes them.")
@click.option("--repair", is_flag=True,
              help="Fix the drift found, through the normal reconciler (takes the sync lock).")
@click.option("--json", "as_json", is_flag=True, help="JSON output for scripts.")
@click.pass_obj
def audit_command(ctx: Context, repair: bool, as_json: bool) -> None:
    """Find tasks that drifted from what their tickets imply (and repair them).

    Reads every tracked task from Teamwork in batches and reports tasks deleted,
    completed or reopened by hand, a wrong assignee or title, and missing tasks. Exit 0
    when there is no drift (or --repair fixed all of it), 1 otherwise.
    """
    settings = ctx.settings()
    store = ctx.store()
    with ExitStack() as stack:
        lock = stack.enter_context(_sync_lock(ctx, store)) if repair else None
        records = list(store.all_records())
        tracked = [r.applied.task_id for r in records if r.applied.task_id is not None]
        _, teamwork = _clients(ctx)
        tasks: dict[int, Any] = {}
        with _api_errors("could not read the tasks from Teamwork"), click.progressbar(
                length=len(tracked), label="reading tasks", file=sys.stderr) as bar:
            for start in range(0, len(tracked), TASKS_BY_IDS_BATCH):
                chunk = tracked[start:start + TASKS_BY_IDS_BATCH]
                tasks.update(teamwork.tasks_by_ids(chunk))
                bar.update(len(chunk))
        mappings = store.mappings()
        template = settings.sync.title_template
        routing = settings.routing()
        findings = [f for r in records
                    if (f := audit.compare(r, tasks.get(r.applied.task_id or 0), mappings,
                                           audit.audit_target(r, routing, template)))
                    is not None]
        findings.sort(key=lambda f: f.ticket_id)
        failed: dict[int, str] = {}
        if repair and findings:
            assert lock is not None
            failed = _repair(ctx, lock, findings, tasks)
    if as_json:
        _json({"audited": len(records), "tasks_checked": len(tracked),
               "drift": [f.as_dict() for f in findings], "repaired": repair,
               "repair_failed": {str(k): v for k, v in failed.items()}})
    else:
        for f in findings:
            click.echo(f"ticket {f.ticket_id}"
                       + (f" (task {f.task_id})" if f.task_id else "") + ":")
            for drift in f.drifts:
                click.echo(f"  {drift.kind.value}: {drift.detail}")
            if f.ticket_id in failed:
                click.echo(f"  repair failed (queued for retry): {failed[f.ticket_id]}")
        click.echo(f"{len(records)} ticket(s) audited, {len(tracked)} task(s) looked up: "
                   f"{len(findings)} with drift"
                   + (f"; {len(findings) - len(failed)} repaired, {len(failed)} failed"
                      if repair else "; zdsync audit --repair fixes it" if findings else ""))
    sys.exit(EXIT_PARTIAL if failed or (findings and not repair) else EXIT_OK)


def _repair(ctx: Context, lock: SyncLock, findings: list[audit.Finding],
            tasks: dict[int, Any]) -> dict[int, str]:
    """Reconcile each drifted ticket against what Teamwork really holds, as any pass
    would; returns the tickets that failed (they are in the retry set)."""
    observed: dict[int, list[Any] | None] = {}
    for f in findings:
        task = tasks.get(f.task_id) if f.task_id is not None else None
        # No task recorded: the reconciler looks for one itself if a create was in flight.
        observed[f.ticket_id] = None if f.task_id is None else [task] if task else []
    p = _pass(ctx, lock)
    unit = p.repair(observed, notes={f.ticket_id: "audit: " + "; ".join(
        d.detail for d in f.drifts) for f in findings})
    if p.summary.stopped:
        fail("lost the sync lock; the repair stopped (what it did is saved); run it again")
    if p.summary.error:
        fail(f"the repair stopped (what it did is saved; run it again): {p.summary.error}")
    return dict(unit.failed)


# -- recover -----------------------------------------------------------------------------


@main.command(short_help="Rebuild the ticket->task links from Teamwork.")
@click.option("--dry-run", is_flag=True, help="Show what it would link, delete and change; "
              "write nothing.")
@click.pass_obj
def recover(ctx: Context, dry_run: bool) -> None:
    """Rebuild the ticket->task links from Teamwork, as a pass does by itself when Redis
    comes back without zdsync's state.

    Reads every task of the task list (completed ones too), links each to the ticket its
    description names, deletes extra copies, reads those tickets from Zendesk and
    reconciles them. Takes the sync lock (exit 75 while a daemon leads).
    """
    ctx.settings()
    store = ctx.store()
    with _sync_lock(ctx, store) as lock:
        p = _pass(ctx, lock, dry_run=dry_run)
        try:
            report = p.rebuild()
        except Interrupted:
            fail("lost the sync lock; the rebuild stopped; run it again")
        except ApiError as exc:
            fail(f"the rebuild stopped (nothing is lost; run it again): {exc}")
    summary = p.summary
    lists = ", ".join(str(t) for t in report.tasklists)
    click.echo(f"task list{'s' if len(report.tasklists) > 1 else ''} {lists}: "
               f"{report.tasks} task(s) link "
               f"{len(report.linked)} ticket(s); duplicates: {report.duplicates}; "
               f"{report.unlinked} task(s) without a link to this Zendesk (left alone)")
    if dry_run:
        for ticket_id, actions in summary.planned:
            click.echo(f"ticket {ticket_id}: " + "; ".join(actions))
        click.echo(f"dry run: {len(summary.planned)} ticket(s) would change; nothing written")
        return
    click.echo(f"relinked {len(report.linked)} ticket(s): " + summary.line())
    if report.start_position:
        click.echo(f"the export resumes from {_utc(report.start_position)}")
    sys.exit(EXIT_PARTIAL if summary.failed or summary.error else EXIT_OK)


# -- the daemon and the demo ---------------------------------------------------------------


@main.command()
@click.pass_obj
def run(ctx: Context) -> None:
    """Run the daemon: scheduled passes, leader election, health, metrics, webhooks."""
    from zdsync.daemon import Daemon

    settings = ctx.settings()
    try:
        daemon = Daemon(settings)  # binds its ports: an unusable one is a config error
    except ConfigError as exc:
        click.echo(f"zdsync: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    sys.exit(daemon.run())


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
