"""The embedded HTTP servers: health probes, Prometheus metrics, the Zendesk webhook.

A WSGI app served by waitress: a production-grade threaded server with request-size
limits and channel timeouts, pure Python, no extra process. Two listeners:

- ``http.port`` serves the webhook (and, for compatibility, the probes and metrics);
- ``http.probe_port`` serves only the probes and metrics, with threads and connection
  slots of its own. Anything the webhook port suffers (slow clients filling its
  connection limit, webhooks waiting on a hung Redis) cannot starve the probes there.

The webhook only verifies and queues a ticket id in Redis (fast, never waiting for
Zendesk or Teamwork; Redis gets a short timeout and a failure answers 503 with
``Retry-After`` so Zendesk delivers again); the leader reconciles it. Whatever the body
or headers, the webhook answers 2xx or 4xx; 503 only when the queue cannot be written.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import waitress
from prometheus_client import make_wsgi_app

from zdsync import defaults
from zdsync.logs import Throttled, clip
from zdsync.metrics import Metrics
from zdsync.rules import parse_id
from zdsync.times import epoch_of

log = logging.getLogger(__name__)
rejections = Throttled(log)
"""Rejected webhooks: anyone who can reach the port can cause them, so one WARNING line a
minute per outcome (with a count); metrics count every one."""

PROBE_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})
SIGNATURE_HEADER = "HTTP_X_ZENDESK_WEBHOOK_SIGNATURE"
TIMESTAMP_HEADER = "HTTP_X_ZENDESK_WEBHOOK_SIGNATURE_TIMESTAMP"

StartResponse = Callable[..., Any]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Zendesk's signature: base64(HMAC-SHA256(secret, timestamp + raw body))."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def parse_timestamp(value: str) -> float | None:
    """The timestamp header: ISO-8601 (as Zendesk documents) or a whole number of epoch
    seconds in ASCII digits; None for anything else ("nan", "1e9", "²" included: a
    non-finite time would pass any replay window)."""
    try:
        return float(epoch_of(value))
    except ValueError:
        return None


_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(rb"[^\[\]{}]+")
_CURLY_AS_SQUARE = bytes.maketrans(b"{}", b"[]")


def nesting_within(body: bytes, limit: int = defaults.WEBHOOK_MAX_JSON_DEPTH) -> bool:
    """True unless the JSON text nests arrays and objects deeper than ``limit``.

    Linear and cheap: strings are cut out, and the brackets left lose one level of empty
    pairs (``[]``, ``{}``) per round, so the rounds needed are the depth. An unbalanced
    text is left for the parser to refuse, unless it opens too many levels.
    """
    skeleton = _NOT_BRACKET.sub(b"", _JSON_STRING.sub(b"", body)).translate(_CURLY_AS_SQUARE)
    for rounds in range(limit + 1):
        shorter = skeleton.replace(b"[]", b"")
        if shorter == skeleton:
            # Balanced (empty), or not JSON (left: "]]][[["), which the parser refuses,
            # as long as the brackets still open are not too deep for it.
            return rounds + skeleton.count(b"[") <= limit
        skeleton = shorter
    return False


_PLAIN_EVENT_ID = re.compile(rf"[A-Za-z0-9._:-]{{1,{defaults.WEBHOOK_MAX_EVENT_ID_CHARS}}}")


def _event_id(value: Any) -> str | None:
    """The event id used to drop duplicate deliveries: plain ids (UUIDs) as they are,
    anything else (long, or with odd characters) by its SHA-256, so it names a sane key."""
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    if isinstance(value, int):
        return str(value) if abs(value) < 10**30 else None
    if _PLAIN_EVENT_ID.fullmatch(value):
        return value
    return "sha256-" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def ticket_reference(payload: Any) -> tuple[int | None, str | None]:
    """(ticket id, event id) from an event-subscription or a trigger payload.

    Event subscriptions: ``type`` ``zen:event-type:ticket.*``, ticket id in ``detail.id``,
    event id in ``id``. Triggers: whatever JSON the admin wrote; ``ticket.id`` or
    ``ticket_id`` (placeholders render as strings), and an optional ``id``/``event_id``.
    """
    if not isinstance(payload, dict):
        return None, None
    event_id = _event_id(payload.get("event_id") or payload.get("id"))
    kind = payload.get("type")
    if isinstance(kind, str) and kind.startswith("zen:event-type:"):
        if not kind.startswith("zen:event-type:ticket."):
            return None, event_id
        detail = payload.get("detail")
        return (parse_id(detail.get("id")) if isinstance(detail, dict) else None), event_id
    ticket = payload.get("ticket")
    tid = parse_id(ticket.get("id")) if isinstance(ticket, dict) else None
    return tid or parse_id(payload.get("ticket_id")), event_id


@dataclass
class Health:
    """What the probes report; filled in by the daemon."""

    live: Callable[[], list[str]]  # problems that justify a restart
    ready: Callable[[], list[str]]  # problems that justify taking no traffic


class App:
    """The WSGI application."""

    def __init__(self, metrics: Metrics, health: Health, *,
                 enqueue: Callable[[int, str | None], bool] | None = None,
                 webhook_secret: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.metrics = metrics
        self.health = health
        self.enqueue = enqueue
        self.secret = webhook_secret
        self.clock = clock
        self.accepting = threading.Event()
        self.accepting.set()
        self.metrics_app = make_wsgi_app(metrics.registry)

    def probes(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """The WSGI app of the probe port: probes and metrics, nothing else."""
        if environ.get("PATH_INFO", "") not in PROBE_PATHS:
            return _json(start_response, 404, {"error": "not found (this port serves only "
                                                        "/livez, /readyz, /healthz, /metrics)"})
        return self(environ, start_response)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/metrics":
            if method == "HEAD":  # as GET; waitress sends no body (prometheus_client: 405)
                environ = {**environ, "REQUEST_METHOD": "GET"}
            return self.metrics_app(environ, start_response)
        if path in ("/livez", "/readyz", "/healthz") and method in ("GET", "HEAD"):
            problems = self.health.live() if path == "/livez" else self.health.ready()
            if path == "/healthz":
                problems = self.health.live() + problems
            status = 503 if problems else 200
            body = {"status": "fail" if problems else "ok", "problems": problems}
            return _json(start_response, status, body)
        if path == "/webhooks/zendesk":
            if self.secret is None or self.enqueue is None:
                return _json(start_response, 404, {"error": "webhook not enabled"})
            if method != "POST":
                return _json(start_response, 405, {"error": "POST only"})
            try:
                status, body = self.webhook(environ)
            except Exception:  # a bug must not answer 500 with a traceback, nor lose the id
                log.exception("webhook: unexpected error")
                self.metrics.webhooks.labels("error").inc()
                status, body = 503, {"result": "error", "message": "try again"}
            # Zendesk retries a 503 only when Retry-After is short.
            extra = ([("Retry-After", str(defaults.WEBHOOK_RETRY_AFTER_SECONDS))]
                     if status == 503 else [])
            return _json(start_response, status, body, extra)
        return _json(start_response, 404, {"error": "not found"})

    def webhook(self, environ: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Verify, parse, queue. Returns (status, body) and counts the outcome."""
        assert self.secret is not None and self.enqueue is not None

        def outcome(name: str, status: int, message: str) -> tuple[int, dict[str, Any]]:
            self.metrics.webhooks.labels(name).inc()
            if 400 <= status < 500:
                rejections.warning(name, "webhook rejected (%s): %s", name, message)
            return status, {"result": name, "message": message}

        if not self.accepting.is_set():
            return outcome("shutting_down", 503, "shutting down; retry in a few seconds")
        raw_length = str(environ.get("CONTENT_LENGTH") or "0").strip()
        if not re.fullmatch(r"[0-9]{1,12}", raw_length):
            return outcome("malformed", 400, "bad Content-Length")
        length = int(raw_length)
        if length > defaults.WEBHOOK_MAX_BODY_BYTES:
            return outcome("too_large", 413, f"body over {defaults.WEBHOOK_MAX_BODY_BYTES} bytes")
        body = environ["wsgi.input"].read(length) if length else b""
        signature = environ.get(SIGNATURE_HEADER, "")
        stamp = environ.get(TIMESTAMP_HEADER, "")
        if not signature or not stamp:
            return outcome("bad_signature", 401, "signature headers missing")
        expected = sign(self.secret, stamp, body)
        if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
            return outcome("bad_signature", 401, "signature does not match")
        sent = parse_timestamp(stamp)
        if sent is None or abs(self.clock() - sent) > defaults.WEBHOOK_MAX_AGE_SECONDS:
            return outcome("stale", 401, "timestamp missing or more than 5 minutes off")
        if not nesting_within(body):
            return outcome("malformed", 400, "JSON nested deeper than "
                           f"{defaults.WEBHOOK_MAX_JSON_DEPTH} levels")
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return outcome("malformed", 400, "body is not JSON")
        ticket_id, event_id = ticket_reference(payload)
        if ticket_id is None:
            return outcome("no_ticket", 400, "no ticket id (detail.id, ticket.id or ticket_id, "
                                             "a positive integer)")
        try:
            queued = self.enqueue(ticket_id, event_id)
        except Exception as exc:  # Redis down or slow: Zendesk delivers again after a 503
            log.error("webhook for ticket %s not queued: %s", ticket_id, clip(exc))
            return outcome("error", 503, "could not queue; try again")
        if not queued:
            return outcome("duplicate", 200, f"event {clip(event_id, 80)} already received")
        log.info("webhook: ticket %s queued (event %s)", ticket_id, clip(event_id, 80))
        return outcome("accepted", 202, f"ticket {ticket_id} queued")


def _json(start_response: StartResponse, status: int, body: dict[str, Any],
          headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    data = json.dumps(body).encode()
    reason = {200: "OK", 202: "Accepted", 400: "Bad Request", 401: "Unauthorized",
              404: "Not Found", 405: "Method Not Allowed", 413: "Payload Too Large",
              503: "Service Unavailable"}.get(status, "")
    start_response(f"{status} {reason}", [("Content-Type", "application/json"),
                                          ("Content-Length", str(len(data))),
                                          *(headers or [])])
    return [data]


class Server:
    """waitress in a background thread, with limits suited to a webhook receiver.

    ``probes_only`` serves ``App.probes`` instead (the probe port): fewer threads and
    connections are enough, and short idle timeouts free slots quickly.
    """

    def __init__(self, app: App, host: str, port: int, *, probes_only: bool = False) -> None:
        self.app = app
        if probes_only:
            limits: dict[str, Any] = dict(threads=2, connection_limit=100, channel_timeout=10)
        else:
            limits = dict(threads=4, connection_limit=200, channel_timeout=30)
        self.server = waitress.create_server(
            app.probes if probes_only else app, host=host, port=port,
            max_request_body_size=defaults.WEBHOOK_MAX_BODY_BYTES + 1024,  # waitress answers 413
            clear_untrusted_proxy_headers=True, ident="zdsync", **limits,
        )
        name = "zdsync-probe-http" if probes_only else "zdsync-http"
        self.thread = threading.Thread(target=self.server.run, name=name, daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.effective_port)  # type: ignore[union-attr]

    def start(self) -> Server:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every open connection, from inside waitress's loop
        (keep-alive connections would otherwise keep the loop running)."""
        server = self.server
        channels = server._map  # type: ignore[union-attr]

        def close_all() -> None:
            for channel in list(channels.values()):
                if channel is not server.trigger:  # type: ignore[union-attr]
                    channel.close()
            server.trigger.close()  # type: ignore[union-attr]

        # OSError: the loop, woken by a byte already in the trigger's pipe (a response being
        # sent), ran close_all between the thunk's queueing and this write, and closed the
        # pipe: the server is stopping as asked.
        with contextlib.suppress(OSError):
            server.trigger.pull_trigger(close_all)  # type: ignore[union-attr]
        self.thread.join(timeout=5)
        server.task_dispatcher.shutdown(timeout=5)  # type: ignore[union-attr]
