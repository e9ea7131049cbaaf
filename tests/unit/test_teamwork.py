"""The Teamwork client with requests-mock: shapes, throttling, typed errors."""

from __future__ import annotations

import base64

import pytest
import requests

from zdsync.config import Secret, TeamworkSettings
from zdsync.errors import (
    AmbiguousWrite,
    NotFound,
    PermanentError,
    RetryableError,
    Unauthorized,
)
from zdsync.metrics import Metrics
from zdsync.teamwork import TeamworkClient, ratelimit_wait_seconds

BASE = "https://acme.teamwork.com"
V3 = BASE + "/projects/api/v3"


@pytest.fixture
def client():
    sleeps: list[float] = []
    c = TeamworkClient(TeamworkSettings("acme", Secret("twtok"), 1, rate_limit=6000),
                       metrics=Metrics(), sleep=sleeps.append)
    c.sleeps = sleeps  # type: ignore[attr-defined]
    c.http.rng = lambda: 1.0
    return c


def task_json(tid=5, name="[ZD#1] a", assignees=(7,), status="new"):
    """A v3 task as the official SDK's ``Task`` has it: the list as a relationship, no
    ``projectId`` (Teamwork/twapi-go-sdk ``projects/task.go``)."""
    return {"task": {"id": tid, "name": name, "description": "d", "status": status,
                     "tasklist": {"id": 3, "type": "tasklists"},
                     "assignees": [{"id": a, "type": "users"} for a in assignees]}}


@pytest.fixture(autouse=True)
def tasklist_3(requests_mock):
    """Task list 3 is in project 1: what the client reads a task's project through."""
    requests_mock.get(V3 + "/tasklists/3.json",
                      json={"tasklist": {"id": 3, "name": "Zendesk", "projectId": 1}})


def test_create_sends_v3_body_and_reads_task(client, requests_mock):
    requests_mock.post(V3 + "/tasklists/3/tasks.json", status_code=201, json=task_json())
    task = client.create_task(3, "[ZD#1] a", "Zendesk ticket: x", 7)
    assert (task.id, task.assignee, task.completed) == (5, 7, False)
    sent = requests_mock.last_request.json()
    assert sent["task"]["name"] == "[ZD#1] a"
    assert sent["task"]["assignees"]["userIds"] == [7]
    assert sent["taskOptions"]["checkInvalidusers"] is True
    auth = requests_mock.last_request.headers["Authorization"].split()[1]
    assert base64.b64decode(auth).decode() == "twtok:X"


def test_create_unassigned_sends_empty_arrays(client, requests_mock):
    requests_mock.post(V3 + "/tasklists/3/tasks.json", status_code=201,
                       json=task_json(assignees=()))
    client.create_task(3, "t", "d", None)
    assert requests_mock.last_request.json()["task"]["assignees"] == {
        "userIds": [], "companyIds": [], "teamIds": [], "jobRoleIds": []}


@pytest.mark.parametrize("response", [
    {"exc": requests.exceptions.ReadTimeout},
    {"exc": requests.exceptions.ConnectionError("reset by peer")},
    {"status_code": 502},
    {"status_code": 500},
])
def test_create_is_never_repeated_on_an_unknown_outcome(client, requests_mock, response):
    requests_mock.post(V3 + "/tasklists/3/tasks.json", [response])
    with pytest.raises(AmbiguousWrite):
        client.create_task(3, "t", "d", None)
    assert requests_mock.call_count == 1


def test_create_repeated_after_429_refusal(client, requests_mock):
    requests_mock.post(V3 + "/tasklists/3/tasks.json", [
        {"status_code": 429, "headers": {"x-ratelimit-reset": "3"}},
        {"status_code": 201, "json": task_json()}])
    assert client.create_task(3, "t", "d", None).id == 5
    assert requests_mock.call_count == 2
    assert client.sleeps[-1] == pytest.approx(3, abs=0.1)


def test_update_sends_only_changed_fields(client, requests_mock):
    requests_mock.patch(V3 + "/tasks/5.json", json=task_json())
    client.update_task(5, name="new")
    assert requests_mock.last_request.json()["task"] == {"name": "new"}
    client.update_task(5, assignee=None)
    assert requests_mock.last_request.json()["task"] == {"assignees": {
        "userIds": [], "companyIds": [], "teamIds": [], "jobRoleIds": []}}


def test_complete_reopen_use_v1(client, requests_mock):
    requests_mock.put(BASE + "/tasks/5/complete.json", json={"STATUS": "OK"})
    requests_mock.put(BASE + "/tasks/5/uncomplete.json", json={"STATUS": "OK"})
    client.complete_task(5)
    client.reopen_task(5)
    assert [r.path for r in requests_mock.request_history] == [
        "/tasks/5/complete.json", "/tasks/5/uncomplete.json"]


def test_delete_404_means_already_gone(client, requests_mock):
    requests_mock.delete(V3 + "/tasks/5.json", [{"status_code": 204}, {"status_code": 404}])
    assert client.delete_task(5) is True
    assert client.delete_task(5) is False


def test_get_missing_or_deleted_is_none(client, requests_mock):
    """Deleted: a 404 (asked with hideDeleted), ``status: "deleted"``, or a ``deletedAt``
    (a deleted task answers 200 unless hidden: Teamwork/mcp pull request #533)."""
    requests_mock.get(V3 + "/tasks/5.json", status_code=404)
    requests_mock.get(V3 + "/tasks/6.json", json=task_json(6, status="deleted"))
    stamped = task_json(7)
    stamped["task"]["deletedAt"] = "2026-12-01T10:00:00Z"
    requests_mock.get(V3 + "/tasks/7.json", json=stamped)
    requests_mock.get(V3 + "/tasks/8.json", json=task_json(8))
    assert client.get_task(5) is None
    assert client.get_task(6) is None
    assert client.get_task(7) is None
    assert client.get_task(8).id == 8
    reads = [r for r in requests_mock.request_history if "/tasks/" in r.path]
    assert all(r.qs["hidedeleted"] == ["true"] for r in reads)


@pytest.mark.parametrize("spelling", [
    {"tasklist": {"id": 3, "type": "tasklists"}},  # the SDK's relationship
    {"tasklistId": 3},  # the 2021 spec's flat field
    {"tasklistId": "3", "tasklist": {"id": 3, "type": "tasklists"}},  # both
])
def test_the_list_from_either_spelling_and_the_project_through_the_list_once(
        client, requests_mock, spelling):
    for tid in (5, 6):
        requests_mock.get(f"{V3}/tasks/{tid}.json", json={"task": {
            "id": tid, "name": "n", "description": "", "status": "new", **spelling}})
    first, second = client.get_task(5), client.get_task(6)
    assert (first.tasklist_id, second.tasklist_id) == (3, 3)
    assert first.project_id is None  # the answer does not say: the list does
    assert [client.project_of_list(t.tasklist_id) for t in (first, second)] == [1, 1]
    lists_read = [r for r in requests_mock.request_history if r.path.endswith("lists/3.json")]
    assert len(lists_read) == 1  # remembered: no extra request per ticket
    client.forget_list(3)
    assert client.project_of_list(3) == 1
    assert requests_mock.call_count == 4


def test_a_project_in_the_answer_or_the_list_listing_costs_no_read(client, requests_mock):
    requests_mock.get(V3 + "/tasks/5.json", json={"task": {
        "id": 5, "name": "n", "status": "new", "tasklistId": 3, "projectId": 2}})
    requests_mock.get(V3 + "/projects/1/tasklists.json", json={
        "tasklists": [{"id": 4, "name": "B", "project": {"id": 1, "type": "projects"}}],
        "meta": {"page": {"hasMore": False}}})
    assert client.get_task(5).project_id == 2
    client.tasklists(1)
    assert client.project_of_list(4) == 1
    assert [r.path for r in requests_mock.request_history] == [
        "/projects/api/v3/tasks/5.json", "/projects/api/v3/projects/1/tasklists.json"]


@pytest.mark.parametrize("unset", [None, "", "none"])
def test_an_unset_priority_reads_as_none_and_none_is_sent_as_null(client, requests_mock,
                                                                   unset):
    answer = task_json()
    answer["task"]["priority"] = unset
    requests_mock.get(V3 + "/tasks/5.json", json=answer)
    requests_mock.patch(V3 + "/tasks/5.json", json=answer)
    assert client.get_task(5).priority == "none"
    client.update_task(5, priority="none")
    assert requests_mock.last_request.json()["task"] == {"priority": None}
    client.update_task(5, priority="high")
    assert requests_mock.last_request.json()["task"] == {"priority": "high"}


def test_an_update_answered_with_a_deleted_task_is_not_found(client, requests_mock):
    """Whether an update of a deleted task answers 404 or 200 is unknown: a 200 whose task
    says it is deleted is the same news."""
    requests_mock.patch(V3 + "/tasks/6.json", json=task_json(6, status="deleted"))
    with pytest.raises(NotFound):
        client.update_task(6, name="new")
    requests_mock.patch(V3 + "/tasks/5.json", status_code=200, text="")
    client.update_task(5, name="new")  # an answer without a body is fine


def test_find_ticket_tasks_pages_and_matches_exactly(client, requests_mock):
    def task(tid, desc, status="new"):
        return {"id": tid, "name": "n", "description": desc, "status": status}
    link = "https://acme.zendesk.com/agent/tickets/12"
    requests_mock.get(V3 + "/tasklists/3/tasks.json", [
        {"json": {"tasks": [task(1, f"Zendesk ticket: {link}"), task(2, f"x {link}3")],
                  "meta": {"page": {"hasMore": True}}}},
        {"json": {"tasks": [task(3, f"{link}\n", "completed"), task(4, link, "deleted")],
                  "meta": {"page": {"hasMore": False}}}}])
    found = client.find_ticket_tasks(3, link)
    assert [t.id for t in found] == [1, 3]
    assert {t.tasklist_id for t in found} == {3}  # listed from list 3
    first, second = (r.qs for r in requests_mock.request_history
                     if r.path.endswith("/tasks.json"))
    assert first["searchterm"] == ["12"] and first["includecompletedtasks"] == ["true"]
    assert second["page"] == ["2"]


def test_tasklist_create_reads_upper_case_string_id(client, requests_mock):
    requests_mock.post(BASE + "/projects/1/tasklists.json", status_code=201,
                       json={"TASKLISTID": "1234", "STATUS": "OK"})
    assert client.create_tasklist(1, "Zendesk") == 1234
    assert requests_mock.last_request.json() == {"todo-list": {"name": "Zendesk"}}


def test_permanent_and_retryable_errors_are_typed(client, requests_mock):
    requests_mock.patch(V3 + "/tasks/5.json", status_code=400,
                        json={"errors": [{"detail": "invalid user"}]})
    with pytest.raises(PermanentError, match="400"):
        client.update_task(5, assignee=9)
    requests_mock.put(BASE + "/tasks/5/complete.json", status_code=503)
    with pytest.raises(RetryableError):
        client.complete_task(5)
    assert requests_mock.call_count == 1 + 5


@pytest.mark.parametrize(("status", "headers", "wait"), [
    (429, {}, 60.0),
    (429, {"x-ratelimit-reset": "12"}, 12.0),
    (429, {"x-ratelimit-reset": str(1_000_000_030)}, 30.0),
    (400, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "5"}, 5.0),
    (400, {"x-ratelimit-remaining": "3"}, None),
    (200, {"x-ratelimit-remaining": "0"}, None),
])
def test_ratelimit_wait(status, headers, wait):
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers)
    assert ratelimit_wait_seconds(response, now=1_000_000_000) == wait


def test_requests_are_paced_under_the_rate_limit(requests_mock):
    sleeps: list[float] = []
    c = TeamworkClient(TeamworkSettings("acme", Secret("t"), 1, rate_limit=60 / 0.9),
                       sleep=sleeps.append)
    requests_mock.put(BASE + "/tasks/5/complete.json", json={"STATUS": "OK"})
    for _ in range(3):
        c.complete_task(5)
    # 60/min = one a second; the sleeps are fake, so waits accumulate: ~0, ~1, ~2.
    assert sleeps[0] == pytest.approx(1.0, abs=0.1) and sleeps[1] == pytest.approx(2.0, abs=0.1)


@pytest.mark.parametrize(("status", "names"), [
    (401, ["teamwork.api_token", "TEAMWORK_API_TOKEN"]),
    (403, ["integration user", "permission", "teamwork.project_id"]),
])
def test_401_and_403_are_unauthorized_and_say_what_to_fix(client, requests_mock, status,
                                                          names):
    requests_mock.put(BASE + "/tasks/5/complete.json", status_code=status,
                      json={"STATUS": "Error", "MESSAGE": "twtok is not valid"})
    with pytest.raises(Unauthorized) as info:
        client.complete_task(5)
    message = str(info.value)
    assert all(name in message for name in names), message
    assert "twtok" not in message  # never the token, even when the body repeats it
    assert isinstance(info.value, PermanentError) and info.value.status == status
    assert requests_mock.call_count == 1


def test_calls_that_must_see_every_task_ask_for_completed_lists_too(client, requests_mock):
    """Teamwork hides the tasks of a completed task list, and completed lists, unless
    asked (showCompletedLists, showCompleted): the audit, the lost-create search and the
    task-list lookup would miss them and create duplicates."""
    empty = {"meta": {"page": {"hasMore": False}}}
    requests_mock.get(V3 + "/tasks.json", json={"tasks": [], **empty})
    requests_mock.get(V3 + "/tasklists/3/tasks.json", json={"tasks": [], **empty})
    requests_mock.get(V3 + "/projects/1/tasklists.json", json={"tasklists": [], **empty})
    client.tasks_by_ids([5, 6])
    client.find_ticket_tasks(3, "https://acme.zendesk.com/agent/tickets/12")
    client.tasklists(1, "Zendesk")
    by_ids, search, lists = (r.qs for r in requests_mock.request_history)
    for qs in (by_ids, search):
        assert qs["showcompletedlists"] == ["true"] and qs["includecompletedtasks"] == ["true"]
    assert lists["showcompleted"] == ["true"] and lists["searchterm"] == ["zendesk"]


def test_tasklist_named_is_the_oldest_list_of_exactly_that_name(client, requests_mock):
    """``searchTerm`` also answers lists whose names only contain the term."""
    requests_mock.get(V3 + "/projects/1/tasklists.json", json={
        "tasklists": [{"id": 4, "name": "Zendesk (old)"}, {"id": 9, "name": "Zendesk"},
                      {"id": 7, "name": "Zendesk"}, {"id": 2, "name": "zendesk"}],
        "meta": {"page": {"hasMore": False}}})
    assert client.tasklist_named(1, "Zendesk") == 7
    assert client.tasklist_named(1, "Zendesk (new)") is None


def test_an_oauth_token_is_sent_as_bearer_and_the_api_token_not_at_all(requests_mock):
    c = TeamworkClient(TeamworkSettings("acme", None, 1, oauth_token=Secret("tw-oauth")),
                       metrics=Metrics())
    requests_mock.get(V3 + "/me.json", json={"person": {"id": 7}})
    assert c.me().id == 7
    assert requests_mock.last_request.headers["Authorization"] == "Bearer tw-oauth"
    assert "tw-oauth" not in repr(c) + repr(c.http.session.auth)
