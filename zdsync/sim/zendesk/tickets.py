"""Tickets: their lifecycle rules, the Python API that drives them as agents and
end-users would, and show ticket and show_many.

Every change goes through ``_bump``, which gives the ticket its next place in the export,
and sends its events to the webhooks.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable
from typing import Any

from zdsync.sim.base import Request, Response, iso_utc, json_response
from zdsync.sim.server import route
from zdsync.sim.zendesk.service import NOT_FOUND, one_page
from zdsync.sim.zendesk.webhooks import EVENT_FOR_FIELD, Webhooks

TICKET_STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
CLOSED_EDITABLE = frozenset({"subject", "tags", "priority"})
"""What may still change on a closed ticket."""
UPDATABLE = frozenset({"subject", "status", "assignee_id", "tags", "priority", "type",
                       "group_id", "requester_id", "brand_id", "ticket_form_id",
                       "organization_id", "due_at"})
PRIORITIES = (None, "low", "normal", "high", "urgent")
TYPES = (None, "problem", "incident", "question", "task")
"""Ticket ``priority`` and ``type`` values."""
MERGE_TAG = "closed_by_merge"


class Tickets(Webhooks):
    """``create_ticket``, ``update_ticket``, ``merge``, ``delete_ticket``, ``touch``, ...; GET
    one ticket or many."""

    def create_ticket(self, subject: str | None, requester_id: int,
                      submitter_id: int | None = None, assignee_id: int | None = None,
                      status: str = "new", tags: Iterable[str] = (), *,
                      description: str | None = None, priority: str | None = None,
                      type: str | None = None, group_id: int | None = None,
                      via_channel: str = "web", brand_id: int = 1,
                      ticket_form_id: int | None = None, organization_id: int | None = None,
                      due_at: str | None = None) -> int:
        """Create a ticket as an agent or end-user would; returns its id."""
        with self.lock:
            self._need_user(requester_id)
            self._check_fields({"priority": priority, "type": type, "group_id": group_id,
                                "due_at": due_at})
            submitter_id = requester_id if submitter_id is None else submitter_id
            self._need_user(submitter_id)
            if assignee_id is not None:
                self._need_agent(assignee_id)
            if status not in TICKET_STATUSES or status == "closed":
                raise ValueError(f"a ticket cannot be created with status {status!r}")
            if status == "solved" and assignee_id is None:
                raise ValueError("a ticket cannot be solved without an assignee")
            tid = self._next_ticket_id
            self._next_ticket_id += 1
            now = self.clock.now()
            ticket = {
                "id": tid, "url": "", "external_id": None,
                "via": {"channel": via_channel, "source": {"from": {}, "to": {}, "rel": None}},
                "created_at": iso_utc(now), "updated_at": iso_utc(now),
                "generated_timestamp": 0, "type": type, "subject": subject,
                "raw_subject": subject,
                "description": description if description is not None else (subject or ""),
                "priority": priority, "status": status, "recipient": None,
                "requester_id": requester_id, "submitter_id": submitter_id,
                "assignee_id": assignee_id, "organization_id": organization_id,
                "group_id": group_id,
                "collaborator_ids": [], "follower_ids": [], "email_cc_ids": [],
                "tags": _clean_tags(tags), "custom_fields": [], "is_public": True,
                "followup_ids": [], "brand_id": brand_id, "allow_channelback": False,
                "has_incidents": False, "problem_id": None, "due_at": due_at,
                "ticket_form_id": ticket_form_id,
            }
            self._tickets[tid] = ticket
            self._bump(ticket, event=True)
            self._emit(ticket, "created", None, None)
            return tid

    def update_ticket(self, ticket_id: int, *, comment: str | None = None,
                      **fields: Any) -> dict[str, Any]:
        """Apply an agent's update; lifecycle rules raise ``ValueError``.

        ``comment`` adds a comment (changes nothing the sync looks at, but is an event
        and so moves ``updated_at``).
        """
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise TypeError(f"cannot update {sorted(unknown)}")
        with self.lock:
            ticket = self._live(ticket_id)
            changes = {k: v for k, v in fields.items()
                       if (_clean_tags(v) if k == "tags" else v) != ticket[k]}
            status = changes.get("status", ticket["status"])
            assignee = changes.get("assignee_id", ticket["assignee_id"])
            if ticket["status"] == "closed":
                if set(changes) - CLOSED_EDITABLE:
                    raise ValueError(f"closed ticket {ticket_id}: only {sorted(CLOSED_EDITABLE)}"
                                     " can change")
                if comment is not None:
                    raise ValueError(f"closed ticket {ticket_id} takes no comments "
                                     "(replies create a follow-up ticket)")
            if "status" in changes:
                if status not in TICKET_STATUSES:
                    raise ValueError(f"unknown status {status!r}")
                if status == "new":
                    raise ValueError("a ticket can never return to new")
                if status == "closed" and ticket["status"] != "solved":
                    raise ValueError("only solved tickets can be closed")
            if status in ("solved", "closed") and assignee is None and (
                    "status" in changes or "assignee_id" in changes):
                raise ValueError("a ticket cannot be solved without an assignee")
            if "assignee_id" in changes and assignee is not None:
                self._need_agent(assignee)
            if "requester_id" in changes:
                self._need_user(changes["requester_id"])
            self._check_fields(changes)
            previous = copy.deepcopy(ticket)
            for key, value in changes.items():
                ticket[key] = _clean_tags(value) if key == "tags" else value
                if key == "subject":
                    ticket["raw_subject"] = value
            self._bump(ticket, event=True)
            for key in sorted(changes, key=list(EVENT_FOR_FIELD).index):
                self._emit(ticket, EVENT_FOR_FIELD[key], previous[key], ticket[key])
            if comment is not None:
                self._emit(ticket, "comment_added", None, {"body": comment})
            return self._public_ticket(ticket)

    def touch(self, ticket_id: int) -> None:
        """A system update (e.g. SLA metrics): moves ``generated_timestamp`` only."""
        with self.lock:
            self._bump(self._live(ticket_id), event=False)

    def delete_ticket(self, ticket_id: int) -> None:
        """Soft-delete: gone for show (404), ``status: "deleted"`` in the export."""
        with self.lock:
            ticket = self._live(ticket_id)
            self._status_before_delete[ticket_id] = ticket["status"]
            ticket["status"] = "deleted"
            self._bump(ticket, event=True)
            self._emit(ticket, "soft_deleted", None, None)

    def restore_ticket(self, ticket_id: int) -> None:
        """Undo a soft delete (``PUT /api/v2/deleted_tickets/{id}/restore``)."""
        with self.lock:
            ticket = self._tickets[ticket_id]
            if ticket["status"] != "deleted":
                raise ValueError(f"ticket {ticket_id} is not deleted")
            ticket["status"] = self._status_before_delete.pop(ticket_id)
            self._bump(ticket, event=True)
            self._emit(ticket, "undeleted", None, None)

    def merge(self, source_id: int, target_id: int) -> None:
        """Merge ``source`` into ``target``: the source ends closed + ``closed_by_merge``."""
        if source_id == target_id:
            raise ValueError("a ticket cannot be merged into itself")
        with self.lock:
            source, target = self._live(source_id), self._live(target_id)
            for t in (source, target):
                if t["status"] == "closed":
                    raise ValueError(f"closed ticket {t['id']} cannot take part in a merge")
            previous = source["status"]
            source["status"] = "closed"
            source["tags"] = _clean_tags([*source["tags"], MERGE_TAG])
            self._bump(source, event=True)
            self._emit(source, "status_changed", previous, "closed")
            self._emit(source, "merged", None, {"target_ticket_id": str(target_id)})
            self._bump(target, event=True)
            self._emit(target, "comment_added", None,
                       {"body": f"Request #{source_id} was closed and merged into this request."})

    def ticket(self, ticket_id: int) -> dict[str, Any]:
        """The ticket's current JSON (deleted ones too); ``KeyError`` if unknown."""
        with self.lock:
            return self._public_ticket(self._tickets[ticket_id])

    def tickets(self) -> list[dict[str, Any]]:
        """Every ticket, deleted ones included, by id."""
        with self.lock:
            return [self._public_ticket(t) for _, t in sorted(self._tickets.items())]

    def ticket_states(self) -> list[dict[str, Any]]:
        """``id``, ``status``, ``assignee_id``, ``tags`` of every ticket: a cheap snapshot."""
        with self.lock:
            return [{"id": t["id"], "status": t["status"], "assignee_id": t["assignee_id"],
                     "tags": list(t["tags"])} for _, t in sorted(self._tickets.items())]

    def _check_fields(self, fields: dict[str, Any]) -> None:
        """Values Zendesk refuses: unknown priority or type, a group that
        does not exist, a ``due_at`` that is not an ISO-8601 UTC time."""
        if fields.get("priority") not in PRIORITIES:
            raise ValueError(f"unknown priority {fields['priority']!r}")
        if fields.get("type") not in TYPES:
            raise ValueError(f"unknown type {fields['type']!r}")
        group = fields.get("group_id")
        if group is not None and group not in self._groups:
            raise ValueError(f"unknown group {group}")
        due = fields.get("due_at")
        if due is not None and not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", due):
            raise ValueError(f"due_at must be YYYY-MM-DDTHH:MM:SSZ, got {due!r}")

    def _live(self, ticket_id: int) -> dict[str, Any]:
        ticket = self._tickets[ticket_id]
        if ticket["status"] == "deleted":
            raise ValueError(f"ticket {ticket_id} is deleted")
        return ticket

    def _bump(self, ticket: dict[str, Any], *, event: bool) -> None:
        now = self.clock.now()
        generated = max(int(now), self._last_generated)
        self._last_generated = generated
        self._seq += 1
        ticket["generated_timestamp"] = generated
        if event:
            ticket["updated_at"] = iso_utc(generated)
        self._versions[ticket["id"]] = (generated, self._seq)

    def _public_ticket(self, ticket: dict[str, Any]) -> dict[str, Any]:
        out = {k: list(v) if isinstance(v, list) else v for k, v in ticket.items()}
        out["via"] = copy.deepcopy(ticket["via"])
        out["url"] = f"{self._base_url()}/api/v2/tickets/{ticket['id']}.json"
        return out

    def _shown_ticket(self, ticket: dict[str, Any]) -> dict[str, Any]:
        """A ticket as show ticket and show_many answer it: without ``generated_timestamp``,
        which only the export carries (every recorded show response lacks it)."""
        out = self._public_ticket(ticket)
        del out["generated_timestamp"]
        return out

    @route("GET", "/api/v2/tickets/{id}")
    def _show_ticket(self, request: Request, m: re.Match[str]) -> Response:
        ticket = self._tickets.get(int(m["id"]))
        if ticket is None or ticket["status"] == "deleted":
            return json_response(404, NOT_FOUND)
        return json_response(200, {"ticket": self._shown_ticket(ticket)})

    @route("GET", "/api/v2/tickets/show_many")
    def _show_many_tickets(self, request: Request, _m: re.Match[str]) -> Response:
        ids = self._ids(request)
        if isinstance(ids, Response):
            return ids
        found = [self._shown_ticket(self._tickets[i]) for i in ids
                 if i in self._tickets and self._tickets[i]["status"] != "deleted"]
        return one_page("tickets", found)


def _clean_tags(tags: Iterable[str]) -> list[str]:
    """Zendesk tags: lower-case, no spaces, no duplicates, order kept."""
    seen: dict[str, None] = {}
    for tag in tags:
        for part in str(tag).lower().split():
            seen.setdefault(part, None)
    return list(seen)
