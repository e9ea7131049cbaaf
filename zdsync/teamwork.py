"""Teamwork client: tasks, task lists, tags and people, as documented on
apidocs.teamwork.com and used by Teamwork's official Go SDK (docs/simulators.md).

v3 for create, update, delete, read and list; v1 for complete, uncomplete and task-list
create (Teamwork's own SDK does the same). Requests are paced under the configured
per-minute budget; 429 (and v1's "400 with x-ratelimit-remaining 0") hold every request
until the window resets.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from typing import Any

import requests

from zdsync import defaults, listing
from zdsync.config import TeamworkSettings
from zdsync.errors import AmbiguousWrite, NotFound
from zdsync.metrics import Metrics
from zdsync.pacing import BudgetPacer
from zdsync.people import Person
from zdsync.tasks import Task, TaskList
from zdsync.tickets import NO_PRIORITY
from zdsync.times import epoch_or_none
from zdsync.transport import SHAPE_ERRORS, Sleep, Transport, answers, credentials

V3 = "/projects/api/v3"
TASKLIST_PAGE_SIZE = 500
"""Tasks per page when listing a whole task list: Teamwork's v3 maximum."""
HIDE_DELETED = {"hideDeleted": "true"}
"""A single-task GET answers a deleted task with 200 unless asked to hide it (Teamwork/mcp
pull request #533): a read that must tell a live task from a deleted one sends this (and
still reads the answer's ``status``/``deletedAt``)."""
SEE_ALL_TASKS = {"includeCompletedTasks": "true", "showCompletedLists": "true"}
"""Task list parameters for calls that must see every live task: v3 lists leave out
completed tasks, and tasks in completed task lists, unless asked (the official SDK,
``projects/task.go``). Someone completing the zdsync list must not hide its tasks
from the audit or the lost-create search (a duplicate would follow)."""


def ratelimit_wait_seconds(response: requests.Response, now: float | None = None) -> float | None:
    """Seconds to wait when ``response`` is a throttling refusal, else None.

    ``x-ratelimit-reset`` is read as an epoch when it looks like one (> 10^9), else as
    seconds; without it Teamwork's documented 60 s lock-out applies.
    """
    remaining = response.headers.get("x-ratelimit-remaining")
    throttled = response.status_code == 429 or (response.status_code == 400 and remaining == "0")
    if not throttled:
        return None
    try:
        reset = float(response.headers["x-ratelimit-reset"])
    except (KeyError, ValueError):
        return defaults.TEAMWORK_LOCKOUT_SECONDS
    if reset > 1e9:
        reset -= time.time() if now is None else now
    return max(1.0, reset)


def _fields(*, priority: str | None = None, due_date: str | None = None,
            tag_ids: list[int] | None = None, description: str | None = None,
            tasklist_id: int | None = None) -> dict[str, Any]:
    """v3 task fields: ``dueAt`` is ``YYYY-MM-DD``, "" clears it (sent as null); a
    priority of none is sent as null, which both Teamwork's SDK and its MCP server take
    (the MCP server refuses ``"none"``); ``tagIds`` replaces the task's tags. None: not
    sent."""
    task: dict[str, Any] = {}
    if priority is not None:
        task["priority"] = None if priority in (NO_PRIORITY, "") else priority
    if due_date is not None:
        task["dueAt"] = due_date or None
    if tag_ids is not None:
        task["tagIds"] = sorted(tag_ids)
    if description is not None:
        task["description"] = description
    if tasklist_id is not None:
        task["tasklistId"] = tasklist_id
    return task


def _assignees(person: int | None) -> dict[str, list[int]]:
    """Assign one person, or "Anyone": every dimension an empty list (null keeps it)."""
    return {"userIds": [person] if person is not None else [], "companyIds": [],
            "teamIds": [], "jobRoleIds": []}


class TeamworkClient:
    def __init__(self, settings: TeamworkSettings, *, metrics: Metrics | None = None,
                 sleep: Sleep = time.sleep, session: requests.Session | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``sleep`` and ``clock`` are injectable so tests can wait in simulated time."""
        self.base_url = settings.base_url
        self.listing_cap = settings.listing_cap
        # 90 %: steadily under the limit, with room for an operator's CLI commands.
        self.pacer = BudgetPacer(settings.rate_limit * defaults.TEAMWORK_PACE_SHARE, clock)
        self.http = Transport(
            "teamwork", settings.base_url,
            credentials((settings.api_token.reveal(), "X") if settings.api_token else None,
                        settings.oauth_token),
            throttle_wait=ratelimit_wait_seconds, metrics=metrics, pacer=self.pacer,
            sleep=sleep, session=session,
        )
        self._list_projects: dict[int, int] = {}  # task list id -> its project, as read

    def __repr__(self) -> str:
        return f"TeamworkClient({self.base_url!r})"

    # -- tasks -------------------------------------------------------------------------

    def create_task(self, tasklist_id: int, name: str, description: str,
                    assignee: int | None, **fields: Any) -> Task:
        """Create a task. Never repeated on an unknown outcome: raises AmbiguousWrite.
        ``fields``: ``priority``, ``due_date``, ``tag_ids`` (None: not sent)."""
        body = {
            "task": {"name": name, "description": description,
                     "assignees": _assignees(assignee), **_fields(**fields)},
            "taskOptions": {"checkInvalidusers": True, "fireWebhook": False},
        }
        response = self.http.request("POST", f"{V3}/tasklists/{tasklist_id}/tasks.json",
                                     json=body, idempotent=False)
        try:
            task = Task.from_api(response.json()["task"])
        except SHAPE_ERRORS:
            raise AmbiguousWrite("teamwork", "create answered without task.id; it may have "
                                 "been applied") from None
        return replace(task, tasklist_id=task.tasklist_id or tasklist_id,
                       project_id=task.project_id or self._list_projects.get(tasklist_id))

    def update_task(self, task_id: int, *, name: str | None = None,
                    assignee: int | type[Ellipsis] | None = ..., **fields: Any) -> None:
        """Change the given fields only (setting is idempotent): ``name``, ``assignee``,
        and in ``fields`` ``priority``, ``due_date``, ``tag_ids``, ``description`` and
        ``tasklist_id`` (a move within the project); None: not sent."""
        task: dict[str, Any] = _fields(**fields)
        if name is not None:
            task["name"] = name
        if assignee is not ...:
            task["assignees"] = _assignees(assignee)  # type: ignore[arg-type]
        response = self.http.request(
            "PATCH", f"{V3}/tasks/{task_id}.json",
            json={"task": task, "taskOptions": {"checkInvalidusers": True,
                                                "fireWebhook": False}})
        try:
            answered = Task.from_api(response.json()["task"])
        except (*SHAPE_ERRORS, ValueError):
            return  # the answer's body is not needed, only what it may say below
        if answered.deleted:  # an update of a deleted task may answer 200 (unknown)
            raise NotFound("teamwork", f"update of task {task_id}: the task is deleted", 404)

    def move_task(self, task_id: int, tasklist_id: int) -> None:
        """Move a task to a list of another project: v1 only (the SDK's ``AGENTS.md``; a
        v3 ``tasklistId`` moves within the project, and answers 422 across projects)."""
        self.http.request("PUT", f"/tasks/{task_id}/move.json",
                          json={"taskListId": tasklist_id})

    @answers
    def tags(self) -> list[dict[str, Any]]:
        """Every tag of the site (``{id, name, ...}``), all pages."""
        return list(self._pages(f"{V3}/tags.json", "tags",
                                {"pageSize": TASKLIST_PAGE_SIZE}))

    @answers
    def create_tag(self, name: str) -> int:
        """Create a tag (site-wide); its id. Never repeated on an unknown outcome."""
        response = self.http.request("POST", f"{V3}/tags.json", json={"tag": {"name": name}},
                                     idempotent=False)
        return int(response.json()["tag"]["id"])

    def complete_task(self, task_id: int) -> None:
        self.http.request("PUT", f"/tasks/{task_id}/complete.json")

    def reopen_task(self, task_id: int) -> None:
        self.http.request("PUT", f"/tasks/{task_id}/uncomplete.json")

    def delete_task(self, task_id: int) -> bool:
        """Delete; False when it was already gone (404)."""
        try:
            self.http.request("DELETE", f"{V3}/tasks/{task_id}.json")
            return True
        except NotFound:
            return False

    @answers
    def get_task(self, task_id: int) -> Task | None:
        """The task, or None when missing or deleted (asked with ``hideDeleted``, and
        read from the answer too)."""
        try:
            task = self._task(self.http.request("GET", f"{V3}/tasks/{task_id}.json",
                                                params=HIDE_DELETED).json()["task"])
        except NotFound:
            return None
        return None if task.deleted else task

    @answers
    def tasks_by_ids(self, task_ids: Iterable[int]) -> dict[int, Task]:
        """The live tasks among these ids (completed included), by id,
        ``defaults.TEAMWORK_IDS_PER_REQUEST`` ids per request. An id absent from the result
        is deleted or never existed: the list leaves deleted tasks out unless asked
        (``showDeleted``)."""
        ids = list(dict.fromkeys(task_ids))
        found: dict[int, Task] = {}
        for start in range(0, len(ids), defaults.TEAMWORK_IDS_PER_REQUEST):
            chunk = ids[start:start + defaults.TEAMWORK_IDS_PER_REQUEST]
            params = {"ids": ",".join(str(i) for i in chunk), **SEE_ALL_TASKS,
                      "pageSize": defaults.TEAMWORK_IDS_PER_REQUEST}
            found.update((t.id, t) for t in self._tasks(f"{V3}/tasks.json", params)
                         if t.id in chunk)
        return found

    @answers
    def search_tasks(self, tasklist_id: int, term: str) -> Iterator[Task]:
        """Live tasks of a list matching ``term`` (completed ones, and those of a completed
        list, included), all pages."""
        params = {"searchTerm": term, **SEE_ALL_TASKS,
                  "pageSize": defaults.TEAMWORK_SEARCH_PAGE_SIZE}
        yield from self._tasks(f"{V3}/tasklists/{tasklist_id}/tasks.json", params, tasklist_id)

    @answers
    def find_ticket_tasks(self, tasklist_id: int | Iterable[int], link: str) -> list[Task]:
        """Tasks carrying exactly this ticket link, however Teamwork's search tokenises it,
        in one list or in several (one request for all: ``tasklistIds``).

        Searched by the ticket number alone (punctuation handling in ``searchTerm`` is
        undocumented), then matched exactly on the link as a whole word.
        """
        ticket_number = link.rsplit("/", 1)[-1]
        pattern = re.compile(re.escape(link) + r"(?!\d)")
        lists = [tasklist_id] if isinstance(tasklist_id, int) else sorted(set(tasklist_id))
        if len(lists) == 1:
            found: Iterable[Task] = self.search_tasks(lists[0], ticket_number)
        else:
            params = {"searchTerm": ticket_number, **SEE_ALL_TASKS,
                      "tasklistIds": ",".join(str(t) for t in lists),
                      "pageSize": defaults.TEAMWORK_SEARCH_PAGE_SIZE}
            found = self._tasks(f"{V3}/tasks.json", params)
        return [t for t in found if pattern.search(t.description)]

    @answers
    def tasklist_tasks(self, tasklist_id: int) -> Iterator[Task]:
        """Every live task of a list, completed ones and those of a completed list too
        (Teamwork hides both unless asked), ``TASKLIST_PAGE_SIZE`` a request: what the
        state rebuild reads the ticket links from."""
        params = {**SEE_ALL_TASKS, "pageSize": TASKLIST_PAGE_SIZE}
        yield from self._tasks(f"{V3}/tasklists/{tasklist_id}/tasks.json", params, tasklist_id)

    def _task(self, data: dict[str, Any], tasklist_id: int | None = None) -> Task:
        """A task read from an answer; ``tasklist_id``: the list it was listed from, for
        an answer that does not name its list. Its project stays None unless the answer
        says (the SDK's ``Task`` has no ``projectId``): ``project_of_list`` finds it."""
        task = Task.from_api(data)
        if task.tasklist_id is None and tasklist_id is not None:
            task = replace(task, tasklist_id=tasklist_id)
        return task

    def with_project(self, task: Task) -> Task:
        """The task with its project, found through its list when the answer had none."""
        if task.project_id is not None or task.tasklist_id is None:
            return task
        return replace(task, project_id=self.project_of_list(task.tasklist_id))

    def project_of_list(self, tasklist_id: int) -> int | None:
        """The project of a task list (None if it is gone), remembered once read (or
        listed): one request per list, none per ticket."""
        if tasklist_id not in self._list_projects:
            self.tasklist(tasklist_id)
        return self._list_projects.get(tasklist_id)

    def forget_list(self, tasklist_id: int | None = None) -> None:
        """Read this list's project (None: every list's) again when next needed: someone
        may have moved the list to another project."""
        if tasklist_id is None:
            self._list_projects.clear()
        else:
            self._list_projects.pop(tasklist_id, None)

    # -- task lists and people ---------------------------------------------------------

    @answers
    def tasklists(self, project_id: int, search: str | None = None) -> list[TaskList]:
        """The project's task lists, completed ones included (``showCompleted``; Teamwork
        leaves them out by default): a lookup by name must find a list someone completed
        rather than create a second one."""
        params: dict[str, Any] = {"showCompleted": "true"}
        if search:
            params["searchTerm"] = search
        return [self._known(TaskList.from_api(t)) for t in self._pages(
            f"{V3}/projects/{project_id}/tasklists.json", "tasklists", params)]

    def _known(self, tasklist: TaskList) -> TaskList:
        if tasklist.project_id is not None:
            self._list_projects[tasklist.id] = tasklist.project_id
        return tasklist

    def tasklist_named(self, project_id: int, name: str) -> int | None:
        """The project's list of exactly this name (the oldest, lowest id, if several):
        Teamwork's ``searchTerm`` also answers lists whose names merely contain it."""
        return min((t.id for t in self.tasklists(project_id, name) if t.name == name),
                   default=None)

    @answers
    def create_tasklist(self, project_id: int, name: str) -> int:
        response = self.http.request("POST", f"/projects/{project_id}/tasklists.json",
                                     json={"todo-list": {"name": name}}, idempotent=False)
        return int(response.json()["TASKLISTID"])

    @answers
    def project(self, project_id: int) -> dict[str, Any] | None:
        return self.http.get_object(f"{V3}/projects/{project_id}.json", "project")

    @answers
    def tasklist(self, tasklist_id: int) -> TaskList | None:
        found = self.http.get_object(f"{V3}/tasklists/{tasklist_id}.json", "tasklist")
        return self._known(TaskList.from_api(found)) if found is not None else None

    @answers
    def people_by_ids(self, person_ids: Iterable[int],
                      project_id: int | None = None) -> dict[int, Person]:
        """People among these ids, by id; with ``project_id``, only the project's members
        (an id absent from the result is not on the project, or does not exist)."""
        ids = list(dict.fromkeys(person_ids))
        path = f"{V3}/projects/{project_id}/people.json" if project_id else f"{V3}/people.json"
        found: dict[int, Person] = {}
        batch = defaults.TEAMWORK_IDS_PER_REQUEST
        for start in range(0, len(ids), batch):
            chunk = ids[start:start + batch]
            params = {"ids": ",".join(str(i) for i in chunk), "pageSize": batch}
            for person in map(Person.from_api, self._pages(path, "people", params)):
                if person.id in chunk:
                    found[person.id] = person
        return found

    @answers
    def people(self, project_id: int) -> list[Person]:
        """The project's people (``users auto`` pairs agents with them by e-mail)."""
        return [Person.from_api(p) for p in self._pages(
            f"{V3}/projects/{project_id}/people.json", "people", {})]

    @answers
    def me(self) -> Person:
        return Person.from_api(self.http.request("GET", f"{V3}/me.json").json()["person"])

    def _tasks(self, path: str, params: dict[str, Any],
               tasklist_id: int | None = None) -> Iterator[Task]:
        """The live tasks of a v3 task listing, each once, however many it holds: a
        listing cut at ``teamwork.listing_cap`` is read on in windows (``listing``).
        ``tasklist_id``: the list listed, for answers that do not name theirs."""
        seen: set[int] = set()
        window: dict[str, str] = {}
        while True:
            stamps: list[int | None] = []
            for item in self._pages(path, "tasks", {**params, **window}):
                task = self._task(item, tasklist_id)
                stamps.append(epoch_or_none(task.updated_at))
                if task.id not in seen:
                    seen.add(task.id)
                    if not task.deleted:
                        yield task
            if len(stamps) < self.listing_cap:
                return
            window = listing.next_window(stamps, window)

    def _pages(self, path: str, key: str, params: dict[str, Any]) -> Iterator[dict[str, Any]]:
        page = 1
        while True:
            body = self.http.request("GET", path, params={**params, "page": page}).json()
            yield from body.get(key) or []
            if not ((body.get("meta") or {}).get("page") or {}).get("hasMore"):
                return
            page += 1
