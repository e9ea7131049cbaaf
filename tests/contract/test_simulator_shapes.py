"""The simulators answer in the shape of the recorded real answers, for every field
zdsync reads: the same keys, with a type the real service was recorded sending (or that
its documentation gives, where no recording has a value of it). One test per endpoint
zdsync uses for which a recording exists. The simulators run in-process."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
import requests

from tests.contract import recordings
from tests.contract.behaviours import covers
from zdsync.sim.adapter import session_for
from zdsync.sim.base import Clock
from zdsync.sim.teamwork import TeamworkSim
from zdsync.sim.zendesk import ZendeskSim
from zdsync.tickets import EXTRA_INTS, EXTRA_STRS

START = 1_700_000_000.0
ZD_BASE = "https://sim.zendesk.com"
TW_BASE = "https://sim.teamwork.com"
V3 = "/projects/api/v3"

TICKET_READS = ("id", "status", "subject", "assignee_id", "submitter_id", "tags",
                "updated_at", "via", *EXTRA_INTS, *EXTRA_STRS)
"""What ``Ticket.from_api`` reads from every ticket object (``generated_timestamp``
apart: only the export carries it)."""
USER_READS = ("id", "name", "email", "role", "active")
DOCUMENTED_TYPES = {"due_at": {"str"}, "subject": {"null"}}
"""Types no recorded ticket has but the simulator may send. ``due_at``: an ISO-8601 time
on task tickets (``behaviours.ZD_TICKETS``). ``subject``: the documentation says only that
it "may be empty" until an agent edits it, and no recording has such a ticket; the
simulator sends null, and zdsync reads null and "" alike (``Ticket.from_api``,
``render_title``)."""


def kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def recorded_types(objects: Iterable[dict[str, Any]], keys: Iterable[str]
                   ) -> dict[str, set[str]]:
    keys = tuple(keys)
    found: dict[str, set[str]] = defaultdict(set)
    for obj in objects:
        for key in keys:
            if key in obj:
                found[key].add(kind(obj[key]))
    for key in set(keys) & set(DOCUMENTED_TYPES):
        found[key] |= DOCUMENTED_TYPES[key]
    return found


def assert_shaped_like(answered: Iterable[dict[str, Any]], recorded: dict[str, set[str]],
                       keys: Iterable[str], what: str) -> None:
    """Every simulated object has each key, with a type among those recorded."""
    answered = list(answered)
    assert answered, f"the simulator answered no {what}"
    for obj in answered:
        for key in keys:
            assert key in obj, f"{what} {obj.get('id')}: no {key}"
            assert kind(obj[key]) in recorded[key], (
                f"{what} {obj.get('id')}: {key} is {kind(obj[key])}, recorded "
                f"{sorted(recorded[key])}")


@pytest.fixture
def zd() -> Iterator[tuple[ZendeskSim, requests.Session]]:
    """A Zendesk account with tickets of every shape the sync meets, all exportable."""
    sim = ZendeskSim("admin@example.com", "zd-token", Clock(frozen=True, start=START))
    agent = sim.add_user("Alice Agent", "alice@example.com", "agent")
    customer = sim.add_user("Carl", "carl@example.com")
    group = sim.add_group("Support")
    sim.create_ticket("plain", customer)
    sim.create_ticket("full", customer, assignee_id=agent, tags=["vip", "billing"],
                      priority="high", type="task", due_at="2024-01-31T12:00:00Z",
                      group_id=group, organization_id=None)
    solved = sim.create_ticket(None, customer, assignee_id=agent, status="open")
    sim.update_ticket(solved, status="solved")
    sim.update_ticket(solved, status="closed")
    sim.delete_ticket(sim.create_ticket("gone", customer))
    sim.clock.advance(120)
    session = session_for(sim)
    session.auth = ("admin@example.com/token", "zd-token")
    yield sim, session
    session.close()


def zendesk_export(session: requests.Session) -> dict[str, Any]:
    answer = session.get(f"{ZD_BASE}/api/v2/incremental/tickets/cursor.json",
                         params={"start_time": int(START) - 10})
    assert answer.status_code == 200, answer.text
    return answer.json()


@covers("zendesk.export.page", "zendesk.export.generated_timestamp", "zendesk.ticket.fields")
def test_the_export_page_is_shaped_like_the_recorded_ones(zd: Any) -> None:
    _, session = zd
    page = zendesk_export(session)
    for recorded in (recordings.export_last_page(), recordings.export_chain()[0]["body"]):
        assert set(page) == set(recorded)
        for key in ("tickets", "after_cursor", "end_of_stream"):
            assert kind(page[key]) == kind(recorded[key]), key
    exported = [t for p in recordings.export_chain() for t in p["body"]["tickets"]]
    exported += recordings.export_last_page()["tickets"]
    types = {**recorded_types(recordings.every_ticket(), TICKET_READS),
             **recorded_types(exported, ["generated_timestamp"])}
    keys = (*TICKET_READS, "generated_timestamp")
    assert_shaped_like(page["tickets"], types, keys, "exported ticket")
    assert {t["status"] for t in page["tickets"]} >= {"new", "closed", "deleted"}


@covers("zendesk.ticket.show", "zendesk.ticket.fields")
def test_show_and_show_many_are_shaped_like_the_recorded_show(zd: Any) -> None:
    sim, session = zd
    recorded = recordings.ticket_versions()["ticket1_2023_show"]["ticket"]
    live = [t["id"] for t in sim.tickets() if t["status"] != "deleted"]
    shown = [session.get(f"{ZD_BASE}/api/v2/tickets/{i}.json").json()["ticket"] for i in live]
    many = session.get(f"{ZD_BASE}/api/v2/tickets/show_many.json",
                       params={"ids": ",".join(map(str, live))}).json()["tickets"]
    types = recorded_types([*recordings.every_ticket(), recorded], TICKET_READS)
    for answered, what in ((shown, "shown ticket"), (many, "show_many ticket")):
        assert "generated_timestamp" not in recorded
        assert all("generated_timestamp" not in t for t in answered), what
        assert_shaped_like(answered, types, TICKET_READS, what)


@covers("zendesk.ticket.not_found", "zendesk.export.deleted")
def test_a_deleted_ticket_answers_the_recorded_404(zd: Any) -> None:
    sim, session = zd
    gone = next(t["id"] for t in sim.tickets() if t["status"] == "deleted")
    answer = session.get(f"{ZD_BASE}/api/v2/tickets/{gone}.json")
    assert (answer.status_code, answer.json()) == (404, recordings.error(404))


@covers("zendesk.users.fields")
def test_users_are_shaped_like_the_recorded_ones(zd: Any) -> None:
    sim, session = zd
    shown = [session.get(f"{ZD_BASE}/api/v2/users/{u['id']}.json").json()["user"]
             for u in sim.users()]
    shown.append(session.get(f"{ZD_BASE}/api/v2/users/me.json").json()["user"])
    assert_shaped_like(shown, recorded_types(recordings.users(), USER_READS), USER_READS,
                       "user")


@pytest.fixture
def tw() -> Iterator[tuple[TeamworkSim, requests.Session, dict[str, int]]]:
    """A Teamwork site with one of everything zdsync lists."""
    sim = TeamworkSim(clock=Clock(frozen=True, start=START))
    project = sim.add_project("Support")
    tasklist = sim.add_tasklist(project, "Zendesk")
    person = sim.add_person("Alice", "Agent", "alice@example.com")
    sim.add_to_project(project, person)
    sim.add_tag("vip")
    task = sim.create_task(tasklist, "[ZD#1] a", "Zendesk ticket: x", [person])
    session = session_for(sim)
    session.auth = ("sim-teamwork-token", "X")
    yield sim, session, {"project": project, "tasklist": tasklist, "task": task}
    session.close()


def listings(ids: dict[str, int]) -> list[tuple[str, str]]:
    """(path, list key) of every v3 listing zdsync reads."""
    return [(f"{V3}/tasklists/{ids['tasklist']}/tasks.json", "tasks"),
            (f"{V3}/tasks.json", "tasks"),
            (f"{V3}/projects/{ids['project']}/tasklists.json", "tasklists"),
            (f"{V3}/people.json", "people"),
            (f"{V3}/projects/{ids['project']}/people.json", "people"),
            (f"{V3}/tags.json", "tags")]


@covers("teamwork.v3.paging")
def test_every_v3_listing_has_the_recorded_envelope(tw: Any) -> None:
    _, session, ids = tw
    recorded = recordings.teamwork("projects_api_v3_customfields.json")
    recorded_page = recorded["meta"]["page"]
    for path, key in listings(ids):
        body = session.get(TW_BASE + path, params={"pageSize": 1}).json()
        assert set(body) == set(recorded) - {"customfields"} | {key}, path
        page = body["meta"]["page"]
        assert {k: kind(v) for k, v in page.items()} == {
            k: kind(v) for k, v in recorded_page.items()}, path
        assert body[key], f"{path}: the listing is empty"


@covers("teamwork.v3.updated")
def test_v3_stamps_and_person_ids_are_written_as_recorded(tw: Any) -> None:
    _, session, ids = tw
    recorded = recordings.teamwork("projects_api_v3_customfields.json")["customfields"][0]
    stamp = re.compile(re.sub(r"[0-9]", r"[0-9]", recorded["updatedAt"]))
    task = session.get(f"{TW_BASE}{V3}/tasks/{ids['task']}.json").json()["task"]
    listed = session.get(f"{TW_BASE}{V3}/projects/{ids['project']}/tasklists.json"
                         ).json()["tasklists"]
    for obj in (task, *listed):
        assert stamp.fullmatch(obj["updatedAt"]), obj["updatedAt"]
    assert kind(task["updatedBy"]) == kind(recorded["updatedBy"]) == "int"
