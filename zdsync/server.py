"""The embedded HTTP server: health probes, Prometheus metrics, the Zendesk webhook.

A WSGI app served by waitress: a production-grade threaded server with request-size
limits and channel timeouts, pure Python, no extra process, so /metrics and the probes
share one port with the webhook. The webhook only verifies and queues a ticket id in
Redis (fast, never waiting for Zendesk or Teamwork); the leader reconciles it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import waitress
from prometheus_client import make_wsgi_app

from zdsync.metrics import Metrics

log = logging.getLogger(__name__)

MAX_WEBHOOK_BODY_BYTES = 1024 * 1024
WEBHOOK_MAX_AGE_SECONDS = 300
"""Zendesk prescribes no replay window; five minutes is common practice."""
SIGNATURE_HEADER = "HTTP_X_ZENDESK_WEBHOOK_SIGNATURE"
TIMESTAMP_HEADER = "HTTP_X_ZENDESK_WEBHOOK_SIGNATURE_TIMESTAMP"

StartResponse = Callable[..., Any]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Zendesk's signature: base64(HMAC-SHA256(secret, timestamp + raw body))."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def parse_timestamp(value: str) -> float | None:
    """The timestamp header: ISO-8601 (as Zendesk documents) or epoch seconds."""
    value = value.strip()
    try:
        return float(value)
    except ValueError:
        pass
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.timestamp()


def _as_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
        return int(value)
    return None


def ticket_reference(payload: Any) -> tuple[int | None, str | None]:
    """(ticket id, event id) from an event-subscription or a trigger payload.

    Event subscriptions: ``type`` ``zen:event-type:ticket.*``, ticket id in ``detail.id``,
    event id in ``id``. Triggers: whatever JSON the admin wrote; ``ticket.id`` or
    ``ticket_id`` (placeholders render as strings), and an optional ``id``/``event_id``.
    """
    if not isinstance(payload, dict):
        return None, None
    event_id = payload.get("event_id") or payload.get("id")
    event_id = str(event_id) if isinstance(event_id, str | int) and event_id != "" else None
    kind = payload.get("type")
    if isinstance(kind, str) and kind.startswith("zen:event-type:"):
        if not kind.startswith("zen:event-type:ticket."):
            return None, event_id
        detail = payload.get("detail")
        return (_as_id(detail.get("id")) if isinstance(detail, dict) else None), event_id
    ticket = payload.get("ticket")
    tid = _as_id(ticket.get("id")) if isinstance(ticket, dict) else None
    return tid or _as_id(payload.get("ticket_id")), event_id


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

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/metrics":
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
            status, body = self.webhook(environ)
            # Zendesk retries a 503 only when Retry-After is short.
            extra = [("Retry-After", "5")] if status == 503 else []
            return _json(start_response, status, body, extra)
        return _json(start_response, 404, {"error": "not found"})

    def webhook(self, environ: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Verify, parse, queue. Returns (status, body) and counts the outcome."""
        assert self.secret is not None and self.enqueue is not None

        def outcome(name: str, status: int, message: str) -> tuple[int, dict[str, Any]]:
            self.metrics.webhooks.labels(name).inc()
            if status >= 400:
                log.warning("webhook rejected (%s): %s", name, message)
            return status, {"result": name, "message": message}

        if not self.accepting.is_set():
            return outcome("shutting_down", 503, "shutting down; retry in a few seconds")
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return outcome("malformed", 400, "bad Content-Length")
        if length > MAX_WEBHOOK_BODY_BYTES:
            return outcome("too_large", 413, f"body over {MAX_WEBHOOK_BODY_BYTES} bytes")
        body = environ["wsgi.input"].read(length) if length else b""
        signature = environ.get(SIGNATURE_HEADER, "")
        stamp = environ.get(TIMESTAMP_HEADER, "")
        if not signature or not stamp:
            return outcome("bad_signature", 401, "signature headers missing")
        expected = sign(self.secret, stamp, body)
        if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
            return outcome("bad_signature", 401, "signature does not match")
        sent = parse_timestamp(stamp)
        if sent is None or abs(self.clock() - sent) > WEBHOOK_MAX_AGE_SECONDS:
            return outcome("stale", 401, "timestamp missing or more than 5 minutes off")
        try:
            payload = json.loads(body)
        except ValueError:
            return outcome("malformed", 400, "body is not JSON")
        ticket_id, event_id = ticket_reference(payload)
        if ticket_id is None:
            return outcome("no_ticket", 400, "no ticket id (detail.id, ticket.id or ticket_id)")
        try:
            queued = self.enqueue(ticket_id, event_id)
        except Exception as exc:  # Redis down: say so, Zendesk retries the delivery
            log.error("webhook for ticket %s not queued: %s", ticket_id, exc)
            return outcome("error", 503, "could not queue; try again")
        if not queued:
            return outcome("duplicate", 200, f"event {event_id} already received")
        log.info("webhook: ticket %s queued (event %s)", ticket_id, event_id)
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
    """waitress in a background thread, with limits suited to a webhook receiver."""

    def __init__(self, app: App, host: str, port: int) -> None:
        self.app = app
        self.server = waitress.create_server(
            app, host=host, port=port, threads=4,
            max_request_body_size=MAX_WEBHOOK_BODY_BYTES + 1024,  # waitress answers 413
            channel_timeout=30, connection_limit=200, clear_untrusted_proxy_headers=True,
            ident="zdsync",
        )
        self.thread = threading.Thread(target=self.server.run, name="zdsync-http", daemon=True)

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

        server.trigger.pull_trigger(close_all)  # type: ignore[union-attr]
        self.thread.join(timeout=5)
        server.task_dispatcher.shutdown(timeout=5)  # type: ignore[union-attr]
