"""``zdsync tickets``: the tickets zdsync tracks, one in detail, resync and unlink."""

from __future__ import annotations

import sys
import time

import click

from zdsync.cli import output
from zdsync.cli.context import (
    EXIT_OK,
    ID,
    Context,
    fail,
    record_or_fail,
    sync_lock,
)
from zdsync.rules import KNOWN_STATUSES, who
from zdsync.store import is_tombstone
from zdsync.times import for_people as _utc


@click.group(short_help="Tracked tickets: list, show, resync, unlink.")
def tickets() -> None:
    """The tickets zdsync tracks: their tasks, history, resync and unlink."""


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
        output.dump_json(rows)
        return
    output.table(["TICKET", "STATE", "TASK", "ASSIGNEE", "RETRY", "TITLE"],
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
    from zdsync.inspection import inspect

    services = ctx.services()
    seen = inspect(services, record_or_fail(services.store, ticket_id))
    unread = f"could not read task {seen.record.applied.task_id} from Teamwork: {seen.task_error}"
    if as_json:
        output.dump_json(seen.as_json())
        if seen.task_error:
            fail(unread)
        sys.exit(EXIT_OK)
    record, task, task_error, target = seen.record, seen.task, seen.task_error, seen.target
    finding, retry, history = seen.finding, seen.retry, seen.history
    routing = services.settings.routing()
    t, a = record.ticket, record.applied
    if is_tombstone(record):
        click.echo(f"ticket {t.id}: closed or deleted, its task gone; only a tombstone is "
                   f"kept (version {t.generated_timestamp}), so that older snapshots change "
                   "nothing")
    else:
        subject = repr(t.subject) if t.subject else "none"
        click.echo(f"ticket {t.id}: {t.status}, subject {subject}")
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
    click.echo("next pass: " + ("; ".join(seen.actions) if seen.actions else "nothing to do"))
    if retry:
        click.echo(f"retry: attempt {retry.attempts} failed ({retry.error}); next try "
                   f"{_utc(retry.next_at)}")
    click.echo(f"history ({len(history)}, newest first):")
    for entry in history:
        click.echo(f"  {_utc(entry.get('at'))}  {entry.get('what')}")
    if task_error:
        fail(unread)


@tickets.command("resync")
@click.argument("ticket_id", type=ID)
@click.pass_obj
def tickets_resync(ctx: Context, ticket_id: int) -> None:
    """Read the ticket afresh from Zendesk and reconcile its task now.

    Takes the sync lock like sync (exit 75 while another process holds it).
    """
    ctx.settings()
    store = ctx.store()
    started = time.time()
    with sync_lock(ctx, store) as lock:
        summary = ctx.services().new_pass(lock).fetch([ticket_id])
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
    record = record_or_fail(store, ticket_id)
    store.delete_record(ticket_id)
    task = record.applied.task_id
    click.echo(f"forgot ticket {ticket_id}"
               + (f"; task {task} is left in Teamwork untouched" if task else "")
               + "; a later change to the ticket creates a new task")


