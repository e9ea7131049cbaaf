"""One ticket as zdsync sees it (``zdsync tickets show``): what it last wrote, what
Teamwork holds now, the drift between them and what the next pass would do.

Reads Teamwork and Redis; writes nothing. A task list named by a route but not made yet
stays unmade (a dry-run lookup).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from zdsync import audit
from zdsync.errors import ApiError
from zdsync.queues import RetryEntry
from zdsync.routes import Target
from zdsync.rules import Record, plan
from zdsync.services import Services
from zdsync.tasks import Task


@dataclass(frozen=True)
class Inspection:
    record: Record
    task: Task | None
    task_error: str | None  # the live task (or the route) could not be read
    target: Target
    finding: audit.Finding | None
    actions: list[str]
    retry: RetryEntry | None
    history: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        task, retry = self.task, self.retry
        return {
            "record": self.record.to_json(),
            "task": None if task is None else {
                "id": task.id, "name": task.name, "status": task.status,
                "assignees": list(task.assignees), "tasklist_id": task.tasklist_id,
                "project_id": task.project_id},
            "route": self.target.route, "unrouted": self.target.on_unmatch is not None,
            "task_error": self.task_error,
            "drift": self.finding.as_dict()["drift"] if self.finding else [],
            "next_pass": self.actions,
            "retry": None if retry is None else {
                "attempts": retry.attempts, "error": retry.error, "next_at": retry.next_at},
            "history": self.history,
        }


def inspect(services: Services, record: Record) -> Inspection:
    settings, store = services.settings, services.store
    template = settings.sync.title_template
    task = task_error = None
    if record.applied.task_id is not None:
        try:
            task = services.teamwork.get_task(record.applied.task_id)
            task = task and services.teamwork.with_project(task)
        except ApiError as exc:
            task_error = str(exc)
    routing = settings.routing()
    target = Target(title_template=template)
    if routing.explicit:  # which route wants it now, and where (a lookup: nothing made)
        try:
            target = services.reconciler.target(record.ticket, dry_run=True)
            record = services.reconciler.placed(record)
        except ApiError as exc:
            task_error = task_error or f"could not resolve its route: {exc}"
    mappings = store.mappings()
    finding = (None if task_error else audit.compare(
        record, task, mappings, audit.audit_target(record, routing, template)))
    ticket_id = record.ticket.id
    return Inspection(
        record=record, task=task, task_error=task_error, target=target, finding=finding,
        actions=[str(a) for a in plan(record, mappings, target)],
        retry=next((e for e in store.retries() if e.ticket_id == ticket_id), None),
        history=store.history(ticket_id))
