"""The reconciler: drives Teamwork toward the state each ticket implies.

Level-triggered. Whatever brings a ticket id here (an export page, a retry, a mapping
change, a webhook), the same steps run: load the stored record, take the newest snapshot,
resolve a create whose outcome is unknown, ``rules.plan``, apply, store. Replays and
retries are therefore harmless.

Crash safety, step by step:

- A create first stores the intent (``create_pending``) and only then calls Teamwork; the
  task carries the ticket link in its description. If the response is lost, or the process
  dies before the task id is stored, the next attempt finds the pending intent, searches
  the task list for the link and adopts what landed (deleting any extra copies) instead of
  creating again.
- Other actions are idempotent "set to X" calls; a replay repeats them harmlessly, and a
  404 means the task is gone: a ticket that still needs one gets a new task.
- A page's records, retry-set entries and the advanced cursor are written in one
  transaction after every ticket of the page was applied or queued for retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import redis

from zdsync import defaults
from zdsync.config import Settings
from zdsync.errors import ApiError, NotFound, PermanentError, RetryableError
from zdsync.metrics import Metrics
from zdsync.rules import (
    Action,
    Applied,
    Kind,
    MalformedTicket,
    Record,
    Ticket,
    after,
    is_stale,
    plan,
    task_description,
    ticket_link,
)
from zdsync.store import Store
from zdsync.teamwork import Task, TeamworkClient
from zdsync.zendesk import ZendeskClient

log = logging.getLogger(__name__)

COUNTED = {Kind.CREATE: "created", Kind.RETITLE: "updated", Kind.REASSIGN: "updated",
           Kind.COMPLETE: "completed", Kind.REOPEN: "reopened", Kind.DELETE: "deleted"}


class Stopped(Exception):
    """The pass was asked to stop (shutdown or lost lock) between two tickets."""


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
    stopped: bool = False
    planned: list[tuple[int, list[str]]] = field(default_factory=list)  # dry runs
    handled: set[int] = field(default_factory=set)  # refresh: ids dealt with (not stopped)

    def count(self, kind: Kind) -> None:
        name = COUNTED[kind]
        setattr(self, name, getattr(self, name) + 1)

    def line(self) -> str:
        position = (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.cursor_position))
                    if self.cursor_position else "none")
        text = (f"tickets seen {self.seen}; tasks created {self.created}, updated "
                f"{self.updated}, completed {self.completed}, reopened {self.reopened}, "
                f"deleted {self.deleted}; skipped {self.skipped}; failed {self.failed}; "
                f"cursor {position}")
        if self.error:
            text += f"; error: {self.error}"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("planned", "handled")}


@dataclass
class Progress:
    """The record as applied so far while one ticket's actions run."""

    record: Record


@dataclass
class Outcome:
    record: Record
    history: list[str]
    error: str | None = None


class Reconciler:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        zendesk: ZendeskClient,
        teamwork: TeamworkClient,
        metrics: Metrics | None = None,
        *,
        should_stop: Callable[[], bool] = lambda: False,
        interleave: Callable[[], set[int]] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """``interleave`` runs between two tickets of a batch (the daemon drains webhooks
        there) and returns the ticket ids it reconciled, whose records are then re-read."""
        self.settings = settings
        self.store = store
        self.zendesk = zendesk
        self.teamwork = teamwork
        self.metrics = metrics or Metrics()
        self.should_stop = should_stop
        self.interleave = interleave
        self.progress_at = clock()  # last time a ticket was finished: for health checks
        self.last_success_at: float | None = None
        self.clock = clock
        self.template = settings.sync.title_template
        self._tasklist_id = settings.teamwork.tasklist_id

    # -- set-up ------------------------------------------------------------------------

    def tasklist_id(self) -> int:
        """The configured task list, else the one named ``tasklist_name`` (created if
        missing); the id found is remembered in Redis."""
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
                log.info("created task list %r (%s) in project %s", tw.tasklist_name, found,
                         tw.project_id)
            self.store.set_tasklist_id(tw.project_id, tw.tasklist_name, found)
        self._tasklist_id = found
        return found

    def _forget_tasklist(self) -> None:
        """A task list that answers 404 is looked up (or created) again next time."""
        tw = self.settings.teamwork
        if tw.tasklist_id is None and tw.project_id is not None:
            self.store.forget_tasklist_id(tw.project_id, tw.tasklist_name)
        self._tasklist_id = tw.tasklist_id

    def link(self, ticket_id: int) -> str:
        return ticket_link(self.settings.zendesk.base_url, ticket_id)

    # -- one pass ----------------------------------------------------------------------

    def run_pass(self, *, dry_run: bool = False) -> Summary:
        """Remapped agents' tickets, due retries, then the export from the saved cursor."""
        summary = Summary()
        started = time.monotonic()
        try:
            remapped = self.store.remapped()  # before the mappings: a later change stays
            mappings = self.store.mappings()
            if not dry_run:
                self._remapped(remapped, mappings, summary)
                self._retries(mappings, summary)
            self._export(mappings, summary, dry_run)
        except Stopped:
            summary.stopped = True
        except ApiError as exc:
            summary.error = str(exc)
            log.error("pass stopped early: %s", exc)
        except redis.RedisError:
            raise  # the caller reports it; nothing was committed past the work done
        except Exception as exc:  # e.g. a response body that is not the JSON documented
            summary.error = f"{type(exc).__name__}: {exc}"
            log.exception("pass stopped early")
        duration = time.monotonic() - started
        if not dry_run:
            self._finish(summary, duration)
        return summary

    def _finish(self, summary: Summary, duration: float) -> None:
        result = ("error" if summary.error else "stopped" if summary.stopped
                  else "partial" if summary.failed else "success")
        self.metrics.passes.labels(result).inc()
        self.metrics.pass_duration.observe(duration)
        depth = self.store.retry_depth()
        self.metrics.retry_depth.set(depth)
        position = self.store.cursor().position
        if position:
            self.metrics.cursor_lag.set(max(0.0, self.clock() - position))
        if result in ("success", "partial"):
            self.last_success_at = self.clock()
            self.metrics.last_success.set(self.last_success_at)
        self.store.save_last_pass({"at": self.clock(), "result": result,
                                   "duration": round(duration, 3), "retry_depth": depth,
                                   "summary": summary.line()})

    def _export(self, mappings: dict[int, int], summary: Summary, dry_run: bool) -> None:
        state = self.store.cursor()
        start_time = None
        if not state.cursor:
            start_time = self._first_start_time(state.position, dry_run)
        position = state.position
        for page in self.zendesk.export(state.cursor, start_time):
            summary.pages += 1
            if page.too_recent:
                log.info("export: nothing new yet (start time within the last minute)")
                return
            tickets, unreadable = self._parse(page.tickets, summary)
            batch = self._apply(tickets, mappings, summary, dry_run, "export")
            batch.refetch.update(unreadable)
            if dry_run:
                continue
            if not batch.stopped:
                position = self._page_position(page.tickets, page.end_of_stream) or position
            # One transaction: the page's records and retries, then the cursor. A page cut
            # short by a stop is committed without moving the cursor; it is read again.
            self.store.commit(batch.records, failed=batch.failed, succeeded=batch.succeeded,
                              history=batch.history, refetch=batch.refetch, now=self.clock(),
                              cursor=None if batch.stopped else (page.after_cursor, position))
            if batch.stopped:
                raise Stopped()
            summary.cursor_position = position
            if position:
                self.metrics.cursor_lag.set(max(0.0, self.clock() - position))

    def _first_start_time(self, saved: int | None, dry_run: bool) -> int:
        """Where the very first export starts. Chosen once and saved, so a first pass that
        fails does not move the start forward and lose the changes in between."""
        latest = int(self.clock()) - defaults.ZENDESK_START_TIME_MARGIN_SECONDS
        start = min(saved or self.settings.sync.start_time or latest, latest)
        if saved is None and not dry_run:
            self.store.commit(cursor=(None, start), now=self.clock())
        return start

    def _page_position(self, tickets: list[Any], end_of_stream: bool) -> int | None:
        """Epoch seconds the export has reached: for ``zdsync cursor show`` and the lag."""
        if end_of_stream:
            return int(self.clock()) - 60  # caught up: Zendesk holds back the last minute
        stamps = [t.get("generated_timestamp") for t in tickets if isinstance(t, dict)]
        return max((s for s in stamps if isinstance(s, int)), default=None)

    def _parse(self, raw_tickets: Iterable[Any],
               summary: Summary) -> tuple[list[Ticket], dict[int, str]]:
        """Readable tickets, newest snapshot per id, and the ids of unreadable ones (to be
        read afresh on retry). A malformed ticket is logged with its id, counted and
        skipped: it never blocks the others."""
        tickets: dict[int, Ticket] = {}
        unreadable: dict[int, str] = {}
        for raw in raw_tickets:
            summary.seen += 1
            try:
                ticket = Ticket.from_api(raw)
            except MalformedTicket as exc:
                log.error("ticket %s: skipped, malformed: %s", exc.ticket_id, exc.reason)
                self.metrics.skipped.labels("malformed").inc()
                summary.skipped += 1
                if isinstance(exc.ticket_id, int) and exc.ticket_id > 0:
                    unreadable[exc.ticket_id] = f"malformed: {exc.reason}"
                continue
            prior = tickets.get(ticket.id)
            if prior is None or ticket.version >= prior.version:
                tickets[ticket.id] = ticket
        return list(tickets.values()), unreadable

    # -- a batch of tickets ------------------------------------------------------------

    def _apply(self, tickets: Iterable[Ticket | Record], mappings: dict[int, int],
               summary: Summary, dry_run: bool, source: str) -> Batch:
        """Reconcile tickets (fresh snapshots, or stored records to re-plan). Reads the
        stored records in one round trip; stops between two tickets when asked."""
        items = list(tickets)
        ids = [i.id if isinstance(i, Ticket) else i.ticket.id for i in items]
        stored = self.store.records(ids)
        batch = Batch()
        for n, item in enumerate(items):
            if self.should_stop():
                batch.stopped = True
                break
            if self.interleave is not None:
                touched = self._interleave()
                if touched:  # reconciled meanwhile: what they committed is newer
                    batch.forget(touched)
                    later = touched.intersection(ids[n:])
                    if later:
                        stored.update(self.store.records(later))
            if isinstance(item, Record):
                record = stored.get(item.ticket.id, item)
            else:
                prior = stored.get(item.id)
                if is_stale(item, prior):
                    self.metrics.skipped.labels("stale").inc()
                    summary.skipped += 1
                    continue
                record = replace(prior, ticket=item) if prior else Record(item)
            outcome = self.reconcile(record, mappings, summary, dry_run)
            self.metrics.tickets.labels(source, "failed" if outcome.error else "ok").inc()
            self.progress_at = self.clock()
            batch.add(outcome)
        return batch

    def _interleave(self) -> set[int]:
        hook, self.interleave = self.interleave, None  # no re-entry from inside the hook
        try:
            return hook() if hook is not None else set()
        finally:
            self.interleave = hook

    def commit(self, batch: Batch, *, from_records: bool = False) -> None:
        """Commit a batch; ``from_records``: planned from stored records, not fresh reads
        (a retry waiting for a fresh read then stays queued)."""
        self.store.commit(batch.records, failed=batch.failed, succeeded=batch.succeeded,
                          history=batch.history, refetch=batch.refetch, now=self.clock(),
                          keep_refetch=from_records)

    # -- retries, remapped agents, fresh reads -----------------------------------------

    def _retries(self, mappings: dict[int, int], summary: Summary) -> None:
        due = self.store.due_retries(self.clock())
        if not due:
            return
        log.info("retrying %d ticket(s)", len(due))
        records = self.store.records(t for t, refetch in due if not refetch)
        # Tickets never stored, or unreadable when exported, are read afresh.
        fresh = [t for t, refetch in due if refetch or t not in records]
        batch = self._apply(records.values(), mappings, summary, False, "retry")
        self.commit(batch, from_records=True)
        if batch.stopped:
            raise Stopped()
        if fresh:
            self.refresh(fresh, summary, source="retry", mappings=mappings)

    def _remapped(self, remapped: list[tuple[int, float]], mappings: dict[int, int],
                  summary: Summary) -> None:
        """Re-plan open tickets of agents whose mapping changed, from stored snapshots.
        The agents are unlisted only once their tickets are committed."""
        agents = {a for a, _ in remapped}
        if not agents:
            return
        affected = [r for r in self.store.all_records()
                    if r.ticket.status not in ("closed", "deleted")
                    and (r.ticket.assignee_id in agents
                         or (r.ticket.assignee_id is None and r.ticket.submitter_id in agents))]
        log.info("mapping changed for %d agent(s): re-planning %d ticket(s)", len(agents),
                 len(affected))
        batch = self._apply(affected, mappings, summary, False, "remap")
        self.commit(batch, from_records=True)
        if batch.stopped:
            raise Stopped()
        self.store.remap_done(remapped)

    def refresh(self, ticket_ids: Iterable[int], summary: Summary | None = None, *,
                source: str = "fetch", mappings: dict[int, int] | None = None) -> Summary:
        """Read tickets afresh from Zendesk and reconcile them (webhooks, resync, tickets
        that could not be read from the export). A 404 means deleted."""
        summary = summary or Summary()
        mappings = self.store.mappings() if mappings is None else mappings
        ids = list(dict.fromkeys(ticket_ids))
        stored = self.store.records(ids)
        tickets: list[Ticket] = []
        failed: dict[int, str] = {}
        unreadable: dict[int, str] = {}
        gone: list[int] = []
        for tid in ids:
            if self.should_stop():
                break
            try:
                raw = self.zendesk.ticket(tid)
                if raw is None:
                    prior = stored.get(tid)
                    if prior is None:
                        gone.append(tid)  # deleted before zdsync ever saw it: nothing to do
                        continue
                    raw = {**prior.ticket.to_json(), "status": "deleted",
                           "updated_at": _iso(self.clock()), "generated_timestamp": 0}
                parsed, bad = self._parse([raw], summary)
                tickets += parsed
                unreadable.update(bad)
            except redis.RedisError:
                raise
            except Exception as exc:
                log.warning("ticket %s: could not read it from Zendesk: %s", tid, exc)
                failed[tid] = str(exc) or type(exc).__name__
        batch = self._apply(tickets, mappings, summary, False, source)
        batch.refetch.update(failed)
        batch.refetch.update(unreadable)
        batch.succeeded += gone  # clears a retry entry of a ticket that no longer exists
        summary.failed += len(failed)
        self.commit(batch)
        summary.handled = {r.ticket.id for r in batch.records} | set(failed) | set(
            unreadable) | set(gone) | ({t.id for t in tickets} if not batch.stopped else set())
        return summary

    # -- one ticket --------------------------------------------------------------------

    def reconcile(self, record: Record, mappings: dict[int, int], summary: Summary,
                  dry_run: bool = False) -> Outcome:
        """Bring one ticket's task to the state its record implies. Never raises for an
        API error: the error is returned and the record holds what was applied."""
        tid = record.ticket.id
        history: list[str] = []
        done = Progress(record)  # what has been applied so far, also when a step fails
        try:
            if record.applied.task_id is None and not dry_run and (
                    record.create_pending or (self.store.writes_in_doubt() and any(
                        a.kind is Kind.CREATE for a in plan(record, mappings, self.template)))):
                done.record = record = self._recover(record, history, summary)
            actions = plan(record, mappings, self.template)
            if dry_run:
                if actions:
                    summary.planned.append((tid, [str(a) for a in actions]))
                    for action in actions:
                        summary.count(action.kind)
                return Outcome(record, [])
            try:
                self._apply_actions(done, actions, history, summary)
            except NotFound:
                # The recorded task is gone from Teamwork (deleted by hand): forget it and
                # plan again, which creates a new one if the ticket still needs it. A 404
                # on that second round is an error, never a loop.
                gone = done.record.applied.task_id
                log.warning("ticket %s: task %s is gone from Teamwork", tid, gone)
                history.append(f"task {gone} was gone from Teamwork")
                done.record = replace(done.record, applied=Applied())
                self._apply_actions(done, plan(done.record, mappings, self.template), history,
                                    summary)
            return Outcome(done.record, history)
        except redis.RedisError:
            raise  # Redis is the pass's problem, not this ticket's: the cursor stays put
        except Exception as exc:  # an API error, or a response of a shape nobody expected
            summary.failed += 1
            if isinstance(exc, ApiError):
                log.error("ticket %s: failed, will retry: %s", tid, exc)
            else:
                log.exception("ticket %s: failed, will retry", tid)
            history.append(f"failed: {exc}")
            return Outcome(done.record, history, error=str(exc) or type(exc).__name__)

    def _apply_actions(self, done: Progress, actions: list[Action], history: list[str],
                       summary: Summary) -> None:
        for action in actions:
            if action.kind is Kind.CREATE:
                # The intent is durable before the request: a lost response cannot cause a
                # duplicate, as the next try searches first.
                done.record = replace(done.record, create_pending=True)
                self.store.save_record(done.record, replicated=True)
            done.record = self._execute(done.record, action, history, summary)

    def _execute(self, record: Record, action: Action, history: list[str],
                 summary: Summary) -> Record:
        tid = record.ticket.id
        task_id = record.applied.task_id
        kind = action.kind.value
        try:
            if action.kind is Kind.CREATE:
                tasklist = self.tasklist_id()
                try:
                    task = self.teamwork.create_task(tasklist, action.title or "",
                                                     task_description(self.settings.zendesk
                                                                      .base_url, tid),
                                                     action.assignee)
                except NotFound:
                    self._forget_tasklist()
                    raise PermanentError("teamwork", f"task list {tasklist} not found (deleted,"
                                         " or a wrong teamwork.tasklist_id)", 404) from None
                task_id = task.id
                record = replace(record, applied=after(record.applied, action, task.id),
                                 create_pending=False)
                self.store.save_record(record)
            elif action.kind is Kind.DELETE:
                assert task_id is not None
                self.teamwork.delete_task(task_id)  # False (404) means already gone
                record = replace(record, applied=after(record.applied, action))
            else:
                assert task_id is not None
                if action.kind is Kind.RETITLE:
                    self.teamwork.update_task(task_id, name=action.title)
                elif action.kind is Kind.REASSIGN:
                    self.teamwork.update_task(task_id, assignee=action.assignee)
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
        summary.count(action.kind)
        log.info("ticket %s task %s: %s: ok", tid, task_id, action)
        history.append(f"task {task_id}: {action}")
        if action.kind in (Kind.CREATE, Kind.REASSIGN) and action.assignee is None:
            self.metrics.skipped.labels("no_mapping").inc()  # assigned to Anyone, counted
        return record

    def _recover(self, record: Record, history: list[str], summary: Summary) -> Record:
        """A create may have landed without its id being stored: adopt what is there."""
        tid = record.ticket.id
        found = sorted(self.teamwork.find_ticket_tasks(self.tasklist_id(), self.link(tid)),
                       key=lambda t: t.id)
        if not found:
            log.info("ticket %s: an earlier create did not land; creating", tid)
            return replace(record, create_pending=False)
        keep, extras = found[0], found[1:]
        for extra in extras:  # only possible if something else created copies: clean up
            self.teamwork.delete_task(extra.id)
            log.warning("ticket %s: deleted duplicate task %s (kept %s)", tid, extra.id, keep.id)
            history.append(f"deleted duplicate task {extra.id}")
        log.info("ticket %s task %s: adopted the task an earlier create left", tid, keep.id)
        history.append(f"task {keep.id}: adopted after a lost create response")
        summary.adopted += 1
        return replace(record, applied=_applied(keep), create_pending=False)


def _applied(task: Task) -> Applied:
    return Applied(task_id=task.id, title=task.name, assignee=task.assignee,
                   completed=task.completed)


def _iso(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@dataclass
class Batch:
    """The outcomes of a batch of tickets, ready to be committed in one transaction."""

    records: list[Record] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    succeeded: list[int] = field(default_factory=list)
    history: dict[int, list[str]] = field(default_factory=dict)
    refetch: dict[int, str] = field(default_factory=dict)  # to be read afresh on retry
    stopped: bool = False

    def forget(self, ticket_ids: set[int]) -> None:
        """Drop outcomes that a later reconcile of the same tickets superseded."""
        self.records = [r for r in self.records if r.ticket.id not in ticket_ids]
        self.succeeded = [t for t in self.succeeded if t not in ticket_ids]
        for tid in ticket_ids:
            self.failed.pop(tid, None)
            self.history.pop(tid, None)
            self.refetch.pop(tid, None)

    def add(self, outcome: Outcome) -> None:
        tid = outcome.record.ticket.id
        self.records.append(outcome.record)
        self.history[tid] = outcome.history
        if outcome.error:
            self.failed[tid] = outcome.error
        else:
            self.succeeded.append(tid)
