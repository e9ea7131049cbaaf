"""The Zendesk account itself: its data, its users, who may call it and how often.

The modules beside this one (webhooks, tickets, export, users) each add their Python
API, routes and handlers to :class:`ZendeskService`; ``__init__.py`` composes them into
``ZendeskSim``. Each behaviour's public source is cited in docs/simulators.md.
"""

from __future__ import annotations

import hmac
import queue
import random
import threading
import zlib
from typing import Any

from zdsync.sim.base import (
    Clock,
    RateDecision,
    RateLimiter,
    Request,
    Response,
    iso_utc,
    json_response,
)
from zdsync.sim.server import Route, SimServer

ROLES = ("end-user", "agent", "admin")
SHOW_MANY_MAX = 100

NOT_FOUND = {"error": "RecordNotFound", "description": "Not found"}
_UNAUTHORIZED = {"error": "Couldn't authenticate you"}
_FORBIDDEN = {"error": "Forbidden", "description": "You do not have access to this page. "
              "Please contact the account owner of this help desk for further help."}
_EXPORT_LIMITED = {"error": "APIRateLimitExceeded", "description":
                   "Number of allowed incremental export API requests per minute exceeded"}
_ACCOUNT_LIMITED = {"error": "APIRateLimitExceeded",
                    "description": "Number of allowed API requests per minute exceeded"}


def invalid(description: str) -> Response:
    """400 for a parameter Zendesk refuses."""
    return json_response(400, {"error": "InvalidValue", "description": description})


def one_page(key: str, items: list[Any]) -> Response:
    """A list answer with no further pages (show_many, search)."""
    return json_response(200, {key: items, "next_page": None, "previous_page": None,
                               "count": len(items)})


class ZendeskService(SimServer):
    """One account's data, users, credentials and rate limits.

    Users are created here rather than in ``users.py`` because the credentials are a
    user's: the admin (``admin_id``), who exists from the start.
    """

    path_suffix = r"(?:\.json)?"  # ``.json`` is optional on every path

    def __init__(self, email: str = "admin@example.com", api_token: str = "sim-zendesk-token",
                 clock: Clock | None = None, export_limit_per_minute: int = 10,
                 subdomain: str = "sim", *, rate_limit_per_minute: int = 700, seed: int = 0,
                 webhook_url: str | None = None, webhook_secret: str | None = None,
                 omit_cursor_when_empty: bool = False,
                 oauth_token: str = "sim-zendesk-oauth") -> None:
        super().__init__(clock, seed=seed)
        self.email = email
        self.api_token = api_token
        self.oauth_token = oauth_token
        """An OAuth access token the admin granted: ``Authorization: Bearer``."""
        self.subdomain = subdomain
        self.export_limiter = RateLimiter(export_limit_per_minute, self.clock)
        self.account_limiter = RateLimiter(rate_limit_per_minute, self.clock)
        self.omit_cursor_when_empty = omit_cursor_when_empty
        """Unverified (docs/simulators.md): an empty export page without any cursor."""
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

    def user(self, user_id: int) -> dict[str, Any]:
        with self.lock:
            return self._public_user(self._users[user_id])

    def users(self) -> list[dict[str, Any]]:
        with self.lock:
            return [self._public_user(u) for _, u in sorted(self._users.items())]

    def _need_user(self, user_id: int) -> dict[str, Any]:
        user = self._users.get(user_id)
        if user is None:
            raise ValueError(f"unknown user {user_id}")
        return user

    def _need_agent(self, user_id: int) -> None:
        if self._need_user(user_id)["role"] not in ("agent", "admin"):
            raise ValueError(f"user {user_id} is not an agent and cannot be assigned")

    def _public_user(self, user: dict[str, Any]) -> dict[str, Any]:
        out = dict(user)
        out["url"] = f"{self._base_url()}/api/v2/users/{user['id']}.json"
        return out

    def _base_url(self) -> str:
        return self.url if self.running else f"https://{self.subdomain}.zendesk.com"

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
        bearer = request.bearer_token()
        if bearer is not None:
            if not hmac.compare_digest(bearer, self.oauth_token):
                return None
            admin = self._users.get(self.admin_id)
            return admin if admin is not None and admin["active"] else None
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

    def _ids(self, request: Request) -> list[int] | Response:
        raw = request.arg("ids") or ""
        parts = [p.strip() for p in raw.split(",") if p.strip()]
        if not parts or not all(p.isdigit() for p in parts):
            return invalid("ids must be a comma-separated list of ids")
        if len(parts) > SHOW_MANY_MAX:
            return invalid(f"at most {SHOW_MANY_MAX} ids per request")
        return [int(p) for p in parts]
