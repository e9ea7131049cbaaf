"""The sync rules: ticket + stored record + agent mappings -> actions. Pure, no I/O.

This is a desired-state comparison, not an event handler. ``desired_task`` says what
Teamwork should hold for a ticket; ``plan`` compares that with what was last applied
and returns only the differences. Replaying a ticket, or planning it twice, is harmless.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from zdsync.logs import clip

OPEN_STATUSES = frozenset({"new", "open", "pending", "hold"})
KNOWN_STATUSES = OPEN_STATUSES | {"solved", "closed", "deleted"}
MERGE_TAG = "closed_by_merge"
NO_SUBJECT = "(no subject)"
MAX_ID = 2**63 - 1
"""Largest id zdsync accepts: Zendesk and Teamwork ids are 64-bit integers."""
MAX_TITLE_CHARS = 250
"""Longest task title zdsync writes; a longer one is cut in the subject, never in the id."""
MAX_TEMPLATE_REST_CHARS = 150
"""Longest a title may be without its subject (``sync.title_template`` is checked against
it), so a cut title always keeps its id and some subject."""
ELLIPSIS = "…"

_ID_TEXT = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit() and int() accept "²", "٣"


def parse_id(value: object) -> int | None:
    """A positive id from outside (JSON or text), or None: ints that are not bools, or
    strings of ASCII digits (surrounding blanks allowed), from 1 to ``MAX_ID``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and _ID_TEXT.fullmatch(value.strip(" \t")):
        number = int(value.strip(" \t"))
    else:
        return None
    return number if 0 < number <= MAX_ID else None


def _shown(value: object) -> str:
    return clip(value, 80)


class MalformedTicket(ValueError):
    """A ticket object from Zendesk that zdsync cannot read. Affects that ticket only.

    ``ticket_id`` is the id when it is a usable one (an int from 1 to ``MAX_ID``, never a
    bool), else a short escaped rendering of what was sent: it is logged, and a value from
    outside must not forge log lines nor pass for an id.
    """

    def __init__(self, ticket_id: object, reason: str) -> None:
        if isinstance(ticket_id, bool) or not isinstance(ticket_id, int) \
                or not 0 < ticket_id <= MAX_ID:
            ticket_id = _shown(ticket_id)
        super().__init__(f"ticket {_shown(ticket_id)}: {reason}")
        self.ticket_id = ticket_id
        self.reason = reason


def _optional_int(data: Mapping[str, Any], key: str, ticket_id: object) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise MalformedTicket(ticket_id,
                              f"{key} must be an integer or null, got {_shown(value)}")
    return value


@dataclass(frozen=True)
class Ticket:
    """The part of a Zendesk ticket the rules look at."""

    id: int
    status: str
    subject: str | None = None
    assignee_id: int | None = None
    submitter_id: int | None = None
    tags: tuple[str, ...] = ()
    updated_at: str = ""
    generated_timestamp: int = 0

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Ticket:
        """Read a ticket object from the export, show-ticket or a stored record."""
        if not isinstance(data, Mapping):
            raise MalformedTicket("?", f"expected an object, got {type(data).__name__}")
        tid = data.get("id")
        if isinstance(tid, bool) or not isinstance(tid, int) or not 0 < tid <= MAX_ID:
            raise MalformedTicket(tid, "id must be a positive integer")
        status = data.get("status")
        if not isinstance(status, str) or status not in KNOWN_STATUSES:
            raise MalformedTicket(tid, f"unknown status {_shown(status)}")
        subject = data.get("subject")
        if subject is not None and not isinstance(subject, str):
            raise MalformedTicket(tid, "subject must be a string or null")
        tags = data.get("tags") or []
        if not isinstance(tags, list | tuple) or not all(isinstance(t, str) for t in tags):
            raise MalformedTicket(tid, "tags must be a list of strings")
        updated_at = data.get("updated_at") or ""
        if not isinstance(updated_at, str):
            raise MalformedTicket(tid, "updated_at must be a string")
        generated = data.get("generated_timestamp") or 0
        if isinstance(generated, bool) or not isinstance(generated, int):
            raise MalformedTicket(tid, "generated_timestamp must be an integer")
        return cls(
            id=tid,
            status=status,
            subject=subject,
            assignee_id=_optional_int(data, "assignee_id", tid),
            submitter_id=_optional_int(data, "submitter_id", tid),
            tags=tuple(tags),
            updated_at=updated_at,
            generated_timestamp=generated,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": self.status,
            "subject": self.subject,
            "assignee_id": self.assignee_id,
            "submitter_id": self.submitter_id,
            "tags": list(self.tags),
            "updated_at": self.updated_at,
            "generated_timestamp": self.generated_timestamp,
        }

    @property
    def merged(self) -> bool:
        return self.status == "closed" and MERGE_TAG in self.tags

    @property
    def version(self) -> tuple[int, str]:
        """Orders snapshots of one ticket: ``generated_timestamp``, then ``updated_at``.

        ``updated_at`` is ISO-8601 UTC with a fixed format, so string order is time order.
        """
        return (self.generated_timestamp, self.updated_at)


class Presence(enum.Enum):
    REQUIRED = "required"  # the task must exist
    FORBIDDEN = "forbidden"  # no task may exist (delete one if there is)
    IF_EXISTS = "if_exists"  # keep (completed) a task that exists, never create one


@dataclass(frozen=True)
class Desired:
    """What Teamwork should hold for one ticket."""

    presence: Presence
    title: str = ""
    assignee: int | None = None  # Teamwork person id; None = "Anyone"
    completed: bool = False


def render_title(ticket: Ticket, template: str) -> str:
    """Render the task title. A missing subject still yields a title carrying the id.

    At most ``MAX_TITLE_CHARS`` characters: a longer title is cut in the subject (ending
    with an ellipsis), never in the rest of the template, so the id that finds the task
    again is always whole (config validation keeps the rest of the template short).
    """
    subject = (ticket.subject or "").strip() or NO_SUBJECT

    def fill(text: str) -> str:
        return template.format(id=ticket.id, subject=text, status=ticket.status)

    title = fill(subject)
    if len(title) <= MAX_TITLE_CHARS:
        return title
    rest = len(fill(""))
    copies = max(1, len(fill("x")) - rest)  # how often {subject} appears
    room = max(0, (MAX_TITLE_CHARS - rest) // copies - len(ELLIPSIS))
    return fill(subject[:room].rstrip() + ELLIPSIS)


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


def desired_task(ticket: Ticket, mappings: Mapping[int, int], title_template: str) -> Desired:
    if ticket.status == "deleted" or (ticket.status == "closed" and not ticket.merged):
        return Desired(Presence.FORBIDDEN)
    presence = Presence.IF_EXISTS if ticket.merged else Presence.REQUIRED
    return Desired(
        presence,
        title=render_title(ticket, title_template),
        assignee=assignee_for(ticket, mappings),
        completed=ticket.status not in OPEN_STATUSES,
    )


def ticket_link(zendesk_url: str, ticket_id: int) -> str:
    """The agent-UI link written into every task: also the marker used to find it again."""
    return f"{zendesk_url.rstrip('/')}/agent/tickets/{ticket_id}"


LINK_LINE = "Zendesk ticket: "


def task_description(zendesk_url: str, ticket_id: int) -> str:
    return f"{LINK_LINE}{ticket_link(zendesk_url, ticket_id)}\n\nKept in sync by zdsync."


def linked_ticket_id(description: str, zendesk_url: str) -> int | None:
    """The ticket a task zdsync created stands for: read back from the first line of its
    description (``task_description``), if it links to a ticket of this Zendesk."""
    first = (description or "").split("\n", 1)[0].strip()
    prefix = LINK_LINE + ticket_link(zendesk_url, 0)[:-1]
    number = first[len(prefix):] if first.startswith(prefix) else ""
    if not (number.isascii() and number.isdigit()) or len(number) > 18:
        return None
    return int(number) or None


@dataclass(frozen=True)
class Applied:
    """The Teamwork task state zdsync last applied for a ticket."""

    task_id: int | None = None
    title: str | None = None
    assignee: int | None = None
    completed: bool = False


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
    """

    ticket: Ticket
    applied: Applied = field(default_factory=Applied)
    in_flight: str | None = None

    def to_json(self) -> dict[str, Any]:
        a = self.applied
        return {
            "ticket": self.ticket.to_json(),
            "task_id": a.task_id,
            "title": a.title,
            "assignee": a.assignee,
            "completed": a.completed,
            "in_flight": self.in_flight,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Record:
        in_flight = data.get("in_flight")
        if in_flight not in (None, IN_FLIGHT_WRITE, IN_FLIGHT_CREATE):
            raise ValueError(f"unknown in_flight {in_flight!r}")
        if data.get("create_pending"):  # written by zdsync 0.1
            in_flight = IN_FLIGHT_CREATE
        return cls(
            ticket=Ticket.from_api(data["ticket"]),
            applied=Applied(
                task_id=data.get("task_id"),
                title=data.get("title"),
                assignee=data.get("assignee"),
                completed=bool(data.get("completed")),
            ),
            in_flight=in_flight,
        )


class Kind(enum.Enum):
    CREATE = "create"
    UPDATE = "update"  # the title and/or the assignee, in one write
    COMPLETE = "complete"
    REOPEN = "reopen"
    DELETE = "delete"


TITLE = "title"
ASSIGNEE = "assignee"


@dataclass(frozen=True)
class Action:
    """One Teamwork write. A create carries everything a create can (title, assignee);
    an update carries every field that changed, so a ticket costs one write per kind."""

    kind: Kind
    title: str | None = None  # CREATE; UPDATE when TITLE in changes
    assignee: int | None = None  # CREATE; UPDATE when ASSIGNEE in changes
    changes: tuple[str, ...] = ()  # UPDATE: which of TITLE, ASSIGNEE it sets

    def __str__(self) -> str:
        if self.kind is Kind.CREATE:
            return f"create {self.title!r} for {who(self.assignee)}"
        if self.kind is Kind.UPDATE:
            parts = []
            if TITLE in self.changes:
                parts.append(f"retitle to {self.title!r}")
            if ASSIGNEE in self.changes:
                parts.append(f"reassign to {who(self.assignee)}")
            return " and ".join(parts)
        return self.kind.value


def update(*, title: str | None = None, assignee: int | None = None,
           changes: tuple[str, ...]) -> Action:
    return Action(Kind.UPDATE, title=title if TITLE in changes else None,
                  assignee=assignee if ASSIGNEE in changes else None, changes=changes)


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


def plan(record: Record, mappings: Mapping[int, int], title_template: str, *,
         hold_assignees: bool = False) -> list[Action]:
    """The actions that bring the task to the state the record's ticket implies.

    ``record.applied`` is what Teamwork holds as far as zdsync knows. The caller resolves
    a write in flight (observes the task, or finds one a create may have left) first.
    ``hold_assignees``: the agent mappings were lost with Redis and not restored yet, so
    existing tasks keep the assignee Teamwork holds instead of all falling to "Anyone".
    """
    want = desired_task(record.ticket, mappings, title_template)
    have = record.applied
    has_task = have.task_id is not None

    if want.presence is Presence.FORBIDDEN:
        return [Action(Kind.DELETE)] if has_task else []
    if not has_task:
        if want.presence is Presence.IF_EXISTS:
            return []
        actions = [Action(Kind.CREATE, title=want.title, assignee=want.assignee)]
        if want.completed:
            actions.append(Action(Kind.COMPLETE))
        return actions
    changes = tuple(name for name, differs in (
        (TITLE, have.title != want.title),
        (ASSIGNEE, have.assignee != want.assignee and not hold_assignees)) if differs)
    actions = [update(title=want.title, assignee=want.assignee, changes=changes)] \
        if changes else []
    if want.completed and not have.completed:
        actions.append(Action(Kind.COMPLETE))
    elif not want.completed and have.completed:
        actions.append(Action(Kind.REOPEN))
    return actions


def after(applied: Applied, action: Action, task_id: int | None = None) -> Applied:
    """The applied state once ``action`` has succeeded (``task_id`` for a create)."""
    if action.kind is Kind.CREATE:
        return Applied(task_id=task_id, title=action.title, assignee=action.assignee)
    if action.kind is Kind.UPDATE:
        if TITLE in action.changes:
            applied = replace(applied, title=action.title)
        if ASSIGNEE in action.changes:
            applied = replace(applied, assignee=action.assignee)
        return applied
    if action.kind is Kind.COMPLETE:
        return replace(applied, completed=True)
    if action.kind is Kind.REOPEN:
        return replace(applied, completed=False)
    return Applied()
