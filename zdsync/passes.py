"""A pass: everything that needs doing now, through one work queue, under one lease.

Every source feeds the same de-duplicating queue (``workqueue``): webhooks (urgent, for
latency), agents whose mapping changed, due retries, then the export page by page; an
operator's resync, audit repair and the state rebuild use the same path. The reconciler
handles one ticket at a time; the pass commits each unit of work when all its tickets
are done (a page's cursor moves only then, together with its retry entries).

A pass stops at once, committing nothing half-done, when the process shuts down or loses
its lease (``Interrupted``), when Redis fails, or when Teamwork refuses the credentials.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import Any

import redis

from zdsync import defaults
from zdsync.errors import ApiError, Interrupted, LeaseLost, ShuttingDown
from zdsync.lease import SyncLock
from zdsync.metrics import Metrics
from zdsync.reconciler import Context, Outcome, PassStopped, Reconciler
from zdsync.rules import MalformedTicket, Record, Ticket
from zdsync.store import EVERY_AGENT, Fence, Store
from zdsync.tasks import Task
from zdsync.times import iso_utc
from zdsync.workqueue import Item, Unit, WorkQueue
from zdsync.zendesk import ZendeskClient

log = logging.getLogger(__name__)

COUNTS = ("seen", "created", "updated", "completed", "reopened", "deleted", "adopted",
          "skipped", "failed")


@dataclass
class Summary:
    seen: int = 0
    created: int = 0
    updated: int = 0
    completed: int = 0
    reopened: int = 0
    deleted: int = 0
    adopted: int = 0
    skipped: int = 0
    failed: int = 0
    pages: int = 0
    cursor_position: int | None = None
    error: str | None = None  # a service stayed unreachable; the cursor kept its place
    stopped: bool = False  # shutdown or a lost lease: the pass stopped between two steps
    rebuilt: bool = False
    planned: list[tuple[int, list[str]]] = field(default_factory=list)  # dry runs

    def add(self, counts: Any) -> None:
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + counts.get(name, 0))

    def line(self) -> str:
        position = iso_utc(self.cursor_position) if self.cursor_position else "none"
        text = (f"tickets seen {self.seen}; tasks created {self.created}, updated "
                f"{self.updated}, completed {self.completed}, reopened {self.reopened}, "
                f"deleted {self.deleted}; skipped {self.skipped}; failed {self.failed}; "
                f"cursor {position}")
        if self.error:
            text += f"; error: {self.error}"
        return text

    @property
    def result(self) -> str:
        return ("error" if self.error else "stopped" if self.stopped
                else "partial" if self.failed else "success")


class Pass:
    """Work under one lease: ``run`` (a whole pass), ``webhooks``, ``fetch``, ``repair``.

    ``expected_identity``: the store identity this process saw before (the daemon keeps
    it); a different one means another store, whose links are rebuilt too.
    """

    def __init__(self, reconciler: Reconciler, zendesk: ZendeskClient, lease: SyncLock, *,
                 metrics: Metrics | None = None, clock: Callable[[], float] = time.time,
                 dry_run: bool = False, poll_webhooks: bool = False,
                 expected_identity: str | None = None,
                 stopping: Callable[[], bool] = lambda: False,
                 on_progress: Callable[[Pass], None] = lambda p: None) -> None:
        """``stopping`` is asked between two tickets: True stops the pass (shutdown).
        ``on_progress(pass)`` is called after each ticket (``zdsync sync``'s progress)."""
        self.reconciler = reconciler
        self.store: Store = reconciler.store
        self.zendesk = zendesk
        self.lease = lease
        self.metrics = metrics or reconciler.metrics
        self.clock = clock
        self.dry_run = dry_run
        self.poll_webhooks = poll_webhooks
        self.expected_identity = expected_identity
        self.identity: str | None = expected_identity
        self.on_progress = on_progress
        self.stopping = stopping
        self.summary = Summary()
        self.queue = WorkQueue()
        self.cache: dict[int, Record] = {}
        self.dirty: dict[int, Record] = {}  # records to store with the next commit
        self.dirty_history: dict[int, list[str]] = {}
        self._state = threading.RLock()  # summary, cache, dirty records, commits
        self.handled = 0  # tickets reconciled (or failed) so far
        self.started_in_doubt = False
        self.rebuilding = False
        self._last_poll = 0.0
        self._polled: set[tuple[int, float]] = set()  # webhook entries queued in this pass
        self.ctx = Context({})
        self.fence = Fence(lease.token)
        reconciler.bind(lease, self.fence)
        reconciler.use_zendesk(zendesk)
        reconciler.teamwork.http.before_write = self._check_lease

    # -- entry points ------------------------------------------------------------------

    def run(self) -> Summary:
        """Webhooks first, then remapped agents, due retries and the export from the saved
        cursor. Before all of it, the links are rebuilt if the store lost them."""
        started = time.monotonic()

        def steps() -> None:
            self._begin()
            if not self.dry_run:
                self._webhooks()
                self._suspects()
                self._remapped()
                self._retries()
            self._export()

        self._guarded(steps)
        if not self.dry_run:
            self._finish(time.monotonic() - started)
        return self.summary

    def webhooks(self) -> Summary:
        """Only the webhook-queued tickets (the daemon between passes)."""
        return self._guarded(lambda: (self._begin(), self._webhooks()))

    def fetch(self, ticket_ids: Iterable[int]) -> Summary:
        """Read tickets afresh from Zendesk and reconcile them (``tickets resync``)."""
        unit = Unit("fetch")
        return self._guarded(lambda: (self._begin(), self._enqueue(
            unit, [Item(t, fresh=True, units=[unit]) for t in ticket_ids]), self.drain()))

    def repair(self, observed: dict[int, list[Task] | None],
               notes: dict[int, str] | None = None) -> Unit:
        """Reconcile stored records against the tasks Teamwork holds (``audit --repair``;
        None: not read, the reconciler observes if it must); ``notes`` start each
        ticket's history. Returns the unit, whose ``failed`` tickets are now queued."""
        unit = Unit("repair")
        self._guarded(lambda: (self._begin(), self._enqueue(
            unit, [Item(t, observed=tasks, units=[unit], note=(notes or {}).get(t))
                   for t, tasks in observed.items()]), self.drain()))
        return unit

    def rebuild(self) -> Any:
        """Rebuild the links from Teamwork now, whatever the store says (``zdsync
        recover``); returns the ``rebuild.Report``. Errors propagate to the caller."""
        from zdsync.rebuild import rebuild

        self._begin(rebuild_if_lost=False)
        report = rebuild(self, lost=False)
        self.summary.rebuilt = not self.dry_run
        return report

    def _guarded(self, steps: Callable[[], object]) -> Summary:
        """Run ``steps``; whatever stops them is recorded in the summary, never half
        committed: a stop (shutdown, a lost lease) as ``stopped``, a service that failed
        as ``error``. Redis errors propagate: the caller reports them."""
        try:
            steps()
        except (Interrupted, PassStopped, ApiError) as exc:
            self._stop(exc)
        except redis.RedisError:
            raise
        except Exception as exc:  # e.g. a response body that is not the JSON documented
            self.summary.error = f"{type(exc).__name__}: {exc}"
            log.exception("pass stopped early, the cursor keeps its place")
        return self.summary

    # -- set-up and tear-down ----------------------------------------------------------

    def _check_lease(self) -> None:
        if not self.dry_run:
            self.lease.check()

    def _begin(self, *, rebuild_if_lost: bool = True) -> None:
        """Check the store before trusting it: pin this pass's writes to the Redis node it
        reads from, doubt recent records after a restart or failover, and rebuild the links
        first when the store has lost them (whoever asked for the work)."""
        state = self.store.check_state(self.lease.token, update=not self.dry_run)
        self.fence = Fence(self.lease.token, state.node)
        self.reconciler.bind(self.lease, self.fence)
        self.started_in_doubt = state.restarted or self.store.replication.in_doubt()
        lost = state.identity is None
        if rebuild_if_lost and (lost or (self.expected_identity is not None
                                         and state.identity != self.expected_identity)):
            from zdsync.rebuild import rebuild

            rebuild(self, lost=lost)
            self.summary.rebuilt = not self.dry_run
        else:
            self.identity = state.identity
        mappings, held = self.store.mappings_and_hold()
        self.ctx = Context(mappings, hold_assignees=held, doubt=self.in_doubt,
                           dry_run=self.dry_run)

    def in_doubt(self) -> bool:
        return self.started_in_doubt or self.store.replication.in_doubt()

    def _stop(self, exc: Exception) -> None:
        if isinstance(exc, Interrupted):
            self.summary.stopped = True
            log.warning("pass stopped: %s", exc)
            if isinstance(exc, ShuttingDown):
                self._flush()
            elif isinstance(exc, LeaseLost) and self.lease.held:
                self.lease.lost.set()  # a fenced write found another holder: it is gone
        else:
            self.summary.error = str(exc)
            log.error("pass stopped early, the cursor keeps its place: %s", exc)

    def _finish(self, duration: float) -> None:
        result = self.summary.result
        self.metrics.passes.labels(result).inc()
        self.metrics.pass_duration.observe(duration)
        depth = self.store.retry_depth()
        self.metrics.retry_depth.set(depth)
        position = self.store.cursor().position
        if position:
            self.metrics.cursor_lag.set(max(0.0, self.clock() - position))
        if result in ("success", "partial"):
            self.reconciler.last_success_at = self.clock()
            self.metrics.last_success.set(self.reconciler.last_success_at)
        self.store.save_last_pass({"at": self.clock(), "result": result,
                                   "duration": round(duration, 3), "retry_depth": depth,
                                   "summary": self.summary.line()})

    # -- sources -----------------------------------------------------------------------

    def _webhooks(self) -> None:
        """Handle the webhook-queued tickets, read afresh, ahead of everything else."""
        self._poll(force=True)
        self.drain()

    def _poll(self, force: bool = False) -> None:
        now = time.monotonic()
        due = now - self._last_poll >= defaults.WEBHOOK_POLL_SECONDS
        if self.dry_run or not (force or (self.poll_webhooks and due)):
            return
        self._last_poll = now
        batch = self.store.webhook_batch(defaults.WEBHOOK_BATCH_TICKETS)
        new = [entry for entry in batch if entry not in self._polled]
        self._polled.update(new)
        if new:
            unit = Unit("webhook", data=new)
            self._enqueue(unit, [Item(t, fresh=True, units=[unit]) for t, _ in new],
                          urgent=True)
        self.metrics.webhook_queue.set(len(batch) if len(batch) < defaults.WEBHOOK_BATCH_TICKETS
                                       else self.store.webhook_depth())

    def _remapped(self) -> None:
        """Re-plan the tasks of agents whose mapping changed (every task, when a hold of
        assignees ended), from stored snapshots: open tickets and merged ones alike, as
        whatever has a task follows the mappings. The agents are unlisted only once their
        tickets are done (or queued for retry)."""
        remapped = self.store.remapped()
        agents = {a for a, _ in remapped}
        if not agents:
            return
        every = EVERY_AGENT in agents
        affected = [r for r in self.store.all_records()
                    if r.applied.task_id is not None
                    and (every or r.ticket.assignee_id in agents
                         or (r.ticket.assignee_id is None and r.ticket.submitter_id in agents))]
        log.info("mapping changed for %s: re-planning %d ticket(s)",
                 "every agent" if every else f"{len(agents)} agent(s)", len(affected))
        for record in affected:
            self.cache.setdefault(record.ticket.id, record)
        unit = Unit("remap", data=remapped)
        self._enqueue(unit, [Item(r.ticket.id, units=[unit]) for r in affected])
        self.drain()

    def _suspects(self) -> None:
        """Tickets a deposed leader reported it may have written to after losing its lease:
        their tasks are observed before they are planned."""
        reported = self.store.suspects()
        if reported:
            log.warning("observing %d task(s) a leader may have written to after it lost "
                        "its lease", len(reported))
            unit = Unit("suspect", data=reported)
            self._enqueue(unit, [Item(t, fresh=True, suspect=True, units=[unit])
                                 for t, _ in reported])
            self.drain()

    def _retries(self) -> None:
        due = self.store.due_retries(self.clock())
        if due:
            log.info("retrying %d ticket(s)", len(due))
            unit = Unit("retry")
            self._enqueue(unit, [Item(t, fresh=True, units=[unit]) for t in due])
            self.drain()

    def _export(self) -> None:
        state = self.store.cursor()
        start_time = None
        if not state.cursor:
            start_time = self._first_start_time(state.position)
        position = state.position
        for page in self.zendesk.export(state.cursor, start_time):
            self.summary.pages += 1
            if page.too_recent:
                log.info("export: nothing new yet (start time within the last minute)")
                return
            tickets, unreadable = self._parse(page.tickets)
            position = self._page_position(page.tickets, page.end_of_stream) or position
            unit = Unit("page", data=(page.after_cursor, position))
            unit.failed.update(unreadable)
            self._enqueue(unit, [Item(t.id, snapshot=t, units=[unit]) for t in tickets])
            self.drain()
            self.summary.cursor_position = position
            if position and not self.dry_run:
                self.metrics.cursor_lag.set(max(0.0, self.clock() - position))

    def _first_start_time(self, saved: int | None) -> int:
        """Where the very first export starts. Chosen once and saved, so a first pass that
        fails does not move the start forward and lose the changes in between."""
        latest = int(self.clock()) - defaults.ZENDESK_START_TIME_MARGIN_SECONDS
        start = min(saved or self.reconciler.settings.sync.start_time or latest, latest)
        if saved is None and not self.dry_run:
            self.store.write(self.fence, ops=self.store.cursor_ops(None, start,
                                                                        self.clock()))
        return start

    def _page_position(self, tickets: list[Any], end_of_stream: bool) -> int | None:
        """Epoch seconds the export has reached: for ``zdsync cursor show`` and the lag."""
        if end_of_stream:
            return int(self.clock()) - 60  # caught up: Zendesk holds back the last minute
        stamps = [t.get("generated_timestamp") for t in tickets if isinstance(t, dict)]
        return max((s for s in stamps if isinstance(s, int) and not isinstance(s, bool)),
                   default=None)

    def _parse(self, raw_tickets: Iterable[Any]) -> tuple[list[Ticket], dict[int, str]]:
        """Readable tickets, newest snapshot per id, and the ids of unreadable ones (read
        afresh on retry). A malformed ticket is logged, counted and skipped: it never
        blocks the others; one without a usable id cannot even be retried."""
        tickets: dict[int, Ticket] = {}
        unreadable: dict[int, str] = {}
        for raw in raw_tickets:
            self.summary.seen += 1
            try:
                ticket = Ticket.from_api(raw)
            except MalformedTicket as exc:
                log.error("ticket %r: skipped, malformed: %s", exc.ticket_id, exc.reason)
                self.metrics.skipped.labels("malformed").inc()
                self.summary.skipped += 1
                tid = exc.ticket_id
                if isinstance(tid, int) and not isinstance(tid, bool) and 0 < tid < 2**63:
                    unreadable[tid] = f"malformed: {exc.reason}"
                continue
            prior = tickets.get(ticket.id)
            if prior is None or ticket.version >= prior.version:
                tickets[ticket.id] = ticket
        return list(tickets.values()), unreadable

    # -- the queue ---------------------------------------------------------------------

    def _enqueue(self, unit: Unit, items: list[Item], *, urgent: bool = False) -> None:
        """Queue a unit's tickets: their records read in one round trip; when recent
        writes are in doubt, their tasks observed in Teamwork in batches."""
        self._load([i.ticket_id for i in items])
        self.reconciler.prefetch([i.snapshot or self.cache[i.ticket_id].ticket for i in items
                                  if i.snapshot or i.ticket_id in self.cache])
        if self.in_doubt() and not self.dry_run:
            self._observe_all(items)
        for item in items:
            self.queue.add(item, urgent=urgent)
        if self.queue.close(unit):
            self._commit(unit)

    def _load(self, ticket_ids: list[int]) -> None:
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
        self._poll()
        items = self.queue.take(1)
        if items and items[0].fresh:
            items += self.queue.take_fresh(defaults.WEBHOOK_BATCH_TICKETS - 1)
            self._read_fresh(items)
        return items

    def _read_fresh(self, items: list[Item]) -> None:
        """Read tickets afresh, 100 a request; a ticket missing from the answer is gone."""
        wanted = [i for i in items if i.fresh]
        self._load([i.ticket_id for i in wanted])
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
        for it under the pass's lock."""
        if self.stopping():
            raise ShuttingDown("shutting down")
        self._check_lease()
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
            elif error is not None:
                self.summary.failed += 1
            source = item.units[0].kind if item.units else "fetch"
            self.metrics.tickets.labels(source, "failed" if error else "ok").inc()
            self.reconciler.progress_at = self.clock()
            self.handled += 1
            self.on_progress(self)
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
        ops = self.store.retry_ops(unit.failed, succeeded, now)
        if unit.kind == "page":
            after_cursor, position = unit.data
            ops += self.store.cursor_ops(after_cursor, position, now)
        elif unit.kind in ("webhook", "remap", "suspect"):
            name = "webhook:queue" if unit.kind == "webhook" else unit.kind
            ops += self.store.dequeue_ops(name, unit.data)
        for tid, lines in self.dirty_history.items():
            ops += self.store.history_ops(tid, lines, now)
        self.store.write(self.fence, list(self.dirty.values()), ops,
                         replicate=unit.kind == "page")
        self.dirty.clear()
        self.dirty_history.clear()

    def _flush(self) -> None:
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
