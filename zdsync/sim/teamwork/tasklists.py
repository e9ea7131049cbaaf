"""Task lists: created in a project (v1), listed and shown (v3), completed and reopened.

A completed list hides its tasks from the v3 task listings and itself from the list of
task lists unless asked for (see ``complete_tasklist``).
"""

from __future__ import annotations

from typing import Any

from zdsync.sim.base import Request, Response, empty_response, truthy
from zdsync.sim.server import route
from zdsync.sim.teamwork.service import V3, Matched, TeamworkService


class TaskLists(TeamworkService):
    """``add_tasklist``, ``complete_tasklist``, ``reopen_tasklist``, ``tasklists``; their
    endpoints."""

    def add_tasklist(self, project_id: int, name: str) -> int:
        with self.lock:
            if project_id not in self._projects:
                raise KeyError(project_id)
            tid = self._next("tasklist")
            stamp = self._now()
            self._tasklists[tid] = {
                "id": tid, "name": name, "description": "", "projectId": project_id,
                "project": {"id": project_id, "type": "projects"}, "status": "new",
                "createdAt": stamp, "updatedAt": stamp,
            }
            return tid

    def complete_tasklist(self, tasklist_id: int) -> None:
        """Complete a task list, as someone in Teamwork's UI would: its tasks stay as they
        are, but v3 task lists hide them unless ``showCompletedLists=true``, and the list
        of task lists hides the list itself unless ``showCompleted=true``."""
        self._set_tasklist_status(tasklist_id, "completed")

    def reopen_tasklist(self, tasklist_id: int) -> None:
        self._set_tasklist_status(tasklist_id, "reopened")

    def _set_tasklist_status(self, tasklist_id: int, status: str) -> None:
        with self.lock:
            tasklist = self._tasklists[tasklist_id]
            if tasklist["status"] == "deleted":
                raise ValueError(f"task list {tasklist_id} is deleted")
            if tasklist["status"] != status:
                tasklist["status"] = status
                tasklist["updatedAt"] = self._now()

    def tasklists(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(t) for _, t in sorted(self._tasklists.items())]

    def _list_tasklists(self, request: Request, project_id: int | None) -> Response:
        term = (request.arg("searchTerm") or "").strip().lower()
        show_completed = truthy(request.arg("showCompleted"))
        found = [dict(t) for _, t in sorted(self._tasklists.items())
                 if t["status"] != "deleted"
                 and (show_completed or t["status"] != "completed")
                 and (project_id is None or t["projectId"] == project_id)
                 and term in t["name"].lower()]
        return self._page(request, "tasklists", found, lambda t: t)

    @route("GET", f"{V3}/projects/{{id}}/tasklists")
    def _http_list_project_tasklists(self, request: Request, m: Matched) -> Response:
        if int(m["id"]) not in self._projects:
            return empty_response(404)
        return self._list_tasklists(request, int(m["id"]))

    @route("GET", f"{V3}/tasklists")
    def _http_list_all_tasklists(self, request: Request, m: Matched) -> Response:
        return self._list_tasklists(request, None)

    @route("GET", f"{V3}/tasklists/{{id}}")
    def _http_get_tasklist(self, request: Request, m: Matched) -> Response:
        tasklist = self._tasklists.get(int(m["id"]))
        live = tasklist is not None and tasklist["status"] != "deleted"
        return self._shown("tasklist", tasklist if live else None)

    @route("POST", "/projects/{id}/tasklists", method_in_name=True)
    def _http_create_tasklist(self, request: Request, m: Matched) -> Response:
        project_id = int(m["id"])
        if project_id not in self._projects:
            return self._v1_error(404, "Not found")
        wrapper = self._v1_field(request, "todo-list")
        if not isinstance(wrapper, dict):
            return self._v1_error(422, "Could not find the 'todo-list' object in the request")
        name = wrapper.get("name")
        if not isinstance(name, str) or not name.strip():
            return self._v1_error(400, "A task list name is required")
        tasklist_id = self.add_tasklist(project_id, name)
        if isinstance(wrapper.get("description"), str):
            self._tasklists[tasklist_id]["description"] = wrapper["description"]
        return self._created({"TASKLISTID": str(tasklist_id), "STATUS": "OK"})
