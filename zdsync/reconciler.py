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
- The lease is checked right before every Teamwork write (``Transport.before_write``, and
  again by the connection as the bytes leave) and every Redis write is fenced by its token,
  so a leader that lost its lease mid-ticket writes nothing more to either.
- A 404 on an update, complete or reopen is confirmed with a GET before the task counts as
  gone (then a ticket that still needs a task gets a new one); a 401/403 stops the pass.

Routes (``routes``): the ticket's route is matched first and its task list resolved (looked
up by name, created if missing); the plan then moves the task if it is elsewhere. A move is
a write like any other: marked in flight before it, observed after a crash by reading
where the task really is. A lost create is searched for in every route's list (and
``[teamwork]``'s, where tasks made before routes live), one request for all of them, so a
ticket whose route changed meanwhile still finds its task: never two live tasks.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import redis

from zdsync.config import Settings
from zdsync.errors import ApiError, Interrupted, NotFound, RetryableError
from zdsync.execution import COUNTED, Execution, Outcome
from zdsync.lease import SyncLock
from zdsync.lookups import TeamworkTags, ZendeskNames
from zdsync.metrics import Metrics
from zdsync.routes import REQUESTER_FIELDS, Names, Target
from zdsync.routes import target as route_target
from zdsync.rules import (
    IN_FLIGHT_CREATE,
    IN_FLIGHT_WRITE,
    Action,
    Applied,
    Kind,
    Record,
    Ticket,
    is_stale,
    plan,
)
from zdsync.store import Fence, Store
from zdsync.tasklists import TaskLists
from zdsync.tasks import Task
from zdsync.teamwork import TeamworkClient

log = logging.getLogger(__name__)



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
        self.mappings_held = False  # the last pass found the agent mappings lost
        self.routing = settings.routing()
        self.lists = TaskLists(settings, store, teamwork, self.routing)
        self.names: ZendeskNames | None = None  # set by use_zendesk (the pass's client)
        self.tags = TeamworkTags(teamwork)
        self.execution = Execution(settings, teamwork, self.lists, self.tags, self.metrics)

    # -- set-up ------------------------------------------------------------------------

    def use_zendesk(self, zendesk: object) -> None:
        """The Zendesk client that reads the names descriptions show (cached across
        passes while it stays the same client)."""
        if self.names is None or self.names.zendesk is not zendesk:
            self.names = ZendeskNames(zendesk)

    def tasklist_id(self) -> int:
        """The configured task list, else the one named ``tasklist_name`` (created if
        missing); the id found is remembered in Redis."""
        found = self.lists.default()
        assert found is not None
        return found

    def search_lists(self) -> list[int]:
        """Every list a task of a ticket may be in (``TaskLists.searched``)."""
        return self.lists.searched()

    def target(self, ticket: Ticket, *, dry_run: bool = False) -> Target:
        """Where and how the ticket's route wants its task: the route matched, its list
        resolved (a dry run creates none: a list still to be made is None) and the names
        its description shows read (from the pass's batch reads, when it made them)."""
        route = self.routing.route_for(ticket)
        if route is None or not self.routing.explicit:
            return route_target(ticket, self.routing, {}, Names(), self.settings.zendesk.base_url)
        names = Names()
        fields = route.template_fields
        if fields & (REQUESTER_FIELDS | {"group"}):
            if self.names is None:
                raise RuntimeError("no Zendesk client to read names with (use_zendesk)")
            names = self.names.names(ticket, fields)
        return route_target(ticket, self.routing,
                            {route.name: self.lists.of_route(route, create=not dry_run)},
                            names, self.settings.zendesk.base_url)

    def prefetch(self, tickets: list[Ticket]) -> None:
        """Read in batches the names the descriptions of these tickets show, before they
        are reconciled one by one (failures fail those tickets when they come)."""
        if not self.routing.explicit or self.names is None:
            return
        wanted, groups = [], False
        for ticket in tickets:
            route = self.routing.route_for(ticket)
            fields = route.template_fields if route is not None else frozenset()
            if fields & REQUESTER_FIELDS:
                wanted.append(ticket)
            groups = groups or ("group" in fields and ticket.group_id is not None)
        if wanted or groups:
            self.names.prefetch(wanted, groups=groups)

    def placed(self, record: Record) -> Record:
        """A record written before routes knows no list: its task was made in
        ``[teamwork]``'s, where every task was made then. Only once routes exist (without
        them nothing moves, and nothing needs reading)."""
        a = record.applied
        if not self.routing.explicit or a.task_id is None or a.tasklist_id is not None:
            return record
        return replace(record, applied=replace(a, tasklist_id=self.lists.default(create=False),
                                               project_id=self.settings.teamwork.project_id))

    def bind(self, lease: SyncLock, fence: Fence) -> None:
        """The lease it works under and what its Redis writes must hold (the pass's)."""
        self.lease, self.fence = lease, fence

    # -- one ticket --------------------------------------------------------------------

    def reconcile(self, prior: Record | None, ticket: Ticket, ctx: Context, *,
                  observed: list[Task] | None = None, note: str | None = None,
                  suspect: bool = False) -> Outcome:
        """Bring one ticket's task to the state its newest snapshot implies.

        ``prior`` is the stored record; ``observed``, when given, is what Teamwork holds
        for the ticket (already read by the caller), which replaces what was remembered.
        ``suspect``: a leader that lost its lease may have written to its task after this
        record was stored (even created a copy): it is observed first, as a create in
        flight is.
        Never raises for an API error: the error is returned and the record holds what was
        applied (still marked in flight). ``Interrupted`` and ``PassStopped`` propagate.
        """
        tid = ticket.id
        if is_stale(ticket, prior):
            self.metrics.skipped.labels("stale").inc()
            return Outcome(prior, counts=Counter(skipped=1))
        record = replace(prior, ticket=ticket) if prior else Record(ticket)
        if suspect:
            # Observed as a create in flight, by its link: what landed late may be a create
            # the deposed leader made while this record already names the successor's task
            # (a second copy, deleted by the adoption).
            record = replace(record, in_flight=IN_FLIGHT_CREATE)
        out = Outcome(record, history=[note] if note else [])
        try:
            target = self.target(ticket, dry_run=ctx.dry_run)
            record = replace(self.placed(record), route=target.route)
            out.record = record
            if observed is not None:
                record = self.execution.adopt(record, observed, out, dry_run=ctx.dry_run)
            elif record.in_flight and not ctx.dry_run:
                record = self.execution.observe(record, out)
            elif (record.applied.task_id is None and not ctx.dry_run and ctx.doubt()
                    and any(a.kind is Kind.CREATE for a in self._plan(record, ctx, target))):
                # The record of a task may have vanished with Redis's last writes.
                record = self.execution.observe(replace(record, in_flight=IN_FLIGHT_CREATE), out)
            out.record = record
            actions = self._plan(record, ctx, target)
            if ctx.dry_run:
                out.planned += [str(a) for a in actions]
                if out.planned and self.routing.explicit:  # which route, for people
                    out.planned[0] = (f"route {target.route}: " if target.route else
                                      f"no route (on_unmatch {target.on_unmatch}): ") \
                        + out.planned[0]
                out.counts.update(COUNTED[a.kind] for a in actions)
                return out
            if actions:
                self._apply(out, actions, ctx, target)
            return out
        except Interrupted:
            if out.wrote:
                self._report_suspect(tid)
            raise  # not this ticket's failure: the pass deals with it
        except (PassStopped, redis.RedisError):
            raise
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
                # that failed may have landed, so the next attempt observes first. The
                # history goes with it: the worker keeps only what was not stored.
                self.store.write(self.fence, [out.record],
                                 self.store.history_ops(tid, out.history, self.clock()))
                out.stored = True
            return out

    def _report_suspect(self, ticket_id: int) -> None:
        """This ticket's work stopped after a Teamwork write began: if the lease was lost,
        that write may have landed after the next leader's (a frozen process wakes up and
        sends what it had ready, beyond any check). Say so, unfenced: the next leader
        observes the task. Best effort: the in-flight mark covers a plain shutdown."""
        try:
            self.store.flag_suspects([ticket_id])
            log.warning("ticket %s: work stopped after a Teamwork write; its task will be "
                        "observed by whoever works next", ticket_id)
        except redis.RedisError as exc:
            log.error("ticket %s: could not report a write that may have landed without "
                      "the lease (%s); zdsync audit finds such drift", ticket_id, exc)

    def _plan(self, record: Record, ctx: Context, target: Target) -> list[Action]:
        return plan(record, ctx.mappings, target, hold_assignees=ctx.hold_assignees)

    def _apply(self, out: Outcome, actions: list[Action], ctx: Context,
               target: Target) -> None:
        """Mark the ticket in flight, run its writes in order, store what was applied."""
        assert out.record is not None
        replanned = False
        while True:
            self._mark(out, actions)
            try:
                for action in actions:
                    out.record = self.execution.execute(out.record, action, out)
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
                actions = self._plan(out.record, ctx, target)
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

