"""``zdsync cursor``: where the Zendesk export resumes, and restarting it."""

from __future__ import annotations

import time

import click

from zdsync.cli import output
from zdsync.cli.context import Context, fail, sync_lock
from zdsync.times import for_people as _utc
from zdsync.values import parse_time


@click.group()
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
    losses = store.losses()
    now = time.time()
    lag = None if state.position is None else max(0.0, now - state.position)
    if as_json:
        output.dump_json({"cursor": state.cursor, "position": state.position,
               "position_utc": None if state.position is None else _utc(state.position),
               "behind_seconds": None if lag is None else round(lag),
               "updated": state.updated, "last_pass": output.numbers(last) or None,
               "last_rebuild": output.numbers(rebuilt) or None,
               "losses": dict(sorted(losses.items())) or None})
        return
    if state.position is None:
        click.echo("position:  none yet: the first pass starts at sync.start_time (default: "
                   "now)")
    else:
        click.echo(f"position:  {_utc(state.position)} ({output.span(lag or 0)} behind now)")
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
        why = {"asked": "by zdsync recover", "another store": "as Redis held another store",
               "first start": ""}.get(_rebuild_reason(rebuilt), "after Redis had lost them")
        click.echo(f"rebuilt:   {_utc(at)}: " + (
            f"the links of {rebuilt.get('tickets')} ticket(s) were read back from "
            f"{rebuilt.get('tasks')} task(s) in Teamwork (duplicates deleted: "
            f"{rebuilt.get('duplicates')}) {why}" if why else
            "none needed: a first start (no task in Teamwork links a ticket)"))
    for name, at in sorted(losses.items(), key=lambda item: item[1]):
        click.echo(f"lost:      {_utc(at)}: Redis had lost the key {name!r}; repaired from "
                   "what survived (docs/design.md, \"When Redis loses its data\")")


def _rebuild_reason(rebuilt: dict[str, str]) -> str:
    """Why the links were last rebuilt; a record written before reasons were kept: lost,
    unless it relinked nothing (a first start)."""
    return rebuilt.get("reason") or ("first start" if rebuilt.get("tickets") == "0"
                                     else "lost")


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
    click.echo(f"reset to: {_utc(start)} ({output.span(time.time() - start)} ago)")
    if not yes and not click.confirm("The next pass re-exports every ticket changed since "
                                     "then. Reset the cursor?", default=False):
        fail("cursor left unchanged")
    with sync_lock(ctx, store) as lock:
        store.restart_export(lock.token, start)
    click.echo(f"cursor reset: the next pass starts a fresh export at {_utc(start)}")


