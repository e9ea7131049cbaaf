"""Repairing the part of the state Redis lost, key by key.

Redis can lose one key and keep the others: an ``allkeys-*`` eviction policy under memory
pressure, a partial restore, an operator's ``DEL``. Every key whose loss matters carries
the store identity (``store.KEYS``); a pass that finds one without it repairs it before
anything else, from what survived:

- ``tickets`` (the records): the links are rebuilt from Teamwork as for an empty Redis
  (``rebuild``), keeping the identity, the mappings, the retries and the cursor (unless
  the retry set went too: then the export replays as after an empty Redis);
- ``cursor``: the export resumes from the position the records prove safe
  (``resume_position``), never from now;
- ``users`` (the mappings): from ``[users] file`` when set; otherwise tasks keep the
  assignees Teamwork holds until mappings are stored again, and that is an ERROR log
  line, ``zdsync_agent_mappings_held``, a ``/readyz`` problem and a ``zdsync check``
  failure;
- ``retry``: every ticket whose record says its last attempt failed, or that a write is in
  flight, and every ticket ``retry:info`` still lists, is retried now;
- ``remap``: every task is re-planned from the records (the agents it listed are unknown);
- ``suspect``: cannot be rebuilt; the ERROR line says to run ``zdsync audit --repair``.

Each loss is logged at ERROR (``STATE LOSS: …``), counted in
``zdsync_state_losses_total{key}`` and shown by ``zdsync cursor show``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from zdsync import defaults
from zdsync.agents import read_mappings_file
from zdsync.queues import EVERY_AGENT, HELD, Op
from zdsync.rules import Record
from zdsync.times import iso_utc

if TYPE_CHECKING:
    from zdsync.passes import Pass

log = logging.getLogger(__name__)


def resume_position(records: Iterable[Record], saved: int | None, start_time: int | None,
                    now: float) -> int:
    """Where the export resumes when its cursor was lost: the position copied into the
    records (else their newest snapshot), never later than the oldest snapshot of a
    record marked in flight, less ``CURSOR_RECOVERY_MARGIN_SECONDS``; never before
    ``sync.start_time`` nor later than Zendesk allows. With no record at all: where a
    first export starts (``sync.start_time``, else now)."""
    newest = saved
    oldest_in_flight = None
    for record in records:
        stamp = record.ticket.generated_timestamp
        if not stamp:
            continue
        if saved is None:
            newest = stamp if newest is None else max(newest, stamp)
        if record.in_flight:
            oldest_in_flight = stamp if oldest_in_flight is None else min(oldest_in_flight,
                                                                          stamp)
    latest = int(now) - defaults.ZENDESK_START_TIME_MARGIN_SECONDS
    if newest is None:
        return min(start_time, latest) if start_time else latest
    if oldest_in_flight is not None:
        newest = min(newest, oldest_in_flight)
    position = newest - defaults.CURSOR_RECOVERY_MARGIN_SECONDS
    if start_time:
        position = max(position, start_time)
    return min(position, latest)


def recover(p: Pass, lost: frozenset[str]) -> None:
    """Repair the lost keys ``lost`` (see the module docstring) under ``p``'s lease."""
    store, now = p.store, p.clock()
    log.error("STATE LOSS: Redis lost zdsync's %s (evicted, deleted or restored without "
              "them); %s from what survived", ", ".join(sorted(lost)),
              "would repair them" if p.dry_run else "repairing them")
    for name in sorted(lost):
        p.metrics.state_losses.labels(name).inc()
    if p.dry_run:
        return
    ops: list[Op] = []
    if "users" in lost:
        ops += _mappings(p)
    if "remap" in lost:
        ops.append(["zadd", store.key("remap"), repr(now), str(EVERY_AGENT)])
    if "suspect" in lost:
        log.error("STATE LOSS: the tickets a deposed leader reported it may have written "
                  "to are unknown; run `zdsync audit --repair` to find and undo any such "
                  "write")
    records: list[Record] = []
    if "tickets" not in lost and lost & {"cursor", "retry"}:
        records = list(store.all_records())
    if "retry" in lost:
        ops += _retries(p, records, now)
    if "cursor" in lost and "tickets" not in lost:
        ops += _cursor(p, records, now)
    # With the records lost, the rebuild marks every key once it is done: if it fails
    # half-way, the next pass finds the same keys lost and repairs them all again.
    if "tickets" not in lost:
        ops += store.mark_ops(p.identity or "", lost)
    ops.append(store.note_losses(lost, now))
    store.write(p.fence, ops=ops)
    if "tickets" in lost:
        from zdsync.rebuild import rebuild

        report = rebuild(p, lost=True, identity=p.identity, keep_cursor="retry" not in lost)
        p.summary.rebuilt = bool(report.linked)


def _mappings(p: Pass) -> list[Op]:
    path = p.reconciler.settings.users.file
    if path:
        changed = p.store.merge_mappings(read_mappings_file(path))
        log.error("STATE LOSS: the agent mappings were lost; %d restored from %s", changed,
                  path)
        return []
    log.error("STATE LOSS: the agent mappings were lost and no [users] file is set: tasks "
              "keep the assignees Teamwork holds until they are stored again (zdsync users "
              "import FILE, or set [users] file)")
    return [["hset", p.store.key("users"), HELD, "1"]]


def _retries(p: Pass, records: list[Record], now: float) -> list[Op]:
    ids = {r.ticket.id for r in records if r.failed or r.in_flight}
    ids.update(int(t) for t in p.store.r.hkeys(p.store.key("retry", "info")))
    log.error("STATE LOSS: the retry set was lost; retrying the %d ticket(s) whose records "
              "say their last attempt failed or a write is in flight", len(ids))
    if not ids:
        return []
    op = ["zadd", p.store.key("retry")]
    for tid in sorted(ids):
        op += [repr(now), str(tid)]
    return [op]


def _cursor(p: Pass, records: list[Record], now: float) -> list[Op]:
    state = p.store.cursor()
    if state.cursor:  # written by a page after the loss: as safe as any cursor
        log.error("STATE LOSS: the export cursor was lost and written again since; the "
                  "export goes on from it")
        return []
    position = resume_position(records, p.store.saved_position(),
                               p.reconciler.settings.sync.start_time, now)
    log.error("STATE LOSS: the export cursor was lost; the export resumes from %s (the "
              "records' position less %d s), not from now", iso_utc(position),
              defaults.CURSOR_RECOVERY_MARGIN_SECONDS)
    return p.store.cursor_ops(None, position, now)
