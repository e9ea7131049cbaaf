"""HTTP plumbing shared by the Zendesk and Teamwork clients.

Timeouts on every request; 429 waits as long as the server asks; 5xx, timeouts and
connection errors are retried with capped exponential backoff and full jitter, but only
for idempotent requests. A non-idempotent write (a create) whose outcome is unknown raises
``AmbiguousWrite`` instead of being repeated: the reconciler then looks for what landed.
"""

from __future__ import annotations

import functools
import inspect
import logging
import random
import time
from collections.abc import Callable, Collection
from contextvars import ContextVar
from typing import Any, TypeVar

import requests
import urllib3
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from zdsync import defaults
from zdsync.backoff import request_backoff_seconds
from zdsync.errors import (
    FIX_FOR_REFUSAL,
    AmbiguousWrite,
    NotFound,
    PermanentError,
    RetryableError,
    Unauthorized,
)
from zdsync.logs import clip
from zdsync.metrics import Metrics, status_class
from zdsync.pacing import Pacer
from zdsync.secret import Secret

log = logging.getLogger(__name__)

Sleep = Callable[[float], None]
F = TypeVar("F", bound=Callable[..., Any])
SHAPE_ERRORS = (ValueError, KeyError, TypeError, AttributeError, IndexError)
"""What reading an answer of another shape than documented raises (not JSON, a missing
key, a wrong type): a proxy's HTML page, a wrong URL that answers 200."""


def answers(method: F) -> F:
    """Mark a client method that reads API answers: an answer of another shape than the
    API documents becomes a ``RetryableError`` of that client's service, so callers deal
    with ``ApiError`` alone (generator methods too, while they are iterated)."""

    def unexpected(self: Any, exc: Exception) -> RetryableError:
        return RetryableError(self.http.service, f"{method.__name__}: the answer is not "
                              f"what the API documents ({type(exc).__name__}: "
                              f"{clip(str(exc), 100)})")

    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def generator(self: Any, *args: Any, **kwargs: Any) -> Any:
            try:
                yield from method(self, *args, **kwargs)
            except SHAPE_ERRORS as exc:
                raise unexpected(self, exc) from None
        return generator  # type: ignore[return-value]

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except SHAPE_ERRORS as exc:
            raise unexpected(self, exc) from None
    return wrapper  # type: ignore[return-value]


def _never_sent(exc: requests.RequestException) -> bool:
    """True when the request provably never reached the server (safe to repeat a write)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    if isinstance(reason, urllib3.exceptions.MaxRetryError):
        reason = reason.reason
    return isinstance(reason, (urllib3.exceptions.NewConnectionError,
                               urllib3.exceptions.ConnectTimeoutError))


_LAST_CHECK: ContextVar[Callable[[], None] | None] = ContextVar("zdsync_last_check",
                                                                default=None)
"""The check of the write this thread is sending, run again as its bytes leave."""


class _CheckedSend:
    """A connection that runs the write's check once connected, right before each send.

    ``before_write`` runs before requests prepares, merges settings and connects; this
    runs it again after all of that, microseconds before the socket write, so a process
    frozen anywhere in between (a paused VM, SIGSTOP) sends nothing when it wakes. The
    instant between this check and the system call stays unfenceable (see the README)."""

    def send(self, data: Any) -> None:
        check = _LAST_CHECK.get()
        if check is not None:
            if self.sock is None:  # type: ignore[attr-defined]
                self.connect()  # type: ignore[attr-defined]
            check()
        super().send(data)  # type: ignore[misc]


class _CheckedHTTPConnection(_CheckedSend, HTTPConnection):
    pass


class _CheckedHTTPSConnection(_CheckedSend, HTTPSConnection):
    pass


class _CheckedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class CheckedAdapter(HTTPAdapter):
    """requests' adapter with connections that run ``_LAST_CHECK`` (not through a proxy:
    requests builds proxy pools of its own; ``before_write`` still guards those)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _CheckedHTTPPool,
                                                   "https": _CheckedHTTPSPool}


def new_session() -> requests.Session:
    """What a Transport uses unless given a session (tests give the simulators' own)."""
    session = requests.Session()
    for prefix in ("http://", "https://"):
        session.mount(prefix, CheckedAdapter())
    return session


class BearerAuth(requests.auth.AuthBase):
    """``Authorization: Bearer {token}``: how both services take an OAuth access token.
    The token stays a ``Secret`` until the header is written."""

    def __init__(self, token: Secret) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token.reveal()}"
        return request


def credentials(basic: tuple[str, str] | None,
                oauth_token: Secret | None) -> tuple[str, str] | BearerAuth:
    """Bearer with an OAuth token, else Basic with the API token (the settings demand
    exactly one of the two)."""
    if oauth_token:
        return BearerAuth(oauth_token)
    assert basic is not None
    return basic


class Transport:
    """One API's session: base URL, auth, timeouts, retries, pacing and metrics.

    ``throttle_wait(response)`` returns the seconds to wait when a response is a
    rate-limit refusal, or None when it is not.
    """

    def __init__(
        self,
        service: str,
        base_url: str,
        auth: tuple[str, str] | BearerAuth,
        *,
        throttle_wait: Callable[[requests.Response], float | None],
        metrics: Metrics | None = None,
        pacer: Pacer | None = None,
        sleep: Sleep = time.sleep,
        rng: Callable[[], float] = random.random,
        max_attempts: int = defaults.HTTP_MAX_ATTEMPTS,
        timeout: tuple[float, float] = (defaults.HTTP_CONNECT_TIMEOUT_SECONDS,
                                        defaults.HTTP_READ_TIMEOUT_SECONDS),
        session: requests.Session | None = None,
    ) -> None:
        self.service = service
        self.base_url = base_url.rstrip("/")
        self.session = session or new_session()
        self.session.auth = auth
        self.session.headers["User-Agent"] = "zdsync"
        self.throttle_wait = throttle_wait
        self.metrics = metrics or Metrics()
        self.pacer = pacer or Pacer(None)
        self.sleep = sleep
        self.rng = rng
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.before_write: Callable[[], None] | None = None
        """Called right before every request that is not a GET, after any pacing or
        rate-limit wait: the lease check, so a process that lost its lease (or was frozen
        past it) while waiting sends nothing."""

    def __repr__(self) -> str:  # never show the session (it holds the credentials)
        return f"Transport({self.service!r}, {self.base_url!r})"

    def _wait(self, seconds: float) -> None:
        if seconds > 0:
            self.sleep(seconds)

    def _send(self, pacer: Pacer, method: str, url: str, params: dict[str, Any] | None,
              json: Any) -> requests.Response:
        """One request in its paced slot; the pacer hears how it went, whatever happens."""
        answered: requests.Response | None = None
        try:
            self._wait(pacer.reserve())
            check = self.before_write if method != "GET" else None
            if check is not None:
                check()
            last = _LAST_CHECK.set(check)
            try:
                answered = self.session.request(method, url, params=params, json=json,
                                                timeout=self.timeout)
            finally:
                _LAST_CHECK.reset(last)
            return answered
        finally:
            pacer.observe(answered.headers if answered is not None else None)

    def get_object(self, path: str, key: str) -> dict[str, Any] | None:
        """GET one resource: ``body[key]``, or None when it does not exist (404)."""
        try:
            return self.request("GET", path).json()[key]
        except NotFound:
            return None

    def request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        json: Any = None,
        idempotent: bool = True,
        accept: Collection[int] = (),
        before_retry: Callable[[int | None], None] | None = None,
        pacer: Pacer | None = None,
    ) -> requests.Response:
        """Send a request; return a 2xx response (or one whose status is in ``accept``).

        Raises NotFound (404), Unauthorized (401, 403), PermanentError (other 4xx),
        RetryableError once attempts run out, AmbiguousWrite when a non-idempotent
        request may have been applied.
        ``before_retry(status)`` may adjust ``params`` in place before a retry of a 5xx or
        a timeout (status None). ``pacer`` paces this request instead of the client's own
        (an endpoint with a limit of its own).
        """
        pacer = pacer or self.pacer
        url = path if path.startswith("http") else f"{self.base_url}{path}"
        what = f"{method} {path.split('?')[0]}"
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                response = self._send(pacer, method, url, params, json)
            except requests.RequestException as exc:
                self.metrics.api_requests.labels(self.service, status_class(None)).inc()
                if not idempotent and not _never_sent(exc):
                    raise AmbiguousWrite(self.service, f"{what}: no response ({type(exc).__name__})"
                                         "; it may have been applied") from None
                problem = f"{what}: {type(exc).__name__}"
                status = None
            else:
                self.metrics.api_latency.labels(self.service).observe(time.monotonic() - started)
                status = response.status_code
                self.metrics.api_requests.labels(self.service, status_class(status)).inc()
                throttle = self.throttle_wait(response)
                if throttle is not None:
                    if throttle > defaults.MAX_RATE_LIMIT_WAIT_SECONDS:
                        raise RetryableError(self.service, f"{what}: rate limited for "
                                             f"{throttle:.0f} s", status)
                    self.metrics.rate_limit_waits.labels(self.service).inc()
                    self.metrics.rate_limit_wait_seconds.labels(self.service).inc(throttle)
                    log.warning("%s rate limit: waiting %.1f s", self.service, throttle)
                    pacer.hold_until(throttle)
                    continue  # a refused request was not applied: repeating it is safe
                if 200 <= status < 300 or status in accept:
                    return response
                body = response.text[:300]
                if status == 404:
                    raise NotFound(self.service, f"{what}: 404 not found", status)
                if status in (401, 403):
                    fix = FIX_FOR_REFUSAL.get((self.service, status), "check the credentials")
                    raise Unauthorized(self.service, f"{what}: {status} refused: {fix}", status)
                if status < 500:
                    raise PermanentError(self.service, f"{what}: {status} {body}", status)
                if not idempotent:
                    raise AmbiguousWrite(self.service, f"{what}: {status}; it may have been "
                                         "applied", status)
                problem = f"{what}: {status} {body}"
            attempt += 1
            if attempt >= self.max_attempts:
                raise RetryableError(self.service, f"{problem} (after {attempt} attempts)", status)
            delay = request_backoff_seconds(attempt, self.rng)
            log.info("%s: %s; retrying in %.1f s", self.service, problem, delay)
            self._wait(delay)
            if before_retry is not None:
                before_retry(status)
