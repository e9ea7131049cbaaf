"""The reconciler: one ticket at a time, drive Teamwork toward the state it implies.

Level-triggered: whatever brought the ticket here (an export page, a retry, a mapping
change, a webhook, a rebuild), the same step runs on its stored record and its newest
snapshot: observe Teamwork where the record cannot be trusted, ``rules.plan``, apply, store.
Replays and retries are therefore harmless. ``passes.Pass`` feeds it.

Per-ticket durability, step by step:

- Before the first Teamwork write for a ticket, its record is stored marked *in flight*
  (``"create"`` when a create is among the writes). After its last write the record is
  stored again, unmarked, with what was applied. The stored record therefore never trails
  Teamwork by more than the writes of the one ticket in hand, and says so.
- A ticket found in flight (the process died, Redis failed, a write timed out) is first
  observed: its task is read (one GET), or, for a create, the task list is searched for
  the ticket's link and what landed is adopted (extra copies are deleted). Planning then
  starts from what Teamwork really holds, not from what was remembered.
- The lease is checked right before every Teamwork write (``Transport.before_write``) and
  every Redis write is fenced by its token, so a leader that lost its lease mid-ticket
  writes nothing more to either.
- A 404 on an update, complete or reopen is confirmed with a GET before the task counts as
  gone (then a ticket that still needs a task gets a new one); a 401/403 stops the pass.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import redis

from zdsync.config import Settings
from zdsync.errors import ApiError, Interrupted, NotFound, PermanentError, RetryableError
from zdsync.lease import SyncLock
from zdsync.metrics import Metrics
from zdsync.rules import (
    ASSIGNEE,
    IN_FLIGHT_CREATE,
    IN_FLIGHT_WRITE,
    TITLE,
    Action,
    Applied,
    Kind,
    Record,
    Ticket,
    after,
    is_stale,
    plan,
    task_description,
    ticket_link,
)
from zdsync.store import Fence, Store
from zdsync.teamwork import Task, TeamworkClient

log = logging.getLogger(__name__)

COUNTED = {Kind.CREATE: "created", Kind.UPDATE: "updated", Kind.COMPLETE: "completed",
           Kind.REOPEN: "reopened", Kind.DELETE: "deleted"}


class PassStopped(Exception):
    """Teamwork refused the credentials (401/403): no ticket can succeed, so the pass
    stops at once and keeps its cursor. Carries the message naming what to fix."""


@dataclass(frozen=True)
class Context:
    """What every ticket of a pass is planned with."""

    mappings: Mapping[int, int]
    hold_assignees: bool = False
    doubt: Callable[[], bool] = lambda: False  # records may trail Teamwork: observe first
    dry_run: bool = False


@dataclass
class Outcome:
    """What happened to one ticket: the record to keep and what to tell about it."""

    record: Record | None  # None: nothing to store (a deleted ticket zdsync never knew)
    history: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    error: str | None = None
    stored: bool = False  # already written; else the pass stores it with its unit
    planned: list[str] = field(default_factory=list)  # dry runs


def applied_from(task: Task | None) -> Applied:
    """What Teamwork holds, in the shape the planner compares against."""
    if task is None:
        return Applied()
    return Applied(task_id=task.id, title=task.name, assignee=task.assignee,
                   completed=task.completed)


class Reconciler:
    def __init__(self, settings: Settings, store: Store, teamwork: TeamworkClient,
                 metrics: Metrics | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.store = store
        self.teamwork = teamwork
        self.metrics = metrics or Metrics()
        self.clock = clock
        self.template = settings.sync.title_template
        self.lease: SyncLock | None = None  # both set by the pass that drives it (bind)
        self.fence = Fence("")
        self.progress_at = clock()  # last time a ticket was finished: for health checks
        self.last_success_at: float | None = None
        self._tasklist_id = settings.teamwork.tasklist_id
        self._tasklist_lock = threading.Lock()

    # -- set-up ------------------------------------------------------------------------

    def tasklist_id(self) -> int:
        """The configured task list, else the one named ``tasklist_name`` (created if
        missing); the id found is remembered in Redis."""
        with self._tasklist_lock:
            if self._tasklist_id is not None:
                return self._tasklist_id
            tw = self.settings.teamwork
            assert tw.project_id is not None
            found = self.store.tasklist_id(tw.project_id, tw.tasklist_name)
            if found is None:
                matches = [int(t["id"]) for t in self.teamwork.tasklists(tw.project_id,
                                                                          tw.tasklist_name)
                           if (t.get("name") or "").strip() == tw.tasklist_name]
                if matches:
                    found = min(matches)
                else:
                    found = self.teamwork.create_tasklist(tw.project_id, tw.tasklist_name)
                    log.info("created task list %r (%s) in project %s", tw.tasklist_name,
                             found, tw.project_id)
                self.store.set_tasklist_id(tw.project_id, tw.tasklist_name, found)
            self._tasklist_id = found
            return found

    def _forget_tasklist(self) -> None:
        """A task list that answers 404 is looked up (or created) again next time."""
        tw = self.settings.teamwork
        with self._tasklist_lock:
            if tw.tasklist_id is None and tw.project_id is not None:
                self.store.forget_tasklist_id(tw.project_id, tw.tasklist_name)
            self._tasklist_id = tw.tasklist_id

    def link(self, ticket_id: int) -> str:
        return ticket_link(self.settings.zendesk.base_url, ticket_id)

    def bind(self, lease: SyncLock, fence: Fence) -> None:
        """The lease it works under and what its Redis writes must hold (the pass's)."""
        self.lease, self.fence = lease, fence

    # -- one ticket --------------------------------------------------------------------

    def reconcile(self, prior: Record | None, ticket: Ticket, ctx: Context, *,
                  observed: list[Task] | None = None, note: str | None = None) -> Outcome:
        """Bring one ticket's task to the state its newest snapshot implies.

        ``prior`` is the stored record; ``observed``, when given, is what Teamwork holds
        for the ticket (already read by the caller), which replaces what was remembered.
        Never raises for an API error: the error is returned and the record holds what was
        applied (still marked in flight). ``Interrupted`` and ``PassStopped`` propagate.
        """
        tid = ticket.id
        if is_stale(ticket, prior):
            self.metrics.skipped.labels("stale").inc()
            return Outcome(prior, counts=Counter(skipped=1))
        record = replace(prior, ticket=ticket) if prior else Record(ticket)
        out = Outcome(record, history=[note] if note else [])
        try:
            if observed is not None:
                record = self._adopt(record, observed, out, dry_run=ctx.dry_run)
            elif record.in_flight and not ctx.dry_run:
                record = self._observe(record, out)
            elif (record.applied.task_id is None and not ctx.dry_run and ctx.doubt()
                    and any(a.kind is Kind.CREATE for a in self._plan(record, ctx))):
                # The record of a task may have vanished with Redis's last writes.
                record = self._observe(replace(record, in_flight=IN_FLIGHT_CREATE), out)
            out.record = record
            actions = self._plan(record, ctx)
            if ctx.dry_run:
                out.planned += [str(a) for a in actions]
                out.counts.update(COUNTED[a.kind] for a in actions)
                return out
            if actions:
                self._apply(out, actions, ctx)
            return out
        except (Interrupted, PassStopped, redis.RedisError):
            raise  # not this ticket's failure: the pass deals with it
        except Exception as exc:  # an API error, or a response of a shape nobody expected
            if isinstance(exc, ApiError) and exc.status in (401, 403) \
                    and exc.service == "teamwork":
                raise PassStopped(str(exc)) from exc
            out.counts["failed"] += 1
            if isinstance(exc, ApiError):
                log.error("ticket %s: failed, will retry: %s", tid, exc)
            else:
                log.exception("ticket %s: failed, will retry", tid)
            out.history.append(f"failed: {exc}")
            out.error = str(exc) or type(exc).__name__
            if out.record is not None and out.record.in_flight and not ctx.dry_run:
                # What was applied before the failure, still marked in flight: the write
                # that failed may have landed, so the next attempt observes first.
                self.store.write(self.fence, [out.record])
                out.stored = True
            return out

    def _plan(self, record: Record, ctx: Context) -> list[Action]:
        return plan(record, ctx.mappings, self.template, hold_assignees=ctx.hold_assignees)

    def _apply(self, out: Outcome, actions: list[Action], ctx: Context) -> None:
        """Mark the ticket in flight, run its writes in order, store what was applied."""
        assert out.record is not None
        replanned = False
        while True:
            self._mark(out, actions)
            try:
                for action in actions:
                    out.record = self._execute(out.record, action, out)
                break
            except NotFound as exc:
                task_id = out.record.applied.task_id
                if replanned or task_id is None or exc.service != "teamwork":
                    raise
                if self.teamwork.get_task(task_id) is not None:
                    raise RetryableError("teamwork", f"task {task_id} answered 404 but still "
                                         "exists; will retry") from None
                # The recorded task is gone from Teamwork (deleted by hand): plan again,
                # which creates a new one if the ticket still needs it. Once only.
                log.warning("ticket %s: task %s is gone from Teamwork", out.record.ticket.id,
                            task_id)
                out.history.append(f"task {task_id} was gone from Teamwork")
                out.record = replace(out.record, applied=Applied())
                actions = self._plan(out.record, ctx)
                replanned = True
        out.record = replace(out.record, in_flight=None)
        now = self.clock()
        self.store.write(self.fence, [out.record],
                         self.store.history_ops(out.record.ticket.id, out.history, now))
        out.stored = True

    def _mark(self, out: Outcome, actions: list[Action]) -> None:
        """Durably mark the ticket in flight before its first Teamwork write."""
        assert out.record is not None
        creates = any(a.kind is Kind.CREATE for a in actions)
        wanted = IN_FLIGHT_CREATE if creates else IN_FLIGHT_WRITE
        if out.record.in_flight in (wanted, IN_FLIGHT_CREATE):
            return
        assert self.lease is not None
        self.lease.check()
        out.record = replace(out.record, in_flight=wanted)
        # A create's mark must survive a failover: without it a duplicate could follow.
        self.store.write(self.fence, [out.record], replicate=creates)

    def _execute(self, record: Record, action: Action, out: Outcome) -> Record:
        tid = record.ticket.id
        task_id = record.applied.task_id
        kind = action.kind.value
        try:
            if action.kind is Kind.CREATE:
                tasklist = self.tasklist_id()
                try:
                    task = self.teamwork.create_task(
                        tasklist, action.title or "",
                        task_description(self.settings.zendesk.base_url, tid), action.assignee)
                except NotFound:
                    self._forget_tasklist()
                    raise PermanentError("teamwork", f"task list {tasklist} not found (deleted,"
                                         " or a wrong teamwork.tasklist_id)", 404) from None
                task_id = task.id
                record = replace(record, applied=after(record.applied, action, task.id))
            elif action.kind is Kind.DELETE:
                assert task_id is not None
                self.teamwork.delete_task(task_id)  # False (404) means already gone
                record = replace(record, applied=after(record.applied, action))
            else:
                assert task_id is not None
                if action.kind is Kind.UPDATE:
                    self.teamwork.update_task(
                        task_id, name=action.title if TITLE in action.changes else None,
                        assignee=action.assignee if ASSIGNEE in action.changes else ...)
                elif action.kind is Kind.COMPLETE:
                    self.teamwork.complete_task(task_id)
                elif action.kind is Kind.REOPEN:
                    self.teamwork.reopen_task(task_id)
                record = replace(record, applied=after(record.applied, action))
        except ApiError as exc:
            outcome = "gone" if isinstance(exc, NotFound) else (
                "retry" if isinstance(exc, RetryableError) else "error")
            self.metrics.actions.labels(kind, outcome).inc()
            log.warning("ticket %s task %s: %s failed (%s): %s", tid, task_id, action, outcome,
                        exc)
            raise
        self.metrics.actions.labels(kind, "ok").inc()
        out.counts[COUNTED[action.kind]] += 1
        log.info("ticket %s task %s: %s: ok", tid, task_id, action)
        out.history.append(f"task {task_id}: {action}")
        if action.assignee is None and (action.kind is Kind.CREATE
                                        or ASSIGNEE in action.changes):
            self.metrics.skipped.labels("no_mapping").inc()  # assigned to Anyone, counted
        return record

    # -- observing Teamwork --------------------------------------------------------------

    def _observe(self, record: Record, out: Outcome) -> Record:
        """Rebase a record marked in flight on what Teamwork holds: read the recorded task,
        or search the task list for the ticket's link when a create may have landed."""
        task_id = record.applied.task_id
        if record.in_flight == IN_FLIGHT_CREATE or task_id is None:
            found = self.teamwork.find_ticket_tasks(self.tasklist_id(),
                                                    self.link(record.ticket.id))
            if task_id is not None and all(t.id != task_id for t in found):
                task = self.teamwork.get_task(task_id)  # moved to another list, say
                found += [task] if task is not None else []
        else:
            task = self.teamwork.get_task(task_id)
            found = [task] if task is not None else []
        return self._adopt(record, found, out)

    def _adopt(self, record: Record, found: list[Task], out: Outcome, *,
               dry_run: bool = False) -> Record:
        """Take what Teamwork holds as applied: one task for the ticket (the recorded one if
        it is there, else the oldest); extra copies are deleted."""
        tid = record.ticket.id
        if not found:
            if record.applied.task_id is not None or record.in_flight:
                log.info("ticket %s: Teamwork holds no task for it", tid)
            return replace(record, applied=Applied(), in_flight=None)
        ordered = sorted(found, key=lambda t: (t.id != record.applied.task_id, t.id))
        keep, extras = ordered[0], ordered[1:]
        for extra in extras:  # only possible if something else created copies: clean up
            if dry_run:
                out.planned.append(f"delete duplicate task {extra.id}")
                continue
            self.teamwork.delete_task(extra.id)
            log.warning("ticket %s: deleted duplicate task %s (kept %s)", tid, extra.id, keep.id)
            out.history.append(f"deleted duplicate task {extra.id}")
            out.counts["deleted"] += 1
        held = applied_from(keep)
        if len(keep.assignees) > 1:
            held = replace(held, assignee=-1)  # several people: never what is wanted
        if record.applied.task_id != keep.id:
            log.info("ticket %s task %s: adopted the task found in Teamwork", tid, keep.id)
            out.history.append(f"task {keep.id}: adopted (found in Teamwork)")
            out.counts["adopted"] += 1
        return replace(record, applied=held, in_flight=None)
