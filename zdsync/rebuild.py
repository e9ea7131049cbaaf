"""Rebuilding the ticket->task links from Teamwork, after Redis lost them.

Redis holds a cache of what was applied. When a pass finds no store identity (Redis came
back empty, as with an ``emptyDir`` volume, or this is a first start) or another store's,
it creates nothing until the links are rebuilt from what Teamwork really holds:

1. page through the tasks of every list a task may be in (``[teamwork]``'s and each
   route's: ``Reconciler.search_lists``), completed ones and those of a completed list
   included, and read the ticket link each task carries in its description;
2. keep one task per ticket (the oldest); extra copies zdsync made are deleted;
3. read those tickets from Zendesk (``show_many``, 100 a request) and reconcile each one
   against the task found, so closed and deleted tickets lose their tasks and the rest
   get the right title, assignee and completion;
4. reload the agent mappings from ``[users] file``; with none at all, tasks keep the
   assignee Teamwork holds until a mapping is stored (nothing falls to "Anyone" en masse);
5. write a new identity, and let the export resume: from where zdsync's own most recent
   Teamwork write shows it had got to (minus ``REBUILD_REPLAY_MARGIN_SECONDS``), never
   before ``sync.start_time``; with no such task, from ``sync.start_time``, else now.

The rebuild is idempotent: if it dies half-way, no identity is written and the next pass
starts it over. ``zdsync recover`` runs it by hand (``--dry-run`` to see what it would do).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from zdsync import defaults
from zdsync.agents import read_mappings_file
from zdsync.errors import ApiError
from zdsync.queues import HELD
from zdsync.reconciler import Context
from zdsync.rules import linked_ticket_id
from zdsync.tasks import Task
from zdsync.times import epoch_or_none, iso_utc
from zdsync.workqueue import Item, Unit

if TYPE_CHECKING:
    from zdsync.passes import Pass

log = logging.getLogger(__name__)



@dataclass
class Report:
    """What a rebuild found."""

    tasks: int = 0  # live tasks in the task list
    linked: dict[int, list[Task]] = field(default_factory=dict)  # ticket id -> its tasks
    unlinked: int = 0  # tasks that carry no link to this Zendesk (not zdsync's)
    start_position: int | None = None  # where the export resumes, when it had no cursor
    tasklists: list[int] = field(default_factory=list)  # the lists read

    @property
    def duplicates(self) -> int:
        return sum(len(tasks) - 1 for tasks in self.linked.values())


def read_links(tasks: Iterable[Task], zendesk_url: str) -> Report:
    """Group a task list's tasks by the ticket their description links to."""
    report = Report()
    for task in tasks:
        report.tasks += 1
        ticket_id = linked_ticket_id(task.description, zendesk_url)
        if ticket_id is None:
            report.unlinked += 1
        else:
            report.linked.setdefault(ticket_id, []).append(task)
    return report


def replay_from(tasks: Iterable[Task], integration_user: int | None,
                start_time: int | None) -> int | None:
    """Where the export should resume after the cursor was lost: a margin before the most
    recent write zdsync's integration user made in Teamwork (tasks people edited later do
    not count), never before ``sync.start_time``; None when zdsync wrote nothing."""
    stamps = [epoch_or_none(t.updated_at) for t in tasks
              if integration_user is not None and t.updated_by == integration_user]
    latest = max((s for s in stamps if s is not None), default=None)
    if latest is None:
        return None
    position = latest - defaults.REBUILD_REPLAY_MARGIN_SECONDS
    return max(position, start_time) if start_time else position


def rebuild(p: Pass, *, lost: bool = True, asked: bool = False,
            identity: str | None = None, keep_cursor: bool = True) -> Report:
    """Rebuild the links in ``p``'s store from Teamwork (see the module docstring).

    Only a rebuild that finds links Redis had lost is an incident (logged at ERROR,
    counted in ``zdsync_state_rebuilds_total``): one that finds none is a first start, a
    dry run changes nothing, and ``asked`` (``zdsync recover``) is the operator's own.
    ``identity``: the store's, kept (only the records were lost: ``recovery``); else a
    new one is written. ``keep_cursor`` False: the cursor cannot be trusted (the records
    and the retry set were lost together: failed tickets are unknown), the export
    replays as after an empty Redis."""
    reconciler, store = p.reconciler, p.store
    settings = reconciler.settings
    teamwork = reconciler.teamwork
    log.info("%s: reading Teamwork for the tasks zdsync made before anything is "
             "created", "Redis lost the ticket records, and kept the rest" if identity
             else "Redis holds no zdsync state (empty, or a first start)" if lost
             else "rebuilding the links" + ("" if asked else " (Redis holds another store)"))
    p.rebuilding = True
    started = time.monotonic()
    try:
        lists = reconciler.search_lists()
        tasklist = ", ".join(str(t) for t in lists) or "(none yet)"
        tasklist = f"task list{'s' if len(lists) > 1 else ''} {tasklist}"
        tasks = [task for tl in lists for task in teamwork.tasklist_tasks(tl)]
        report = read_links(tasks, settings.zendesk.base_url)
        report.tasklists = lists
        incident = bool(report.linked) and not (asked or p.dry_run)
        if incident:
            log.error("STATE REBUILD: Redis had lost the links of %d ticket(s) whose tasks "
                      "are in %s (duplicates: %d; tasks of no ticket: %d); rebuilding "
                      "them from Teamwork", len(report.linked), tasklist,
                      report.duplicates, report.unlinked)
            p.metrics.state_rebuilds.inc()
        elif report.linked:
            log.info("%s the links of %d ticket(s) whose tasks are in %s (duplicates: %d; "
                     "tasks of no ticket: %d) from Teamwork",
                     "dry run: would read" if p.dry_run else "reading", len(report.linked),
                     tasklist, report.duplicates, report.unlinked)
        else:
            log.info("no task in %s links a ticket: nothing to rebuild%s", tasklist,
                     " (a first start)" if lost else "")
        if settings.users.file and not p.dry_run:
            changed = store.merge_mappings(read_mappings_file(settings.users.file))
            log.info("rebuild: %d agent mapping(s) restored from %s", changed,
                     settings.users.file)
        mappings, held = store.mappings_and_hold()
        held = held or (not mappings and any(t.assignees for t in tasks))
        if held:
            log.warning("rebuild: no agent mappings are stored and no [users] file has any: "
                        "tasks keep the assignees Teamwork holds until mappings are stored "
                        "again (zdsync users import)")
        p.worker.ctx = Context(mappings, hold_assignees=held, doubt=p.in_doubt,
                               dry_run=p.dry_run)
        ids = sorted(report.linked)
        for start in range(0, len(ids), defaults.REBUILD_BATCH_TICKETS):
            unit = Unit("rebuild")
            p.worker.enqueue(unit, [Item(t, fresh=True, observed=report.linked[t], units=[unit])
                                     for t in ids[start:start + defaults.REBUILD_BATCH_TICKETS]])
            p.worker.drain()
        report.start_position = _start_position(p, tasks, keep_cursor)
        if not p.dry_run:
            ops = []
            if report.start_position is not None:
                ops += [["hdel", store.key("cursor"), "cursor"],
                        *store.cursor_ops(None, report.start_position, p.clock())]
            if held:
                ops.append(["hset", store.key("users"), HELD, "1"])
            reason = ("asked" if asked else "lost" if report.linked and lost
                      else "another store" if report.linked else "first start")
            ops.append(["hset", store.key("rebuilt"), "at", repr(time.time()), "reason", reason,
                        "tasks", str(report.tasks), "tickets", str(len(report.linked)),
                        "duplicates", str(report.duplicates),
                        "seconds", f"{time.monotonic() - started:.1f}"])
            store.write(p.fence, ops=ops)
            p.identity = store.claim_identity(p.fence, identity)
            log.log(logging.WARNING if incident else logging.INFO,
                    "rebuild done in %.1f s: %d ticket(s) linked again%s",
                    time.monotonic() - started, len(report.linked),
                    f"; the export resumes {_when(report.start_position)}"
                    if report.start_position else "")
        return report
    finally:
        p.rebuilding = False


def _start_position(p: Pass, tasks: list[Task], keep_cursor: bool) -> int | None:
    """The export position to resume from, when the store has neither cursor nor one (or
    not one to trust) and zdsync had made tasks (else the export goes on as usual)."""
    state = p.store.cursor()
    if (keep_cursor and (state.cursor or state.position)) or not tasks:
        return None
    start_time = p.reconciler.settings.sync.start_time
    try:
        me: int | None = p.reconciler.teamwork.me().id
    except ApiError as exc:
        log.warning("rebuild: could not read Teamwork's integration user (%s); the export "
                    "resumes at sync.start_time or now", exc)
        me = None
    position = replay_from(tasks, me, start_time)
    latest = int(p.clock()) - defaults.ZENDESK_START_TIME_MARGIN_SECONDS
    if position is None:
        return min(start_time, latest) if start_time else latest
    return min(position, latest)


def _when(epoch: int) -> str:
    return f"from {iso_utc(epoch)}"
