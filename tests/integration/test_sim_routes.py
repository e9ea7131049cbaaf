"""What the simulators add for routes and richer tasks: ticket groups, brands, forms,
organizations, priorities, types and due dates in Zendesk; task priority, due date, tags
and moves between lists and projects in Teamwork (each documented in docs/simulators.md)."""

from __future__ import annotations

import pytest
import requests

from zdsync.sim.adapter import session_for
from zdsync.sim.base import Clock
from zdsync.sim.teamwork import TeamworkSim
from zdsync.sim.zendesk import ZendeskSim

V3 = "https://sim.teamwork.com/projects/api/v3"
ZD = "https://sim.zendesk.com/api/v2"


@pytest.fixture
def zd() -> ZendeskSim:
    return ZendeskSim(clock=Clock(frozen=True, start=1_700_000_000.0))


@pytest.fixture
def tw() -> TeamworkSim:
    return TeamworkSim(clock=Clock(frozen=True, start=1_700_000_000.0))


def zd_http(zd: ZendeskSim) -> requests.Session:
    session = session_for(zd)
    session.auth = (f"{zd.email}/token", zd.api_token)
    return session


def tw_http(tw: TeamworkSim) -> requests.Session:
    session = session_for(tw)
    session.auth = (tw.api_token, "X")
    return session


# -- Zendesk ---------------------------------------------------------------------------


def test_ticket_fields_for_routing_are_kept_and_checked(zd):
    customer = zd.add_user("C", "c@example.com")
    billing = zd.add_group("Billing")
    tid = zd.create_ticket("Refund", customer, priority="urgent", type="task",
                           group_id=billing, brand_id=7, ticket_form_id=8, organization_id=9,
                           due_at="2026-12-01T09:00:00Z", via_channel="email")
    shown = zd_http(zd).get(f"{ZD}/tickets/{tid}.json").json()["ticket"]
    assert (shown["priority"], shown["type"], shown["group_id"], shown["brand_id"],
            shown["ticket_form_id"], shown["organization_id"], shown["due_at"],
            shown["via"]["channel"]) == ("urgent", "task", billing, 7, 8, 9,
                                         "2026-12-01T09:00:00Z", "email")
    zd.update_ticket(tid, brand_id=2, ticket_form_id=None, organization_id=3, due_at=None)
    assert (zd.ticket(tid)["brand_id"], zd.ticket(tid)["ticket_form_id"],
            zd.ticket(tid)["due_at"]) == (2, None, None)
    for bad in ({"priority": "asap"}, {"type": "bug"}, {"group_id": 42},
                {"due_at": "tomorrow"}):
        with pytest.raises(ValueError):
            zd.update_ticket(tid, **bad)


def test_groups_are_listed_with_offset_paging(zd):
    ids = [zd.add_group(f"Group {n}") for n in range(150)]
    http = zd_http(zd)
    first = http.get(f"{ZD}/groups.json").json()
    assert [g["id"] for g in first["groups"]] == ids[:100] and first["count"] == 150
    second = http.get(first["next_page"]).json()
    assert [g["name"] for g in second["groups"]][-1] == "Group 149"
    assert second["next_page"] is None
    zd.rename_group(ids[0], "Renamed")
    assert http.get(f"{ZD}/groups.json?per_page=1").json()["groups"][0]["name"] == "Renamed"


# -- Teamwork --------------------------------------------------------------------------


def test_tasks_carry_priority_due_date_and_tags(tw):
    project = tw.add_project("P")
    tasklist = tw.add_tasklist(project, "L")
    http = tw_http(tw)
    vip = http.post(f"{V3}/tags.json", json={"tag": {"name": "vip"}})
    assert vip.status_code == 201
    vip_id = vip.json()["tag"]["id"]
    created = http.post(f"{V3}/tasklists/{tasklist}/tasks.json", json={"task": {
        "name": "T", "priority": "high", "dueAt": "2026-12-01", "tagIds": [vip_id]}})
    task = created.json()["task"]
    assert (task["priority"], task["dueDate"], task["tags"]) == (
        "high", "2026-12-01", [{"id": vip_id, "type": "tags"}])
    patched = http.patch(f"{V3}/tasks/{task['id']}.json", json={"task": {
        "priority": None, "dueAt": None, "tagIds": []}}).json()["task"]
    assert (patched["priority"], patched["dueDate"], patched["tags"]) == (None, None, [])
    # Was accepted: Teamwork's MCP server refuses "none" (null clears a priority)
    assert http.patch(f"{V3}/tasks/{task['id']}.json", json={"task": {
        "priority": "none"}}).status_code == 400
    assert http.patch(f"{V3}/tasks/{task['id']}.json", json={"task": {
        "tagIds": [12345]}}).status_code == 400  # only tags that exist
    assert http.patch(f"{V3}/tasks/{task['id']}.json", json={"task": {
        "dueAt": "01/12/2026"}}).status_code == 400
    listed = http.get(f"{V3}/tags.json", params={"searchTerm": "VI"}).json()
    assert [t["name"] for t in listed["tags"]] == ["vip"]


def test_a_task_moves_within_its_project_by_patch_and_across_projects_by_v1_move(tw):
    home, other = tw.add_project("Home"), tw.add_project("Other")
    first, second = tw.add_tasklist(home, "A"), tw.add_tasklist(home, "B")
    abroad = tw.add_tasklist(other, "C")
    task = tw.create_task(first, "T", "Zendesk ticket: x")
    http = tw_http(tw)
    moved = http.patch(f"{V3}/tasks/{task}.json", json={"task": {"tasklistId": second}})
    assert moved.json()["task"]["tasklist"] == {"id": second, "type": "tasklists"}
    refused = http.patch(f"{V3}/tasks/{task}.json", json={"task": {"tasklistId": abroad}})
    # Was 400: v3 answers 422 for another project's list (Teamwork/twapi-go-sdk AGENTS.md)
    assert refused.status_code == 422
    answer = http.put(f"https://sim.teamwork.com/tasks/{task}/move.json",
                      json={"taskListId": abroad})
    # Was {"STATUS": "OK"} alone: the v1 move names what it moved
    assert answer.status_code == 200 and answer.json() == {
        "affectedTaskIds": str(task), "affectedTaskListIds": f"{second},{abroad}",
        "STATUS": "OK"}
    assert (tw.task(task)["tasklistId"], tw.task(task)["projectId"]) == (abroad, other)
    assert http.put(f"https://sim.teamwork.com/tasks/{task}/move.json",
                    json={"taskListId": 999}).status_code == 404
    assert http.put(f"https://sim.teamwork.com/tasks/{task}/move.json",
                    json={}).status_code == 422
    assert tw.most_live_with_one_marker == 1  # a move never makes a second task
