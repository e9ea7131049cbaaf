"""``zdsync sync`` and ``zdsync recover``: one pass from the command line, and the
rebuild of the ticket->task links from Teamwork."""

from __future__ import annotations

import sys
import time
from typing import Any, NoReturn

import click
import redis

from zdsync import eviction
from zdsync.cli import output
from zdsync.cli.context import EXIT_OK, Context, fail, load_users_file, sync_lock
from zdsync.cli.progress import Progress
from zdsync.errors import ApiError, Interrupted
from zdsync.metrics import Metrics
from zdsync.store import Store
from zdsync.summary import Summary
from zdsync.times import for_people as _utc

JSON = click.option("--json", "as_json", is_flag=True,
                    help="JSON output for scripts (with --dry-run: the plan, one object per "
                         "ticket).")


def _stderr_is_terminal() -> bool:
    return sys.stderr.isatty()


@click.command()
@click.option("--once", is_flag=True, help="Accepted for compatibility: sync always runs one "
              "pass.")
@click.option("--dry-run", is_flag=True,
              help="Print the plan for the export, ticket by ticket; write nothing, move no "
                   "cursor (mapping changes and retries are not previewed).")
@click.option("--quiet", "-q", is_flag=True, help="No progress display on a terminal.")
@JSON
@click.pass_obj
def sync(ctx: Context, once: bool, dry_run: bool, quiet: bool, as_json: bool) -> None:
    """Run one reconciliation pass from the saved cursor, then exit.

    On a terminal, a backfill shows its progress on standard error (tickets seen, how
    far the export has got, pages, Teamwork requests a minute, ETA); not with --quiet,
    nor when not a terminal.
    """
    ctx.settings()  # configuration errors first, before any network call
    store = ctx.store()
    metrics = Metrics()
    progress = Progress(_stderr_is_terminal() and not quiet, metrics)
    with sync_lock(ctx, store) as lock:
        try:
            if not dry_run:
                load_users_file(ctx, store)
                eviction.check(store.r, metrics)
            p = ctx.services(metrics).new_pass(lock, dry_run=dry_run, on_progress=progress)
            summary = p.run()
        except redis.RedisError as exc:
            fail(f"Redis failed during the pass ({exc}); nothing past the work done was "
                 "committed, the next pass resumes")
        finally:
            progress.close()
    if summary.rebuilt:
        click.echo("the ticket->task links were rebuilt from Teamwork first (Redis had no "
                   "zdsync state)", err=True)
    if as_json:
        output.dump_json({"dry_run": dry_run, **_plan(summary, dry_run),
                          "summary": summary.as_dict()})
    elif dry_run:
        _print_plan(summary)
        click.echo(f"dry run: {len(summary.planned)} ticket(s) would change; " + summary.line())
    else:
        click.echo(summary.line())
    _exit(summary, None if dry_run else store)


def _plan(summary: Summary, dry_run: bool) -> dict[str, Any]:
    """A dry run's plan for ``--json``: one object per ticket, its actions in order."""
    return {"planned": [{"ticket_id": t, "actions": actions} for t, actions in summary.planned]
            } if dry_run else {}


def _print_plan(summary: Summary) -> None:
    for ticket_id, actions in summary.planned:
        click.echo(f"ticket {ticket_id}: " + "; ".join(actions))


def _exit(summary: Summary, store: Store | None) -> NoReturn:
    """Exit 0, or 1 with the one line on standard error that says why: cron and CI see
    the reason beside the counts. With ``store`` (``sync``), any ticket in the retry set is
    work left, even one not due yet; without (dry runs, ``recover``), this run's failures."""
    if summary.stopped:
        fail("the pass lost its lock and stopped early; the next pass resumes")
    if summary.error:
        fail(f"the pass stopped early (the cursor keeps its place): {summary.error}")
    waiting = store.retries() if store is not None else []
    if waiting:
        soonest = min(e.next_at for e in waiting) - time.time()
        when = "due now" if soonest <= 0 else f"in {output.span(soonest)}"
        fail(f"{len(waiting)} ticket(s) wait in the retry set ({summary.failed} failed in "
             f"this pass; next try {when}): zdsync retries list shows their errors")
    if summary.failed:
        fail(f"{summary.failed} ticket(s) failed (see the log above)")
    sys.exit(EXIT_OK)




@click.command(short_help="Rebuild the ticket->task links from Teamwork.")
@click.option("--dry-run", is_flag=True, help="Show what it would link, delete and change; "
              "write nothing.")
@JSON
@click.pass_obj
def recover(ctx: Context, dry_run: bool, as_json: bool) -> None:
    """Rebuild the ticket->task links from Teamwork, as a pass does by itself when Redis
    comes back without zdsync's state.

    Reads every task of the task list (completed ones too), links each to the ticket its
    description names, deletes extra copies, reads those tickets from Zendesk and
    reconciles them. Takes the sync lock (exit 75 while a daemon leads).
    """
    ctx.settings()
    store = ctx.store()
    with sync_lock(ctx, store) as lock:
        p = ctx.services().new_pass(lock, dry_run=dry_run)
        try:
            report = p.rebuild()
        except Interrupted:
            fail("lost the sync lock; the rebuild stopped; run it again")
        except ApiError as exc:
            fail(f"the rebuild stopped (nothing is lost; run it again): {exc}")
    summary = p.summary
    if as_json:
        output.dump_json({"dry_run": dry_run, "tasklists": report.tasklists,
                          "tasks": report.tasks, "linked": len(report.linked),
                          "duplicates": report.duplicates, "unlinked": report.unlinked,
                          "start_position": report.start_position, **_plan(summary, dry_run),
                          "summary": summary.as_dict()})
        _exit(summary, None)
    lists = ", ".join(str(t) for t in report.tasklists)
    click.echo(f"task list{'s' if len(report.tasklists) > 1 else ''} {lists}: "
               f"{report.tasks} task(s) link "
               f"{len(report.linked)} ticket(s); duplicates: {report.duplicates}; "
               f"{report.unlinked} task(s) without a link to this Zendesk (left alone)")
    if dry_run:
        _print_plan(summary)
        click.echo(f"dry run: {len(summary.planned)} ticket(s) would change; nothing written")
        _exit(summary, None)
    click.echo(f"relinked {len(report.linked)} ticket(s): " + summary.line())
    if report.start_position:
        click.echo(f"the export resumes from {_utc(report.start_position)}")
    _exit(summary, None)


