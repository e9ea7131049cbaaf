"""Where one ticket's actions meet Teamwork: each action sent as its write (with its
metrics, log line and history entry), and what Teamwork holds read back as what was
applied (observing a record in flight, adopting the task found, deleting extra copies).

The reconciler decides what to do and keeps the record durable around it; this module
does the talking. ``Outcome`` collects what happened to the ticket.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field, replace

from zdsync.config import Settings
from zdsync.errors import ApiError, NotFound, PermanentError, RetryableError, Unauthorized
from zdsync.lookups import TeamworkTags
from zdsync.metrics import Metrics
from zdsync.rules import (
    ASSIGNEE,
    DESCRIPTION,
    DUE_DATE,
    IN_FLIGHT_CREATE,
    PRIORITY,
    TAGS,
    TASKLIST,
    TITLE,
    Action,
    Applied,
    Kind,
    Record,
    after,
    digest,
    task_description,
    ticket_link,
)
from zdsync.tasklists import TaskLists
from zdsync.tasks import Task
from zdsync.teamwork import TeamworkClient

log = logging.getLogger(__name__)

COUNTED = {Kind.CREATE: "created", Kind.UPDATE: "updated", Kind.MOVE: "updated",
           Kind.COMPLETE: "completed", Kind.REOPEN: "reopened", Kind.DELETE: "deleted"}
"""How the pass summary counts each action (a move is an update of where the task is)."""


@dataclass
class Outcome:
    """What happened to one ticket: the record to keep and what to tell about it."""

    record: Record | None  # None: nothing to store (a deleted ticket zdsync never knew)
    history: list[str] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    error: str | None = None
    stored: bool = False  # already written; else the pass stores it with its unit
    planned: list[str] = field(default_factory=list)  # dry runs
    wrote: bool = False  # a Teamwork write was (about to be) sent for it


class Execution:
    """The Teamwork side of reconciling: one per reconciler, shared by its workers."""

    def __init__(self, settings: Settings, teamwork: TeamworkClient, lists: TaskLists,
                 tags: TeamworkTags, metrics: Metrics) -> None:
        self.settings = settings
        self.teamwork = teamwork
        self.lists = lists
        self.tags = tags
        self.metrics = metrics
        self.manage_tags = any(r.tags for r in settings.routing().routes)
        self.routed = settings.routing().explicit

    def execute(self, record: Record, action: Action, out: Outcome) -> Record:
        tid = record.ticket.id
        task_id = record.applied.task_id
        kind = action.kind.value
        out.wrote = True
        try:
            if action.kind is Kind.CREATE:
                tasklist = (action.tasklist_id if action.tasklist_id is not None
                            else self.lists.default())
                assert tasklist is not None  # the default list is made when missing
                description = (action.description if action.description is not None
                               else task_description(self.settings.zendesk.base_url, tid))
                try:
                    task = self.teamwork.create_task(
                        tasklist, action.title or "", description, action.assignee,
                        **self._fields(action, (PRIORITY, DUE_DATE, TAGS)))
                except NotFound:
                    self.lists.forget(tasklist)
                    raise PermanentError("teamwork", f"task list {tasklist} not found (deleted,"
                                         " or a wrong task list id)", 404) from None
                task_id = task.id
                applied = after(record.applied, action, task.id)
                record = replace(record, applied=replace(
                    applied, tasklist_id=task.tasklist_id or tasklist,
                    project_id=task.project_id or action.project_id
                    or self.settings.teamwork.project_id))
            elif action.kind is Kind.DELETE:
                assert task_id is not None
                self.teamwork.delete_task(task_id)  # False (404) means already gone
                record = replace(record, applied=after(record.applied, action))
            else:
                assert task_id is not None
                if action.kind in (Kind.UPDATE, Kind.MOVE):
                    self._edit(task_id, action, record.applied.completed, out)
                else:
                    self._set_state(task_id, action.kind is Kind.COMPLETE)
                record = replace(record, applied=after(record.applied, action))
        except ApiError as exc:
            if action.kind is Kind.MOVE or TASKLIST in action.changes:
                self.lists.forget(action.tasklist_id)  # deleted? looked up anew
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

    def _edit(self, task_id: int, action: Action, completed: bool, out: Outcome) -> None:
        """An update or a move. Teamwork may refuse to edit a completed task (v1 does;
        whether v3 does is unknown): then it is reopened, edited and completed again, two
        writes more, and only where Teamwork refuses."""
        try:
            self._send_edit(task_id, action)
        except PermanentError as exc:
            if not completed or isinstance(exc, (NotFound, Unauthorized)):
                raise
            log.info("task %s: Teamwork refused to edit it while completed (%s): reopening "
                     "it for the edit", task_id, exc)
            self._set_state(task_id, False)
            try:
                self._send_edit(task_id, action)
            except ApiError:
                self._set_state(task_id, True)  # refused for another reason: as it was
                raise
            self._set_state(task_id, True)
            out.history.append(f"task {task_id}: reopened to be edited, completed again")
            self.metrics.actions.labels("reopen_to_edit", "ok").inc()

    def _send_edit(self, task_id: int, action: Action) -> None:
        if action.kind is Kind.MOVE:
            assert action.tasklist_id is not None
            self.teamwork.move_task(task_id, action.tasklist_id)
            return
        self.teamwork.update_task(
            task_id, name=action.title if TITLE in action.changes else None,
            assignee=action.assignee if ASSIGNEE in action.changes else ...,
            **self._fields(action, action.changes))

    def _set_state(self, task_id: int, complete: bool) -> None:
        """Complete or reopen. Teamwork may refuse either on a task already in that state
        (unknown): a refusal is read back, and a task already there is what was wanted."""
        try:
            (self.teamwork.complete_task if complete else self.teamwork.reopen_task)(task_id)
        except PermanentError as exc:
            if isinstance(exc, (NotFound, Unauthorized)):
                raise
            task = self.teamwork.get_task(task_id)
            if task is None or task.completed != complete:
                raise
            log.info("task %s: already %s (%s)", task_id,
                     "completed" if complete else "open", exc)

    def _fields(self, action: Action, names: tuple[str, ...]) -> dict[str, object]:
        """The fields beyond title and assignee that ``action`` writes, as the Teamwork
        client takes them (tags by id, created when missing)."""
        wanted = {PRIORITY: action.priority, DUE_DATE: action.due_date,
                  DESCRIPTION: action.description, TASKLIST: action.tasklist_id}
        fields: dict[str, object] = {n: wanted[n] for n in names
                                     if n in wanted and wanted[n] is not None}
        if TAGS in names and action.tags is not None:
            fields["tag_ids"] = self.tags.ids(action.tags)
        return fields

    def applied_from(self, task: Task | None) -> Applied:
        """What Teamwork holds, in the shape the planner compares against: where the task
        really is, and what it shows (tags by name only when a route manages tags)."""
        if task is None:
            return Applied()
        tags = self.tags.names(task.tag_ids) if self.manage_tags else None
        if self.routed:
            # Teamwork's task has no projectId: the project is its list's (read once a
            # list). Only routes move tasks, so only they need it.
            task = self.teamwork.with_project(task)
        return Applied(task_id=task.id, title=task.name, assignee=task.assignee,
                       completed=task.completed, tasklist_id=task.tasklist_id,
                       project_id=task.project_id, priority=task.priority,
                       due_date=task.due_date, tags=tags, description=digest(task.description))

    def observe(self, record: Record, out: Outcome) -> Record:
        """Rebase a record marked in flight on what Teamwork holds: read the recorded task,
        or search the task list for the ticket's link when a create may have landed."""
        task_id = record.applied.task_id
        if record.in_flight == IN_FLIGHT_CREATE or task_id is None:
            link = ticket_link(self.settings.zendesk.base_url, record.ticket.id)
            found = self.teamwork.find_ticket_tasks(self.lists.searched(), link)
            if task_id is not None and all(t.id != task_id for t in found):
                task = self.teamwork.get_task(task_id)  # moved to another list, say
                found += [task] if task is not None else []
        else:
            task = self.teamwork.get_task(task_id)
            found = [task] if task is not None else []
        return self.adopt(record, found, out)

    def adopt(self, record: Record, found: list[Task], out: Outcome, *,
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
            out.wrote = True
            self.teamwork.delete_task(extra.id)
            log.warning("ticket %s: deleted duplicate task %s (kept %s)", tid, extra.id, keep.id)
            out.history.append(f"deleted duplicate task {extra.id}")
            out.counts["deleted"] += 1
        held = self.applied_from(keep)
        if len(keep.assignees) > 1:
            held = replace(held, assignee=-1)  # several people: never what is wanted
        if record.applied.task_id != keep.id:
            log.info("ticket %s task %s: adopted the task found in Teamwork", tid, keep.id)
            out.history.append(f"task {keep.id}: adopted (found in Teamwork)")
            out.counts["adopted"] += 1
        return replace(record, applied=held, in_flight=None)
