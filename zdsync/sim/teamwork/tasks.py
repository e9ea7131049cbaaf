"""Tasks: the records and their lifecycle rules, the Python API tests build states with,
and the v3 reads (one task, and the tasks of a list, a project or the whole site).

The HTTP writes are in ``task_writes.py``; both go through the rules here, so a task
changes the same way whichever door it is changed through.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from zdsync.sim.base import (
    Request,
    Response,
    empty_response,
    epoch_of_iso,
    json_response,
    truthy,
)
from zdsync.sim.server import route
from zdsync.sim.teamwork.service import V3, Matched, TeamworkService


class Tasks(TeamworkService):
    """Task records; every change of status or description goes through here, which keeps
    ``most_live_with_one_marker`` right."""

    def create_task(self, tasklist_id: int, name: str, description: str = "",
                    assignee_ids: Iterable[int] = ()) -> int:
        """Create a task directly (hand-built test states); assignees are not checked."""
        with self.lock:
            return self._new_task(self._tasklists[tasklist_id], name, description,
                                  list(assignee_ids))["id"]

    def update_task(self, task_id: int, *, name: str | None = None,
                    description: str | None = None,
                    assignee_ids: Iterable[int] | None = None) -> None:
        given = {"name": name, "description": description,
                 "assignees": None if assignee_ids is None else list(assignee_ids)}
        with self.lock:
            task = self._tasks[task_id]
            self._set_fields(task, {k: v for k, v in given.items() if v is not None})
            self._touch(task)

    def complete_task(self, task_id: int) -> None:
        with self.lock:
            self._complete(self._tasks[task_id])

    def uncomplete_task(self, task_id: int) -> None:
        with self.lock:
            self._uncomplete(self._tasks[task_id])

    def delete_task(self, task_id: int) -> None:
        with self.lock:
            self._delete(self._tasks[task_id])

    def task(self, task_id: int) -> dict[str, Any]:
        """A task's v3 JSON, deleted ones included, with where it is (``tasklistId`` and
        ``projectId``, for tests and the judge, whatever the HTTP answers carry);
        ``KeyError`` if unknown."""
        with self.lock:
            return self._inspected(self._tasks[task_id])

    def tasks(self, include_deleted: bool = False,
              tasklist_id: int | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [self._inspected(t) for _, t in sorted(self._tasks.items())
                    if (include_deleted or t["status"] != "deleted")
                    and (tasklist_id is None or t["tasklistId"] == tasklist_id)]

    def _new_task(self, tasklist: dict[str, Any], name: str, description: str,
                  assignees: list[int], priority: str | None = None) -> dict[str, Any]:
        tid = self._next("task")
        stamp = self._now()
        task = {
            "id": tid, "name": name, "description": description, "status": "new",
            "tasklistId": tasklist["id"], "assignees": assignees, "priority": priority,
            "dueDate": None, "tagIds": [],
            "createdAt": stamp, "createdBy": self.me_id, "updatedAt": stamp,
            "updatedBy": self.me_id, "completedAt": None, "completedBy": None,
            "deletedAt": None, "deletedBy": None,
        }
        self._tasks[tid] = task
        self._count_live(task, +1)
        return task

    def _count_live(self, task: dict[str, Any], delta: int) -> None:
        marker = (task["description"] or "").split("\n", 1)[0]
        if marker and task["status"] != "deleted":
            self._live_by_marker[marker] += delta
            self.most_live_with_one_marker = max(self.most_live_with_one_marker,
                                                 self._live_by_marker[marker])

    def _set_fields(self, task: dict[str, Any], changes: dict[str, Any]) -> None:
        """The one way a task's fields change, so a new description moves the count of
        live tasks sharing a marker."""
        self._count_live(task, -1)
        task.update(changes)
        self._count_live(task, +1)

    def _touch(self, task: dict[str, Any]) -> None:
        task["updatedAt"] = self._now()
        task["updatedBy"] = self.me_id

    def _complete(self, task: dict[str, Any]) -> None:
        if task["status"] == "deleted":
            raise ValueError(f"task {task['id']} is deleted")
        if task["status"] != "completed":
            task["status"] = "completed"
            task["completedAt"] = self._now()
            task["completedBy"] = self.me_id
            self._touch(task)

    def _uncomplete(self, task: dict[str, Any]) -> None:
        if task["status"] == "deleted":
            raise ValueError(f"task {task['id']} is deleted")
        if task["status"] == "completed":
            task["status"] = "reopened"
            task["completedAt"] = None
            task["completedBy"] = None
            self._touch(task)

    def _delete(self, task: dict[str, Any]) -> None:
        if task["status"] == "deleted":
            raise ValueError(f"task {task['id']} is already deleted")
        self._count_live(task, -1)
        task["status"] = "deleted"
        task["deletedAt"] = self._now()
        task["deletedBy"] = self.me_id
        self._touch(task)

    def _project_of(self, task: dict[str, Any]) -> int:
        return int(self._tasklists[task["tasklistId"]]["projectId"])

    def _inspected(self, task: dict[str, Any]) -> dict[str, Any]:
        return {**self._public_task(task), "tasklistId": task["tasklistId"],
                "projectId": self._project_of(task)}

    def _public_task(self, task: dict[str, Any]) -> dict[str, Any]:
        """A task as v3 answers it: the SDK's ``Task`` (Teamwork/twapi-go-sdk
        ``projects/task.go``) names its list as a relationship and has no ``projectId``;
        the flat ``tasklistId`` comes beside it only under that variant."""
        shown = {
            "id": task["id"], "name": task["name"], "description": task["description"],
            "descriptionContentType": "TEXT", "status": task["status"],
            "tasklist": {"id": task["tasklistId"], "type": "tasklists"},
            "assignees": [{"id": a, "type": "users"} for a in task["assignees"]],
            "priority": task["priority"], "progress": 0, "parentTask": None,
            "tags": [{"id": t, "type": "tags"} for t in task["tagIds"]],
            "startDate": None, "dueDate": task["dueDate"], "estimateMinutes": 0,
            "createdAt": task["createdAt"], "createdBy": task["createdBy"],
            "updatedAt": task["updatedAt"], "updatedBy": task["updatedBy"],
            "completedAt": task["completedAt"], "completedBy": task["completedBy"],
            "deletedAt": task["deletedAt"], "deletedBy": task["deletedBy"],
        }
        if self.variants.flat_tasklist_id == "present":
            shown["tasklistId"] = task["tasklistId"]
        return shown

    @route("GET", f"{V3}/tasks/{{id}}")
    def _http_get_task(self, request: Request, m: Matched) -> Response:
        """A deleted task answers 200 with ``status: "deleted"`` unless ``hideDeleted=true``
        (Teamwork/mcp pull request #533); a missing one 404 without a body."""
        task = self._tasks.get(int(m["id"]))
        if task is None or (task["status"] == "deleted"
                            and truthy(request.arg("hideDeleted"))):
            return empty_response(404)
        return json_response(200, {"task": self._public_task(task), "included": {}})

    def _list_tasks(self, request: Request, scope: Callable[[dict[str, Any]], bool]) -> Response:
        try:
            after = self._updated_after(request.arg("updatedAfter"))
        except ValueError:
            return self._v3_error(400, "Invalid updatedAfter",
                                  "updatedAfter must be an RFC 3339 date and time")
        term = (request.arg("searchTerm") or "").strip().lower()
        include_completed = truthy(request.arg("includeCompletedTasks"))
        completed_lists = truthy(request.arg("showCompletedLists"))
        show_deleted = truthy(request.arg("showDeleted"))
        ids = self._id_list(request.arg("ids"))
        tasklist_ids = self._id_list(request.arg("tasklistIds"))
        project_ids = self._id_list(request.arg("projectIds"))

        def keep(task: dict[str, Any]) -> bool:
            tasklist = self._tasklists[task["tasklistId"]]
            if not scope(task):
                return False
            if task["status"] == "deleted" and not show_deleted:
                return False
            if task["status"] == "completed" and not include_completed:
                return False
            if tasklist["status"] == "completed" and not completed_lists:
                return False
            if ids is not None and task["id"] not in ids:
                return False
            if tasklist_ids is not None and task["tasklistId"] not in tasklist_ids:
                return False
            if project_ids is not None and tasklist["projectId"] not in project_ids:
                return False
            if after is not None and not self._updated_since(task, after):
                return False
            return not term or any(term in text.lower() for text in
                                   (task["name"], task["description"], tasklist["name"]))

        found = [t for _, t in sorted(self._tasks.items()) if keep(t)]
        if (request.arg("orderBy") or "").lower() == "updatedat":
            found.sort(key=lambda t: (epoch_of_iso(t["updatedAt"]), t["id"]),
                       reverse=(request.arg("orderMode") or "").lower() == "desc")
        return self._page(request, "tasks", found, self._public_task)

    @staticmethod
    def _updated_after(raw: str | None) -> int | None:
        """``updatedAfter`` as epoch seconds (the SDK sends RFC 3339); ValueError if bad."""
        if raw is None or not raw.strip():
            return None
        return epoch_of_iso(raw)

    def _updated_since(self, task: dict[str, Any], after: int) -> bool:
        """Whether ``updatedAfter`` keeps ``task``: later than ``after``, or (variant
        ``updated_after=inclusive``) at that second too."""
        stamp = epoch_of_iso(task["updatedAt"])
        return stamp >= after if self.updated_after_inclusive else stamp > after

    @route("GET", f"{V3}/tasklists/{{id}}/tasks")
    def _http_list_tasklist_tasks(self, request: Request, m: Matched) -> Response:
        tasklist_id = int(m["id"])
        tasklist = self._tasklists.get(tasklist_id)
        if tasklist is None or tasklist["status"] == "deleted":
            return empty_response(404)
        return self._list_tasks(request, lambda t: t["tasklistId"] == tasklist_id)

    @route("GET", f"{V3}/projects/{{id}}/tasks")
    def _http_list_project_tasks(self, request: Request, m: Matched) -> Response:
        project_id = int(m["id"])
        if project_id not in self._projects:
            return empty_response(404)
        return self._list_tasks(request, lambda t: self._project_of(t) == project_id)

    @route("GET", f"{V3}/tasks")
    def _http_list_all_tasks(self, request: Request, m: Matched) -> Response:
        return self._list_tasks(request, lambda t: True)
