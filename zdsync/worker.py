"""The worker of a pass: it drains the work queue, reconciling one ticket at a time (or a
few at once), and commits each unit of work when all its tickets are done.

Every source of a pass (``sources``) and the rebuild hand it units of tickets; the
worker reads what those tickets need in batches (their records from Redis, their tasks
from Teamwork when recent writes are in doubt, the tickets afresh from Zendesk), runs the
reconciler on each, and writes the records with the unit's bookkeeping in one fenced
transaction.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, replace

from zdsync import defaults
from zdsync.errors import ApiError, ShuttingDown
from zdsync.metrics import Metrics
from zdsync.reconciler import Context, Outcome, Reconciler
from zdsync.rules import MalformedTicket, Record, Ticket
from zdsync.store import Fence, Store
from zdsync.summary import Summary
from zdsync.times import iso_utc
from zdsync.workqueue import Item, Unit, WorkQueue
from zdsync.zendesk import ZendeskClient

log = logging.getLogger(__name__)

@dataclass
class Hooks:
    """What the worker asks of the pass that drives it."""

    check_lease: Callable[[], None]  # raises LeaseLost when the lease is gone
    stopping: Callable[[], bool]  # True: shut down between two tickets
    in_doubt: Callable[[], bool]  # recent writes may be lost: observe before planning
    before_take: Callable[[], None]  # polled before each ticket (the webhook queue)
    after_ticket: Callable[[], None]  # progress display


class Worker:
    def __init__(self, reconciler: Reconciler, zendesk: ZendeskClient, metrics: Metrics,
                 summary: Summary, hooks: Hooks, *, clock: Callable[[], float],
                 dry_run: bool) -> None:
        self.reconciler = reconciler
        self.store: Store = reconciler.store
        self.zendesk = zendesk
        self.metrics = metrics
        self.summary = summary
        self.hooks = hooks
        self.clock = clock
        self.dry_run = dry_run
        self.queue = WorkQueue()
        self.cache: dict[int, Record] = {}
        self.dirty: dict[int, Record] = {}  # records to store with the next commit
        self.dirty_history: dict[int, list[str]] = {}
        self._state = threading.RLock()  # summary, cache, dirty records, commits
        self.handled = 0  # tickets reconciled (or failed) so far
        self.ctx = Context({})  # set by the pass once it has read the mappings
        self.fence = Fence("")  # likewise, once it has pinned the Redis node

    # -- queueing ----------------------------------------------------------------------

    def enqueue(self, unit: Unit, items: list[Item], *, urgent: bool = False) -> None:
        """Queue a unit's tickets: their records read in one round trip; when recent
        writes are in doubt, their tasks observed in Teamwork in batches."""
        self.load([i.ticket_id for i in items])
        self.reconciler.prefetch([i.snapshot or self.cache[i.ticket_id].ticket for i in items
                                  if i.snapshot or i.ticket_id in self.cache])
        if self.hooks.in_doubt() and not self.dry_run:
            self._observe_all(items)
        for item in items:
            self.queue.add(item, urgent=urgent)
        if self.queue.close(unit):
            self._commit(unit)

    def load(self, ticket_ids: list[int]) -> None:
        missing = [t for t in ticket_ids if t not in self.cache]
        if missing:
            self.cache.update(self.store.records(missing))

    def _observe_all(self, items: list[Item]) -> None:
        """Read the recorded tasks of these tickets (100 a request; a task missing from
        the answer is confirmed with a GET), so that planning starts from Teamwork."""
        wanted = {i.ticket_id: self.cache[i.ticket_id].applied.task_id for i in items
                  if i.observed is None and i.ticket_id in self.cache
                  and self.cache[i.ticket_id].applied.task_id is not None}
        if not wanted:
            return
        teamwork = self.reconciler.teamwork
        found = teamwork.tasks_by_ids(wanted.values())
        for item in items:
            task_id = wanted.get(item.ticket_id)
            if task_id is None:
                continue
            task = found.get(task_id) or teamwork.get_task(task_id)
            item.observed = [task] if task is not None else []

    # -- draining ----------------------------------------------------------------------

    def drain(self) -> None:
        """Reconcile queued tickets until none is left; commit each completed unit.

        Up to ``teamwork.concurrency`` tickets at once: the queue never hands one ticket
        to two workers, each ticket's writes stay in order, and the Teamwork pacer bounds
        the total. On a stop or an error no new ticket starts; those in hand finish."""
        workers = max(1, self.reconciler.settings.teamwork.concurrency)
        if workers == 1 or self.dry_run:
            while items := self._next_items():
                for item in items:
                    self._handle(item)
            return
        ready: deque[Item] = deque()
        running: set[Future[None]] = set()
        failure: BaseException | None = None
        with ThreadPoolExecutor(workers, thread_name_prefix="zdsync-ticket") as pool:
            while True:
                while failure is None and len(running) < workers:
                    if not ready:
                        ready.extend(self._next_items())
                        if not ready:
                            break
                    running.add(pool.submit(self._handle, ready.popleft()))
                if not running:
                    break
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    if future.exception() is not None and failure is None:
                        failure = future.exception()
        if failure is not None:
            raise failure

    def _next_items(self) -> list[Item]:
        """The next ticket to work on, with up to 99 more if it is to be read afresh (one
        ``show_many`` reads them); webhook-queued tickets come first."""
        self.hooks.before_take()
        items = self.queue.take(1)
        if items and items[0].fresh:
            items += self.queue.take_fresh(defaults.WEBHOOK_BATCH_TICKETS - 1)
            self._read_fresh(items)
        return items

    def _read_fresh(self, items: list[Item]) -> None:
        """Read tickets afresh, 100 a request; a ticket missing from the answer is gone."""
        wanted = [i for i in items if i.fresh]
        self.load([i.ticket_id for i in wanted])
        try:
            found = self.zendesk.tickets_by_ids(i.ticket_id for i in wanted)
        except ApiError as exc:
            if exc.status in (401, 403):
                raise
            log.warning("could not read %d ticket(s) from Zendesk: %s", len(wanted), exc)
            for item in wanted:
                item.fresh = False
                item.error = f"could not read it from Zendesk: {exc}"
            return
        for item in wanted:
            item.fresh = False
            self.summary.seen += 1
            raw = found.get(item.ticket_id)
            if raw is None:
                item.snapshot = self._gone(item)
                continue
            try:
                item.snapshot = Ticket.from_api(raw)
            except MalformedTicket as exc:
                log.error("ticket %s: malformed in Zendesk: %s", item.ticket_id, exc.reason)
                self.metrics.skipped.labels("malformed").inc()
                self.summary.skipped += 1
                item.error = f"malformed: {exc.reason}"
        self.reconciler.prefetch([i.snapshot for i in wanted if i.snapshot is not None])

    def _gone(self, item: Item) -> Ticket | None:
        """A ticket Zendesk no longer shows: deleted. What to reconcile in its place."""
        prior = self.cache.get(item.ticket_id)
        stamp = iso_utc(self.clock())
        if prior is not None:  # every field kept: its route must still match it
            return replace(prior.ticket, status="deleted", updated_at=stamp,
                           generated_timestamp=0)
        if item.observed:  # unknown to the store, but Teamwork has a task for it
            return Ticket(item.ticket_id, "deleted", None, updated_at=stamp)
        return None  # deleted before zdsync ever saw it: nothing to do

    def _handle(self, item: Item) -> None:
        """Reconcile one ticket (in a worker thread when there are several) and account
        for it under the worker's lock."""
        if self.hooks.stopping():
            raise ShuttingDown("shutting down")
        self.hooks.check_lease()
        tid = item.ticket_id
        with self._state:
            prior = self.cache.get(tid)
        error = item.error
        ticket = item.snapshot or (prior.ticket if prior is not None else None)
        outcome: Outcome | None = None
        if error is None and ticket is not None:
            outcome = self.reconciler.reconcile(prior, ticket, self.ctx,
                                                observed=item.observed, note=item.note,
                                                suspect=item.suspect)
            error = outcome.error
        with self._state:
            if outcome is not None:
                self.summary.add(outcome.counts)
                if outcome.planned:
                    self.summary.planned.append((tid, outcome.planned))
                self._keep(prior, outcome)
            elif error is not None:  # not even reconciled (unreadable): say so all the same
                self.summary.failed += 1
                self.dirty_history.setdefault(tid, []).append(f"failed: {error}")
            source = item.units[0].kind if item.units else "fetch"
            self.metrics.tickets.labels(source, "failed" if error else "ok").inc()
            self.reconciler.progress_at = self.clock()
            self.handled += 1
            self.hooks.after_ticket()
            for unit in self.queue.done(item, error):
                self._commit(unit)

    def _keep(self, prior: Record | None, outcome: Outcome) -> None:
        """Remember a ticket's new record; the next commit writes it (again, if the
        reconciler stored it already: see ``_commit``)."""
        record = outcome.record
        if record is None:
            return
        tid = record.ticket.id
        self.cache[tid] = record
        if record != prior or outcome.stored:
            self.dirty[tid] = record
        if outcome.history and not outcome.stored:
            self.dirty_history.setdefault(tid, []).extend(outcome.history)

    # -- commits -----------------------------------------------------------------------

    def _commit(self, unit: Unit) -> None:
        """One fenced write: the records changed since the last commit, the unit's retry
        entries and its bookkeeping (a page's cursor, the webhook ids or agents it handled).

        Records the reconciler stored already are written again, in the same transaction
        as the cursor. Behind Sentinel, a ticket's own writes and the commit can reach two
        different masters during a failover (the old one takes writes for seconds, then
        loses them); only one transaction makes "the cursor moved" imply "the records it
        covers are there" on whichever master keeps it. The snapshot check makes the
        second write of a record harmless."""
        if self.dry_run:
            return
        now = self.clock()
        succeeded = unit.succeeded if unit.kind not in ("remap", "repair") else []
        for tid in unit.failed:
            self._flag(tid, failed=True)
        for tid in succeeded:
            self._flag(tid, failed=False)
        ops = self.store.retry_ops(unit.failed, succeeded, now)
        if unit.kind == "page":
            after_cursor, position = unit.data
            ops += self.store.cursor_ops(after_cursor, position, now)
        elif unit.kind in ("webhook", "remap", "suspect"):
            name = "webhook:queue" if unit.kind == "webhook" else unit.kind
            ops += self.store.dequeue_ops(name, unit.data)
        for tid, lines in self.dirty_history.items():
            ops += self.store.history_ops(tid, lines, now)
        records = []
        for record in self.dirty.values():
            buried = self.store.tombstone_ops(record)
            if buried is None:
                records.append(record)
            else:
                ops += buried
        self.store.write(self.fence, records, ops, replicate=unit.kind == "page")
        self.dirty.clear()
        self.dirty_history.clear()

    def _flag(self, ticket_id: int, *, failed: bool) -> None:
        """Say in the ticket's record whether it waits in the retry set (the records are
        what the retry set is rebuilt from if it is lost)."""
        record = self.cache.get(ticket_id)
        if record is not None and record.failed != failed:
            self.cache[ticket_id] = self.dirty[ticket_id] = replace(record, failed=failed)

    def flush(self) -> None:
        """Store the records waiting for a commit (on shutdown: they save re-observing)."""
        if self.dry_run or not (self.dirty or self.dirty_history):
            return
        try:
            ops = [op for tid, lines in self.dirty_history.items()
                   for op in self.store.history_ops(tid, lines, self.clock())]
            self.store.write(self.fence, list(self.dirty.values()), ops)
        except Exception as exc:  # best effort: a later pass re-observes them
            log.warning("could not store %d record(s) on the way out: %s", len(self.dirty), exc)
        self.dirty.clear()
        self.dirty_history.clear()
