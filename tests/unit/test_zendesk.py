"""The Zendesk client with requests-mock: export paging, throttling, retries."""

from __future__ import annotations

import itertools

import pytest
import requests

from zdsync import defaults
from zdsync.config import Secret, ZendeskSettings
from zdsync.errors import RetryableError, Unauthorized
from zdsync.metrics import Metrics
from zdsync.pacing import Pacer
from zdsync.sim.base import Clock
from zdsync.zendesk import EXPORT_PATH, Export, ZendeskClient

BASE = "https://acme.zendesk.com"
URL = BASE + EXPORT_PATH


@pytest.fixture
def client():
    sleeps: list[float] = []
    c = ZendeskClient(ZendeskSettings("acme", "ops@acme.test", Secret("tok")),
                      metrics=Metrics(), sleep=sleeps.append)
    c.sleeps = sleeps  # type: ignore[attr-defined]
    c.http.rng = lambda: 1.0
    c.export_pacer = Pacer(None)  # paced in test_export_requests_are_paced_under_its_limit
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


def test_export_requests_are_paced_under_its_limit(requests_mock):
    """10 a minute for the incremental export, whatever the account-wide limit: a drain of
    several pages waits its turn instead of running into 429s."""
    clock = Clock(frozen=True, start=0)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        clock.advance(seconds)

    c = ZendeskClient(ZendeskSettings("acme", "ops@acme.test", Secret("tok")),
                      metrics=Metrics(), sleep=sleep, clock=clock.now)
    requests_mock.get(URL, [{"json": page([n], f"c{n}", n == 4)} for n in range(1, 5)])
    assert len(list(c.export("c0", None))) == 4
    assert sleeps == [pytest.approx(6.0)] * 3
    requests_mock.get(BASE + "/api/v2/tickets/show_many.json", json={"tickets": []})
    c.tickets_by_ids([1, 2])  # other endpoints are not held to the export's limit
    assert len(sleeps) == 3


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
    assert client.user(9).role == "agent"


def test_repr_hides_the_token(client):
    assert "tok" not in repr(client) and "tok" not in repr(client.http)


# -- a misbehaving export never holds a pass forever -----------------------------------------


@pytest.mark.parametrize("end", ["false", "true", 0, 1, None, [], {}])
def test_end_of_stream_must_be_a_json_boolean(client, requests_mock, end):
    """``"false"`` (a string) once read as true, ending the run on a page that was not
    the last."""
    body = page([1], "c1", True)
    body["end_of_stream"] = end
    requests_mock.get(URL, json=body)
    with pytest.raises(RetryableError, match=r"end_of_stream .* not a JSON boolean"):
        list(client.export("c0", None))


def test_missing_end_of_stream_and_odd_cursors_are_errors(client, requests_mock):
    requests_mock.get(URL, json={"tickets": [], "after_cursor": "c1"})
    with pytest.raises(RetryableError, match="end_of_stream"):
        list(client.export("c0", None))
    requests_mock.get(URL, json={"tickets": [], "after_cursor": 5, "end_of_stream": False})
    with pytest.raises(RetryableError, match="after_cursor"):
        list(client.export("c0", None))
    requests_mock.get(URL, json=["not", "an", "object"])
    with pytest.raises(RetryableError, match="not a JSON object"):
        list(client.export("c0", None))


def fresh_cursors(pages):
    """A callback answering ``pages(n)`` tickets with a new cursor every time, forever."""
    calls = itertools.count()

    def answer(request, context):
        n = next(calls)
        return page(pages(n), f"c{n + 1}", False)

    return answer


def test_empty_pages_under_fresh_cursors_stop_the_run(client, requests_mock):
    """An export that answers a new cursor with end_of_stream false and nothing in it,
    forever, once made ``sync --once`` run forever (13,669 requests in 25 s)."""
    requests_mock.get(URL, json=fresh_cursors(lambda n: []))
    export = client.export("c0", None)
    seen = []
    with pytest.raises(RetryableError, match="no progress: 3 pages in a row"):
        for p in export:
            seen.append(p)
    assert requests_mock.call_count == 3 == len(seen)
    assert export.cursor == "c3"  # the pages handed out are done; the next pass goes on


def test_repeated_pages_under_fresh_cursors_stop_the_run(client, requests_mock):
    requests_mock.get(URL, json=fresh_cursors(lambda n: [1, 2] if n % 2 else [3]))
    with pytest.raises(RetryableError, match="no progress"):
        list(client.export("c0", None))
    assert requests_mock.call_count == 2 + 3  # two new pages, then three repeats


def test_progress_resets_the_idle_count(client, requests_mock):
    # empty, empty, new, empty, empty, new, ... never three idle pages in a row
    requests_mock.get(URL, json=fresh_cursors(lambda n: [n] if n % 3 == 2 else []))
    export = Export(client, "c0", None, max_pages=30)
    with pytest.raises(RetryableError, match="after 30 pages, the most one pass reads"):
        list(export)
    assert requests_mock.call_count == 30


def test_a_pass_reads_at_most_max_pages(client, requests_mock):
    requests_mock.get(URL, json=fresh_cursors(lambda n: [n]))  # new tickets forever
    assert Export(client, "c0", None).max_pages == defaults.ZENDESK_MAX_PAGES_PER_PASS
    with pytest.raises(RetryableError, match="after 7 pages"):
        list(Export(client, "c0", None, max_pages=7))
    assert requests_mock.call_count == 7


# -- refusals name what to fix ---------------------------------------------------------------


@pytest.mark.parametrize(("status", "names"), [
    (401, ["zendesk.email", "zendesk.api_token"]),
    (403, ["admin"]),
])
def test_401_and_403_are_unauthorized_and_say_what_to_fix(client, requests_mock, status,
                                                          names):
    requests_mock.get(URL, status_code=status, json={"error": "Couldn't authenticate you",
                                                     "echo": "tok"})
    with pytest.raises(Unauthorized) as info:
        list(client.export("c0", None))
    message = str(info.value)
    assert all(name in message for name in names), message
    assert "tok" not in message.replace("token", "")  # never the secret (nor the body)
    assert info.value.status == status and not isinstance(info.value, RetryableError)
    assert requests_mock.call_count == 1  # not retried


def test_an_oauth_token_is_sent_as_bearer_without_an_email(requests_mock):
    c = ZendeskClient(ZendeskSettings("acme", oauth_token=Secret("zd-oauth")), metrics=Metrics())
    requests_mock.get(BASE + "/api/v2/users/me.json",
                      json={"user": {"id": 3, "role": "admin", "email": "a@acme.test"}})
    assert c.me().id == 3
    assert requests_mock.last_request.headers["Authorization"] == "Bearer zd-oauth"
