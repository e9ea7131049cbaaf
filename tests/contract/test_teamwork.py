"""The Teamwork client against Teamwork's answers.

Recorded: the real answers in ``teamwork-v1/`` (a v1 site, plus one v3 listing). No real
v3 task, task list, person or tag answer is recorded anywhere public, so the v3 objects
here are written from Teamwork's official Go SDK (``Teamwork/twapi-go-sdk``, the JSON
names of ``projects/task.go``, ``tasklist.go``, ``user.go``, ``tag.go``) and marked
"documented"; values that a v1 recording shows are taken from it.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract import recordings
from tests.contract.behaviours import covers
from tests.contract.conftest import TEAMWORK
from zdsync.tasks import Task, TaskList
from zdsync.teamwork import TeamworkClient
from zdsync.times import epoch_of, epoch_or_none

V3_PATH = "/projects/api/v3"
V3 = TEAMWORK + V3_PATH


def sdk_task(**fields: Any) -> dict[str, Any]:
    """A v3 task with exactly the fields of the SDK's ``Task`` (projects/task.go): the list
    as a relationship, no flat ``tasklistId`` and no ``projectId``."""
    return {
        "id": 5001, "name": "[ZD#7] Printer", "description": "Zendesk ticket: x",
        "descriptionContentType": "TEXT", "priority": None, "progress": 0,
        "startDate": None, "dueDate": None, "estimateMinutes": 0,
        "tasklist": {"id": 2952529, "type": "tasklists"}, "parentTask": None,
        "assignees": [{"id": 391604, "type": "users"}],
        "tags": [{"id": 256053, "type": "tags"}], "predecessors": [], "workflowStages": [],
        "createdBy": 391604, "createdAt": "2024-11-02T16:54:36Z",
        "updatedBy": 391604, "updatedAt": "2024-11-02T16:54:36Z",
        "deletedBy": None, "deletedAt": None, "status": "new", **fields,
    }


def sdk_tasklist(**fields: Any) -> dict[str, Any]:
    """A v3 task list with the fields of the SDK's ``Tasklist`` (projects/tasklist.go)."""
    return {"id": 2952529, "name": "My List", "description": "",
            "project": {"id": 967489, "type": "projects"}, "milestone": None,
            "createdAt": None, "updatedAt": None, "status": "new", **fields}


def listing(key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    """A one-page v3 listing, in the envelope the recorded v3 listing has."""
    meta = recordings.teamwork("projects_api_v3_customfields.json")["meta"]
    page = {**meta["page"], "count": len(items), "hasMore": False}
    return {key: items, "meta": {"page": page}, "included": {}}


@covers("teamwork.v3.paging")
def test_the_recorded_v3_listing_is_read_whole_and_ends(teamwork: TeamworkClient,
                                                        requests_mock: Any) -> None:
    body = recordings.teamwork("projects_api_v3_customfields.json")
    assert body["meta"]["page"]["hasMore"] is False
    requests_mock.get(V3 + "/customfields.json", json=body)
    # _pages: the paging every listing of the client runs
    read = list(teamwork._pages(V3_PATH + "/customfields.json", "customfields", {}))
    assert read == body["customfields"]
    assert requests_mock.call_count == 1
    assert requests_mock.last_request.qs["page"] == ["1"]


@covers("teamwork.v3.paging")
def test_a_recorded_envelope_saying_more_is_read_on(teamwork: TeamworkClient,
                                                    requests_mock: Any) -> None:
    body = recordings.teamwork("projects_api_v3_customfields.json")
    first = {**body, "meta": {"page": {**body["meta"]["page"], "hasMore": True}}}
    requests_mock.get(V3 + "/customfields.json", [{"json": first}, {"json": body}])
    read = list(teamwork._pages(V3_PATH + "/customfields.json", "customfields", {}))
    assert len(read) == 2 * len(body["customfields"])
    assert [r.qs["page"] for r in requests_mock.request_history] == [["1"], ["2"]]


@covers("teamwork.v3.updated")
def test_the_recorded_v3_stamp_and_person_id_read_as_the_rebuild_needs() -> None:
    recorded = recordings.teamwork("projects_api_v3_customfields.json")["customfields"][0]
    me = recordings.teamwork("me.json")["person"]
    task = Task.from_api(sdk_task(updatedAt=recorded["updatedAt"],
                                  updatedBy=recorded["updatedBy"]))
    assert task.updated_by == int(me["id"])  # v1 says "391604", v3 says 391604
    assert epoch_or_none(task.updated_at) == epoch_of("2024-10-22T09:28:01+00:00")


@pytest.mark.parametrize(("recording", "path"), [
    ("tasks_43119773.json", ("todo-item", "priority")),
    ("completedtasks.json", ("tasks", 0, "priority")),
])
@covers("teamwork.task.priority")
def test_a_recorded_unset_priority_reads_as_none(recording: str,
                                                 path: tuple[Any, ...]) -> None:
    value: Any = recordings.teamwork(recording)
    for step in path:
        value = value[step]
    assert value == ""  # how Teamwork spells an unset priority in this answer
    assert Task.from_api(sdk_task(priority=value)).priority == "none"


@pytest.mark.parametrize("value", [None, "none"])
@covers("teamwork.task.priority")
def test_documented_unset_priorities_read_as_none(value: str | None) -> None:
    assert Task.from_api(sdk_task(priority=value)).priority == "none"


@covers("teamwork.task.priority", "teamwork.task.due_date")
def test_a_recorded_priority_and_v1_due_date_read_as_sent() -> None:
    item = recordings.teamwork("tasklists_2952529_tasks.json")["todo-items"][0]
    assert (item["priority"], item["due-date"]) == ("high", "20231129")
    task = Task.from_api(sdk_task(priority=item["priority"], dueDate=item["due-date"]))
    assert (task.priority, task.due_date) == ("high", "2023-11-29")


@pytest.mark.parametrize(("due", "read"), [("2023-11-29", "2023-11-29"), (None, "")])
@covers("teamwork.task.due_date")
def test_documented_v3_due_dates(due: str | None, read: str) -> None:
    assert Task.from_api(sdk_task(dueDate=due)).due_date == read


@covers("teamwork.tasklist.project")
def test_the_recorded_v1_task_list_names_its_project_as_a_string() -> None:
    recorded = recordings.teamwork("tasklists_2952529.json")["todo-list"]
    assert recorded["projectId"] == "967489"
    assert TaskList.from_api(recorded) == TaskList(2952529, "My List", 967489, "new")


@covers("teamwork.tasklist.project")
def test_documented_v3_task_list_names_its_project_as_a_relationship(
        teamwork: TeamworkClient, requests_mock: Any) -> None:
    tasklist = sdk_tasklist(name="My List ", status="completed")
    requests_mock.get(V3 + "/tasklists/2952529.json", json={"tasklist": tasklist})
    assert teamwork.tasklist(2952529) == TaskList(2952529, "My List", 967489, "completed")


@pytest.mark.parametrize("flat", [False, True], ids=["relationship-only", "flat-beside"])
@covers("teamwork.task.tasklist", "teamwork.task.assignees", "teamwork.task.tags",
        "teamwork.task.status")
def test_documented_v3_task_reads_its_list_people_and_tags(
        teamwork: TeamworkClient, requests_mock: Any, flat: bool) -> None:
    """Whether the 2021 spec's flat ``tasklistId`` comes beside ``tasklist`` is unknown:
    the list must be read either way."""
    task = sdk_task(**({"tasklistId": 2952529} if flat else {}))
    requests_mock.get(V3 + "/tasks/5001.json", json={"task": task, "included": {}})
    # The project is the list's: a client may read the list to learn it.
    requests_mock.get(V3 + "/tasklists/2952529.json", json={"tasklist": sdk_tasklist()})
    read = teamwork.get_task(5001)
    assert read is not None
    assert (read.id, read.tasklist_id, read.assignee, read.tag_ids) == (
        5001, 2952529, 391604, (256053,))
    assert not read.completed and not read.deleted


@pytest.mark.parametrize(("status", "completed"), [
    ("new", False), ("reopened", False), ("completed", True)])
@covers("teamwork.task.status")
def test_documented_task_statuses(status: str, completed: bool) -> None:
    task = Task.from_api(sdk_task(status=status))
    assert (task.completed, task.deleted) == (completed, False)


@covers("teamwork.task.assignees")
def test_documented_unassigned_and_team_assignees() -> None:
    assert Task.from_api(sdk_task(assignees=[])).assignee is None
    teams = Task.from_api(sdk_task(assignees=[{"id": 9, "type": "teams"}]))
    assert teams.assignee is None  # a team is not a person zdsync assigns


@pytest.mark.parametrize("deleted", [
    {"status": "deleted", "deletedAt": "2025-01-12T12:53:47Z", "deletedBy": 391604},
    {"deletedAt": "2025-01-12T12:53:47Z", "deletedBy": 391604},
], ids=["status-and-deletedAt", "deletedAt-only"])
@covers("teamwork.task.deleted")
def test_documented_deleted_task_is_gone_however_teamwork_says_it(
        teamwork: TeamworkClient, requests_mock: Any, deleted: dict[str, Any]) -> None:
    """Teamwork/mcp#533: the one-task GET answers 200 for a deleted task unless
    ``hideDeleted=true`` (then 404 without a body)."""
    def answer(request: Any, context: Any) -> dict[str, Any] | None:
        if request.qs.get("hidedeleted") == ["true"]:
            context.status_code = 404
            return None
        return {"task": sdk_task(**deleted), "included": {}}

    requests_mock.get(V3 + "/tasks/5001.json", json=answer)
    assert teamwork.get_task(5001) is None


@covers("teamwork.tasklist.create")
def test_documented_task_list_create_answer(teamwork: TeamworkClient,
                                            requests_mock: Any) -> None:
    requests_mock.post(TEAMWORK + "/projects/967489/tasklists.json", status_code=201,
                       json={"TASKLISTID": "2952529", "STATUS": "OK"})
    assert teamwork.create_tasklist(967489, "Support") == 2952529
    assert requests_mock.last_request.json() == {"todo-list": {"name": "Support"}}


@covers("teamwork.people")
def test_documented_people_and_me(teamwork: TeamworkClient, requests_mock: Any) -> None:
    """v3 names (projects/user.go); the id and e-mail are the recorded v1 ``me``'s."""
    me = recordings.teamwork("me.json")["person"]
    person = {"id": int(me["id"]), "firstName": me["first-name"], "lastName": me["last-name"],
              "email": me["email-address"], "title": "", "isAdmin": True, "type": "account",
              "company": {"id": int(me["company-id"]), "type": "companies"},
              "deleted": False}
    requests_mock.get(V3 + "/me.json", json={"person": person})
    requests_mock.get(V3 + "/projects/967489/people.json", json=listing("people", [person]))
    read = teamwork.me()
    assert (read.id, read.email, read.display) == (391604, "test@gmail.com", "Php Api")
    assert teamwork.people_by_ids([391604, 7], 967489) == {391604: read}


@covers("teamwork.tags")
def test_documented_tags_keep_their_ids_and_names(teamwork: TeamworkClient,
                                                  requests_mock: Any) -> None:
    """v3 names (projects/tag.go); the ids and names are the recorded v1 tags'."""
    tags = [{"id": int(t["id"]), "name": t["name"], "color": t["color"],
             "projectId": int(t["projectId"])}
            for t in recordings.teamwork("tags.json")["tags"]]
    requests_mock.get(V3 + "/tags.json", json=listing("tags", tags))
    assert [(t["id"], t["name"]) for t in teamwork.tags()] == [
        (256052, "Draft"), (256053, "Published"), (256051, "Review")]


@covers("teamwork.list.completed")
def test_documented_whole_list_reads_ask_for_completed_tasks_and_lists(
        teamwork: TeamworkClient, requests_mock: Any) -> None:
    requests_mock.get(V3 + "/tasklists/2952529/tasks.json",
                      json=listing("tasks", [sdk_task(status="completed")]))
    assert [t.completed for t in teamwork.tasklist_tasks(2952529)] == [True]
    asked = requests_mock.last_request.qs
    assert asked["includecompletedtasks"] == ["true"]
    assert asked["showcompletedlists"] == ["true"]


@covers("teamwork.v1.complete", "teamwork.v1.move")
def test_documented_v1_writes(teamwork: TeamworkClient, requests_mock: Any) -> None:
    requests_mock.put(TEAMWORK + "/tasks/5001/complete.json", json={"STATUS": "OK"})
    requests_mock.put(TEAMWORK + "/tasks/5001/uncomplete.json", json={"STATUS": "OK"})
    requests_mock.put(TEAMWORK + "/tasks/5001/move.json",
                      json={"affectedTaskIds": "5001", "affectedTaskListIds": "3492444",
                            "STATUS": "OK"})
    teamwork.complete_task(5001)
    teamwork.reopen_task(5001)
    teamwork.move_task(5001, 3492444)
    assert [(r.method, r.path) for r in requests_mock.request_history] == [
        ("PUT", "/tasks/5001/complete.json"), ("PUT", "/tasks/5001/uncomplete.json"),
        ("PUT", "/tasks/5001/move.json")]
    assert requests_mock.last_request.json() == {"taskListId": 3492444}


@covers("teamwork.unassign")
def test_documented_unassign_sends_every_dimension_empty(teamwork: TeamworkClient,
                                                         requests_mock: Any) -> None:
    requests_mock.patch(V3 + "/tasks/5001.json", json={"task": sdk_task(assignees=[])})
    teamwork.update_task(5001, assignee=None)
    assert requests_mock.last_request.json()["task"]["assignees"] == {
        "userIds": [], "companyIds": [], "teamIds": [], "jobRoleIds": []}
