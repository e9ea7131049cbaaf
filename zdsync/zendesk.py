"""Zendesk client: the cursor-based incremental ticket export, show ticket, users.

Facts followed (Zendesk's incremental export reference and guide on developer.zendesk.com;
docs/simulators.md lists them with the simulator's choices): ``start_time``
only on the very first request, then ``cursor``; drain to ``end_of_stream``; keep the old
cursor when a response has none; stop when a cursor does not advance; 400/422
``StartTimeTooRecent`` means nothing new yet; 429 waits ``Retry-After``; 504s and
timeouts shrink the page size instead of repeating the identical request.

A misbehaving export must not hold a pass forever: ``end_of_stream`` must be a JSON
boolean and ``after_cursor`` a string or null; a run stops (``RetryableError``, the cursor
stays where the last committed page put it) after a few pages in a row that bring nothing
new under fresh cursors, and after ``defaults.ZENDESK_MAX_PAGES_PER_PASS`` pages.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import requests

from zdsync import defaults
from zdsync.config import ZendeskSettings
from zdsync.errors import PermanentError, RetryableError, Unauthorized
from zdsync.logs import clip
from zdsync.metrics import Metrics
from zdsync.pacing import Pacer
from zdsync.people import User
from zdsync.transport import Sleep, Transport, answers, credentials

EXPORT_PATH = "/api/v2/incremental/tickets/cursor.json"
SHOW_MANY_BATCH = 100
"""Ids per ``show_many`` request: Zendesk's maximum."""


def retry_after_seconds(response: requests.Response) -> float | None:
    """Zendesk signals throttling with 429 and ``Retry-After`` in seconds."""
    if response.status_code != 429:
        return None
    try:
        return max(0.0, float(response.headers.get("Retry-After", "60")))
    except ValueError:
        return 60.0


@dataclass
class ExportPage:
    tickets: list[Any]
    after_cursor: str | None
    end_of_stream: bool
    too_recent: bool = False  # StartTimeTooRecent: nothing to export yet
    per_page: int = defaults.ZENDESK_PAGE_SIZE  # the size that worked (it shrinks on 504s)


def page_fingerprint(tickets: list[Any]) -> str:
    """What a page holds, as far as progress goes: its (id, generated_timestamp) pairs."""
    keys = sorted((repr(t.get("id")), repr(t.get("generated_timestamp")))
                  for t in tickets if isinstance(t, dict))
    return hashlib.sha256(repr((len(tickets), keys)).encode()).hexdigest()


@dataclass
class Export:
    """Iterates the pages of one export run; ``cursor`` is where the next page starts.

    Bounded: a page that is empty, or holds exactly what an earlier page of this run held,
    brings nothing new; ``max_idle_pages`` of those in a row, or ``max_pages`` pages in all,
    stop the run with ``RetryableError`` after the last page was handed out (so it is
    committed and the next pass resumes from its cursor).
    """

    client: ZendeskClient
    cursor: str | None
    start_time: int | None
    max_pages: int = defaults.ZENDESK_MAX_PAGES_PER_PASS
    max_idle_pages: int = defaults.ZENDESK_MAX_IDLE_PAGES
    pages: int = field(default=0, init=False)
    per_page: int | None = field(default=None, init=False)

    def __iter__(self) -> Iterator[ExportPage]:
        seen: set[str] = set()
        idle = 0
        while True:
            page = self.client.export_page(self.cursor, self.start_time,
                                           self.per_page or defaults.ZENDESK_PAGE_SIZE)
            self.per_page = page.per_page  # a size that had to shrink stays small this run
            self.pages += 1
            yield page
            if page.too_recent:
                return
            advanced = page.after_cursor and page.after_cursor != self.cursor
            if page.after_cursor:
                self.cursor = page.after_cursor
                self.start_time = None
            if page.end_of_stream:
                return
            if not advanced:
                raise RetryableError("zendesk", "export cursor did not advance; stopping this "
                                     "run to avoid a loop (the next pass resumes)")
            fingerprint = page_fingerprint(page.tickets)
            idle = idle + 1 if not page.tickets or fingerprint in seen else 0
            seen.add(fingerprint)
            if idle >= self.max_idle_pages:
                raise RetryableError("zendesk", f"export made no progress: {idle} pages in a "
                                     "row were empty or repeated earlier ones, each with a new "
                                     "cursor and end_of_stream false; stopping this run (the "
                                     "next pass resumes from the cursor)")
            if self.pages >= self.max_pages:
                raise RetryableError("zendesk", f"export still not at its end after "
                                     f"{self.pages} pages, the most one pass reads; stopping "
                                     "this run (the next pass resumes from the cursor)")


class ZendeskClient:
    def __init__(self, settings: ZendeskSettings, *, metrics: Metrics | None = None,
                 sleep: Sleep = time.sleep, session: requests.Session | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``sleep`` and ``clock`` are injectable so tests can wait in simulated time."""
        self.base_url = settings.base_url
        self.http = Transport(
            "zendesk", settings.base_url,
            credentials((f"{settings.email}/token", settings.api_token.reveal())
                        if settings.api_token else None, settings.oauth_token),
            throttle_wait=retry_after_seconds, metrics=metrics, pacer=Pacer(None, clock),
            sleep=sleep, session=session,
        )
        self.export_pacer = Pacer(settings.export_rate_limit, clock)
        """The export's own limit, apart from the account's: honoured before any 429."""

    def __repr__(self) -> str:
        return f"ZendeskClient({self.base_url!r})"

    def export(self, cursor: str | None, start_time: int | None) -> Export:
        return Export(self, cursor, start_time)

    @answers
    def export_page(self, cursor: str | None, start_time: int | None,
                    per_page: int) -> ExportPage:
        """One export request. With a 504 or timeout, retry with half the page size."""
        params: dict[str, Any] = {"per_page": per_page, "support_type_scope": "all"}
        if cursor:
            params["cursor"] = cursor
        elif start_time is not None:
            params["start_time"] = start_time
        else:
            raise ValueError("an export needs a cursor or a start_time")

        def shrink(status: int | None) -> None:
            # Big pages time out; repeating the identical request can stay stuck forever.
            if status in (None, 504):
                params["per_page"] = max(defaults.ZENDESK_MIN_PAGE_SIZE, params["per_page"] // 2)

        response = self.http.request("GET", EXPORT_PATH, params=params, accept=(400, 422),
                                     pacer=self.export_pacer,
                                     before_retry=shrink)
        if response.status_code in (400, 422):
            if "too recent" in response.text.lower() or "StartTimeTooRecent" in response.text:
                return ExportPage([], None, True, too_recent=True)
            raise PermanentError("zendesk", f"export refused: {response.status_code} "
                                 f"{response.text[:300]}", response.status_code)
        body = response.json()
        if not isinstance(body, dict):
            raise RetryableError("zendesk", "export response is not a JSON object")
        tickets = body.get("tickets")
        if not isinstance(tickets, list):
            raise RetryableError("zendesk", "export response without a tickets list")
        end = body.get("end_of_stream")
        if not isinstance(end, bool):  # "false" or 0 must not pass for an answer
            raise RetryableError("zendesk", "export response: end_of_stream is "
                                 f"{clip(end, 40)}, not a JSON boolean")
        cursor = body.get("after_cursor")
        if cursor is not None and not isinstance(cursor, str):
            raise RetryableError("zendesk", "export response: after_cursor is "
                                 f"{clip(cursor, 40)}, not a string or null")
        return ExportPage(tickets, cursor or None, end, per_page=params["per_page"])

    @answers
    def ticket(self, ticket_id: int) -> dict[str, Any] | None:
        """The ticket now, or None when it is deleted or gone (404)."""
        return self.http.get_object(f"/api/v2/tickets/{ticket_id}.json", "ticket")

    @answers
    def tickets_by_ids(self, ticket_ids: Iterable[int]) -> dict[int, Any]:
        """The tickets among these ids as they are now (``show_many``, 100 per request),
        by id; an id absent from the result is deleted or gone, as a 404 of show ticket."""
        found: dict[int, Any] = {}
        for chunk, tickets in self._show_many("tickets", ticket_ids):
            for ticket in tickets:
                tid = ticket.get("id") if isinstance(ticket, dict) else None
                if tid in chunk and not isinstance(tid, bool):
                    found[tid] = ticket
        return found

    @answers
    def user(self, user_id: int) -> User | None:
        found = self.http.get_object(f"/api/v2/users/{user_id}.json", "user")
        return User.from_api(found) if found is not None else None

    @answers
    def me(self) -> User:
        """Who the credentials belong to. Zendesk answers an anonymous user (id null)
        rather than 401 when they authenticate nobody."""
        user = self.http.request("GET", "/api/v2/users/me.json").json()["user"]
        if user.get("id") is None:
            raise Unauthorized("zendesk", "the credentials authenticate nobody (Zendesk "
                               "answered an anonymous user): check zendesk.email and "
                               "zendesk.api_token, or zendesk.oauth_token", 401)
        return User.from_api(user)

    @answers
    def users_by_ids(self, user_ids: Iterable[int]) -> dict[int, User]:
        """Users among these ids, by id (``show_many``, 100 per request); an id absent
        from the result does not exist."""
        found: dict[int, User] = {}
        for chunk, users in self._show_many("users", user_ids):
            for user in map(User.from_api, users):
                if user.id in chunk:
                    found[user.id] = user
        return found

    def _show_many(self, kind: str, wanted: Iterable[int]
                   ) -> Iterator[tuple[list[int], list[Any]]]:
        """(ids asked, objects answered) for each ``show_many`` request of ``kind``
        (tickets, users), ``SHOW_MANY_BATCH`` ids a request."""
        ids = list(dict.fromkeys(wanted))
        for start in range(0, len(ids), SHOW_MANY_BATCH):
            chunk = ids[start:start + SHOW_MANY_BATCH]
            body = self.http.request("GET", f"/api/v2/{kind}/show_many.json",
                                     params={"ids": ",".join(str(i) for i in chunk)}).json()
            answered = body.get(kind) if isinstance(body, dict) else None
            if not isinstance(answered, list):
                raise RetryableError("zendesk", f"show_many answered without a {kind} list")
            yield chunk, answered

    @answers
    def groups(self) -> list[dict[str, Any]]:
        """Every agent group (``GET /api/v2/groups``, paged with ``next_page``)."""
        return self._paged("/api/v2/groups.json", "groups", {"per_page": 100})

    @answers
    def agents(self) -> list[User]:
        """Every agent and admin (paged with ``next_page``)."""
        return [User.from_api(u) for u in self._paged(
            "/api/v2/users.json", "users", {"role[]": ["agent", "admin"], "per_page": 100})]

    def _paged(self, path: str, key: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Every item of an offset-paged list (``next_page`` links to the next page)."""
        items: list[dict[str, Any]] = []
        url: str | None = path
        query: dict[str, Any] | None = params
        while url:
            body = self.http.request("GET", url, params=query).json()
            page = body[key]
            if not isinstance(page, list):
                raise TypeError(f"{key} is not a list")
            items += [i for i in page if isinstance(i, dict)]
            url, query = body.get("next_page"), None
        return items
