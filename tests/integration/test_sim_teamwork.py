"""The Teamwork simulator over real HTTP: shapes, status codes, search, limits, faults."""

from __future__ import annotations

import ast
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import rotation
from zdsync.sim.base import Clock
from zdsync.sim.teamwork import RATE_LIMIT_TEXT, VARIANTS, TeamworkSim, Variants
from zdsync.sim.teamwork.variants import every_value

TOKEN = "tw-secret"
V3 = "/projects/api/v3"


@pytest.fixture
def clock() -> Clock:
    return Clock(frozen=True, start=1_700_000_000.0)


@pytest.fixture
def tw(clock: Clock) -> Iterator[TeamworkSim]:
    with TeamworkSim(TOKEN, clock) as sim:
        yield sim


@pytest.fixture
def http(tw: TeamworkSim) -> Iterator[requests.Session]:
    session = requests.Session()
    session.auth = (TOKEN, "X")
    yield session
    session.close()


@pytest.fixture
def setup(tw: TeamworkSim) -> dict[str, int]:
    project = tw.add_project("Support")
    alice = tw.add_person("Alice", "Agent", "alice@example.com")
    outsider = tw.add_person("Olga", "Outside", "olga@example.com")
    tw.add_to_project(project, alice)
    return {"project": project, "tasklist": tw.add_tasklist(project, "Zendesk tickets"),
            "alice": alice, "outsider": outsider}


def create(http: requests.Session, tw: TeamworkSim, tasklist: int, name: str | None = "T",
           **extra: Any) -> requests.Response:
    task: dict[str, Any] = {"description": extra.pop("description", "")}
    if name is not None:
        task["name"] = name
    if "assignees" in extra:
        task["assignees"] = {"userIds": extra.pop("assignees")}
    return http.post(f"{tw.url}{V3}/tasklists/{tasklist}/tasks.json",
                     json={"task": task, **extra})


def test_auth_is_the_token_as_basic_user_name(tw: TeamworkSim) -> None:
    for auth in [None, ("wrong", "X"), ("X", TOKEN)]:
        answer = requests.get(f"{tw.url}{V3}/me.json", auth=auth)
        assert answer.status_code == 401
        assert answer.json()["errors"][0]["title"] == "Unauthorized"
    me = requests.get(f"{tw.url}{V3}/me.json", auth=(TOKEN, "anything")).json()["person"]
    assert me["id"] == tw.me_id


def test_an_oauth_token_is_a_bearer_token_of_the_integration_user(tw: TeamworkSim) -> None:
    def me(header: str) -> requests.Response:
        return requests.get(f"{tw.url}{V3}/me.json", headers={"Authorization": header})

    assert me(f"Bearer {tw.oauth_token}").json()["person"]["id"] == tw.me_id
    for header in ("Bearer wrong", f"Bearer {TOKEN}", "Bearer "):
        answer = me(header)
        assert answer.status_code == 401 and "x-ratelimit-limit" in answer.headers, header


def test_create_task_shape_and_errors(tw: TeamworkSim, http: requests.Session,
                                      setup: dict[str, int]) -> None:
    answer = create(http, tw, setup["tasklist"], "#1 Printer", description="body",
                    assignees=[setup["alice"]])
    assert answer.status_code == 201
    task = answer.json()["task"]
    assert isinstance(task["id"], int)
    # the SDK's Task: the list as a relationship, no flat tasklistId, no projectId
    assert {k: task[k] for k in ("name", "description", "status", "tasklist", "assignees",
                                 "completedAt", "deletedAt")} == {
        "name": "#1 Printer", "description": "body", "status": "new",
        "tasklist": {"id": setup["tasklist"], "type": "tasklists"},
        "assignees": [{"id": setup["alice"], "type": "users"}],
        "completedAt": None, "deletedAt": None}
    assert "tasklistId" not in task and "projectId" not in task
    assert task["createdAt"] == task["updatedAt"] == "2023-11-14T22:13:20Z"

    missing = create(http, tw, setup["tasklist"], None)
    assert missing.status_code == 400
    error = missing.json()["errors"][0]
    assert set(error) == {"code", "title", "detail", "id", "meta"}
    assert create(http, tw, setup["tasklist"], "   ").status_code == 400
    unknown = create(http, tw, 999999, "x")
    assert unknown.status_code == 404 and unknown.content == b""
    assert len(tw.tasks()) == 1


def test_invalid_assignees_dropped_or_refused(tw: TeamworkSim, http: requests.Session,
                                              setup: dict[str, int]) -> None:
    people = [setup["alice"], setup["outsider"], 424242]
    dropped = create(http, tw, setup["tasklist"], "x", assignees=people).json()["task"]
    assert dropped["assignees"] == [{"id": setup["alice"], "type": "users"}]
    refused = create(http, tw, setup["tasklist"], "y", assignees=people,
                     taskOptions={"checkInvalidusers": True})
    assert refused.status_code == 400 and "errors" in refused.json()
    assert len(tw.tasks()) == 1


@pytest.mark.parametrize("method", ["PATCH", "PUT"])
def test_update_task(tw: TeamworkSim, http: requests.Session, setup: dict[str, int],
                     method: str, clock: Clock) -> None:
    tid = create(http, tw, setup["tasklist"], "old", description="d").json()["task"]["id"]
    url = f"{tw.url}{V3}/tasks/{tid}.json"
    clock.advance(10)
    answer = http.request(method, url, json={"task": {"name": "new", "assignees": {
        "userIds": [setup["alice"]]}}})
    assert answer.status_code == 200
    task = answer.json()["task"]
    assert (task["name"], task["description"]) == ("new", "d")
    assert task["assignees"] == [{"id": setup["alice"], "type": "users"}]
    assert task["updatedAt"] == "2023-11-14T22:13:30Z"
    # null dimension: unchanged; empty arrays: "Anyone"
    kept = http.request(method, url, json={"task": {"assignees": {"userIds": None}}})
    assert kept.json()["task"]["assignees"] == [{"id": setup["alice"], "type": "users"}]
    anyone = http.request(method, url, json={"task": {"assignees": {
        "userIds": [], "companyIds": [], "teamIds": [], "jobRoleIds": []}}})
    assert anyone.json()["task"]["assignees"] == []
    assert http.request(method, url, json={"task": {"name": ""}}).status_code == 400
    assert http.request(method, url, json={"task": {"status": "completed"}}).status_code == 400
    assert http.request(method, f"{tw.url}{V3}/tasks/1.json",
                        json={"task": {"name": "x"}}).status_code == 404


def test_complete_and_uncomplete_are_v1_and_idempotent(
        tw: TeamworkSim, http: requests.Session, setup: dict[str, int], clock: Clock) -> None:
    tid = create(http, tw, setup["tasklist"]).json()["task"]["id"]
    for _ in range(2):
        answer = http.put(f"{tw.url}/tasks/{tid}/complete.json")
        assert (answer.status_code, answer.json()) == (200, {"STATUS": "OK"})
        # a repeated complete changes nothing: completedAt stays at the first one
        assert tw.task(tid)["status"] == "completed"
        assert tw.task(tid)["completedAt"] == "2023-11-14T22:13:20Z"
        clock.advance(5)
    for _ in range(2):
        answer = http.put(f"{tw.url}/tasks/{tid}/uncomplete.json")
        assert (answer.status_code, answer.json()) == (200, {"STATUS": "OK"})
        assert tw.task(tid)["status"] == "reopened" and tw.task(tid)["completedAt"] is None
    tw.delete_task(tid)
    gone = http.put(f"{tw.url}/tasks/{tid}/complete.json")
    assert gone.status_code == 404 and gone.json()["STATUS"] == "Error"


def test_a_deleted_task_answers_200_unless_hide_deleted_and_delete_again_is_404(
        tw: TeamworkSim, http: requests.Session, setup: dict[str, int]) -> None:
    """Was: a GET of a deleted task answered 404 by default. Teamwork answers 200 with
    the deleted task unless ``hideDeleted=true`` (Teamwork/mcp pull request #533)."""
    tid = create(http, tw, setup["tasklist"]).json()["task"]["id"]
    url = f"{tw.url}{V3}/tasks/{tid}.json"
    assert http.get(url).json()["task"]["id"] == tid
    deleted = http.delete(url)
    assert deleted.status_code == 204 and deleted.content == b""
    shown = http.get(url)
    assert shown.status_code == 200
    assert shown.json()["task"]["status"] == "deleted" and shown.json()["task"]["deletedAt"]
    for answer in (http.get(url, params={"hideDeleted": "true"}), http.delete(url),
                   http.delete(f"{tw.url}{V3}/tasks/7.json"),
                   http.get(f"{tw.url}{V3}/tasks/7.json")):
        assert answer.status_code == 404 and answer.content == b""
    trashed = tw.task(tid)
    assert trashed["status"] == "deleted" and trashed["deletedAt"]
    assert tw.tasks() == [] and [t["id"] for t in tw.tasks(include_deleted=True)] == [tid]


def test_list_search_completed_deleted_and_paging(tw: TeamworkSim, http: requests.Session,
                                                  setup: dict[str, int]) -> None:
    tl = setup["tasklist"]
    ids = [create(http, tw, tl, f"[ZD-{n}] task", description=f"Zendesk ticket: x/{n}")
           .json()["task"]["id"] for n in range(7)]
    tw.complete_task(ids[0])
    tw.delete_task(ids[1])
    url = f"{tw.url}{V3}/tasklists/{tl}/tasks.json"

    def listed(**params: Any) -> list[int]:
        return [t["id"] for t in http.get(url, params=params).json()["tasks"]]

    assert listed() == ids[2:]
    assert listed(includeCompletedTasks="true") == [ids[0], *ids[2:]]
    assert listed(includeCompletedTasks="true", showDeleted="true") == ids
    assert listed(searchTerm="zd-3") == [ids[3]]
    assert listed(searchTerm="X/4") == [ids[4]]  # description
    assert listed(searchTerm="zd-0") == []  # completed, not included
    assert listed(searchTerm="ZENDESK TICKETS") == ids[2:]  # task-list name
    page = http.get(url, params={"pageSize": 2, "page": 2}).json()
    assert [t["id"] for t in page["tasks"]] == ids[4:6]
    assert page["meta"]["page"] == {"pageOffset": 1, "pageSize": 2, "count": 5,
                                    "hasMore": True}
    last = http.get(url, params={"pageSize": 2, "page": 3}).json()
    assert last["meta"]["page"]["hasMore"] is False and len(last["tasks"]) == 1
    assert http.get(url, params={"pageSize": 9999}).json()["meta"]["page"]["pageSize"] == 500
    assert http.get(url, params={"page": 0}).status_code == 400
    by_ids = http.get(f"{tw.url}{V3}/tasks.json", params={"ids": f"{ids[2]},{ids[5]}"})
    assert [t["id"] for t in by_ids.json()["tasks"]] == [ids[2], ids[5]]
    assert http.get(f"{tw.url}{V3}/tasklists/1/tasks.json").status_code == 404


def test_tasklists_create_v1_and_list_v3(tw: TeamworkSim, http: requests.Session,
                                         setup: dict[str, int]) -> None:
    url = f"{tw.url}/projects/{setup['project']}/tasklists.json"
    answer = http.post(url, json={"todo-list": {"name": "Escalations"}})
    assert answer.status_code == 201
    body = answer.json()
    assert body["STATUS"] == "OK" and isinstance(body["TASKLISTID"], str)
    new_id = int(body["TASKLISTID"])
    assert http.post(url, json={"name": "no wrapper"}).status_code == 422
    assert http.post(f"{tw.url}/projects/1/tasklists.json",
                     json={"todo-list": {"name": "x"}}).status_code == 404
    lists = http.get(f"{tw.url}{V3}/projects/{setup['project']}/tasklists.json",
                     params={"searchTerm": "escal"}).json()
    assert [t["id"] for t in lists["tasklists"]] == [new_id]
    assert lists["meta"]["page"]["count"] == 1


def test_people_and_projects(tw: TeamworkSim, http: requests.Session,
                             setup: dict[str, int]) -> None:
    found = http.get(f"{tw.url}{V3}/people.json", params={"searchTerm": "alice@example.com"})
    people = found.json()["people"]
    assert [p["id"] for p in people] == [setup["alice"]]
    assert {"id", "firstName", "lastName", "email"} <= set(people[0])
    members = http.get(f"{tw.url}{V3}/projects/{setup['project']}/people.json").json()
    assert {p["id"] for p in members["people"]} == {tw.me_id, setup["alice"]}
    person = http.get(f"{tw.url}{V3}/people/{setup['outsider']}.json").json()["person"]
    assert person["email"] == "olga@example.com"
    assert http.get(f"{tw.url}{V3}/people/1.json").status_code == 404
    project = http.get(f"{tw.url}{V3}/projects/{setup['project']}.json").json()["project"]
    assert project["name"] == "Support"


def test_rate_limit_headers_429_and_60s_lockout(clock: Clock) -> None:
    with TeamworkSim(TOKEN, clock, rate_limit_per_minute=5) as tw:
        http = requests.Session()
        http.auth = (TOKEN, "X")
        url = f"{tw.url}{V3}/me.json"
        remaining = []
        for _ in range(5):
            answer = http.get(url)
            assert answer.status_code == 200
            assert answer.headers["x-ratelimit-limit"] == "5"
            remaining.append(int(answer.headers["x-ratelimit-remaining"]))
        assert remaining == [4, 3, 2, 1, 0]
        clock.advance(30)
        limited = http.get(url)
        assert limited.status_code == 429 and limited.text == RATE_LIMIT_TEXT
        assert limited.headers["x-ratelimit-remaining"] == "0"
        assert limited.headers["x-ratelimit-reset"] == "60"
        clock.advance(40)  # the first window would have ended: the lock-out has not
        assert http.get(url).status_code == 429
        clock.advance(19)
        assert http.get(url).headers["x-ratelimit-reset"] == "1"
        clock.advance(1.5)
        answer = http.get(url)
        assert answer.status_code == 200 and answer.headers["x-ratelimit-remaining"] == "4"


def test_error_faults_do_not_execute_the_request(tw: TeamworkSim, http: requests.Session,
                                                 setup: dict[str, int]) -> None:
    tw.faults.set(error_rate=1.0, error_statuses=(500, 503))
    statuses = {create(http, tw, setup["tasklist"]).status_code for _ in range(20)}
    assert statuses == {500, 503}
    assert tw.tasks() == []
    assert requests.get(f"{tw.url}/_sim/health").status_code == 200
    tw.faults.set(error_rate=0.5)
    statuses = [http.get(f"{tw.url}{V3}/me.json").status_code for _ in range(40)]
    assert 200 in statuses and (500 in statuses or 503 in statuses)


def test_latency_fault(tw: TeamworkSim, http: requests.Session) -> None:
    tw.faults.latency_seconds = 0.15
    started = time.monotonic()
    assert http.get(f"{tw.url}{V3}/me.json").status_code == 200
    assert time.monotonic() - started >= 0.15  # a lower bound: holds however busy the machine
    tw.faults.latency_seconds = 30.0  # far above what a request takes on a busy machine
    tw.faults.routes = {f"{V3}/people"}  # only that route is slowed down now
    started = time.monotonic()
    http.get(f"{tw.url}{V3}/me.json")
    assert time.monotonic() - started < 30.0


def test_lost_create_response_commits_the_task(tw: TeamworkSim, http: requests.Session,
                                               setup: dict[str, int]) -> None:
    tw.faults.lose_next_creates(1)
    with pytest.raises(requests.ConnectionError):
        create(http, tw, setup["tasklist"], "[ZD-9] lost")
    assert [t["name"] for t in tw.tasks()] == ["[ZD-9] lost"]
    entry = tw.log.entries()[-1]
    assert (entry.method, entry.route, entry.status) == (
        "POST", f"POST {V3}/tasklists/{{id}}/tasks", None)
    assert create(http, tw, setup["tasklist"], "next").status_code == 201
    tw.faults.lost_create_rate = 1.0
    assert http.get(f"{tw.url}{V3}/me.json").status_code == 200  # only creates are lost
    with pytest.raises(requests.ConnectionError):
        http.post(f"{tw.url}/projects/{setup['project']}/tasklists.json",
                  json={"todo-list": {"name": "lost list"}})
    assert "lost list" in [t["name"] for t in tw.tasklists()]


def test_request_log_counts(tw: TeamworkSim, http: requests.Session,
                            setup: dict[str, int]) -> None:
    tid = create(http, tw, setup["tasklist"]).json()["task"]["id"]
    http.put(f"{tw.url}/tasks/{tid}/complete.json")
    http.get(f"{tw.url}{V3}/tasks/{tid}.json", params={"include": "users"})
    counts = tw.log.counts()
    assert counts[("PUT", "/tasks/{id}/complete")] == 1
    assert counts[("GET", f"{V3}/tasks/{{id}}")] == 1
    assert tw.log.entries()[-1].query == {"include": "users"}
    assert tw.log.count(path=f"{V3}/tasks/*") == 1
    tw.log.clear()
    assert len(tw.log) == 0


def test_completed_task_lists_hide_their_tasks_and_themselves(
        tw: TeamworkSim, http: requests.Session, setup: dict[str, int]) -> None:
    """Teamwork's defaults, from its SDK (TW §5, §7.2, §8): v3 task lists leave out tasks of
    completed lists unless showCompletedLists=true, and the list of task lists leaves out
    completed lists unless showCompleted=true."""
    tl, project = setup["tasklist"], setup["project"]
    other = tw.add_tasklist(project, "Other")
    done = tw.create_task(tl, "[ZD-1] done", "Zendesk ticket: x/1")
    tw.complete_task(done)
    open_task = tw.create_task(tl, "[ZD-2] open", "Zendesk ticket: x/2")
    elsewhere = tw.create_task(other, "[ZD-3] elsewhere")
    tw.complete_tasklist(tl)
    assert tw.tasklists()[0]["status"] == "completed"

    def listed(path: str, **params: Any) -> list[int]:
        return [t["id"] for t in http.get(f"{tw.url}{V3}{path}", params=params).json()["tasks"]]

    every = {"includeCompletedTasks": "true"}
    for path in (f"/tasklists/{tl}/tasks.json", f"/projects/{project}/tasks.json",
                 "/tasks.json"):
        assert open_task not in listed(path, **every), path
        assert {done, open_task} <= set(listed(path, showCompletedLists="true", **every))
        assert done not in listed(path, showCompletedLists="true")  # completed task: no
    assert listed("/tasks.json") == [elsewhere]
    assert http.get(f"{tw.url}{V3}/tasks/{open_task}.json").status_code == 200  # by id: yes

    def lists(**params: Any) -> list[int]:
        answer = http.get(f"{tw.url}{V3}/projects/{project}/tasklists.json", params=params)
        return [t["id"] for t in answer.json()["tasklists"]]

    assert lists() == [other]
    assert lists(showCompleted="true") == [tl, other]
    assert http.get(f"{tw.url}{V3}/tasklists/{tl}.json").json()["tasklist"]["id"] == tl
    tw.reopen_tasklist(tl)
    assert lists() == [tl, other] and open_task in listed(f"/tasklists/{tl}/tasks.json")


def test_the_client_sees_tasks_and_lists_someone_completed(
        tw: TeamworkSim, setup: dict[str, int]) -> None:
    """What the audit, the lost-create search and the task-list lookup rely on."""
    from zdsync.config import Secret, TeamworkSettings
    from zdsync.teamwork import TeamworkClient

    client = TeamworkClient(TeamworkSettings(url=tw.url, api_token=Secret(TOKEN),
                                             project_id=setup["project"], rate_limit=100000))
    tl = setup["tasklist"]
    link = "https://sim.zendesk.com/agent/tickets/7"
    task = tw.create_task(tl, "[ZD#7] Printer", f"Zendesk ticket: {link}")
    tw.complete_task(task)
    tw.complete_tasklist(tl)
    assert [t.id for t in client.find_ticket_tasks(tl, link)] == [task]
    assert set(client.tasks_by_ids([task])) == {task}
    assert [t.id for t in client.tasklists(setup["project"], "Zendesk tickets")] == [tl]


# -- variants: every answer Teamwork might give where nobody outside knows ---------------


def variant_sim(clock: Clock, **chosen: str) -> TeamworkSim:
    return TeamworkSim(TOKEN, clock, variants=Variants(**chosen)).start()


@pytest.mark.parametrize("flat", ["absent", "present"])
def test_flat_tasklist_id_beside_the_relationship_only_under_its_variant(
        clock: Clock, http: requests.Session, flat: str) -> None:
    with variant_sim(clock, flat_tasklist_id=flat) as sim:
        tasklist = sim.add_tasklist(sim.add_project("P"), "L")
        task = create(http, sim, tasklist).json()["task"]
        assert task["tasklist"] == {"id": tasklist, "type": "tasklists"}
        assert ("tasklistId" in task) == (flat == "present") and "projectId" not in task
        assert sim.task(task["id"])["tasklistId"] == tasklist  # the tests' view knows


@pytest.mark.parametrize("answer", ["404", "200"])
def test_an_update_of_a_deleted_task(clock: Clock, http: requests.Session, answer: str) -> None:
    with variant_sim(clock, update_deleted=answer) as sim:
        tid = sim.create_task(sim.add_tasklist(sim.add_project("P"), "L"), "T")
        sim.delete_task(tid)
        for method in ("PATCH", "PUT"):
            got = http.request(method, f"{sim.url}{V3}/tasks/{tid}.json",
                               json={"task": {"name": "new"}})
            assert got.status_code == int(answer)
            if answer == "200":  # says it is deleted, and changed nothing
                assert got.json()["task"]["status"] == "deleted"
        assert sim.task(tid)["name"] == "T"


@pytest.mark.parametrize("edits", ["accepted", "refused"])
def test_edits_and_moves_of_a_completed_task(clock: Clock, http: requests.Session,
                                             edits: str) -> None:
    with variant_sim(clock, completed_edits=edits) as sim:
        project = sim.add_project("P")
        first, second = sim.add_tasklist(project, "A"), sim.add_tasklist(project, "B")
        tid = sim.create_task(first, "T")
        sim.complete_task(tid)
        patched = http.patch(f"{sim.url}{V3}/tasks/{tid}.json", json={"task": {"name": "new"}})
        moved = http.put(f"{sim.url}/tasks/{tid}/move.json", json={"taskListId": second})
        if edits == "refused":
            assert (patched.status_code, moved.status_code) == (400, 400)
            assert patched.json()["errors"][0]["code"] == "task_completed"
            assert (sim.task(tid)["name"], sim.task(tid)["tasklistId"]) == ("T", first)
            sim.uncomplete_task(tid)  # reopened, the same edit is taken
            assert http.patch(f"{sim.url}{V3}/tasks/{tid}.json",
                              json={"task": {"name": "new"}}).status_code == 200
        else:
            assert (patched.status_code, moved.status_code) == (200, 200)
            assert sim.task(tid)["tasklistId"] == second
        assert sim.task(tid)["name"] == "new"


@pytest.mark.parametrize("repeat", ["idempotent", "refused"])
def test_complete_and_uncomplete_repeated(clock: Clock, http: requests.Session,
                                          repeat: str) -> None:
    with variant_sim(clock, repeat_state=repeat) as sim:
        tid = sim.create_task(sim.add_tasklist(sim.add_project("P"), "L"), "T")
        url = f"{sim.url}/tasks/{tid}"
        first_open = http.put(f"{url}/uncomplete.json")
        assert http.put(f"{url}/complete.json").status_code == 200
        again = http.put(f"{url}/complete.json")
        assert sim.task(tid)["status"] == "completed"
        expected = 200 if repeat == "idempotent" else 400
        assert (first_open.status_code, again.status_code) == (expected, expected)
        if repeat == "refused":
            assert again.json()["STATUS"] == "Error"


@pytest.mark.parametrize("existing", ["returned", "409"])
def test_creating_a_tag_whose_name_exists(clock: Clock, http: requests.Session,
                                          existing: str) -> None:
    with variant_sim(clock, existing_tag=existing) as sim:
        made = sim.add_tag("VIP")
        again = http.post(f"{sim.url}{V3}/tags.json", json={"tag": {"name": "vip"}})
        if existing == "returned":
            assert (again.status_code, again.json()["tag"]["id"]) == (200, made)
        else:
            assert again.status_code == 409 and again.json()["errors"]
        assert [t["id"] for t in sim.tags()] == [made]


def test_variants_are_listed_in_one_place_and_checked() -> None:
    sets = every_value()
    for name, values in VARIANTS.items():  # every value is in one of the fewest sets
        assert {getattr(v, name) for v in sets} == set(values)
    assert sets[0] == Variants()
    assert Variants.parse(["existing_tag=409"]) == Variants(existing_tag="409")
    assert str(Variants(existing_tag="409")) == "existing_tag=409"
    for bad in (["existing_tag=maybe"], ["nope=1"], ["existing_tag"]):
        with pytest.raises(ValueError, match=r"existing_tag|name=value"):
            Variants.parse(bad)


@pytest.mark.parametrize("module", ["tests/e2e/test_e2e.py", "tests/e2e/test_daemon.py"])
def test_the_rotated_e2e_modules_run_under_every_variant_set(module: str) -> None:
    """Each e2e module runs each test under one variant set (``rotated_teamwork_variants``):
    between them its tests must take every set, in every CI run."""
    tree = ast.parse((Path(__file__).parents[2] / module).read_text())
    tests = [n.name for n in tree.body
             if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
    assert {rotation(f"{module}::{name}") for name in tests} == set(range(len(every_value())))
