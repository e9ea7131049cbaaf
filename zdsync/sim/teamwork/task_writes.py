"""Every HTTP write to a task: v3 create, update and delete; v1 complete, uncomplete, move.

Most of it is what a body may say (Teamwork/twapi-go-sdk ``projects/task.go``): names,
priorities, due dates, tags, and assignees, whom Teamwork silently drops when they are not
on the project unless the body asks it to refuse them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from zdsync.sim.base import Request, Response, empty_response, json_response
from zdsync.sim.server import route
from zdsync.sim.teamwork.service import V3, Matched
from zdsync.sim.teamwork.tasks import Tasks

PRIORITIES = (None, "low", "medium", "high")
"""What a write may set: Teamwork's MCP server (Teamwork/mcp ``internal/twprojects/tasks.go``)
accepts these, ``null`` clearing; it refuses ``"none"``, which the SDK's comment allows."""


class TaskWrites(Tasks):
    """The v3 and v1 task endpoints that change a task."""

    def _live_task(self, m: Matched) -> dict[str, Any] | None:
        task = self._tasks.get(int(m["id"]))
        return None if task is None or task["status"] == "deleted" else task

    def _task_body(self, request: Request) -> tuple[dict[str, Any], bool] | Response:
        """The ``task`` object of a v3 create or update body, and whether its
        ``taskOptions.checkInvalidusers`` asks to refuse people who cannot be assigned
        rather than drop them (the SDK)."""
        body = self._body(request)
        if isinstance(body, Response):
            return body
        fields = body.get("task")
        if not isinstance(fields, dict):
            return self._v3_error(400, "Invalid task", "task is required")
        options = body.get("taskOptions") or {}
        return fields, isinstance(options, dict) and bool(options.get("checkInvalidusers"))

    def _assignees(self, value: Any, project_id: int, check: bool,
                   current: list[int]) -> list[int] | Response:
        """Parse ``assignees``: ``null`` keeps, empty arrays = "Anyone" (Teamwork/mcp
        ``internal/twprojects/tasks.go``)."""
        if value is None:
            return current
        if not isinstance(value, dict):
            return self._v3_error(400, "Invalid assignees", "assignees must be an object")
        user_ids = value.get("userIds")
        for dimension in ("companyIds", "teamIds", "jobRoleIds"):
            other = value.get(dimension)
            if other is not None and not isinstance(other, list):
                return self._v3_error(400, "Invalid assignees", f"{dimension} must be an array")
            if other and check:
                return self._v3_error(400, "Invalid assignees",
                                      f"{dimension} {other} are not valid here")
        if user_ids is None:
            return current
        if not isinstance(user_ids, list) or not all(
                isinstance(u, int) and not isinstance(u, bool) for u in user_ids):
            return self._v3_error(400, "Invalid assignees", "userIds must be an array of ids")
        members = self._members.get(project_id, set())
        valid = [u for u in dict.fromkeys(user_ids) if u in members]
        if check and len(valid) != len(set(user_ids)):
            bad = sorted(set(user_ids) - set(valid))
            return self._v3_error(400, "Invalid assignees",
                                  f"users {bad} cannot be assigned to tasks in this project",
                                  "invalid_users")
        return valid

    def _dates_and_tags(self, fields: dict[str, Any]) -> dict[str, Any] | Response:
        """``dueAt`` (``YYYY-MM-DD``; null clears it) and ``tagIds`` (ids of existing
        tags; the list replaces the task's tags) of a create or update body."""
        out: dict[str, Any] = {}
        if "dueAt" in fields:
            due = fields["dueAt"]
            if due is not None and not (isinstance(due, str)
                                        and re.fullmatch(r"\d{4}-\d{2}-\d{2}", due)):
                return self._v3_error(400, "Invalid dueAt", "dueAt must be YYYY-MM-DD")
            out["dueDate"] = due
        if "tagIds" in fields:
            ids = fields["tagIds"]
            if not isinstance(ids, list) or not all(
                    isinstance(t, int) and not isinstance(t, bool) for t in ids):
                return self._v3_error(400, "Invalid tagIds", "tagIds must be an array of ids")
            unknown = sorted(set(ids) - set(self._tags))
            if unknown:
                return self._v3_error(400, "Invalid tagIds", f"tags {unknown} do not exist")
            out["tagIds"] = sorted(set(ids))
        return out

    @route("POST", f"{V3}/tasklists/{{id}}/tasks", method_in_name=True)
    def _http_create_task(self, request: Request, m: Matched) -> Response:
        tasklist = self._tasklists.get(int(m["id"]))
        if tasklist is None or tasklist["status"] == "deleted":
            return empty_response(404)
        parsed = self._task_body(request)
        if isinstance(parsed, Response):
            return parsed
        fields, check = parsed
        name = fields.get("name")
        if not isinstance(name, str) or not name.strip():
            return self._v3_error(400, "Invalid name", "name is required", "required")
        description = fields.get("description") or ""
        if not isinstance(description, str):
            return self._v3_error(400, "Invalid description", "description must be a string")
        priority = fields.get("priority")
        if priority not in PRIORITIES:
            return self._v3_error(400, "Invalid priority", f"unknown priority {priority!r}")
        assignees = self._assignees(fields.get("assignees"), tasklist["projectId"], check, [])
        if isinstance(assignees, Response):
            return assignees
        extra = self._dates_and_tags(fields)
        if isinstance(extra, Response):
            return extra
        task = self._new_task(tasklist, name, description, assignees, priority)
        task.update(extra)
        return self._created({"task": self._public_task(task), "included": {}})

    @route("PATCH", f"{V3}/tasks/{{id}}")
    @route("PUT", f"{V3}/tasks/{{id}}")
    def _http_update_task(self, request: Request, m: Matched) -> Response:
        task = self._live_task(m)
        if task is None:
            gone = self._tasks.get(int(m["id"]))
            if gone is not None and self.variants.update_deleted == "200":
                return json_response(200, {"task": self._public_task(gone), "included": {}})
            return empty_response(404)
        refused = self._refused_while_completed(task)
        if refused is not None:
            return refused
        parsed = self._task_body(request)
        if isinstance(parsed, Response):
            return parsed
        fields, check = parsed
        changes: dict[str, Any] = {}
        if "name" in fields:
            name = fields["name"]
            if not isinstance(name, str) or not name.strip():
                return self._v3_error(400, "Invalid name", "name cannot be empty", "required")
            changes["name"] = name
        if fields.get("description") is not None:
            if not isinstance(fields["description"], str):
                return self._v3_error(400, "Invalid description", "description must be a string")
            changes["description"] = fields["description"]
        if "priority" in fields:
            if fields["priority"] not in PRIORITIES:
                return self._v3_error(400, "Invalid priority", "unknown priority")
            changes["priority"] = fields["priority"]
        if fields.get("status") is not None and fields["status"] not in ("new", "active"):
            # v3 status cannot complete a task; only new/active were accepted (Vizioz/Teamwork-MCP
            # Todo.md).
            return self._v3_error(400, "Invalid status",
                                  f"status {fields['status']!r} cannot be set here")
        if fields.get("tasklistId") is not None:
            target = self._tasklists.get(fields["tasklistId"])
            if target is None or target["projectId"] != self._project_of(task):
                # 422 (Teamwork/twapi-go-sdk AGENTS.md: v3 cannot move across projects)
                return self._v3_error(422, "Invalid tasklistId",
                                      "the task list must be in the same project")
            changes["tasklistId"] = target["id"]
        extra = self._dates_and_tags(fields)
        if isinstance(extra, Response):
            return extra
        changes.update(extra)
        assignees = self._assignees(fields.get("assignees"), self._project_of(task), check,
                                    task["assignees"])
        if isinstance(assignees, Response):
            return assignees
        changes["assignees"] = assignees
        changed = {k: v for k, v in changes.items() if task[k] != v}
        if changed:
            self._set_fields(task, changed)
            self._touch(task)
        return json_response(200, {"task": self._public_task(task), "included": {}})

    @route("DELETE", f"{V3}/tasks/{{id}}")
    def _http_delete_task(self, request: Request, m: Matched) -> Response:
        task = self._live_task(m)
        if task is None:
            return empty_response(404)
        self._delete(task)
        return empty_response(204)

    def _refused_while_completed(self, task: dict[str, Any]) -> Response | None:
        """Under ``completed_edits=refused``, an edit of a completed task is refused until
        it is reopened (v1 needs that; whether v3 does is unknown)."""
        if task["status"] == "completed" and self.variants.completed_edits == "refused":
            return self._v3_error(400, "Task completed", "reopen the task to edit it",
                                  "task_completed")
        return None

    def _v1_state(self, m: Matched, change: Callable[[dict[str, Any]], None],
                  already: str) -> Response:
        """A v1 complete or uncomplete; on a task already in that state (``already``:
        "completed" or "open") it is harmless, or refused under ``repeat_state=refused``."""
        task = self._live_task(m)
        if task is None:
            return self._v1_error(404, "Not found")
        is_completed = task["status"] == "completed"
        if self.variants.repeat_state == "refused" and is_completed == (already == "completed"):
            return self._v1_error(400, f"Task is already {already}")
        change(task)
        return json_response(200, {"STATUS": "OK"})

    @route("PUT", "/tasks/{id}/complete")
    def _http_complete(self, request: Request, m: Matched) -> Response:
        return self._v1_state(m, self._complete, "completed")

    @route("PUT", "/tasks/{id}/uncomplete")
    def _http_uncomplete(self, request: Request, m: Matched) -> Response:
        return self._v1_state(m, self._uncomplete, "open")

    @route("PUT", "/tasks/{id}/move")
    def _http_move(self, request: Request, m: Matched) -> Response:
        """v1 ``PUT /tasks/{id}/move.json`` ``{"taskListId": N}`` (no wrapper): moves the task
        to a list of any project, answering ``{"affectedTaskIds", "affectedTaskListIds",
        "STATUS": "OK"}`` (Teamwork/twapi-go-sdk ``AGENTS.md``). **Choice:** the ids as
        comma-separated strings (v1's create answers ``"affectedTaskIds": "13233455"``),
        the lists being the one left and the one entered; an unknown list is 404, a
        missing ``taskListId`` 422. A completed task is an edit like any other
        (``completed_edits``)."""
        task = self._live_task(m)
        if task is None:
            return self._v1_error(404, "Not found")
        if self._refused_while_completed(task) is not None:
            return self._v1_error(400, "Task is completed: reopen it first")
        target_id = self._v1_field(request, "taskListId")
        if isinstance(target_id, str) and target_id.isdigit():
            target_id = int(target_id)
        if not isinstance(target_id, int) or isinstance(target_id, bool):
            return self._v1_error(422, "taskListId is required")
        target = self._tasklists.get(target_id)
        if target is None or target["status"] == "deleted":
            return self._v1_error(404, "Task list not found")
        left = task["tasklistId"]
        if left != target_id:
            task["tasklistId"] = target_id
            self._touch(task)
        return json_response(200, {"affectedTaskIds": str(task["id"]),
                                   "affectedTaskListIds": ",".join(
                                       str(t) for t in dict.fromkeys((left, target_id))),
                                   "STATUS": "OK"})
