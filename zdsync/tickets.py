"""Zendesk tickets as zdsync reads them, and how a task names its ticket. Pure, no I/O.

``Ticket.from_api`` is where outside data is checked: a ticket that cannot be read is a
``MalformedTicket`` (it affects that ticket only). The rest turns a ticket into what its
task shows: the title, the link that finds the task again, priority, due date and tags.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zdsync import defaults
from zdsync.logs import clip

OPEN_STATUSES = frozenset({"new", "open", "pending", "hold"})
KNOWN_STATUSES = OPEN_STATUSES | {"solved", "closed", "deleted"}
MERGE_TAG = "closed_by_merge"
NO_SUBJECT = "(no subject)"
MAX_ID = 2**63 - 1
"""Largest id zdsync accepts: Zendesk and Teamwork ids are 64-bit integers."""
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


EXTRA_INTS = ("requester_id", "group_id", "brand_id", "ticket_form_id", "organization_id")
EXTRA_STRS = ("priority", "type", "due_at", "created_at")
"""Fields that only routes and templates read. Taken when they have the documented type,
else treated as absent: a ticket is never refused for a field the sync may not use."""


def _extra(value: object, kind: type) -> Any:
    return value if isinstance(value, kind) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class Ticket:
    """The part of a Zendesk ticket the rules and routes look at."""

    id: int
    status: str
    subject: str | None = None
    assignee_id: int | None = None
    submitter_id: int | None = None
    tags: tuple[str, ...] = ()
    updated_at: str = ""
    generated_timestamp: int = 0
    requester_id: int | None = None
    group_id: int | None = None
    brand_id: int | None = None
    ticket_form_id: int | None = None
    organization_id: int | None = None
    priority: str | None = None
    type: str | None = None
    due_at: str | None = None
    created_at: str | None = None
    via: str | None = None  # via.channel

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
            via=_extra((data.get("via") or {}).get("channel")
                       if isinstance(data.get("via"), Mapping) else None, str),
            **{k: _extra(data.get(k), int) for k in EXTRA_INTS},
            **{k: _extra(data.get(k), str) for k in EXTRA_STRS},
        )

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "status": self.status,
            "subject": self.subject,
            "assignee_id": self.assignee_id,
            "submitter_id": self.submitter_id,
            "tags": list(self.tags),
            "updated_at": self.updated_at,
            "generated_timestamp": self.generated_timestamp,
        }
        for key in (*EXTRA_INTS, *EXTRA_STRS):  # only what is set: records stay small
            if getattr(self, key) is not None:
                data[key] = getattr(self, key)
        if self.via is not None:
            data["via"] = {"channel": self.via}
        return data

    @property
    def merged(self) -> bool:
        return self.status == "closed" and MERGE_TAG in self.tags

    @property
    def version(self) -> tuple[int, str]:
        """Orders snapshots of one ticket: ``generated_timestamp``, then ``updated_at``.

        ``updated_at`` is ISO-8601 UTC with a fixed format, so string order is time order.
        """
        return (self.generated_timestamp, self.updated_at)


def title_template_problem(template: str) -> str | None:
    """Why a title template cannot be used (None when it can): unknown fields, no
    ``{id}``, or too long without the subject for a cut title to keep its id."""
    try:
        template.format(id=1, subject="s", status="open")
        if "{id}" not in template:
            raise ValueError("it must contain {id}")
        rest = len(template.format(id=MAX_ID, subject="", status="pending"))
        if rest > defaults.MAX_TEMPLATE_REST_CHARS:
            raise ValueError(f"without the subject it is {rest} characters long, more than "
                             f"{defaults.MAX_TEMPLATE_REST_CHARS}")
    except Exception as exc:  # format() can raise almost anything on a bad template
        return str(exc)
    return None


def render_title(ticket: Ticket, template: str) -> str:
    """Render the task title. A missing subject still yields a title carrying the id.

    At most ``defaults.MAX_TITLE_CHARS`` characters: a longer title is cut in the subject (ending
    with an ellipsis), never in the rest of the template, so the id that finds the task
    again is always whole (config validation keeps the rest of the template short).
    """
    subject = (ticket.subject or "").strip() or NO_SUBJECT

    def fill(text: str) -> str:
        return template.format(id=ticket.id, subject=text, status=ticket.status)

    title = fill(subject)
    if len(title) <= defaults.MAX_TITLE_CHARS:
        return title
    rest = len(fill(""))
    copies = max(1, len(fill("x")) - rest)  # how often {subject} appears
    room = max(0, (defaults.MAX_TITLE_CHARS - rest) // copies - len(ELLIPSIS))
    return fill(subject[:room].rstrip() + ELLIPSIS)


PRIORITY_MAP = {"urgent": "high", "high": "high", "normal": "medium", "low": "low"}
NO_PRIORITY = "none"


def task_priority(ticket: Ticket) -> str:
    """Zendesk priority -> Teamwork's: urgent/high -> high, normal -> medium, low -> low;
    a ticket without one (or with one Zendesk does not document) -> ``none``, so clearing
    a ticket's priority clears the task's."""
    return PRIORITY_MAP.get(ticket.priority or "", NO_PRIORITY)


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def task_due_date(ticket: Ticket) -> str:
    """A task-type ticket's ``due_at`` as Teamwork's ``YYYY-MM-DD`` (its UTC date); ""
    (no due date) for any other ticket, so a ticket that stops being a task loses it."""
    due = (ticket.due_at or "")[:10]
    return due if ticket.type == "task" and _DATE.fullmatch(due) else ""


def task_tags(ticket: Ticket) -> tuple[str, ...]:
    """The ticket's tags as the task's tag names: sorted, each once (order means nothing)."""
    return tuple(sorted(set(ticket.tags)))


def ticket_link(zendesk_url: str, ticket_id: int) -> str:
    """The agent-UI link written into every task: also the marker used to find it again."""
    return f"{zendesk_url.rstrip('/')}/agent/tickets/{ticket_id}"


LINK_LINE = "Zendesk ticket: "


def task_description(zendesk_url: str, ticket_id: int) -> str:
    return f"{LINK_LINE}{ticket_link(zendesk_url, ticket_id)}\n\nKept in sync by zdsync."


def digest(text: str) -> str:
    """What a record keeps of a description: a short hash, so records stay small."""
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def linked_ticket_id(description: str, zendesk_url: str) -> int | None:
    """The ticket a task zdsync created stands for: read back from the first line of its
    description (``task_description``), if it links to a ticket of this Zendesk."""
    first = (description or "").split("\n", 1)[0].strip()
    prefix = LINK_LINE + ticket_link(zendesk_url, 0)[:-1]
    number = first[len(prefix):] if first.startswith(prefix) else ""
    if not (number.isascii() and number.isdigit()) or len(number) > 18:
        return None
    return int(number) or None
