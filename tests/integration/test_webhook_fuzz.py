"""Property test (hypothesis) of the webhook endpoint, one of the two doors outside data
comes in by: it never answers 5xx while Redis works, whatever the body and headers.
(The other door, ``Ticket.from_api``, is fuzzed in tests/unit/test_fuzz.py.)
Reproducible: see ``tests.strategies.FUZZ``.
"""

from __future__ import annotations

import io
import json
import time
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

from tests.strategies import FUZZ, json_values, odd_ids
from zdsync.metrics import Metrics
from zdsync.server import App, Health, sign
from zdsync.store import Store

SECRET = "fuzz-secret"

event_ids = st.one_of(st.none(), st.text(max_size=300), st.integers(), st.booleans(),
                      json_values)


def _deep(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


payloads = st.one_of(
    st.builds(lambda i, e, t: {"type": t, "id": e, "detail": {"id": i}}, odd_ids, event_ids,
              st.sampled_from(["zen:event-type:ticket.created", "zen:event-type:user.x",
                               "zen:event-type:", "other"])),
    st.builds(lambda i, e: {"ticket": {"id": i}, "event_id": e}, odd_ids, event_ids),
    st.builds(lambda i, e: {"ticket_id": i, "id": e}, odd_ids, event_ids),
    json_values)
bodies = st.one_of(
    payloads.map(lambda p: json.dumps(p).encode()),
    st.binary(max_size=300),
    st.builds(_deep, st.integers(1, 5000), st.sampled_from(["array", "object"])),
    st.builds(lambda d: b"[" * d, st.integers(1, 5000)),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
latin1 = st.text(st.characters(max_codepoint=255), max_size=40)
stamps = st.one_of(
    st.just("now"), st.just("now"), st.just("now"),
    st.sampled_from(["nan", "NaN", "inf", "-inf", "1e9", "-1", "", " ", "²", "0",
                     "9" * 40, "2026-13-45T99:99:99Z", "0001-01-01T00:00:00+23:59"]),
    latin1)


def _environ(body: bytes, headers: dict[str, str], length: str | None) -> dict[str, Any]:
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/webhooks/zendesk",
               "wsgi.input": io.BytesIO(body),
               "CONTENT_LENGTH": str(len(body)) if length is None else length}
    for name, value in headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def _call(app: App, environ: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    answer: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        answer["status"] = int(status.split()[0])
        answer["headers"] = dict(headers)

    body = b"".join(app(environ, start_response))
    return answer["status"], answer["headers"], body


@FUZZ
@given(body=bodies, signed=st.sampled_from([True, True, True, False]), stamp=stamps,
       signature=latin1, length=st.one_of(st.none(), st.none(), st.none(), latin1,
                                          st.sampled_from(["-1", "99999999999", "0"])))
def test_the_webhook_never_answers_5xx(redis_client, body, signed, stamp, signature, length):
    app = App(Metrics(), Health(list, list), enqueue=Store(redis_client, "fz:").enqueue_webhook,
              webhook_secret=SECRET)
    if stamp == "now":
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    if signed:
        signature = sign(SECRET, stamp, body)
    headers = {"X-Zendesk-Webhook-Signature": signature,
               "X-Zendesk-Webhook-Signature-Timestamp": stamp}
    status, _, answer = _call(app, _environ(body, headers, length))
    event(f"answered {status}")
    assert status < 500, (status, answer)
    assert isinstance(json.loads(answer), dict)
    if status == 202:  # accepted: what was queued is a usable id
        queued = [t for t, _ in Store(redis_client, "fz:").webhook_batch()]
        assert queued and all(0 < t < 2**63 for t in queued)
