"""The parts both simulated services are made of: clock, requests and responses, faults,
request log and rate limits (the server that puts them together is in ``server.py``).

The simulators exist so that zdsync can be tested against services that behave like the
real ones (limits, failure modes, odd status codes) without any network access. Everything
here is standard library and in-memory.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import fnmatch
import json
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any


class Clock:
    """Injectable time: real time plus an offset, so tests can jump forward without sleeping.

    ``frozen=True`` stops the real-time part (``now()`` only moves with ``advance``), which
    makes runs fully deterministic.
    """

    def __init__(self, offset_seconds: float = 0.0, *, frozen: bool = False,
                 start: float | None = None) -> None:
        self._lock = threading.Lock()
        self._offset = offset_seconds
        self._frozen_at = (time.time() if start is None else start) if frozen else None
        if start is not None and not frozen:
            self._offset = start - time.time() + offset_seconds

    def now(self) -> float:
        """Epoch seconds as the simulated services see them."""
        with self._lock:
            base = self._frozen_at if self._frozen_at is not None else time.time()
            return base + self._offset

    def advance(self, seconds: float) -> float:
        """Move time forward (never backward: the services' timestamps only grow)."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
        return self.now()


def iso_utc(epoch: float) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ``: the timestamp format of both services."""
    return dt.datetime.fromtimestamp(int(epoch), tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def epoch_of_iso(text: str) -> int:
    """Epoch seconds of an RFC 3339 time (``Z`` or an offset; naive means UTC); raises
    ``ValueError`` for anything else."""
    value = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return int((value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp())


# ---------------------------------------------------------------------------------------
# Requests and responses


@dataclass
class Request:
    """One parsed HTTP request, as handed to a simulator route."""

    method: str
    path: str
    query_all: dict[str, list[str]]
    headers: Mapping[str, str]
    body: bytes = b""
    client: str = ""
    identity: Any = None
    """Set by a simulator's ``before`` hook: who the credentials belong to."""
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def query(self) -> dict[str, str]:
        """First value of each query parameter (``query_all`` keeps repeats)."""
        return {k: v[0] for k, v in self.query_all.items() if v}

    def arg(self, name: str, default: str | None = None) -> str | None:
        values = self.query_all.get(name)
        return values[0] if values else default

    def args(self, name: str) -> list[str]:
        return list(self.query_all.get(name, []))

    def json(self) -> Any:
        """The body as JSON; raises ``ValueError`` when it is not JSON."""
        if not self.body:
            raise ValueError("empty body")
        return json.loads(self.body)

    def bearer_token(self) -> str | None:
        """The token of an ``Authorization: Bearer`` header, else ``None``."""
        scheme, _, value = (self.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return None
        return value.strip()

    def basic_auth(self) -> tuple[str, str] | None:
        """``(user, password)`` from an ``Authorization: Basic`` header, else ``None``."""
        header = self.headers.get("Authorization") or ""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic" or not value:
            return None
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, sep, password = decoded.partition(":")
        return (user, password) if sep else None


@dataclass
class Response:
    """What a route answers. ``create=True`` marks a committed create (lost-response fault)."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    create: bool = False


def json_response(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(status, body, {"Content-Type": "application/json; charset=utf-8",
                                   **(headers or {})})


def text_response(status: int, text: str, content_type: str = "text/plain") -> Response:
    return Response(status, text.encode(), {"Content-Type": f"{content_type}; charset=utf-8"})


def empty_response(status: int) -> Response:
    return Response(status)


def truthy(value: str | None) -> bool:
    """How both services read boolean query parameters."""
    return (value or "").strip().lower() in {"1", "true", "yes", "on"}


def page_slice(items: Iterable[Any], page: int, page_size: int) -> tuple[list[Any], bool]:
    """One page (1-based) of ``items`` and whether more follow."""
    all_items = list(items)
    start = (page - 1) * page_size
    chunk = all_items[start:start + page_size]
    return chunk, start + page_size < len(all_items)


# ---------------------------------------------------------------------------------------
# Faults


_GATEWAY_TEXT = {
    500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Gateway Timeout",
}


class Faults:
    """Injected failures, settable at any time (attributes or :meth:`set`), seeded RNG.

    - ``latency_seconds``: added (real time) before every API request is answered.
    - ``error_rate`` with ``error_statuses``: that share of API requests fails with one of
      the statuses *without being executed* (an HTML gateway page, as a proxy would send).
    - ``lost_create_rate``: that share of successful creates is *committed* and then the
      connection is closed without any response (the realistic "lost response").
    - ``routes``: when set, only requests whose route name is in it are affected.
    - :meth:`fail_next` / :meth:`lose_next_creates`: deterministic one-shot versions.
    Requests under ``/_sim/`` are never affected.
    """

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self.latency_seconds = 0.0
        self.error_rate = 0.0
        self.error_statuses: tuple[int, ...] = (500, 502, 503)
        self.lost_create_rate = 0.0
        self.routes: Collection[str] | None = None
        self._fail_next: list[int] = []
        self._lose_next = 0

    def set(self, **settings: Any) -> None:
        for name, value in settings.items():
            if name not in {"latency_seconds", "error_rate", "error_statuses",
                            "lost_create_rate", "routes"}:
                raise TypeError(f"unknown fault setting {name!r}")
            if name == "error_statuses":
                value = tuple(int(s) for s in value)
            setattr(self, name, value)

    def reset(self) -> None:
        with self._lock:
            self.latency_seconds = 0.0
            self.error_rate = 0.0
            self.error_statuses = (500, 502, 503)
            self.lost_create_rate = 0.0
            self.routes = None
            self._fail_next.clear()
            self._lose_next = 0

    def fail_next(self, count: int = 1, status: int = 503) -> None:
        """The next ``count`` affected API requests fail with ``status``, unexecuted."""
        with self._lock:
            self._fail_next.extend([status] * count)

    def lose_next_creates(self, count: int = 1) -> None:
        """The next ``count`` successful creates are committed, then their responses lost."""
        with self._lock:
            self._lose_next += count

    def applies(self, route: str) -> bool:
        routes = self.routes
        return routes is None or route in routes

    def roll_error(self) -> int | None:
        with self._lock:
            if self._fail_next:
                return self._fail_next.pop(0)
            if self.error_rate > 0 and self._rng.random() < self.error_rate:
                return self._rng.choice(self.error_statuses or (500,))
        return None

    def roll_lost_create(self) -> bool:
        with self._lock:
            if self._lose_next > 0:
                self._lose_next -= 1
                return True
            return self.lost_create_rate > 0 and self._rng.random() < self.lost_create_rate

    def snapshot(self) -> dict[str, Any]:
        return {
            "latency_seconds": self.latency_seconds, "error_rate": self.error_rate,
            "error_statuses": list(self.error_statuses),
            "lost_create_rate": self.lost_create_rate,
            "routes": None if self.routes is None else sorted(self.routes),
        }


def fault_response(status: int) -> Response:
    text = _GATEWAY_TEXT.get(status, "Error")
    html = f"<html><head><title>{status} {text}</title></head><body><h1>{status} {text}</h1>" \
           "</body></html>"
    return text_response(status, html, "text/html")


# ---------------------------------------------------------------------------------------
# Request log


@dataclass(frozen=True)
class LoggedRequest:
    """One API request as the simulator saw it. ``status`` is ``None`` when no response
    was sent (lost-response fault); ``route`` is the matched route template or ``""``."""

    method: str
    path: str
    query: dict[str, str]
    status: int | None
    route: str
    time: float


class RequestLog:
    """Every API request, in order, so tests can count calls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[LoggedRequest] = []

    def append(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[LoggedRequest]:
        with self._lock:
            return list(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def count(self, method: str | None = None, route: str | None = None, *,
              path: str | None = None, status: int | None = None) -> int:
        """Requests matching all given filters; ``path`` is a glob (``/api/v2/tickets/*``)."""
        return sum(
            1 for e in self.entries()
            if (method is None or e.method == method.upper())
            and (route is None or e.route == route)
            and (path is None or fnmatch.fnmatchcase(e.path, path))
            and (status is None or e.status == status)
        )

    def counts(self) -> Counter[tuple[str, str]]:
        """``(method, route template)`` -> number of requests."""
        return Counter((e.method, e.route or e.path) for e in self.entries())


# ---------------------------------------------------------------------------------------
# Rate limits


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float
    """Seconds until the window resets, or until the lock-out ends when locked out."""

    @property
    def reset_header(self) -> str:
        return str(max(0, math.ceil(self.reset_seconds)))


class RateLimiter:
    """Fixed-window limiter per client key, on the simulated clock.

    A window opens with a client's first request and lasts ``window_seconds``. With
    ``lockout_seconds`` a refused request locks the client out for that long (Teamwork);
    without it the client may retry when the window resets (Zendesk). Refused requests do
    not count, and requests during a lock-out do not extend it.
    """

    def __init__(self, limit: int, clock: Clock, *, window_seconds: float = 60.0,
                 lockout_seconds: float = 0.0) -> None:
        self.limit = limit
        self.clock = clock
        self.window_seconds = window_seconds
        self.lockout_seconds = lockout_seconds
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, int]] = {}  # key -> (window start, count)
        self._locked_until: dict[str, float] = {}

    def hit(self, key: str) -> RateDecision:
        """Count one request for ``key`` and say whether it may proceed."""
        now = self.clock.now()
        with self._lock:
            locked = self._locked_until.get(key, 0.0)
            if locked > now:
                return RateDecision(False, self.limit, 0, locked - now)
            start, used = self._windows.get(key, (now, 0))
            if now >= start + self.window_seconds:
                start, used = now, 0
            if used >= self.limit:
                if self.lockout_seconds > 0:
                    self._locked_until[key] = now + self.lockout_seconds
                    self._windows[key] = (now, 0)
                    return RateDecision(False, self.limit, 0, self.lockout_seconds)
                return RateDecision(False, self.limit, 0, start + self.window_seconds - now)
            used += 1
            self._windows[key] = (start, used)
            return RateDecision(True, self.limit, self.limit - used,
                                start + self.window_seconds - now)

