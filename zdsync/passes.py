"""A pass: everything that needs doing now, through one work queue, under one lease.

Every source feeds the same de-duplicating queue (``workqueue``): webhooks (urgent, for
latency), agents whose mapping changed, due retries, then the export page by page
(``sources``); an operator's resync, audit repair and the state rebuild use the same
path. The ``worker`` handles one ticket at a time (or a few at once) and commits each
unit of work when all its tickets are done (a page's cursor moves only then, together
with its retry entries).

A pass stops at once, committing nothing half-done, when the process shuts down or loses
its lease (``Interrupted``), when Redis fails, or when Teamwork refuses the credentials.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import redis

from zdsync import defaults, sources
from zdsync.errors import ApiError, ConfigError, Interrupted, LeaseLost, ShuttingDown
from zdsync.lease import SyncLock
from zdsync.metrics import Metrics
from zdsync.reconciler import Context, PassStopped, Reconciler
from zdsync.store import Fence, Store
from zdsync.summary import Summary
from zdsync.tasks import Task
from zdsync.worker import Hooks, Worker
from zdsync.workqueue import Item, Unit
from zdsync.zendesk import ZendeskClient

log = logging.getLogger(__name__)


class Pass:
    """Work under one lease: ``run`` (a whole pass), ``webhooks``, ``fetch``, ``repair``,
    ``rebuild``.

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
        self.summary = Summary()
        self.worker = Worker(reconciler, zendesk, self.metrics, self.summary, Hooks(
            check_lease=self._check_lease, stopping=stopping, in_doubt=self.in_doubt,
            before_take=self.poll, after_ticket=lambda: on_progress(self)),
            clock=clock, dry_run=dry_run)
        self.started_in_doubt = False
        self.rebuilding = False
        self.export_from: int | None = None  # where this pass's export started (epoch s)
        self.export_done = False  # its last page is in hand (the progress display's total)
        self._last_poll = 0.0
        self._polled: set[tuple[int, float]] = set()  # webhook entries queued in this pass
        self.fence = self.worker.fence = Fence(lease.token)
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
                sources.suspects(self)
                sources.remapped(self)
                sources.retries(self)
            sources.export(self)

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
        return self._guarded(lambda: (self._begin(), self.worker.enqueue(
            unit, [Item(t, fresh=True, units=[unit]) for t in ticket_ids]),
            self.worker.drain()))

    def repair(self, observed: dict[int, list[Task] | None],
               notes: dict[int, str] | None = None) -> Unit:
        """Reconcile stored records against the tasks Teamwork holds (``audit --repair``;
        None: not read, the reconciler observes if it must); ``notes`` start each
        ticket's history. Returns the unit, whose ``failed`` tickets are now queued."""
        unit = Unit("repair")
        self._guarded(lambda: (self._begin(), self.worker.enqueue(
            unit, [Item(t, observed=tasks, units=[unit], note=(notes or {}).get(t))
                   for t, tasks in observed.items()]), self.worker.drain()))
        return unit

    def rebuild(self) -> Any:
        """Rebuild the links from Teamwork now, whatever the store says (``zdsync
        recover``); returns the ``rebuild.Report``. Errors propagate to the caller."""
        from zdsync.rebuild import rebuild

        self._begin(rebuild_if_lost=False)
        report = rebuild(self, lost=False, asked=True)
        self.summary.rebuilt = not self.dry_run
        return report

    def _guarded(self, steps: Callable[[], object]) -> Summary:
        """Run ``steps``; whatever stops them is recorded in the summary, never half
        committed: a stop (shutdown, a lost lease) as ``stopped``, a service that failed
        as ``error``. Redis errors propagate: the caller reports them."""
        try:
            steps()
        except (Interrupted, PassStopped, ApiError, ConfigError) as exc:
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
        self.reconciler.lists.verify()
        state = self.store.check_state(self.lease.token, update=not self.dry_run)
        self._pin(Fence(self.lease.token, state.node))
        self.started_in_doubt = state.restarted or self.store.replication.in_doubt()
        lost = state.identity is None
        if rebuild_if_lost and (lost or (self.expected_identity is not None
                                         and state.identity != self.expected_identity)):
            from zdsync.rebuild import rebuild

            report = rebuild(self, lost=lost)
            self.summary.rebuilt = bool(report.linked) and not self.dry_run
        else:
            self.identity = state.identity
            if rebuild_if_lost and state.lost:
                from zdsync.recovery import recover

                recover(self, state.lost)
        if self.identity and not self.dry_run:  # a write finds records lost under it
            self._pin(Fence(self.lease.token, state.node, self.identity))
        mappings, held = self.store.mappings_and_hold()
        self.reconciler.mappings_held = held
        self.metrics.mappings_held.set(int(held))
        self.worker.ctx = Context(mappings, hold_assignees=held, doubt=self.in_doubt,
                                  dry_run=self.dry_run)

    def _pin(self, fence: Fence) -> None:
        self.fence = self.worker.fence = fence
        self.reconciler.bind(self.lease, fence)

    def in_doubt(self) -> bool:
        return self.started_in_doubt or self.store.replication.in_doubt()

    def _stop(self, exc: Exception) -> None:
        if isinstance(exc, Interrupted):
            self.summary.stopped = True
            log.warning("pass stopped: %s", exc)
            if isinstance(exc, ShuttingDown):
                self.worker.flush()
            elif isinstance(exc, LeaseLost) and self.lease.held:
                self.lease.lost.set()  # a fenced write found another holder: it is gone
        else:
            self.summary.error = ("; ".join(exc.problems) if isinstance(exc, ConfigError)
                                  else str(exc))
            log.error("pass stopped early, the cursor keeps its place: %s", self.summary.error)

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

    # -- webhooks: first, and between any two tickets ---------------------------------

    def _webhooks(self) -> None:
        """Handle the webhook-queued tickets, read afresh, ahead of everything else."""
        self.poll(force=True)
        self.worker.drain()

    def poll(self, force: bool = False) -> None:
        """Queue newly webhook-queued tickets ahead of the rest (every
        ``WEBHOOK_POLL_SECONDS`` while a daemon's pass runs, so a webhook is not held up
        behind a backfill)."""
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
            self.worker.enqueue(unit, [Item(t, fresh=True, units=[unit]) for t, _ in new],
                                urgent=True)
        self.metrics.webhook_queue.set(len(batch) if len(batch) < defaults.WEBHOOK_BATCH_TICKETS
                                       else self.store.webhook_depth())
