"""The Zendesk client with requests-mock: export paging, throttling, retries."""

from __future__ import annotations

import pytest
import requests

from zdsync.config import Secret, ZendeskSettings
from zdsync.errors import RetryableError
from zdsync.metrics import Metrics
from zdsync.zendesk import EXPORT_PATH, ZendeskClient

BASE = "https://acme.zendesk.com"
URL = BASE + EXPORT_PATH


@pytest.fixture
def client():
    sleeps: list[float] = []
    c = ZendeskClient(ZendeskSettings("acme", "ops@acme.test", Secret("tok")),
                      metrics=Metrics(), sleep=sleeps.append)
    c.sleeps = sleeps  # type: ignore[attr-defined]
    c.http.rng = lambda: 1.0
    return c


def page(ids, cursor, end):
    return {"tickets": [{"id": i, "status": "open", "generated_timestamp": i} for i in ids],
            "after_cursor": cursor, "end_of_stream": end}


def test_start_time_only_first_then_cursor_until_end_of_stream(client, requests_mock):
    requests_mock.get(URL, [{"json": page([1, 2], "c1", False)},
                            {"json": page([3], "c2", False)},
                            {"json": page([], "c3", True)}])
    export = client.export(None, 1700000000)
    pages = list(export)
    assert [len(p.tickets) for p in pages] == [2, 1, 0]
    assert export.cursor == "c3"
    qs = [r.qs for r in requests_mock.request_history]
    assert qs[0]["start_time"] == ["1700000000"] and "cursor" not in qs[0]
    assert qs[1]["cursor"] == ["c1"] and "start_time" not in qs[1]
    assert qs[2]["cursor"] == ["c2"]
    auth = requests_mock.request_history[0].headers["Authorization"]
    import base64
    assert base64.b64decode(auth.split()[1]).decode() == "ops@acme.test/token:tok"


def test_missing_cursor_keeps_the_previous_one(client, requests_mock):
    requests_mock.get(URL, json=page([], None, True))
    export = client.export("saved", None)
    list(export)
    assert export.cursor == "saved"


def test_cursor_that_does_not_advance_stops(client, requests_mock):
    requests_mock.get(URL, [{"json": page([1], "c1", False)}, {"json": page([1], "c1", False)}])
    with pytest.raises(RetryableError, match="did not advance"):
        list(client.export("c0", None))
    assert requests_mock.call_count == 2


@pytest.mark.parametrize(("status", "body"), [
    (400, {"error": "StartTimeTooRecent", "description": "Too recent start_time."}),
    (422, {"error": "InvalidValue",
           "description": "Too recent start_time. Use a start_time older than 5 minutes"}),
])
def test_start_time_too_recent_means_nothing_new(client, requests_mock, status, body):
    requests_mock.get(URL, status_code=status, json=body)
    pages = list(client.export(None, 1700000000))
    assert len(pages) == 1 and pages[0].too_recent and pages[0].tickets == []


def test_other_400_is_an_error(client, requests_mock):
    requests_mock.get(URL, status_code=400, json={"error": "InvalidCursor"})
    with pytest.raises(Exception, match="export refused"):
        list(client.export("bad", None))


def test_429_waits_retry_after_then_retries(client, requests_mock):
    requests_mock.get(URL, [{"status_code": 429, "headers": {"Retry-After": "17"},
                             "json": {"error": "APIRateLimitExceeded"}},
                            {"json": page([1], "c1", True)}])
    pages = list(client.export("c0", None))
    assert pages[0].tickets[0]["id"] == 1
    assert client.sleeps == [pytest.approx(17.0, abs=0.1)]
    metrics = client.http.metrics.registry
    assert metrics.get_sample_value("zdsync_rate_limit_waits_total",
                                    {"service": "zendesk"}) == 1


def test_5xx_retried_with_capped_backoff(client, requests_mock):
    requests_mock.get(URL, [{"status_code": 500}, {"status_code": 503},
                            {"json": page([1], "c1", True)}])
    assert next(iter(client.export("c0", None))).tickets
    assert client.sleeps == [1.0, 2.0]  # base 0.5 * 2**attempt with jitter pinned to 1


def test_5xx_gives_up_after_max_attempts(client, requests_mock):
    requests_mock.get(URL, status_code=500)
    with pytest.raises(RetryableError, match="after 5 attempts"):
        list(client.export("c0", None))
    assert requests_mock.call_count == 5


def test_timeouts_retried(client, requests_mock):
    requests_mock.get(URL, [{"exc": requests.exceptions.ReadTimeout},
                            {"json": page([1], "c1", True)}])
    assert next(iter(client.export("c0", None))).tickets


def test_504_and_timeouts_shrink_the_page_instead_of_repeating_it(client, requests_mock):
    requests_mock.get(URL, [{"status_code": 504}, {"exc": requests.exceptions.ReadTimeout},
                            {"json": page([1], "c1", False)}, {"json": page([2], "c2", True)}])
    pages = list(client.export("c0", None))
    sizes = [r.qs["per_page"][0] for r in requests_mock.request_history]
    assert sizes == ["1000", "500", "250", "250"]  # and the smaller size is kept
    assert [p.tickets[0]["id"] for p in pages] == [1, 2]


def test_every_request_has_a_timeout(client, requests_mock):
    requests_mock.get(URL, json=page([], "c1", True))
    list(client.export("c0", None))
    assert requests_mock.request_history[0].timeout == (5.0, 30.0)


def test_show_ticket_and_user(client, requests_mock):
    requests_mock.get(BASE + "/api/v2/tickets/5.json", json={"ticket": {"id": 5}})
    requests_mock.get(BASE + "/api/v2/tickets/6.json", status_code=404,
                      json={"error": "RecordNotFound", "description": "Not found"})
    requests_mock.get(BASE + "/api/v2/users/9.json", json={"user": {"id": 9, "role": "agent"}})
    assert client.ticket(5) == {"id": 5}
    assert client.ticket(6) is None
    assert client.user(9)["role"] == "agent"


def test_repr_hides_the_token(client):
    assert "tok" not in repr(client) and "tok" not in repr(client.http)
