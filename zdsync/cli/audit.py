"""``zdsync audit``: the drift between Teamwork and what the tickets imply, and its repair."""

from __future__ import annotations

import sys
from contextlib import nullcontext

import click

from zdsync import audit
from zdsync.cli import output
from zdsync.cli.context import EXIT_OK, Context, api_errors, fail, sync_lock


@click.command("audit", short_help="Report tasks that drifted; --repair fixes them.")
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
    services = ctx.services()
    settings, store = services.settings, services.store
    failed: dict[int, str] = {}
    with sync_lock(ctx, store) if repair else nullcontext() as lock:
        records = list(store.all_records())
        tracked = [r.applied.task_id for r in records if r.applied.task_id is not None]
        click.echo(f"reading {len(tracked)} task(s) from Teamwork", err=True)
        with api_errors("could not read the tasks from Teamwork"):
            tasks = services.teamwork.tasks_by_ids(tracked)
        findings = audit.find_drift(records, tasks, store.mappings(), settings.routing(),
                                    settings.sync.title_template)
        if lock is not None and findings:
            p = services.new_pass(lock)
            unit = p.repair(*audit.repair_input(findings, tasks))
            if p.summary.stopped:
                fail("lost the sync lock; the repair stopped (what it did is saved); run it "
                     "again")
            if p.summary.error:
                fail(f"the repair stopped (what it did is saved; run it again): "
                     f"{p.summary.error}")
            failed = dict(unit.failed)
    if as_json:
        output.dump_json({"audited": len(records), "tasks_checked": len(tracked),
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
    if failed:
        fail(f"{len(failed)} repair(s) failed; the tickets wait in the retry set (zdsync "
             "retries list shows why)")
    if findings and not repair:
        fail(f"{len(findings)} ticket(s) with drift; zdsync audit --repair fixes it")
    sys.exit(EXIT_OK)
