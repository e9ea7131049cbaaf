"""The sync rules: ticket + stored record + agent mappings + target -> actions. Pure.

This is a desired-state comparison, not an event handler. ``desired_task`` says what
Teamwork should hold for a ticket; ``plan`` compares that with what was last applied
and returns only the differences. Replaying a ticket, or planning it twice, is harmless.
The target (``routes.Target``) says where the ticket's route wants the task and which
fields beyond title, assignee and completion it manages; the ticket model and the links
between tickets and tasks are in ``tickets`` (re-exported here).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from zdsync.routes import Target
from zdsync.tickets import (  # noqa: F401  (re-exported: rules is where callers look)
    ELLIPSIS,
    KNOWN_STATUSES,
    LINK_LINE,
    MAX_ID,
    MERGE_TAG,
    NO_PRIORITY,
    NO_SUBJECT,
    OPEN_STATUSES,
    MalformedTicket,
    Ticket,
    digest,
    linked_ticket_id,
    parse_id,
    render_title,
    task_description,
    task_due_date,
    task_priority,
    task_tags,
    ticket_link,
)


class Presence(enum.Enum):
    REQUIRED = "required"  # the task must exist
    FORBIDDEN = "forbidden"  # no task may exist (delete one if there is)
    IF_EXISTS = "if_exists"  # keep (completed) a task that exists, never create one


@dataclass(frozen=True)
class Desired:
    """What Teamwork should hold for one ticket. For ``tasklist_id`` and the fields below
    it, None means "not managed" (see ``Target``)."""

    presence: Presence
    title: str = ""
    assignee: int | None = None  # Teamwork person id; None = "Anyone"
    completed: bool = False
    tasklist_id: int | None = None
    project_id: int | None = None
    priority: str | None = None
    due_date: str | None = None  # "" = no due date
    tags: tuple[str, ...] | None = None
    description: str | None = None


def assignee_for(ticket: Ticket, mappings: Mapping[int, int]) -> int | None:
    """The Teamwork person for a ticket.

    An assigned ticket follows its assignee (unmapped -> "Anyone", never the submitter:
    the ticket is somebody else's job). An unassigned ticket goes to the agent who opened it.
    """
    if ticket.assignee_id is not None:
        return mappings.get(ticket.assignee_id)
    if ticket.submitter_id is not None:
        return mappings.get(ticket.submitter_id)
    return None


def desired_task(ticket: Ticket, mappings: Mapping[int, int],
                 target: Target | str) -> Desired:
    """What the ticket implies. ``target`` may be a bare title template: the implicit
    route. A target with ``on_unmatch`` set is the caller's business (see ``plan``)."""
    if isinstance(target, str):
        target = Target(title_template=target)
    if ticket.status == "deleted" or (ticket.status == "closed" and not ticket.merged):
        return Desired(Presence.FORBIDDEN)
    presence = Presence.IF_EXISTS if ticket.merged else Presence.REQUIRED
    return Desired(
        presence,
        title=render_title(ticket, target.title_template),
        assignee=assignee_for(ticket, mappings),
        completed=ticket.status not in OPEN_STATUSES,
        tasklist_id=target.tasklist_id,
        project_id=target.project_id,
        priority=task_priority(ticket) if target.priority else None,
        due_date=task_due_date(ticket) if target.due_date else None,
        tags=task_tags(ticket) if target.tags else None,
        description=target.description,
    )


@dataclass(frozen=True)
class Applied:
    """The Teamwork task state zdsync last applied for a ticket.

    For ``tasklist_id`` and the fields below it, None means "not known": a record written
    before routes existed (or a field never managed). Planning then writes them only when
    a route manages them, and never moves a task whose list is not known.
    ``description`` is the ``digest`` of the description applied."""

    task_id: int | None = None
    title: str | None = None
    assignee: int | None = None
    completed: bool = False
    tasklist_id: int | None = None
    project_id: int | None = None
    priority: str | None = None
    due_date: str | None = None
    tags: tuple[str, ...] | None = None
    description: str | None = None


APPLIED_EXTRAS = ("tasklist_id", "project_id", "priority", "due_date", "tags", "description")


IN_FLIGHT_WRITE = "write"
IN_FLIGHT_CREATE = "create"


@dataclass(frozen=True)
class Record:
    """Everything stored for one ticket: the newest snapshot seen and what was applied.

    Keeping the snapshot makes every later decision (retries, mapping changes) a pure
    function of the record and the mappings; no re-export is needed.

    ``in_flight`` is written (durably) before the first Teamwork write for the ticket and
    cleared when the ticket's record is stored after its last write: while it is set,
    Teamwork may hold more than ``applied`` says, so the task is observed before planning.
    ``"create"`` means a create may have landed unrecorded: the task list is searched for
    the ticket's link. ``"write"``: the recorded task may have changed; it is read.

    ``failed``: the ticket's last attempt failed (it is in the retry set): if the retry
    set is lost, the records say which tickets to retry.
    """

    ticket: Ticket
    applied: Applied = field(default_factory=Applied)
    in_flight: str | None = None
    route: str | None = None  # the route the ticket matched (None: none, or no routes)
    failed: bool = False

    def to_json(self) -> dict[str, Any]:
        a = self.applied
        data: dict[str, Any] = {
            "ticket": self.ticket.to_json(),
            "task_id": a.task_id,
            "title": a.title,
            "assignee": a.assignee,
            "completed": a.completed,
            "in_flight": self.in_flight,
        }
        for key in APPLIED_EXTRAS:  # only what is known: old readers ignore them
            value = getattr(a, key)
            if value is not None:
                data[key] = list(value) if key == "tags" else value
        if self.route is not None:
            data["route"] = self.route
        if self.failed:
            data["failed"] = True
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        in_flight = data.get("in_flight")
        if in_flight not in (None, IN_FLIGHT_WRITE, IN_FLIGHT_CREATE):
            raise ValueError(f"unknown in_flight {in_flight!r}")
        if data.get("create_pending"):  # written by zdsync 0.1
            in_flight = IN_FLIGHT_CREATE
        tags = data.get("tags")
        return cls(
            ticket=Ticket.from_api(data["ticket"]),
            applied=Applied(
                task_id=data.get("task_id"),
                title=data.get("title"),
                assignee=data.get("assignee"),
                completed=bool(data.get("completed")),
                tasklist_id=data.get("tasklist_id"),
                project_id=data.get("project_id"),
                priority=data.get("priority"),
                due_date=data.get("due_date"),
                tags=None if tags is None else tuple(tags),
                description=data.get("description"),
            ),
            in_flight=in_flight,
            route=data.get("route"),
            failed=bool(data.get("failed")),
        )


class Kind(enum.Enum):
    CREATE = "create"
    UPDATE = "update"  # every changed field (and a move within the project), in one write
    MOVE = "move"  # to a task list of another project (Teamwork's v1 move)
    COMPLETE = "complete"
    REOPEN = "reopen"
    DELETE = "delete"


TITLE = "title"
ASSIGNEE = "assignee"
PRIORITY = "priority"
DUE_DATE = "due_date"
TAGS = "tags"
DESCRIPTION = "description"
TASKLIST = "tasklist_id"
FIELDS = (TITLE, ASSIGNEE, PRIORITY, DUE_DATE, TAGS, DESCRIPTION, TASKLIST)
"""What an UPDATE may set, named as ``Action``'s (and ``Applied``'s) attributes."""


@dataclass(frozen=True)
class Action:
    """One Teamwork write. A create carries everything a create can (title, assignee,
    description, priority, due date, tags, its list); an update carries every field that
    changed (``changes``), a move within the project included, so a ticket costs at most
    one write per kind. A MOVE carries the list (and project) it goes to."""

    kind: Kind
    title: str | None = None
    assignee: int | None = None
    changes: tuple[str, ...] = ()  # UPDATE: which of ``FIELDS`` it sets
    priority: str | None = None
    due_date: str | None = None
    tags: tuple[str, ...] | None = None
    description: str | None = None
    tasklist_id: int | None = None  # CREATE (None: the shell's default list), MOVE, UPDATE
    project_id: int | None = None  # CREATE, MOVE

    def __str__(self) -> str:
        if self.kind is Kind.CREATE:
            extra = "".join(f", {part}" for part in self._parts(
                (PRIORITY, DUE_DATE, TAGS), lambda name, value: value is not None))
            where = f" in task list {self.tasklist_id}" if self.tasklist_id is not None else ""
            return f"create {self.title!r} for {who(self.assignee)}{where}{extra}"
        if self.kind is Kind.UPDATE:
            return " and ".join(self._parts(self.changes, lambda name, value: True))
        if self.kind is Kind.MOVE:
            return f"move to task list {self.tasklist_id} of project {self.project_id}"
        return self.kind.value

    def _parts(self, names: tuple[str, ...], wanted: Any) -> list[str]:
        shown = {
            TITLE: lambda v: f"retitle to {v!r}", ASSIGNEE: lambda v: f"reassign to {who(v)}",
            PRIORITY: lambda v: f"priority {v}",
            DUE_DATE: lambda v: f"due {v}" if v else "no due date",
            TAGS: lambda v: f"tags {', '.join(v)}" if v else "no tags",
            DESCRIPTION: lambda v: "rewrite the description",
            TASKLIST: lambda v: f"move to task list {v}",
        }
        return [shown[n](getattr(self, n)) for n in names if wanted(n, getattr(self, n))]


def update(*, changes: tuple[str, ...], **values: Any) -> Action:
    """An UPDATE setting exactly ``changes`` (other values given are left out)."""
    return Action(Kind.UPDATE, changes=changes,
                  **{k: v for k, v in values.items() if k in changes})


def who(person: int | None) -> str:
    """A Teamwork assignee for people: "Anyone" or "person N"."""
    return "Anyone" if person is None else f"person {person}"


def is_stale(ticket: Ticket, record: Record | None) -> bool:
    """True when ``ticket`` is an older snapshot than the one already stored.

    Export snapshots carry ``generated_timestamp``; a ticket read with show-ticket (the
    webhook path) does not, so between such snapshots only ``updated_at`` is compared.
    An equal version is not stale: replaying it is harmless and plans nothing new.
    """
    if record is None:
        return False
    old = record.ticket
    if ticket.generated_timestamp and old.generated_timestamp:
        return ticket.version < old.version
    return ticket.updated_at < old.updated_at


def plan(record: Record, mappings: Mapping[int, int], target: Target | str, *,
         hold_assignees: bool = False) -> list[Action]:
    """The actions that bring the task to the state the record's ticket implies.

    ``record.applied`` is what Teamwork holds as far as zdsync knows. The caller resolves
    a write in flight (observes the task, or finds one a create may have left) first.
    ``target`` says where and how the ticket's route wants the task (a bare title template:
    the implicit route). ``hold_assignees``: the agent mappings were lost with Redis and not
    restored yet, so existing tasks keep the assignee Teamwork holds instead of all falling
    to "Anyone".
    """
    if isinstance(target, str):
        target = Target(title_template=target)
    have = record.applied
    has_task = have.task_id is not None
    if target.on_unmatch is not None:  # no route wants the ticket: sync.on_unmatch
        if not has_task or target.on_unmatch == "keep":
            return []
        if target.on_unmatch == "delete":
            return [Action(Kind.DELETE)]
        return [] if have.completed else [Action(Kind.COMPLETE)]
    want = desired_task(record.ticket, mappings, target)

    if want.presence is Presence.FORBIDDEN:
        return [Action(Kind.DELETE)] if has_task else []
    if not has_task:
        if want.presence is Presence.IF_EXISTS:
            return []
        actions = [Action(Kind.CREATE, title=want.title, assignee=want.assignee,
                          priority=want.priority, due_date=want.due_date, tags=want.tags,
                          description=want.description, tasklist_id=want.tasklist_id,
                          project_id=want.project_id)]
        if want.completed:
            actions.append(Action(Kind.COMPLETE))
        return actions
    # Reopen before any edit, complete after it: Teamwork may refuse to edit a completed
    # task (v1 does), so this order works whichever way it behaves, at no extra write.
    actions = [Action(Kind.REOPEN)] if have.completed and not want.completed else []
    moving = (want.tasklist_id is not None and have.tasklist_id is not None
              and have.tasklist_id != want.tasklist_id)
    # v1's move works within a project too: taken when the task's project is not known
    across = moving and (want.project_id is None or have.project_id is None
                         or have.project_id != want.project_id)
    if across:
        actions.append(Action(Kind.MOVE, tasklist_id=want.tasklist_id,
                              project_id=want.project_id))
    changes = tuple(name for name, differs in (
        (TITLE, have.title != want.title),
        (ASSIGNEE, have.assignee != want.assignee and not hold_assignees),
        (PRIORITY, want.priority is not None and have.priority != want.priority),
        (DUE_DATE, want.due_date is not None and have.due_date != want.due_date),
        (TAGS, want.tags is not None and have.tags != want.tags),
        (DESCRIPTION, want.description is not None
         and have.description != digest(want.description)),
        (TASKLIST, moving and not across)) if differs)
    if changes:
        actions.append(update(changes=changes, **{n: getattr(want, n) for n in FIELDS}))
    if want.completed and not have.completed:
        actions.append(Action(Kind.COMPLETE))
    return actions


def after(applied: Applied, action: Action, task_id: int | None = None) -> Applied:
    """The applied state once ``action`` has succeeded (``task_id`` for a create)."""
    if action.kind is Kind.CREATE:
        return Applied(task_id=task_id, title=action.title, assignee=action.assignee,
                       tasklist_id=action.tasklist_id, project_id=action.project_id,
                       priority=action.priority, due_date=action.due_date, tags=action.tags,
                       description=None if action.description is None
                       else digest(action.description))
    if action.kind is Kind.UPDATE:
        values = {n: getattr(action, n) for n in action.changes}
        if DESCRIPTION in values:
            values[DESCRIPTION] = digest(values[DESCRIPTION])
        return replace(applied, **values)
    if action.kind is Kind.MOVE:
        return replace(applied, tasklist_id=action.tasklist_id, project_id=action.project_id)
    if action.kind is Kind.COMPLETE:
        return replace(applied, completed=True)
    if action.kind is Kind.REOPEN:
        return replace(applied, completed=False)
    return Applied()
