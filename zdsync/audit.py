"""Drift: where Teamwork no longer holds what the sync rules imply for a ticket.

People edit tasks by hand (delete, complete, reassign, rename) and zdsync does not notice:
it plans from what it last applied, not from what Teamwork holds. The audit compares the
live task with ``rules.desired_task`` of the stored ticket; the repair hands the tasks read
to the reconciler as observed (``passes.Pass.repair``), so the ordinary ``rules.plan``
brings the task back. Pure: the caller reads the tasks.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from zdsync.routes import Routing, Target
from zdsync.rules import Presence, Record, desired_task, who
from zdsync.tasks import Task


class DriftKind(enum.Enum):
    GONE = "gone"  # the recorded task is deleted or missing in Teamwork
    NO_TASK = "no_task"  # the ticket needs a task and none is recorded (or only pending)
    UNWANTED = "unwanted"  # a task exists although the ticket is closed or deleted
    COMPLETED = "completed"  # completed although the ticket is open
    REOPENED = "reopened"  # open although the ticket is solved
    ASSIGNEE = "assignee"
    TITLE = "title"


@dataclass(frozen=True)
class Drift:
    kind: DriftKind
    detail: str


@dataclass(frozen=True)
class Finding:
    """One ticket whose task differs from what the rules imply."""

    ticket_id: int
    task_id: int | None
    drifts: tuple[Drift, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"ticket_id": self.ticket_id, "task_id": self.task_id,
                "drift": [{"kind": d.kind.value, "detail": d.detail} for d in self.drifts]}


def compare(record: Record, task: Task | None, mappings: Mapping[int, int],
            title_template: str | Target) -> Finding | None:
    """The drift of one ticket, or None. ``task`` is the live task of the recorded task id
    (None when Teamwork no longer has it, or when no task id is recorded). With routes,
    ``title_template`` is the ticket's ``Target``; a ticket no route wants has no drift
    (``sync.on_unmatch`` let its task go)."""
    if isinstance(title_template, Target) and title_template.on_unmatch is not None:
        return None
    want = desired_task(record.ticket, mappings, title_template)
    task_id = record.applied.task_id
    drifts: list[Drift] = []
    if task_id is not None and task is None:
        if want.presence is Presence.REQUIRED:
            drifts.append(Drift(DriftKind.GONE, f"task {task_id} is deleted or missing in "
                                "Teamwork"))
    elif task_id is None:
        if want.presence is Presence.REQUIRED:
            # A pending create whose outcome is unknown counts: outside a pass nothing
            # resolves it until the ticket changes; the repair looks for it before creating.
            drifts.append(Drift(DriftKind.NO_TASK, "the ticket has no task" + (
                " (a create was attempted; the repair looks for its task first)"
                if record.in_flight else "")))
    elif want.presence is Presence.FORBIDDEN:
        drifts.append(Drift(DriftKind.UNWANTED, f"task {task_id} still exists although the "
                            f"ticket is {record.ticket.status}"))
    else:
        assert task is not None
        if task.completed and not want.completed:
            drifts.append(Drift(DriftKind.COMPLETED, f"task {task_id} is completed; the "
                                f"ticket is {record.ticket.status}"))
        elif want.completed and not task.completed:
            drifts.append(Drift(DriftKind.REOPENED, f"task {task_id} is open; the ticket "
                                f"is {record.ticket.status}"))
        if task.assignee != want.assignee or len(task.assignees) > 1:
            held = ", ".join(f"person {p}" for p in task.assignees) or "Anyone"
            drifts.append(Drift(DriftKind.ASSIGNEE, f"assigned to {held}; should be "
                                f"{who(want.assignee)}"))
        if task.name != want.title:
            drifts.append(Drift(DriftKind.TITLE, f"titled {task.name!r}; should be "
                                f"{want.title!r}"))
    return Finding(record.ticket.id, task_id, tuple(drifts)) if drifts else None


def audit_target(record: Record, routing: Routing, title_template: str) -> Target | str:
    """What the audit holds a ticket's task to: its route's title (and completion,
    assignee), or nothing for a ticket no route wants. The list and the fields only routes
    manage are not audited (``--repair`` observes the task and plans them anyway)."""
    if not routing.explicit:
        return title_template
    route = routing.route_for(record.ticket)
    if route is None:
        return Target(on_unmatch=routing.on_unmatch)
    return Target(title_template=route.title_template)


def find_drift(records: Iterable[Record], tasks: Mapping[int, Task],
               mappings: Mapping[int, int], routing: Routing,
               title_template: str) -> list[Finding]:
    """Every drifted ticket, by ticket id. ``tasks``: the live tasks by id (a recorded id
    absent from it is a task Teamwork no longer has)."""
    found = (compare(r, tasks.get(r.applied.task_id or 0), mappings,
                     audit_target(r, routing, title_template)) for r in records)
    return sorted((f for f in found if f is not None), key=lambda f: f.ticket_id)


def repair_input(findings: Iterable[Finding], tasks: Mapping[int, Task]
                 ) -> tuple[dict[int, list[Task] | None], dict[int, str]]:
    """What ``Pass.repair`` needs: each ticket's observed tasks (None when no task is
    recorded: the reconciler searches itself if a create was in flight) and the note its
    history keeps."""
    observed: dict[int, list[Task] | None] = {}
    notes: dict[int, str] = {}
    for f in findings:
        task = tasks.get(f.task_id) if f.task_id is not None else None
        observed[f.ticket_id] = None if f.task_id is None else [task] if task else []
        notes[f.ticket_id] = "audit: " + "; ".join(d.detail for d in f.drifts)
    return observed, notes
