"""A faithful in-memory Zendesk Support API: the calls zdsync makes, with their limits.

Follows /work/shared/reference/zendesk-api.md (section numbers in docs/simulators.md):
cursor-based incremental ticket export (latest version only, ascending
``generated_timestamp``, last minute withheld, 10 requests/minute), show ticket (404 on
deleted), users, ticket lifecycle rules, and optional signed event-subscription webhooks.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import hmac
import json
import queue
import random
import re
import threading
import time
import urllib.error
import urllib.request
import uuid
import zlib
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from zdsync.sim.base import (
    Clock,
    RateDecision,
    RateLimiter,
    Request,
    Response,
    iso_utc,
    json_response,
    page_slice,
    truthy,
)
from zdsync.sim.server import Route, SimServer, route

ROLES = ("end-user", "agent", "admin")
TICKET_STATUSES = ("new", "open", "pending", "hold", "solved", "closed")
OPEN_STATUSES = frozenset({"new", "open", "pending", "hold"})
CLOSED_EDITABLE = frozenset({"subject", "tags", "priority"})
"""What may still change on a closed ticket (reference §4.1)."""
UPDATABLE = frozenset({"subject", "status", "assignee_id", "tags", "priority", "type",
                       "group_id", "requester_id", "brand_id", "ticket_form_id",
                       "organization_id", "due_at"})
PRIORITIES = (None, "low", "normal", "high", "urgent")
TYPES = (None, "problem", "incident", "question", "task")
"""Ticket ``priority`` and ``type`` values (reference §4)."""
GROUPS_PER_PAGE_MAX = 100
MERGE_TAG = "closed_by_merge"
EXPORT_MAX_PER_PAGE = 1000
EXPORT_DELAY_SECONDS = 60
"""Changes younger than this are not exported yet (reference §1.3)."""
SHOW_MANY_MAX = 100
USERS_PER_PAGE_MAX = 100
_END_SEQ = 2**53  # "after every change of that second" in a cursor position

_NOT_FOUND = {"error": "RecordNotFound", "description": "Not found"}
_UNAUTHORIZED = {"error": "Couldn't authenticate you"}
_FORBIDDEN = {"error": "Forbidden", "description": "You do not have access to this page. "
              "Please contact the account owner of this help desk for further help."}
_TOO_RECENT = {"error": "StartTimeTooRecent",
               "description": "Too recent start_time. Use a start_time older than 1 minute"}
_EXPORT_LIMITED = {"error": "APIRateLimitExceeded", "description":
                   "Number of allowed incremental export API requests per minute exceeded"}
_ACCOUNT_LIMITED = {"error": "APIRateLimitExceeded",
                    "description": "Number of allowed API requests per minute exceeded"}

def _invalid(description: str) -> Response:
    return json_response(400, {"error": "InvalidValue", "description": description})


class ZendeskSim(SimServer):
    """The Zendesk Support API for one account, in memory.

    ``email``/``api_token`` are the admin credentials the daemon is given; the token works
    with any active user's e-mail, as real API tokens do (reference §3), so a non-admin
    identity can be exercised by using another user's e-mail with the same token.
    """

    path_suffix = r"(?:\.json)?"  # ``.json`` is optional on every path

    def __init__(self, email: str = "admin@example.com", api_token: str = "sim-zendesk-token",
                 clock: Clock | None = None, export_limit_per_minute: int = 10,
                 subdomain: str = "sim", *, rate_limit_per_minute: int = 700, seed: int = 0,
                 webhook_url: str | None = None, webhook_secret: str | None = None,
                 omit_cursor_when_empty: bool = False) -> None:
        super().__init__(clock, seed=seed)
        self.email = email
        self.api_token = api_token
        self.subdomain = subdomain
        self.export_limiter = RateLimiter(export_limit_per_minute, self.clock)
        self.account_limiter = RateLimiter(rate_limit_per_minute, self.clock)
        self.omit_cursor_when_empty = omit_cursor_when_empty
        """Unverified behaviour (§1.5): an empty export page without any cursor."""
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.webhook_deliveries: list[dict[str, Any]] = []
        self._webhook_queue: queue.Queue[tuple[bytes, str] | None] = queue.Queue()
        self._webhook_thread: threading.Thread | None = None
        self._uuid_rng = random.Random(seed)
        self._users: dict[int, dict[str, Any]] = {}
        self._groups: dict[int, dict[str, Any]] = {}
        self._next_group_id = 360001
        self._tickets: dict[int, dict[str, Any]] = {}
        self._versions: dict[int, tuple[int, int]] = {}  # id -> (generated_timestamp, seq)
        self._status_before_delete: dict[int, str] = {}
        self._next_user_id = 10001
        self._next_ticket_id = 1
        self._seq = 0
        self._last_generated = 0
        self._cursor_tag = format(zlib.crc32(subdomain.encode()) % 100000, "d")
        self.admin_id = self.add_user("Sim Admin", email, "admin")

    # ================================================================ admin (Python) API

    def add_user(self, name: str, email: str, role: str = "end-user", *,
                 active: bool = True) -> int:
        """Create a user; ``role`` is ``end-user``, ``agent`` or ``admin``."""
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        with self.lock:
            if any(u["email"].lower() == email.lower() for u in self._users.values()):
                raise ValueError(f"e-mail {email!r} is already taken")
            uid = self._next_user_id
            self._next_user_id += 1
            stamp = iso_utc(self.clock.now())
            self._users[uid] = {
                "id": uid, "name": name, "email": email, "role": role, "active": active,
                "suspended": False, "role_type": None, "restricted_agent": role == "end-user",
                "organization_id": None, "default_group_id": None, "external_id": None,
                "time_zone": "UTC", "locale": "en-US", "created_at": stamp, "updated_at": stamp,
            }
            return uid

    def add_group(self, name: str) -> int:
        """Create an agent group (tickets name it by ``group_id``)."""
        with self.lock:
            gid = self._next_group_id
            self._next_group_id += 1
            stamp = iso_utc(self.clock.now())
            self._groups[gid] = {"id": gid, "name": name, "description": "", "default": False,
                                 "deleted": False, "created_at": stamp, "updated_at": stamp}
            return gid

    def rename_group(self, group_id: int, name: str) -> None:
        with self.lock:
            self._groups[group_id].update(name=name, updated_at=iso_utc(self.clock.now()))

    def user(self, user_id: int) -> dict[str, Any]:
        with self.lock:
            return self._public_user(self._users[user_id])

    def users(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self._public_user(u) for _, u in sorted(self._users.items())]

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
        """Apply an agent's update; lifecycle rules of §4.1 raise ``ValueError``.

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
            for key in sorted(changes, key=list(_EVENT_FOR_FIELD).index):
                self._emit(ticket, _EVENT_FOR_FIELD[key], previous[key], ticket[key])
            if comment is not None:
                self._emit(ticket, "comment_added", None, {"body": comment})
            return self._public_ticket(ticket)

    def touch(self, ticket_id: int) -> None:
        """A system update (e.g. SLA metrics): moves ``generated_timestamp`` only (§1.6)."""
        with self.lock:
            self._bump(self._live(ticket_id), event=False)

    def delete_ticket(self, ticket_id: int) -> None:
        """Soft-delete: gone for show (404), ``status: "deleted"`` in the export (§1.7)."""
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

    # ================================================================ internals

    def _need_user(self, user_id: int) -> dict[str, Any]:
        user = self._users.get(user_id)
        if user is None:
            raise ValueError(f"unknown user {user_id}")
        return user

    def _check_fields(self, fields: dict[str, Any]) -> None:
        """Values Zendesk refuses (reference §4): unknown priority or type, a group that
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

    def _need_agent(self, user_id: int) -> None:
        if self._need_user(user_id)["role"] not in ("agent", "admin"):
            raise ValueError(f"user {user_id} is not an agent and cannot be assigned")

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

    def _base_url(self) -> str:
        return self.url if self.running else f"https://{self.subdomain}.zendesk.com"

    def _public_ticket(self, ticket: dict[str, Any]) -> dict[str, Any]:
        out = {k: list(v) if isinstance(v, list) else v for k, v in ticket.items()}
        out["via"] = copy.deepcopy(ticket["via"])
        out["url"] = f"{self._base_url()}/api/v2/tickets/{ticket['id']}.json"
        return out

    def _public_user(self, user: dict[str, Any]) -> dict[str, Any]:
        out = dict(user)
        out["url"] = f"{self._base_url()}/api/v2/users/{user['id']}.json"
        return out

    # ================================================================ HTTP pipeline

    def before(self, request: Request, route: Route | None) -> Response | None:
        user = self._authenticate(request)
        if user is None:
            return json_response(401, _UNAUTHORIZED)
        request.identity = user
        account = self.account_limiter.hit("account")
        request.notes["account"] = account
        if not account.allowed:
            return json_response(429, _ACCOUNT_LIMITED, {"Retry-After": account.reset_header})
        if route is not None and route.group == "export":
            if user["role"] != "admin":
                return json_response(403, _FORBIDDEN)
            decision = self.export_limiter.hit("account")
            if not decision.allowed:
                return json_response(429, _EXPORT_LIMITED,
                                     {"Retry-After": decision.reset_header})
        elif route is not None and user["role"] == "end-user":
            return json_response(403, _FORBIDDEN)
        return None

    def decorate(self, request: Request, response: Response) -> None:
        account: RateDecision | None = request.notes.get("account")
        if account is not None:
            response.headers.setdefault("X-Rate-Limit", str(account.limit))
            response.headers.setdefault("X-Rate-Limit-Remaining", str(account.remaining))

    def not_found(self, request: Request) -> Response:
        return json_response(404, {"error": "InvalidEndpoint", "description": "Not found"})

    def _authenticate(self, request: Request) -> dict[str, Any] | None:
        creds = request.basic_auth()
        if creds is None:
            return None
        user_part, password = creds
        email, sep, kind = user_part.rpartition("/")
        if not sep or kind != "token" or not hmac.compare_digest(password, self.api_token):
            return None
        for user in self._users.values():
            if user["email"].lower() == email.lower() and user["active"]:
                return user
        return None

    # ================================================================ export

    def _encode_cursor(self, position: tuple[int, int]) -> str:
        raw = f"{position[0]}.{position[1]}||{self._cursor_tag}|".encode()
        return base64.urlsafe_b64encode(raw).decode()

    def _decode_cursor(self, cursor: str) -> tuple[int, int] | None:
        try:
            raw = base64.urlsafe_b64decode(cursor.encode() + b"=" * (-len(cursor) % 4))
            found = re.fullmatch(rb"(\d+)\.(\d+)\|\|(\d+)\|", raw)
        except (binascii.Error, ValueError):
            return None
        if not found or found.group(3).decode() != self._cursor_tag:
            return None
        return int(found.group(1)), int(found.group(2))

    @route("GET", "/api/v2/incremental/tickets/cursor", group="export")
    def _export(self, request: Request, _m: re.Match[str]) -> Response:
        start_time, cursor = request.arg("start_time"), request.arg("cursor")
        per_page_raw = request.arg("per_page")
        per_page = EXPORT_MAX_PER_PAGE
        if per_page_raw is not None:
            if not per_page_raw.isdigit() or int(per_page_raw) < 1:
                return _invalid("per_page must be a positive integer")
            per_page = min(int(per_page_raw), EXPORT_MAX_PER_PAGE)
        now = int(self.clock.now())
        cutoff = now - EXPORT_DELAY_SECONDS
        # start_time wins over cursor when both are sent: the pitfall of §8 #2.
        if start_time is not None:
            if not start_time.lstrip("-").isdigit():
                return _invalid("start_time must be an integer (epoch seconds)")
            if int(start_time) > cutoff:
                return json_response(400, _TOO_RECENT)
            position = (max(int(start_time), 0) - 1, _END_SEQ)
        elif cursor is not None:
            decoded = self._decode_cursor(cursor)
            if decoded is None:
                return json_response(400, {"error": "InvalidPaginationParameter",
                                           "description": "cursor is invalid"})
            position = decoded
        else:
            return _invalid("start_time or cursor is required")
        exclude_deleted = truthy(request.arg("exclude_deleted"))
        pending = sorted(
            (version, tid) for tid, version in self._versions.items()
            if version > position and version[0] < cutoff
            and not (exclude_deleted and self._tickets[tid]["status"] == "deleted")
        )
        page, more = pending[:per_page], len(pending) > per_page
        if more:
            after: tuple[int, int] | None = page[-1][0]
        else:
            after = max(position, (cutoff - 1, _END_SEQ), *(v for v, _ in page))
            if not page and self.omit_cursor_when_empty:
                after = None
        extra = {k: v for k, v in (("per_page", per_page_raw),
                                   ("exclude_deleted", request.arg("exclude_deleted")))
                 if v is not None}
        after_cursor = None if after is None else self._encode_cursor(after)
        before_cursor = cursor if start_time is None else None
        return json_response(200, {
            "tickets": [self._public_ticket(self._tickets[tid]) for _, tid in page],
            "after_url": self._export_url(after_cursor, extra),
            "after_cursor": after_cursor,
            "before_url": self._export_url(before_cursor, extra),
            "before_cursor": before_cursor,
            "end_of_stream": not more,
        })

    def _export_url(self, cursor: str | None, extra: dict[str, str]) -> str | None:
        if cursor is None:
            return None
        query = urlencode({**extra, "cursor": cursor})
        return f"{self._base_url()}/api/v2/incremental/tickets/cursor.json?{query}"

    # ================================================================ tickets and users

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
            return json_response(404, _NOT_FOUND)
        return json_response(200, {"ticket": self._shown_ticket(ticket)})

    def _ids(self, request: Request) -> list[int] | Response:
        raw = request.arg("ids") or ""
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        if not parts or not all(p.isdigit() for p in parts):
            return _invalid("ids must be a comma-separated list of ids")
        if len(parts) > SHOW_MANY_MAX:
            return _invalid(f"at most {SHOW_MANY_MAX} ids per request")
        return [int(p) for p in parts]

    @route("GET", "/api/v2/tickets/show_many")
    def _show_many_tickets(self, request: Request, _m: re.Match[str]) -> Response:
        ids = self._ids(request)
        if isinstance(ids, Response):
            return ids
        found = [self._shown_ticket(self._tickets[i]) for i in ids
                 if i in self._tickets and self._tickets[i]["status"] != "deleted"]
        return json_response(200, {"tickets": found, "next_page": None, "previous_page": None,
                                   "count": len(found)})

    @route("GET", "/api/v2/users/{id}")
    def _show_user(self, request: Request, m: re.Match[str]) -> Response:
        user = self._users.get(int(m["id"]))
        if user is None:
            return json_response(404, _NOT_FOUND)
        return json_response(200, {"user": self._public_user(user)})

    @route("GET", "/api/v2/users/me")
    def _me(self, request: Request, _m: re.Match[str]) -> Response:
        return json_response(200, {"user": self._public_user(request.identity)})

    @route("GET", "/api/v2/users/show_many")
    def _show_many_users(self, request: Request, _m: re.Match[str]) -> Response:
        ids = self._ids(request)
        if isinstance(ids, Response):
            return ids
        found = [self._public_user(self._users[i]) for i in ids if i in self._users]
        return json_response(200, {"users": found, "next_page": None, "previous_page": None,
                                   "count": len(found)})

    @route("GET", "/api/v2/users/search")
    def _search_users(self, request: Request, _m: re.Match[str]) -> Response:
        query = (request.arg("query") or "").strip()
        if not query:
            return _invalid("query is required")
        if query.lower().startswith("email:"):
            query = query[len("email:"):].strip()
        needle = query.lower()
        if "@" in needle:
            found = [u for u in self._users.values() if u["email"].lower() == needle]
        else:
            found = [u for u in self._users.values()
                     if needle in u["name"].lower() or needle in u["email"].lower()]
        users = [self._public_user(u) for u in sorted(found, key=lambda u: u["id"])]
        return json_response(200, {"users": users, "next_page": None, "previous_page": None,
                                   "count": len(users)})

    @route("GET", "/api/v2/users")
    def _list_users(self, request: Request, _m: re.Match[str]) -> Response:
        roles = set(request.args("role") + request.args("role[]"))
        if roles - set(ROLES):
            return _invalid(f"role must be one of {ROLES}")
        page_raw, per_page_raw = request.arg("page") or "1", request.arg("per_page") or "100"
        if not page_raw.isdigit() or not per_page_raw.isdigit() or int(page_raw) < 1:
            return _invalid("page and per_page must be positive integers")
        page, per_page = int(page_raw), max(1, min(int(per_page_raw), USERS_PER_PAGE_MAX))
        users = [u for _, u in sorted(self._users.items()) if not roles or u["role"] in roles]
        chunk, more = page_slice(users, page, per_page)

        def link(n: int) -> str:
            query = [("page", str(n)), ("per_page", str(per_page))]
            query += [("role[]", role) for role in sorted(roles)]
            return f"{self._base_url()}/api/v2/users.json?{urlencode(query)}"

        return json_response(200, {
            "users": [self._public_user(u) for u in chunk],
            "next_page": link(page + 1) if more else None,
            "previous_page": link(page - 1) if page > 1 else None,
            "count": len(users),
        })

    @route("GET", "/api/v2/groups")
    def _list_groups(self, request: Request, _m: re.Match[str]) -> Response:
        """``GET /api/v2/groups``: offset paging as for users (``page``, ``per_page`` up to
        100, ``next_page``); deleted groups are left out."""
        page_raw, per_page_raw = request.arg("page") or "1", request.arg("per_page") or "100"
        if not page_raw.isdigit() or not per_page_raw.isdigit() or int(page_raw) < 1:
            return _invalid("page and per_page must be positive integers")
        page, per_page = int(page_raw), max(1, min(int(per_page_raw), GROUPS_PER_PAGE_MAX))
        groups = [g for _, g in sorted(self._groups.items()) if not g["deleted"]]
        chunk, more = page_slice(groups, page, per_page)

        def link(n: int) -> str:
            query = urlencode([("page", str(n)), ("per_page", str(per_page))])
            return f"{self._base_url()}/api/v2/groups.json?{query}"

        return json_response(200, {
            "groups": [{**g, "url": f"{self._base_url()}/api/v2/groups/{g['id']}.json"}
                       for g in chunk],
            "next_page": link(page + 1) if more else None,
            "previous_page": link(page - 1) if page > 1 else None,
            "count": len(groups),
        })

    # ================================================================ webhooks

    def _emit(self, ticket: dict[str, Any], kind: str, previous: Any, current: Any) -> None:
        """Queue a signed event-subscription webhook (§6.1, §6.3); best effort."""
        if not self.webhook_url or not self.webhook_secret:
            return
        event: dict[str, Any] = {"meta": {"sequence": {
            "id": str(uuid.UUID(int=self._uuid_rng.getrandbits(128), version=4)),
            "position": 1, "total": 1}}}
        if kind == "status_changed":
            previous, current = str(previous).upper(), str(current).upper()
        if previous is not None or current is not None:
            event.update(previous=previous, current=current)
        payload = {
            "type": f"zen:event-type:ticket.{kind}",
            "account_id": 1,
            "id": str(uuid.UUID(int=self._uuid_rng.getrandbits(128), version=4)),
            "time": iso_utc(self.clock.now()),
            "zendesk_event_version": "2022-11-06",
            "subject": f"zen:ticket:{ticket['id']}",
            "detail": _event_detail(ticket),
            "event": event,
        }
        self._webhook_queue.put((json.dumps(payload).encode(), iso_utc(self.clock.now())))
        if self._webhook_thread is None or not self._webhook_thread.is_alive():
            self._webhook_thread = threading.Thread(target=self._deliver_webhooks,
                                                    name="zendesk-sim-webhooks", daemon=True)
            self._webhook_thread.start()

    def _deliver_webhooks(self) -> None:
        while True:
            item = self._webhook_queue.get()
            try:
                if item is None:
                    return
                self._deliver(*item)
            finally:
                self._webhook_queue.task_done()

    def _deliver(self, body: bytes, timestamp: str) -> None:
        url, secret = self.webhook_url, self.webhook_secret
        if not url or not secret:
            return
        signature = base64.b64encode(
            hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
        ).decode()
        req = urllib.request.Request(url, data=body, method="POST", headers={
            "Content-Type": "application/json",
            "X-Zendesk-Webhook-Signature": signature,
            "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
            "User-Agent": "Zendesk Webhook",
        })
        record: dict[str, Any] = {"id": json.loads(body)["id"], "status": None, "error": None}
        try:
            with urllib.request.urlopen(req, timeout=5) as answer:
                record["status"] = answer.status
        except urllib.error.HTTPError as exc:
            record["status"] = exc.code
        except OSError as exc:
            record["error"] = repr(exc)
        self.webhook_deliveries.append(record)

    def wait_webhooks(self, timeout_seconds: float = 5.0) -> bool:
        """Block until every queued webhook was attempted (for tests)."""
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self._webhook_queue.unfinished_tasks == 0:
                return True
            time.sleep(0.01)
        return False

    def stop(self) -> None:
        if self._webhook_thread is not None and self._webhook_thread.is_alive():
            self._webhook_queue.put(None)
            self._webhook_thread.join(2)
        self._webhook_thread = None
        super().stop()


_EVENT_FOR_FIELD = {
    "subject": "subject_changed", "status": "status_changed",
    "assignee_id": "agent_assignment_changed", "tags": "tags_changed",
    "priority": "priority_changed", "type": "type_changed",
    "group_id": "group_assignment_changed", "requester_id": "requester_changed",
    "brand_id": "brand_changed", "ticket_form_id": "form_changed",
    "organization_id": "organization_changed", "due_at": "task_due_at_changed",
}


def _clean_tags(tags: Iterable[str]) -> list[str]:
    """Zendesk tags: lower-case, no spaces, no duplicates, order kept."""
    seen: dict[str, None] = {}
    for tag in tags:
        for part in str(tag).lower().split():
            seen.setdefault(part, None)
    return list(seen)


def _event_detail(ticket: dict[str, Any]) -> dict[str, Any]:
    """Ticket ``detail`` of an event webhook; ids are strings as in Zendesk's examples."""

    def sid(value: Any) -> str | None:
        return None if value is None else str(value)

    return {
        "actor_id": "-1", "assignee_id": sid(ticket["assignee_id"]),
        "brand_id": sid(ticket["brand_id"]),
        "created_at": ticket["created_at"], "custom_status": None,
        "description": ticket["description"], "external_id": ticket["external_id"],
        "form_id": sid(ticket["ticket_form_id"]), "group_id": sid(ticket["group_id"]),
        "id": str(ticket["id"]), "is_public": True,
        "organization_id": sid(ticket["organization_id"]), "priority": ticket["priority"],
        "requester_id": sid(ticket["requester_id"]), "status": ticket["status"].upper(),
        "subject": ticket["subject"], "submitter_id": sid(ticket["submitter_id"]),
        "tags": list(ticket["tags"]), "type": ticket["type"],
        "updated_at": ticket["updated_at"], "via": {"channel": ticket["via"]["channel"]},
    }
