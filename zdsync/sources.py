"""Where a pass's work comes from, in the order ``Pass.run`` takes them: tickets a deposed
leader may have written to, agents whose mapping changed, due retries, and the export
from the saved cursor, page by page. (Webhook-queued tickets come first, and between
any two tickets: ``Pass.poll``.) Each source hands the worker units of tickets.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from zdsync import defaults
from zdsync.metrics import Metrics
from zdsync.queues import EVERY_AGENT
from zdsync.rules import MalformedTicket, Record, Ticket
from zdsync.workqueue import Item, Unit

if TYPE_CHECKING:
    from zdsync.passes import Pass

log = logging.getLogger(__name__)


def suspects(p: Pass) -> None:
    """Tickets a deposed leader reported it may have written to after losing its lease:
    their tasks are observed before they are planned."""
    reported = p.store.suspects()
    if reported:
        log.warning("observing %d task(s) a leader may have written to after it lost "
                    "its lease", len(reported))
        unit = Unit("suspect", data=reported)
        p.worker.enqueue(unit, [Item(t, fresh=True, suspect=True, units=[unit])
                                for t, _ in reported])
        p.worker.drain()


def affected_by(records: Iterable[Record], agents: set[int]) -> list[Record]:
    """The records whose task follows one of these agents' mappings (every record with a
    task, for ``EVERY_AGENT``): open tickets and merged ones alike."""
    every = EVERY_AGENT in agents
    return [r for r in records if r.applied.task_id is not None
            and (every or r.ticket.assignee_id in agents
                 or (r.ticket.assignee_id is None and r.ticket.submitter_id in agents))]


def remapped(p: Pass) -> None:
    """Re-plan the tasks of agents whose mapping changed (every task, when a hold of
    assignees ended), from stored snapshots. The agents are unlisted only once their
    tickets are done (or queued for retry)."""
    listed = p.store.remapped()
    agents = {a for a, _ in listed}
    if not agents:
        return
    affected = affected_by(p.store.all_records(), agents)
    log.info("mapping changed for %s: re-planning %d ticket(s)",
             "every agent" if EVERY_AGENT in agents else f"{len(agents)} agent(s)",
             len(affected))
    for record in affected:
        p.worker.cache.setdefault(record.ticket.id, record)
    unit = Unit("remap", data=listed)
    p.worker.enqueue(unit, [Item(r.ticket.id, units=[unit]) for r in affected])
    p.worker.drain()


def retries(p: Pass) -> None:
    due = p.store.due_retries(p.clock())
    if due:
        log.info("retrying %d ticket(s)", len(due))
        unit = Unit("retry")
        p.worker.enqueue(unit, [Item(t, fresh=True, units=[unit]) for t in due])
        p.worker.drain()


def export(p: Pass) -> None:
    """The export from the saved cursor: one unit a page, whose cursor is committed once
    every ticket of the page is done."""
    state = p.store.cursor()
    start_time = None if state.cursor else first_start_time(p, state.position)
    position = state.position
    p.export_from = start_time if start_time is not None else position
    for page in p.zendesk.export(state.cursor, start_time):
        p.summary.pages += 1
        if page.too_recent:
            log.info("export: nothing new yet (start time within the last minute)")
            return
        tickets, unreadable, skipped = parse_page(page.tickets, p.metrics)
        p.summary.seen += len(page.tickets)
        p.export_done = page.end_of_stream
        p.summary.skipped += skipped
        position = page_position(page.tickets, page.end_of_stream, p.clock()) or position
        unit = Unit("page", data=(page.after_cursor, position))
        unit.failed.update(unreadable)
        p.worker.enqueue(unit, [Item(t.id, snapshot=t, units=[unit]) for t in tickets])
        p.worker.drain()
        p.summary.cursor_position = position
        if position and not p.dry_run:
            p.metrics.cursor_lag.set(max(0.0, p.clock() - position))


def first_start_time(p: Pass, saved: int | None) -> int:
    """Where the very first export starts. Chosen once and saved, so a first pass that
    fails does not move the start forward and lose the changes in between."""
    latest = int(p.clock()) - defaults.ZENDESK_START_TIME_MARGIN_SECONDS
    start = min(saved or p.reconciler.settings.sync.start_time or latest, latest)
    if saved is None and not p.dry_run:
        p.store.write(p.fence, ops=p.store.cursor_ops(None, start, p.clock()))
    return start


def page_position(tickets: list[Any], end_of_stream: bool, now: float) -> int | None:
    """Epoch seconds the export has reached: for ``zdsync cursor show`` and the lag."""
    if end_of_stream:
        return int(now) - 60  # caught up: Zendesk holds back the last minute
    stamps = [t.get("generated_timestamp") for t in tickets if isinstance(t, dict)]
    return max((s for s in stamps if isinstance(s, int) and not isinstance(s, bool)),
               default=None)


def parse_page(raw_tickets: list[Any], metrics: Metrics
               ) -> tuple[list[Ticket], dict[int, str], int]:
    """Readable tickets, newest snapshot per id; the ids of unreadable ones (read afresh
    on retry); how many were skipped. A malformed ticket is logged, counted and skipped:
    it never blocks the others; one without a usable id cannot even be retried."""
    tickets: dict[int, Ticket] = {}
    unreadable: dict[int, str] = {}
    skipped = 0
    for raw in raw_tickets:
        try:
            ticket = Ticket.from_api(raw)
        except MalformedTicket as exc:
            log.error("ticket %r: skipped, malformed: %s", exc.ticket_id, exc.reason)
            metrics.skipped.labels("malformed").inc()
            skipped += 1
            tid = exc.ticket_id
            if isinstance(tid, int) and not isinstance(tid, bool) and 0 < tid < 2**63:
                unreadable[tid] = f"malformed: {exc.reason}"
            continue
        prior = tickets.get(ticket.id)
        if prior is None or ticket.version >= prior.version:
            tickets[ticket.id] = ticket
    return list(tickets.values()), unreadable, skipped
