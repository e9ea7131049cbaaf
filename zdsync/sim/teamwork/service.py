"""The Teamwork site itself: its data, who may call it, and what every endpoint shares.

The resource modules beside this one (people, task lists, tags, tasks) each add their
Python API, routes and handlers to :class:`TeamworkService`; ``__init__.py`` composes them
into ``TeamworkSim``. docs/simulators.md names each behaviour's public source.
"""

from __future__ import annotations

import hmac
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

from zdsync.sim.base import (
    Clock,
    RateDecision,
    RateLimiter,
    Request,
    Response,
    empty_response,
    iso_utc,
    json_response,
    page_slice,
    text_response,
)
from zdsync.sim.server import Route, SimServer
from zdsync.sim.teamwork.variants import Variants

PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 500
LISTING_CAP = 50_000
"""Records one listing answers, its pages together (apidocs "How does paging work?")."""
LOCKOUT_SECONDS = 60.0
RATE_LIMIT_TEXT = "You have exceeded your rate limit. Please try again in a little while."
V3 = "/projects/api/v3"

Matched = re.Match[str]


class TeamworkService(SimServer):
    """One site's data, credentials and rate limit, and the error and paging shapes.

    People are created here rather than in ``people.py`` because the API token is one of
    them: the integration user (``me_id``), who exists from the start.
    """

    path_suffix = r"\.json"  # every v1 and v3 path ends in ``.json``

    def __init__(self, api_token: str = "sim-teamwork-token", clock: Clock | None = None,
                 rate_limit_per_minute: int = 150, *, seed: int = 0,
                 listing_cap: int = LISTING_CAP, variants: Variants | None = None,
                 oauth_token: str = "sim-teamwork-oauth") -> None:
        super().__init__(clock, seed=seed)
        self.api_token = api_token
        self.oauth_token = oauth_token
        """An OAuth access token of the integration user: ``Authorization: Bearer``."""
        self.listing_cap = listing_cap
        self.variants = variants or Variants()
        """How it answers where Teamwork's answer is unknown (``variants.VARIANTS``)."""
        self.limiter = RateLimiter(rate_limit_per_minute, self.clock,
                                   lockout_seconds=LOCKOUT_SECONDS)
        self._people: dict[int, dict[str, Any]] = {}
        self._projects: dict[int, dict[str, Any]] = {}
        self._members: dict[int, set[int]] = {}
        self._tasklists: dict[int, dict[str, Any]] = {}
        self._tasks: dict[int, dict[str, Any]] = {}
        self._tags: dict[int, dict[str, Any]] = {}
        self._ids = {"person": 501, "project": 801, "tasklist": 2001, "task": 100001,
                     "error": 1, "tag": 9001}
        self._live_by_marker: Counter[str] = Counter()
        self.most_live_with_one_marker = 0
        """The most live tasks that ever shared a description's first line at one moment
        (zdsync writes the ticket link there): above 1 means a duplicate existed, however
        briefly, even if it was deleted later."""
        self.me_id = self.add_person("Sync", "Bot", "zdsync-bot@example.com", is_admin=True)

    @property
    def updated_after_inclusive(self) -> bool:
        """Whether a task listing's ``updatedAfter`` keeps tasks updated at that second."""
        return self.variants.updated_after == "inclusive"

    def _next(self, kind: str) -> int:
        value = self._ids[kind]
        self._ids[kind] += 1
        return value

    def _now(self) -> str:
        return iso_utc(self.clock.now())

    def add_person(self, first_name: str, last_name: str, email: str, *,
                   is_admin: bool = False) -> int:
        with self.lock:
            pid = self._next("person")
            stamp = self._now()
            self._people[pid] = {
                "id": pid, "firstName": first_name, "lastName": last_name, "email": email,
                "title": "", "isAdmin": is_admin, "type": "account",
                "company": {"id": 1, "type": "companies"}, "deleted": False,
                "createdAt": stamp, "updatedAt": stamp,
            }
            return pid

    def before(self, request: Request, route: Route | None) -> Response | None:
        creds = request.basic_auth()
        bearer = request.bearer_token()
        token = bearer if bearer is not None else creds[0] if creds else None
        key = f"user:{token}" if token is not None else f"ip:{request.client}"
        decision = self.limiter.hit(key)
        request.notes["rate"] = decision
        if not decision.allowed:
            return text_response(429, RATE_LIMIT_TEXT)
        expected = self.oauth_token if bearer is not None else self.api_token
        if token is None or not hmac.compare_digest(token, expected):
            if request.path.startswith(V3):
                return self._v3_error(401, "Unauthorized", "invalid or missing API token",
                                      "unauthorized")
            return self._v1_error(401, "Unauthorized")
        request.identity = self._people[self.me_id]
        return None

    def decorate(self, request: Request, response: Response) -> None:
        rate: RateDecision | None = request.notes.get("rate")
        if rate is not None:
            response.headers["x-ratelimit-limit"] = str(rate.limit)
            response.headers["x-ratelimit-remaining"] = str(rate.remaining)
            response.headers["x-ratelimit-reset"] = rate.reset_header

    def not_found(self, request: Request) -> Response:
        if request.path.startswith(V3):
            return empty_response(404)
        return self._v1_error(404, "Not found")

    def _v3_error(self, status: int, title: str, detail: str,
                  code: str = "invalid_input") -> Response:
        ref = f"sim-{self._next('error')}"
        return json_response(status, {"errors": [
            {"code": code, "title": title, "detail": detail, "id": ref, "meta": {}}]})

    @staticmethod
    def _v1_error(status: int, message: str) -> Response:
        return json_response(status, {"STATUS": "Error", "MESSAGE": message})

    def _body(self, request: Request) -> dict[str, Any] | Response:
        try:
            data = request.json()
        except ValueError:
            return self._v3_error(400, "Invalid body", "the body must be a JSON object")
        if not isinstance(data, dict):
            return self._v3_error(400, "Invalid body", "the body must be a JSON object")
        return data

    @staticmethod
    def _v1_field(request: Request, name: str) -> Any:
        """``name`` of a v1 body; ``None`` when the body is not a JSON object (v1 answers
        that with its own 4xx, not v3's "Invalid body")."""
        try:
            body = request.json()
        except ValueError:
            return None
        return body.get(name) if isinstance(body, dict) else None

    @staticmethod
    def _shown(key: str, record: dict[str, Any] | None) -> Response:
        """A v3 GET of one record: it under ``key``, or 404 without a body (the v3 spec)."""
        if record is None:
            return empty_response(404)
        return json_response(200, {key: dict(record)})

    @staticmethod
    def _created(payload: Any) -> Response:
        """201 for a committed create: the lost-response fault may drop exactly these."""
        response = json_response(201, payload)
        response.create = True
        return response

    def _paging(self, request: Request) -> tuple[int, int] | Response:
        page_raw = request.arg("page") or "1"
        size_raw = request.arg("pageSize") or str(PAGE_SIZE_DEFAULT)
        if not page_raw.isdigit() or not size_raw.isdigit() or int(page_raw) < 1 \
                or int(size_raw) < 1:
            return self._v3_error(400, "Invalid paging", "page and pageSize must be positive")
        return int(page_raw), min(int(size_raw), PAGE_SIZE_MAX)

    def _page(self, request: Request, key: str, items: list[Any],
              render: Callable[[Any], dict[str, Any]]) -> Response:
        paging = self._paging(request)
        if isinstance(paging, Response):
            return paging
        page, size = paging
        window = items[:self.listing_cap]  # the listing ends at the cap, hasMore false
        chunk, more = page_slice(window, page, size)
        # While hasMore is true, count only says "at least one more than these pages".
        count = page * size + 1 if more else len(window)
        return json_response(200, {
            key: [render(i) for i in chunk],
            "meta": {"page": {"pageOffset": page - 1, "pageSize": size, "count": count,
                              "hasMore": more}},
            "included": {},
        })

    @staticmethod
    def _id_list(raw: str | None) -> set[int] | None:
        if raw is None or not raw.strip():
            return None
        return {int(p) for p in raw.split(",") if p.strip().isdigit()}
