"""The Zendesk client against real recorded answers: each is fed through the client's own
request and parsing code (requests-mock answers with the recorded body), and the test
states what zdsync must read from it. Tests marked "documented" use an answer written
from the cited documentation, where nothing is recorded."""

from __future__ import annotations

import itertools
import math
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.contract import recordings
from tests.contract.behaviours import covers
from tests.contract.conftest import ZENDESK
from zdsync.people import User
from zdsync.rules import Record, is_stale
from zdsync.tickets import EXTRA_INTS, EXTRA_STRS, Ticket
from zdsync.times import epoch_of
from zdsync.zendesk import EXPORT_PATH, SHOW_MANY_BATCH, ZendeskClient

EXPORT = ZENDESK + EXPORT_PATH


def sent_query(request: Any) -> dict[str, str]:
    """The query a request sent, case kept (cursors are case-sensitive base64)."""
    return {k: v[0] for k, v in parse_qs(urlsplit(request.url).query).items()}


def read_as_sent(raw: dict[str, Any]) -> None:
    """Every field zdsync reads from a ticket object is what Zendesk sent."""
    ticket = Ticket.from_api(raw)
    for key in ("id", "status", "subject", "assignee_id", "submitter_id", "updated_at",
                *EXTRA_INTS, *EXTRA_STRS):
        assert getattr(ticket, key) == raw.get(key), (raw["id"], key)
    assert ticket.tags == tuple(raw["tags"])
    assert ticket.via == raw["via"]["channel"]
    assert ticket.generated_timestamp == (raw.get("generated_timestamp") or 0)
    assert epoch_of(ticket.updated_at) > 0
    assert Ticket.from_api(ticket.to_json()) == ticket  # what a record stores reads back


@covers("zendesk.export.cursor_chain", "zendesk.export.page",
        "zendesk.export.generated_timestamp")
def test_the_export_follows_the_recorded_cursor_chain(zendesk: ZendeskClient,
                                                      requests_mock: Any) -> None:
    chain = recordings.export_chain()
    by_cursor = {p["query"].get("cursor"): p["body"] for p in chain}
    requests_mock.get(EXPORT,
                      json=lambda request, _: by_cursor[sent_query(request).get("cursor")])

    export = zendesk.export(None, 0)
    pages = list(itertools.islice(export, len(chain)))

    sent = [sent_query(r) for r in requests_mock.request_history]
    assert sent[0]["start_time"] == "0" and "cursor" not in sent[0]
    for before, request, recorded in zip(chain, sent[1:], chain[1:], strict=False):
        assert "start_time" not in request
        assert request["cursor"] == recorded["query"]["cursor"] \
            == before["body"]["after_cursor"]
    for page, recorded in zip(pages, chain, strict=True):
        assert page.tickets == recorded["body"]["tickets"]
        assert page.after_cursor == recorded["body"]["after_cursor"]
        assert page.end_of_stream is False
    # The cursor moves past a page only when the next one is asked for, i.e. once the
    # caller has committed it: the last page handed out is not yet past.
    assert export.cursor == chain[-2]["body"]["after_cursor"]
    tickets = [Ticket.from_api(t) for page in pages for t in page.tickets]
    order = [(t.generated_timestamp, t.id) for t in tickets]
    assert all(t.generated_timestamp > 0 for t in tickets)
    assert order == sorted(order) and len(set(order)) == len(order)


@covers("zendesk.export.last_page_cursor", "zendesk.export.page", "zendesk.export.deleted")
def test_the_last_page_ends_the_run_and_hands_on_its_cursor(zendesk: ZendeskClient,
                                                            requests_mock: Any) -> None:
    body = recordings.export_last_page()
    requests_mock.get(EXPORT, json=body)

    export = zendesk.export("saved-cursor", None)
    pages = list(export)

    assert len(pages) == 1 and pages[0].end_of_stream is True
    assert export.cursor == body["after_cursor"] != "saved-cursor"
    tickets = {t.id: t for t in map(Ticket.from_api, pages[0].tickets)}
    assert len(tickets) == len(body["tickets"])
    assert [t.id for t in tickets.values() if t.status == "deleted"] == [4034]
    assert tickets[4034].subject == "SCRUBBED"
    assert {"new", "open", "pending"} <= {t.status for t in tickets.values()}


@covers("zendesk.export.deleted")
def test_every_recorded_deleted_ticket_reads_as_deleted() -> None:
    deleted = [t for t in recordings.every_ticket() if t["status"] == "deleted"]
    assert deleted
    assert all(Ticket.from_api(t).status == "deleted" for t in deleted)


@covers("zendesk.ticket.fields")
def test_every_recorded_ticket_reads_as_zendesk_wrote_it() -> None:
    tickets = recordings.every_ticket()
    for raw in tickets:
        read_as_sent(raw)
    statuses = {t["status"] for t in tickets}
    assert {"new", "open", "pending", "closed", "deleted"} <= statuses


@covers("zendesk.ticket.show", "zendesk.export.generated_timestamp")
def test_only_the_export_carries_generated_timestamp() -> None:
    shapes = recordings.load("ticket_shapes.json")["tickets"]
    for shape in shapes:
        request = shape["source"]["request"]
        exported = "/incremental/" in request
        shown = request.startswith(("GET /api/v2/tickets", "PUT /api/v2/tickets"))
        if exported:
            assert isinstance(shape["ticket"]["generated_timestamp"], int), request
        elif shown:
            assert "generated_timestamp" not in shape["ticket"], request


@covers("zendesk.ticket.show")
def test_show_ticket_reads_the_recorded_answer(zendesk: ZendeskClient,
                                               requests_mock: Any) -> None:
    for name in ("ticket1_2023_show", "ticket4017_restored_show"):
        raw = recordings.ticket_versions()[name]["ticket"]
        requests_mock.get(f"{ZENDESK}/api/v2/tickets/{raw['id']}.json", json={"ticket": raw})
        shown = zendesk.ticket(raw["id"])
        assert shown == raw
        read_as_sent(raw)
        assert Ticket.from_api(raw).generated_timestamp == 0


def versions_of_ticket_1() -> tuple[Ticket, Ticket]:
    """Ticket 1 as show answered in 2023, and as the 2024 export carried it."""
    shown = Ticket.from_api(recordings.ticket_versions()["ticket1_2023_show"]["ticket"])
    exported = next(Ticket.from_api(t) for t in recordings.export_last_page()["tickets"]
                    if t["id"] == 1)
    return shown, exported


@covers("zendesk.ticket.show", "zendesk.export.generated_timestamp")
def test_recorded_snapshots_of_one_ticket_are_ordered_as_zendesk_made_them() -> None:
    shown_2023, exported_2024 = versions_of_ticket_1()
    assert shown_2023.updated_at < exported_2024.updated_at
    assert is_stale(shown_2023, Record(exported_2024))  # an old show loses to the export
    assert not is_stale(exported_2024, Record(shown_2023))

    versions = recordings.ticket_versions()
    created = Ticket.from_api(versions["ticket4016_created"]["ticket"])
    retitled = Ticket.from_api(versions["ticket4016_retitled"]["ticket"])
    assert (created.subject, retitled.subject) == ("test", versions[
        "ticket4016_retitled"]["ticket"]["subject"])
    assert is_stale(created, Record(retitled))
    assert not is_stale(retitled, Record(created))


@covers("zendesk.ticket.not_found")
def test_a_missing_ticket_or_user_reads_as_none(zendesk: ZendeskClient,
                                                requests_mock: Any) -> None:
    body = recordings.error(404)
    assert body == {"error": "RecordNotFound", "description": "Not found"}
    requests_mock.get(f"{ZENDESK}/api/v2/tickets/5.json", status_code=404, json=body)
    requests_mock.get(f"{ZENDESK}/api/v2/users/6.json", status_code=404, json=body)
    assert zendesk.ticket(5) is None
    assert zendesk.user(6) is None


@covers("zendesk.show_many.batch", "zendesk.ticket.fields")
def test_show_many_never_asks_for_more_values_than_zendesk_takes(
        zendesk: ZendeskClient, requests_mock: Any) -> None:
    refusal = recordings.error(400)
    assert refusal["error"] == "TooManyValues" and refusal["max_count"] == SHOW_MANY_BATCH
    recorded = {t["id"]: t for t in recordings.every_ticket()}
    assert len(recorded) > SHOW_MANY_BATCH

    def answer(request: Any, context: Any) -> dict[str, Any]:
        ids = [int(i) for i in sent_query(request)["ids"].split(",")]
        if len(ids) > refusal["max_count"]:
            context.status_code = 400
            return refusal
        return {"tickets": [recorded[i] for i in ids], "next_page": None,
                "previous_page": None, "count": len(ids)}

    requests_mock.get(f"{ZENDESK}/api/v2/tickets/show_many.json", json=answer)
    found = zendesk.tickets_by_ids(sorted(recorded))
    assert found == recorded
    assert requests_mock.call_count == math.ceil(len(recorded) / SHOW_MANY_BATCH)


@covers("zendesk.users.fields")
def test_recorded_users_read_as_zendesk_wrote_them(zendesk: ZendeskClient,
                                                   requests_mock: Any) -> None:
    users = recordings.users()
    for raw in users:
        requests_mock.get(f"{ZENDESK}/api/v2/users/{raw['id']}.json", json={"user": raw})
        user = zendesk.user(raw["id"])
        assert user == User(raw["id"], raw["name"], raw["email"], raw["role"], raw["active"])
        assert user.is_agent is (raw["role"] in ("agent", "admin"))
    requests_mock.get(f"{ZENDESK}/api/v2/users/show_many.json",
                      json={"users": users, "next_page": None, "count": len(users)})
    assert set(zendesk.users_by_ids(u["id"] for u in users)) == {u["id"] for u in users}
    admin = next(u for u in users if u["role"] == "admin")
    requests_mock.get(f"{ZENDESK}/api/v2/users/me.json", json={"user": admin})
    assert zendesk.me().role == "admin"  # what checks.zendesk_admin requires


@covers("zendesk.users.offset_paging")
def test_documented_offset_paging_of_users(zendesk: ZendeskClient,
                                           requests_mock: Any) -> None:
    """Documented: the recordings hold the user objects, not this list envelope."""
    users = recordings.users()
    second = f"{ZENDESK}/api/v2/users.json?page=2&per_page=2&role%5B%5D=admin"
    requests_mock.get(f"{ZENDESK}/api/v2/users.json", [
        {"json": {"users": users[:2], "next_page": second, "previous_page": None,
                  "count": len(users)}},
        {"json": {"users": users[2:], "next_page": None, "previous_page": "x",
                  "count": len(users)}},
    ])
    assert [u.id for u in zendesk.agents()] == [u["id"] for u in users]
    assert requests_mock.request_history[1].url == second


@covers("zendesk.export.scope")
def test_documented_export_asks_for_every_support_type(zendesk: ZendeskClient,
                                                        requests_mock: Any) -> None:
    requests_mock.get(EXPORT, json=recordings.export_last_page())
    list(zendesk.export(None, 0))
    assert sent_query(requests_mock.last_request)["support_type_scope"] == "all"


@covers("zendesk.merge")
def test_documented_merge_marks_a_closed_ticket() -> None:
    """Documented: no merge is recorded; a recorded closed ticket stands in for its source."""
    closed = next(t for t in recordings.every_ticket() if t["status"] == "closed")
    assert not Ticket.from_api(closed).merged
    assert Ticket.from_api({**closed, "tags": [*closed["tags"], "closed_by_merge"]}).merged

