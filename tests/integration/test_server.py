"""The embedded HTTP server over real sockets: probes, metrics, the signed webhook."""

from __future__ import annotations

import io
import json
import logging
import socket
import time

import pytest
import requests

from zdsync.logs import TextFormatter
from zdsync.metrics import Metrics
from zdsync.server import App, Health, Server, parse_timestamp, sign, ticket_reference
from zdsync.store import Store

ZENDESK_TEST_SECRET = "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ=="


class Probe:
    def __init__(self) -> None:
        self.live: list[str] = []
        self.ready: list[str] = []


@pytest.fixture
def served(redis_client):
    store = Store(redis_client, "t:")
    probe = Probe()
    metrics = Metrics()
    app = App(metrics, Health(lambda: probe.live, lambda: probe.ready),
              enqueue=store.enqueue_webhook, webhook_secret=ZENDESK_TEST_SECRET)
    server = Server(app, "127.0.0.1", 0).start()
    yield f"http://127.0.0.1:{server.port}", store, probe, metrics, app
    server.stop()


def post(url, payload, *, secret=ZENDESK_TEST_SECRET, stamp=None, raw=None, headers=None):
    body = raw if raw is not None else json.dumps(payload).encode()
    stamp = stamp or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    h = {"X-Zendesk-Webhook-Signature": sign(secret, stamp, body),
         "X-Zendesk-Webhook-Signature-Timestamp": stamp, "Content-Type": "application/json"}
    if headers is not None:
        h = headers
    return requests.post(url + "/webhooks/zendesk", data=body, headers=h, timeout=5)


EVENT = {"type": "zen:event-type:ticket.status_changed", "id": "0f3a-1", "account_id": 1,
         "subject": "zen:ticket:42", "detail": {"id": "42", "status": "SOLVED"}}


def count(metrics, outcome):
    return metrics.registry.get_sample_value("zdsync_webhook_requests_total",
                                             {"outcome": outcome}) or 0


def test_health_endpoints_follow_the_probes(served):
    url, _, probe, _, _ = served
    for path in ("/livez", "/readyz", "/healthz"):
        r = requests.get(url + path, timeout=5)
        assert r.status_code == 200 and r.json() == {"status": "ok", "problems": []}
    probe.ready = ["redis: ConnectionError"]
    assert requests.get(url + "/livez", timeout=5).status_code == 200  # liveness: no deps
    r = requests.get(url + "/readyz", timeout=5)
    assert r.status_code == 503 and r.json()["problems"] == ["redis: ConnectionError"]
    assert requests.get(url + "/healthz", timeout=5).status_code == 503
    probe.ready, probe.live = [], ["scheduler not running"]
    assert requests.get(url + "/livez", timeout=5).status_code == 503
    assert requests.get(url + "/readyz", timeout=5).status_code == 200


def test_metrics_exposed_and_moving(served):
    url, _, _, _, _ = served
    before = requests.get(url + "/metrics", timeout=5).text
    assert "zdsync_passes_total" in before or "zdsync_leader" in before
    post(url, EVENT)
    after = requests.get(url + "/metrics", timeout=5).text
    assert 'zdsync_webhook_requests_total{outcome="accepted"} 1.0' in after


def test_head_metrics_answers_as_get_does(served):
    url = served[0]
    head = requests.head(url + "/metrics", timeout=5)
    assert head.status_code == 200 and head.text == ""
    assert head.headers["Content-Type"] == requests.get(url + "/metrics",
                                                        timeout=5).headers["Content-Type"]


def test_event_subscription_webhook_with_zendesk_test_secret_is_queued(served):
    url, store, _, _, _ = served
    r = post(url, EVENT)
    assert r.status_code == 202
    assert [t for t, _ in store.webhook_batch()] == [42]


def test_trigger_payloads(served):
    url, store, _, _, _ = served
    assert post(url, {"ticket": {"id": "7", "status": "Open"}}).status_code == 202
    assert post(url, {"ticket_id": 8}).status_code == 202
    assert sorted(t for t, _ in store.webhook_batch()) == [7, 8]


def test_duplicate_delivery_dropped(served):
    url, store, _, metrics, _ = served
    assert post(url, EVENT).status_code == 202
    r = post(url, EVENT)
    assert r.status_code == 200 and r.json()["result"] == "duplicate"
    assert count(metrics, "duplicate") == 1
    assert store.webhook_depth() == 1


@pytest.mark.parametrize(("kwargs", "outcome"), [
    ({"secret": "wrong-secret"}, "bad_signature"),
    ({"headers": {"Content-Type": "application/json"}}, "bad_signature"),
    ({"stamp": "2020-01-01T00:00:00Z"}, "stale"),
    ({"stamp": str(int(time.time()) - 600)}, "stale"),
])
def test_rejected_signatures(served, kwargs, outcome):
    url, store, _, metrics, _ = served
    r = post(url, EVENT, **kwargs)
    assert r.status_code == 401
    assert count(metrics, outcome) == 1
    assert store.webhook_depth() == 0


def test_a_body_changed_after_signing_is_rejected(served):
    url, store, _, _, _ = served
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    signature = sign(ZENDESK_TEST_SECRET, stamp, b'{"ticket_id": 1}')
    r = post(url, None, raw=b'{"ticket_id": 2}', headers={
        "X-Zendesk-Webhook-Signature": signature, "X-Zendesk-Webhook-Signature-Timestamp": stamp})
    assert r.status_code == 401 and store.webhook_depth() == 0


@pytest.mark.parametrize(("raw", "status", "outcome"), [
    (b"not json", 400, "malformed"),
    (b'{"type": "zen:event-type:ticket.created", "detail": {}}', 400, "no_ticket"),
    (b'{"type": "zen:event-type:user.created", "detail": {"id": "5"}}', 400, "no_ticket"),
    (b'{"ticket": {"id": "abc"}}', 400, "no_ticket"),
    (b"[1, 2]", 400, "no_ticket"),
])
def test_malformed_bodies(served, raw, status, outcome):
    url, store, _, metrics, _ = served
    r = post(url, None, raw=raw)
    assert r.status_code == status
    assert count(metrics, outcome) == 1
    assert store.webhook_depth() == 0


def test_oversized_body_413(served):
    url, store, _, _, _ = served
    r = post(url, None, raw=b"{" + b" " * (1024 * 1024 + 10) + b"}")
    assert r.status_code == 413 and store.webhook_depth() == 0


def test_shutting_down_refuses_webhooks(served):
    url, store, _, _, app = served
    app.accepting.clear()
    r = post(url, EVENT)
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"  # Zendesk retries
    assert store.webhook_depth() == 0


def test_webhook_off_without_secret():
    app = App(Metrics(), Health(list, list))
    server = Server(app, "127.0.0.1", 0).start()
    try:
        r = requests.post(f"http://127.0.0.1:{server.port}/webhooks/zendesk", data=b"{}",
                          timeout=5)
        assert r.status_code == 404
    finally:
        server.stop()


def test_signature_matches_zendesk_algorithm():
    import base64
    import hashlib
    import hmac
    body, stamp = b'{"a":1}', "2026-11-28T12:00:00Z"
    expected = base64.b64encode(hmac.new(ZENDESK_TEST_SECRET.encode(), stamp.encode() + body,
                                         hashlib.sha256).digest()).decode()
    assert sign(ZENDESK_TEST_SECRET, stamp, body) == expected
    import calendar
    epoch = calendar.timegm((2026, 11, 28, 12, 0, 0))
    assert parse_timestamp(stamp) == epoch
    assert parse_timestamp(str(epoch)) == epoch
    assert parse_timestamp("yesterday") is None


@pytest.mark.parametrize(("payload", "ref"), [
    (EVENT, (42, "0f3a-1")),
    ({"ticket": {"id": 5}}, (5, None)),
    ({"ticket_id": "6", "event_id": "x"}, (6, "x")),
    ({"ticket_id": 0}, (None, None)),
    ({"ticket_id": True}, (None, None)),
    ({"ticket_id": "²"}, (None, None)),
    ({"ticket_id": 7, "id": True}, (7, None)),
    ({"ticket_id": 7, "id": "a b"}, (7, "sha256-" + __import__("hashlib").sha256(b"a b")
                                     .hexdigest())),
])
def test_ticket_reference(payload, ref):
    assert ticket_reference(payload) == ref


# -- bad input from outside: never a 500 ----------------------------------------------------


@pytest.mark.parametrize("raw", [
    b"[" * 1000 + b"]" * 1000,
    b'{"ticket": ' * 1000 + b"1" + b"}" * 1000,
    b"[" * 100_000,
    b'{"ticket_id": 5, "x": ' + b"[" * 33 + b"]" * 33 + b"}",
])
def test_deeply_nested_signed_bodies_get_400(served, raw):
    url, store, _, _metrics, _ = served
    r = post(url, None, raw=raw)
    assert r.status_code == 400 and r.json()["result"] == "malformed", r.text
    assert store.webhook_depth() == 0


def test_nesting_within_limits_is_accepted(served):
    url, store, _, _, _ = served
    r = post(url, None, raw=b'{"ticket_id": 5, "x": ' + b"[" * 30 + b"]" * 30 + b"}")
    assert r.status_code == 202 and [t for t, _ in store.webhook_batch()] == [5]


@pytest.mark.parametrize("bad", ["²", "①", "4²", "٣", "9" * 4301, "1e3", "-4", "0",
                                 str(2**63), True])
@pytest.mark.parametrize("shape", ["event", "trigger", "ticket_id"])
def test_signed_webhooks_with_odd_ticket_ids_get_400(served, bad, shape):
    url, store, _, _metrics, _ = served
    payload = {"event": {**EVENT, "detail": {"id": bad}}, "trigger": {"ticket": {"id": bad}},
               "ticket_id": {"ticket_id": bad}}[shape]
    r = post(url, payload)
    assert r.status_code == 400 and r.json()["result"] == "no_ticket", r.text
    assert store.webhook_depth() == 0


@pytest.mark.parametrize("stamp", ["nan", "NaN", "inf", "-inf", "1e9", "1.7e9", "²",
                                   "0x10"])
def test_a_timestamp_that_is_not_a_finite_whole_number_is_refused(served, stamp):
    """``abs(now - nan) > 300`` is false: such a stamp once passed the replay window."""
    url, store, _, _metrics, _ = served
    r = post(url, EVENT, stamp=stamp)
    assert r.status_code == 401 and r.json()["result"] == "stale"
    assert store.webhook_depth() == 0


@pytest.mark.parametrize("length", ["-5", "abc", "1e3", "²"])
def test_bad_content_length_is_400(served, length):
    _url, _store, _, _, app = served
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/webhooks/zendesk",
               "CONTENT_LENGTH": length, "wsgi.input": None}
    assert app.webhook(environ)[0] == 400


def test_outside_values_are_escaped_in_the_log(served, caplog):
    url, _store, _, _, _ = served
    caplog.set_level(logging.INFO, "zdsync.server")
    forged = "evt\n2026-01-01 00:00:00,000 ERROR zdsync.reconciler: forged"
    assert post(url, {"ticket_id": 9, "event_id": forged}).status_code == 202
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(TextFormatter())
    for record in caplog.records:
        handler.emit(record)
    lines = handler.stream.getvalue().splitlines()
    assert len(lines) == len(caplog.records)
    assert not any(line.startswith("2026-01-01 00:00:00,000 ERROR") for line in lines)
    assert any("sha256-" in line for line in lines)  # an odd event id names no key itself


def test_unauthenticated_requests_log_one_warning_a_minute(served, caplog):
    url, _store, _, metrics, _ = served
    caplog.set_level(logging.DEBUG, "zdsync.server")
    for _ in range(20):
        assert post(url, EVENT, secret="wrong").status_code == 401
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) <= 1  # one, unless an earlier test logged it this minute
    assert count(metrics, "bad_signature") == 20  # every one is still counted


def test_a_hung_redis_answers_503_with_retry_after_fast():
    """Redis accepts the connection and never answers: the webhook's client gives up after
    its short timeout and says 503 + Retry-After, so Zendesk delivers again."""
    from zdsync.config import RedisSettings
    from zdsync.connection import connect
    from zdsync.defaults import WEBHOOK_REDIS_TIMEOUT_SECONDS

    hung = socket.socket()
    hung.bind(("127.0.0.1", 0))
    hung.listen(16)  # never accepted, never answered
    try:
        client = connect(RedisSettings(host="127.0.0.1", port=hung.getsockname()[1]),
                         attempts=0, timeout_seconds=WEBHOOK_REDIS_TIMEOUT_SECONDS)
        metrics = Metrics()
        app = App(metrics, Health(list, list), enqueue=Store(client, "t:").enqueue_webhook,
                  webhook_secret=ZENDESK_TEST_SECRET)
        server = Server(app, "127.0.0.1", 0).start()
        try:
            started = time.monotonic()
            r = post(f"http://127.0.0.1:{server.port}", EVENT)
            took = time.monotonic() - started
        finally:
            server.stop()
    finally:
        hung.close()
    assert r.status_code == 503 and r.headers["Retry-After"] == "5"
    assert r.json()["result"] == "error" and count(metrics, "error") == 1
    assert took < 5  # about WEBHOOK_REDIS_TIMEOUT_SECONDS; generous for a busy machine


def test_the_probe_port_serves_probes_and_metrics_only(served):
    _, _, probe, _, app = served
    server = Server(app, "127.0.0.1", 0, probes_only=True).start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        for path in ("/livez", "/readyz", "/healthz"):
            assert requests.get(url + path, timeout=5).json()["status"] == "ok"
        assert "zdsync_webhook_requests_total" in requests.get(url + "/metrics", timeout=5).text
        r = post(url, EVENT)
        assert r.status_code == 404 and "only" in r.json()["error"]
        probe.ready = ["redis: TimeoutError"]
        assert requests.get(url + "/readyz", timeout=5).status_code == 503
    finally:
        server.stop()
