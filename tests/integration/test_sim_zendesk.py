"""The Zendesk simulator over real HTTP: export semantics, limits, errors, lifecycle."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from zdsync.sim.base import Clock
from zdsync.sim.zendesk import ZendeskSim

EMAIL, TOKEN = "admin@example.com", "zd-secret"
START = 1_700_000_000.0
EXPORT = "/api/v2/incremental/tickets/cursor.json"


@pytest.fixture
def clock() -> Clock:
    return Clock(frozen=True, start=START)


@pytest.fixture
def zd(clock: Clock) -> Iterator[ZendeskSim]:
    with ZendeskSim(EMAIL, TOKEN, clock, export_limit_per_minute=10) as sim:
        yield sim


@pytest.fixture
def http(zd: ZendeskSim) -> Iterator[requests.Session]:
    session = requests.Session()
    session.auth = (f"{EMAIL}/token", TOKEN)
    yield session
    session.close()


@pytest.fixture
def people(zd: ZendeskSim) -> dict[str, int]:
    return {
        "alice": zd.add_user("Alice", "alice@example.com", "agent"),
        "bob": zd.add_user("Bob", "bob@example.com", "agent"),
        "carl": zd.add_user("Carl Customer", "carl@example.com", "end-user"),
    }


def export(http: requests.Session, zd: ZendeskSim, **params: Any) -> requests.Response:
    return http.get(zd.url + EXPORT, params=params)


def drain(http: requests.Session, zd: ZendeskSim, **first: Any) -> tuple[list[dict], str, int]:
    """Follow after_cursor until end_of_stream; returns tickets, last cursor, pages."""
    answer = export(http, zd, **first)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    tickets, pages = list(body["tickets"]), 1
    while not body["end_of_stream"]:
        answer = export(http, zd, cursor=body["after_cursor"])
        assert answer.status_code == 200, answer.text
        body = answer.json()
        tickets += body["tickets"]
        pages += 1
    return tickets, body["after_cursor"], pages


# -- auth -----------------------------------------------------------------------------


@pytest.mark.parametrize("auth", [None, (f"{EMAIL}/token", "wrong"), (EMAIL, TOKEN),
                                  ("nobody@example.com/token", TOKEN)])
def test_bad_credentials_get_401(zd: ZendeskSim, auth: tuple[str, str] | None) -> None:
    answer = requests.get(f"{zd.url}/api/v2/users/me.json", auth=auth)
    assert answer.status_code == 401
    assert answer.json() == {"error": "Couldn't authenticate you"}


def test_an_oauth_token_is_a_bearer_token_of_the_admin(zd: ZendeskSim) -> None:
    def me(header: str) -> requests.Response:
        return requests.get(f"{zd.url}/api/v2/users/me.json", headers={"Authorization": header})

    assert me(f"Bearer {zd.oauth_token}").json()["user"]["id"] == zd.admin_id
    for header in ("Bearer wrong", f"Bearer {TOKEN}", "Bearer ", f"Token {zd.oauth_token}"):
        assert me(header).status_code == 401, header


def test_token_works_with_any_users_email_and_export_is_admin_only(
        zd: ZendeskSim, people: dict[str, int], clock: Clock) -> None:
    agent = requests.Session()
    agent.auth = ("alice@example.com/token", TOKEN)
    assert agent.get(f"{zd.url}/api/v2/users/me").json()["user"]["id"] == people["alice"]
    clock.advance(120)
    answer = agent.get(zd.url + EXPORT, params={"start_time": int(START)})
    assert answer.status_code == 403
    assert answer.json()["error"] == "Forbidden"


# -- export ---------------------------------------------------------------------------


def test_export_pages_2500_tickets_in_ascending_generated_timestamp(
        zd: ZendeskSim, http: requests.Session, people: dict[str, int], clock: Clock) -> None:
    for n in range(2500):
        if n % 97 == 0:
            clock.advance(1)  # many tickets share a second: ties must not break paging
        zd.create_ticket(f"ticket {n}", people["carl"])
    clock.advance(61)
    first = export(http, zd, start_time=int(START), per_page=1000).json()
    assert len(first["tickets"]) == 1000 and first["end_of_stream"] is False
    assert "cursor=" in first["after_url"]
    second = http.get(first["after_url"]).json()
    third = export(http, zd, cursor=second["after_cursor"], per_page=1000).json()
    assert [len(first["tickets"]), len(second["tickets"]), len(third["tickets"])] == \
           [1000, 1000, 500]
    assert (second["end_of_stream"], third["end_of_stream"]) == (False, True)
    assert third["after_cursor"]
    tickets = first["tickets"] + second["tickets"] + third["tickets"]
    stamps = [t["generated_timestamp"] for t in tickets]
    assert stamps == sorted(stamps)
    assert len({t["id"] for t in tickets}) == 2500


def test_per_page_above_1000_is_clamped_and_bad_values_refused(
        zd: ZendeskSim, http: requests.Session, people: dict[str, int], clock: Clock) -> None:
    for n in range(1001):
        zd.create_ticket(f"t{n}", people["carl"])
    clock.advance(61)
    assert len(export(http, zd, start_time=0, per_page=5000).json()["tickets"]) == 1000
    assert len(export(http, zd, start_time=0, per_page=3).json()["tickets"]) == 3
    assert export(http, zd, start_time=0, per_page=0).status_code == 400


def test_export_has_latest_version_only(zd: ZendeskSim, http: requests.Session,
                                        people: dict[str, int], clock: Clock) -> None:
    tid = zd.create_ticket("first", people["carl"])
    clock.advance(5)
    zd.update_ticket(tid, subject="second", assignee_id=people["alice"], status="open")
    clock.advance(61)
    tickets, _, _ = drain(http, zd, start_time=int(START))
    assert [(t["id"], t["subject"], t["assignee_id"]) for t in tickets] == \
           [(tid, "second", people["alice"])]
    assert tickets[0]["generated_timestamp"] == int(START) + 5


def test_last_minute_is_not_exported(zd: ZendeskSim, http: requests.Session,
                                     people: dict[str, int], clock: Clock) -> None:
    old = zd.create_ticket("old", people["carl"])
    clock.advance(61)
    tickets, cursor, _ = drain(http, zd, start_time=int(START))
    assert [t["id"] for t in tickets] == [old]
    new = zd.create_ticket("new", people["carl"])
    body = export(http, zd, cursor=cursor).json()
    assert body["tickets"] == [] and body["end_of_stream"] is True
    clock.advance(59)
    assert export(http, zd, cursor=cursor).json()["tickets"] == []
    clock.advance(2)
    assert [t["id"] for t in export(http, zd, cursor=cursor).json()["tickets"]] == [new]


def test_start_time_too_recent_is_400(zd: ZendeskSim, http: requests.Session) -> None:
    answer = export(http, zd, start_time=int(START) - 30)
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "StartTimeTooRecent",
        "description": "Too recent start_time. Use a start_time older than 1 minute"}
    assert export(http, zd, start_time=int(START) - 60).status_code == 200
    assert export(http, zd).status_code == 400  # neither start_time nor cursor


def test_resuming_from_the_final_cursor_returns_only_newer_changes(
        zd: ZendeskSim, http: requests.Session, people: dict[str, int], clock: Clock) -> None:
    ids = [zd.create_ticket(f"t{n}", people["carl"]) for n in range(5)]
    clock.advance(61)
    tickets, cursor, _ = drain(http, zd, start_time=int(START))
    assert [t["id"] for t in tickets] == ids
    clock.advance(10)
    zd.update_ticket(ids[3], subject="changed again")
    zd.touch(ids[1])  # a system update: generated_timestamp moves, updated_at does not
    clock.advance(61)
    newer, cursor2, _ = drain(http, zd, cursor=cursor)
    assert [(t["id"], t["subject"]) for t in newer] == [(ids[3], "changed again"),
                                                       (ids[1], "t1")]
    touched = newer[1]
    assert touched["generated_timestamp"] == int(START) + 71
    assert touched["updated_at"] == "2023-11-14T22:13:20Z"  # creation time, unchanged
    assert export(http, zd, cursor=cursor2).json()["tickets"] == []


def test_deleted_and_merged_tickets_are_in_the_stream(
        zd: ZendeskSim, http: requests.Session, people: dict[str, int], clock: Clock) -> None:
    gone = zd.create_ticket("gone", people["carl"])
    source = zd.create_ticket("dup", people["carl"])
    target = zd.create_ticket("main", people["carl"], people["alice"], people["alice"], "open")
    zd.delete_ticket(gone)
    zd.merge(source, target)
    clock.advance(61)
    by_id = {t["id"]: t for t in drain(http, zd, start_time=int(START))[0]}
    assert by_id[gone]["status"] == "deleted"
    assert by_id[source]["status"] == "closed" and "closed_by_merge" in by_id[source]["tags"]
    assert by_id[target]["status"] == "open"
    kept = export(http, zd, start_time=int(START), exclude_deleted="true").json()["tickets"]
    assert {t["id"] for t in kept} == {source, target}


def test_bad_cursor_is_400(zd: ZendeskSim, http: requests.Session) -> None:
    for cursor in ["not-base64!!", base64.b64encode(b"hello").decode(), ""]:
        assert export(http, zd, cursor=cursor).status_code == 400


def test_export_rate_limit_429_with_retry_after(zd: ZendeskSim, http: requests.Session,
                                                clock: Clock) -> None:
    clock.advance(120)
    statuses = [export(http, zd, start_time=int(START)).status_code for _ in range(10)]
    assert statuses == [200] * 10
    clock.advance(20)
    limited = export(http, zd, start_time=int(START))
    assert limited.status_code == 429
    assert limited.json() == {"error": "APIRateLimitExceeded", "description":
                              "Number of allowed incremental export API requests per minute "
                              "exceeded"}
    assert int(limited.headers["Retry-After"]) == 40
    assert http.get(f"{zd.url}/api/v2/users/me").status_code == 200  # other calls unaffected
    clock.advance(40)
    assert export(http, zd, start_time=int(START)).status_code == 200


# -- show ticket, users ---------------------------------------------------------------


def test_show_ticket_and_404_for_deleted_or_unknown(zd: ZendeskSim, http: requests.Session,
                                                    people: dict[str, int]) -> None:
    tid = zd.create_ticket(None, people["carl"], people["alice"], tags=["VIP", "vip"])
    for suffix in ("", ".json"):
        body = http.get(f"{zd.url}/api/v2/tickets/{tid}{suffix}").json()["ticket"]
        assert body["id"] == tid and body["subject"] is None and body["tags"] == ["vip"]
        assert body["url"] == f"{zd.url}/api/v2/tickets/{tid}.json"
        for key in ("raw_subject", "description", "status", "priority", "type", "requester_id",
                    "submitter_id", "assignee_id", "group_id", "created_at", "updated_at",
                    "via"):
            assert key in body
        # Only the export carries it: every recorded show and show_many answer lacks it.
        assert "generated_timestamp" not in body
    many = http.get(f"{zd.url}/api/v2/tickets/show_many.json", params={"ids": f"{tid}"})
    assert [t["id"] for t in many.json()["tickets"]] == [tid]
    assert "generated_timestamp" not in many.json()["tickets"][0]
    assert "generated_timestamp" in zd.ticket(tid)  # the admin view keeps it
    zd.delete_ticket(tid)
    for path in (f"/api/v2/tickets/{tid}", "/api/v2/tickets/999"):
        answer = http.get(zd.url + path)
        assert answer.status_code == 404
        assert answer.json() == {"error": "RecordNotFound", "description": "Not found"}
    many = http.get(f"{zd.url}/api/v2/tickets/show_many.json", params={"ids": f"{tid},1"})
    assert many.json()["tickets"] == []


def test_users_show_search_and_agent_list(zd: ZendeskSim, http: requests.Session,
                                         people: dict[str, int]) -> None:
    user = http.get(f"{zd.url}/api/v2/users/{people['alice']}.json").json()["user"]
    assert {k: user[k] for k in ("id", "name", "email", "role", "active")} == {
        "id": people["alice"], "name": "Alice", "email": "alice@example.com", "role": "agent",
        "active": True}
    assert http.get(f"{zd.url}/api/v2/users/1").status_code == 404
    found = http.get(f"{zd.url}/api/v2/users/search", params={"query": "ALICE@example.com"})
    assert [u["id"] for u in found.json()["users"]] == [people["alice"]]
    assert http.get(f"{zd.url}/api/v2/users/search",
                    params={"query": "lice@example.com"}).json()["users"] == []
    agents = http.get(f"{zd.url}/api/v2/users.json",
                      params=[("role[]", "agent"), ("role[]", "admin"), ("per_page", 2)]).json()
    assert agents["count"] == 3 and len(agents["users"]) == 2 and agents["next_page"]
    rest = http.get(agents["next_page"]).json()
    assert {u["email"] for u in agents["users"] + rest["users"]} == {
        EMAIL, "alice@example.com", "bob@example.com"}
    assert rest["next_page"] is None


def test_unknown_route_and_account_rate_headers(zd: ZendeskSim, http: requests.Session) -> None:
    answer = http.get(f"{zd.url}/api/v2/nothing")
    assert answer.status_code == 404 and answer.json()["error"] == "InvalidEndpoint"
    assert answer.headers["X-Rate-Limit"] == "700"
    assert int(answer.headers["X-Rate-Limit-Remaining"]) == 699


# -- lifecycle rules of the admin API -------------------------------------------------


def test_lifecycle_rules(zd: ZendeskSim, people: dict[str, int], clock: Clock) -> None:
    tid = zd.create_ticket("s", people["carl"])
    with pytest.raises(ValueError, match="assignee"):
        zd.update_ticket(tid, status="solved")
    with pytest.raises(ValueError, match="solved"):
        zd.update_ticket(tid, status="closed")
    zd.update_ticket(tid, status="solved", assignee_id=people["alice"])
    with pytest.raises(ValueError, match="new"):
        zd.update_ticket(tid, status="new")
    with pytest.raises(ValueError, match="not an agent"):
        zd.update_ticket(tid, assignee_id=people["carl"])
    zd.update_ticket(tid, status="closed")
    with pytest.raises(ValueError, match="closed"):
        zd.update_ticket(tid, status="open")
    with pytest.raises(ValueError, match="closed"):
        zd.update_ticket(tid, assignee_id=people["bob"])
    with pytest.raises(ValueError, match="follow-up"):
        zd.update_ticket(tid, comment="hello?")
    with pytest.raises(ValueError, match="merge"):
        zd.merge(tid, zd.create_ticket("other", people["carl"]))
    before = zd.ticket(tid)
    clock.advance(3)
    zd.update_ticket(tid, subject="renamed", tags=["x"], priority="high")
    after = zd.ticket(tid)
    assert after["generated_timestamp"] == before["generated_timestamp"] + 3
    assert after["updated_at"] > before["updated_at"]
    zd.delete_ticket(tid)  # closed tickets can still be deleted
    with pytest.raises(ValueError, match="deleted"):
        zd.update_ticket(tid, subject="x")
    zd.restore_ticket(tid)
    assert zd.ticket(tid)["status"] == "closed"


# -- faults ---------------------------------------------------------------------------


def test_faults_hit_api_requests_only(zd: ZendeskSim, http: requests.Session) -> None:
    zd.faults.error_rate = 1.0
    zd.faults.error_statuses = (502,)
    answer = http.get(f"{zd.url}/api/v2/users/me")
    assert answer.status_code == 502 and "text/html" in answer.headers["Content-Type"]
    assert requests.get(f"{zd.url}/_sim/health").json()["ok"] is True
    zd.faults.reset()
    zd.faults.fail_next(2, 504)
    assert [http.get(f"{zd.url}/api/v2/users/me").status_code for _ in range(3)] == \
           [504, 504, 200]
    assert zd.log.count("GET", "/api/v2/users/me") == 4
    assert zd.log.count("GET", "/api/v2/users/me", status=200) == 1
    assert zd.log.count(path="/_sim/*") == 0


def test_admin_endpoint_moves_the_clock(zd: ZendeskSim, clock: Clock) -> None:
    answer = requests.post(f"{zd.url}/_sim/clock/advance", json={"seconds": 90})
    assert answer.json()["now"] == START + 90 == clock.now()


# -- webhooks -------------------------------------------------------------------------


def test_webhooks_are_signed_event_subscription_payloads(zd: ZendeskSim,
                                                         people: dict[str, int]) -> None:
    received: list[tuple[dict[str, str], bytes]] = []

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((dict(self.headers), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, args=(0.02,), daemon=True).start()
    try:
        zd.webhook_url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
        zd.webhook_secret = "s3cret"
        tid = zd.create_ticket("hook me", people["carl"])
        zd.update_ticket(tid, assignee_id=people["alice"], status="open")
        assert zd.wait_webhooks()
    finally:
        receiver.shutdown()
        receiver.server_close()
    types = [json.loads(body)["type"] for _, body in received]
    assert types == ["zen:event-type:ticket.created", "zen:event-type:ticket.status_changed",
                     "zen:event-type:ticket.agent_assignment_changed"]
    for headers, body in received:
        stamp = headers["X-Zendesk-Webhook-Signature-Timestamp"]
        want = base64.b64encode(hmac.new(b"s3cret", stamp.encode() + body,
                                         hashlib.sha256).digest()).decode()
        assert headers["X-Zendesk-Webhook-Signature"] == want
        payload = json.loads(body)
        assert payload["subject"] == f"zen:ticket:{tid}" and payload["detail"]["id"] == str(tid)
    assert [d["status"] for d in zd.webhook_deliveries] == [200, 200, 200]
