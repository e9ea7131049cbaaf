"""A faithful in-memory Teamwork.com Projects API: the calls zdsync makes, with their limits.

Follows /work/shared/reference/teamwork-api.md ("What zdsync uses" and §2-§11): v3 task
create/patch/get/delete/list, v1 complete/uncomplete and task-list create, people, the
150 requests/minute limit with its 60 s lock-out, and the documented odd corners (201 with
an upper-case string ``TASKLISTID``, 404 without a body, silently dropped assignees).
"""

from __future__ import annotations

import hmac
import re
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from zdsync.sim.base import (
    Clock,
    RateDecision,
    RateLimiter,
    Request,
    Response,
    empty_response,
    iso_utc,
    json_response,
    page_slice,
    text_response,
    truthy,
)
from zdsync.sim.server import Route, SimServer, route

PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 500
LOCKOUT_SECONDS = 60.0
RATE_LIMIT_TEXT = "You have exceeded your rate limit. Please try again in a little while."
PRIORITIES = (None, "none", "low", "medium", "high")
V3 = "/projects/api/v3"

Matched = re.Match[str]


class TeamworkSim(SimServer):
    """Teamwork Projects for one site, in memory.

    ``api_token`` belongs to an integration user (``me_id``) who is on every project.
    ``get_deleted_returns_404`` picks one of the two behaviours §6/§7.1 allow for a GET of
    a deleted task: 404 without a body (default) or 200 with ``status: "deleted"``.
    """

    path_suffix = r"\.json"  # every v1 and v3 path ends in ``.json``

    def __init__(self, api_token: str = "sim-teamwork-token", clock: Clock | None = None,
                 rate_limit_per_minute: int = 150, *, seed: int = 0,
                 get_deleted_returns_404: bool = True) -> None:
        super().__init__(clock, seed=seed)
        self.api_token = api_token
        self.get_deleted_returns_404 = get_deleted_returns_404
        self.limiter = RateLimiter(rate_limit_per_minute, self.clock,
                                   lockout_seconds=LOCKOUT_SECONDS)
        self._people: dict[int, dict[str, Any]] = {}
        self._projects: dict[int, dict[str, Any]] = {}
        self._members: dict[int, set[int]] = {}
        self._tasklists: dict[int, dict[str, Any]] = {}
        self._tasks: dict[int, dict[str, Any]] = {}
        self._tags: dict[int, dict[str, Any]] = {}
        self._ids = {"person": 501, "project": 801, "tasklist": 2001, "task": 100001,
                     "error": 1, "tag": 9001}
        self._live_by_marker: Counter[str] = Counter()
        self.most_live_with_one_marker = 0
        """The most live tasks that ever shared a description's first line at one moment
        (zdsync writes the ticket link there): above 1 means a duplicate existed, however
        briefly, even if it was deleted later."""
        self.me_id = self.add_person("Sync", "Bot", "zdsync-bot@example.com", is_admin=True)

    # ================================================================ admin (Python) API

    def _next(self, kind: str) -> int:
        value = self._ids[kind]
        self._ids[kind] += 1
        return value

    def add_person(self, first_name: str, last_name: str, email: str, *,
                   is_admin: bool = False) -> int:
        with self.lock:
            pid = self._next("person")
            stamp = iso_utc(self.clock.now())
            self._people[pid] = {
                "id": pid, "firstName": first_name, "lastName": last_name, "email": email,
                "title": "", "isAdmin": is_admin, "type": "account",
                "company": {"id": 1, "type": "companies"}, "deleted": False,
                "createdAt": stamp, "updatedAt": stamp,
            }
            return pid

    def add_project(self, name: str) -> int:
        """A project; the integration user is a member of every project."""
        with self.lock:
            pid = self._next("project")
            stamp = iso_utc(self.clock.now())
            self._projects[pid] = {"id": pid, "name": name, "description": "",
                                   "status": "active", "createdAt": stamp, "updatedAt": stamp}
            self._members[pid] = {self.me_id}
            return pid

    def add_to_project(self, project_id: int, person_id: int) -> None:
        with self.lock:
            if person_id not in self._people:
                raise KeyError(person_id)
            self._members[project_id].add(person_id)

    def add_tasklist(self, project_id: int, name: str) -> int:
        with self.lock:
            if project_id not in self._projects:
                raise KeyError(project_id)
            tid = self._next("tasklist")
            stamp = iso_utc(self.clock.now())
            self._tasklists[tid] = {
                "id": tid, "name": name, "description": "", "projectId": project_id,
                "project": {"id": project_id, "type": "projects"}, "status": "new",
                "createdAt": stamp, "updatedAt": stamp,
            }
            return tid

    def add_tag(self, name: str, project_id: int | None = None) -> int:
        """A tag, as someone in Teamwork's UI would make it (names need not be unique)."""
        with self.lock:
            tag_id = self._next("tag")
            self._tags[tag_id] = {"id": tag_id, "name": name, "color": "#9e9e9e",
                                  "projectId": project_id or 0}
            return tag_id

    def tags(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(t) for _, t in sorted(self._tags.items())]

    def tag_names(self, task_id: int) -> list[str]:
        """The names of a task's tags, sorted (tests)."""
        with self.lock:
            return sorted(self._tags[t]["name"] for t in self._tasks[task_id]["tagIds"])

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

    def create_task(self, tasklist_id: int, name: str, description: str = "",
                    assignee_ids: Iterable[int] = ()) -> int:
        """Create a task directly (hand-built test states); assignees are not checked."""
        with self.lock:
            return self._new_task(self._tasklists[tasklist_id], name, description,
                                  list(assignee_ids))["id"]

    def update_task(self, task_id: int, *, name: str | None = None,
                    description: str | None = None,
                    assignee_ids: Iterable[int] | None = None) -> None:
        with self.lock:
            task = self._tasks[task_id]
            if name is not None:
                task["name"] = name
            if description is not None:
                self._count_live(task, -1)
                task["description"] = description
                self._count_live(task, +1)
            if assignee_ids is not None:
                task["assignees"] = list(assignee_ids)
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
        """A task's v3 JSON, deleted ones included; ``KeyError`` if unknown."""
        with self.lock:
            return self._public_task(self._tasks[task_id])

    def tasks(self, include_deleted: bool = False,
              tasklist_id: int | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [self._public_task(t) for _, t in sorted(self._tasks.items())
                    if (include_deleted or t["status"] != "deleted")
                    and (tasklist_id is None or t["tasklistId"] == tasklist_id)]

    def tasklists(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(t) for _, t in sorted(self._tasklists.items())]

    def people(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(p) for _, p in sorted(self._people.items())]

    # ================================================================ task state

    def _now(self) -> str:
        return iso_utc(self.clock.now())

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

    def _public_task(self, task: dict[str, Any]) -> dict[str, Any]:
        tasklist = self._tasklists[task["tasklistId"]]
        return {
            "id": task["id"], "name": task["name"], "description": task["description"],
            "descriptionContentType": "TEXT", "status": task["status"],
            "tasklistId": task["tasklistId"],
            "tasklist": {"id": task["tasklistId"], "type": "tasklists"},
            "projectId": tasklist["projectId"],
            "assignees": [{"id": a, "type": "users"} for a in task["assignees"]],
            "priority": task["priority"], "progress": 0, "parentTask": None,
            "tags": [{"id": t, "type": "tags"} for t in task["tagIds"]],
            "startDate": None, "dueDate": task["dueDate"], "estimateMinutes": 0,
            "createdAt": task["createdAt"], "createdBy": task["createdBy"],
            "updatedAt": task["updatedAt"], "updatedBy": task["updatedBy"],
            "completedAt": task["completedAt"], "completedBy": task["completedBy"],
            "deletedAt": task["deletedAt"], "deletedBy": task["deletedBy"],
        }

    # ================================================================ HTTP pipeline

    def _v3_error(self, status: int, title: str, detail: str,
                  code: str = "invalid_input") -> Response:
        ref = f"sim-{self._next('error')}"
        return json_response(status, {"errors": [
            {"code": code, "title": title, "detail": detail, "id": ref, "meta": {}}]})

    @staticmethod
    def _v1_error(status: int, message: str) -> Response:
        return json_response(status, {"STATUS": "Error", "MESSAGE": message})

    def before(self, request: Request, route: Route | None) -> Response | None:
        creds = request.basic_auth()
        key = f"user:{creds[0]}" if creds else f"ip:{request.client}"
        decision = self.limiter.hit(key)
        request.notes["rate"] = decision
        if not decision.allowed:
            return text_response(429, RATE_LIMIT_TEXT)
        if creds is None or not hmac.compare_digest(creds[0], self.api_token):
            if request.path.startswith(V3):
                return self._v3_error(401, "Unauthorized", "invalid or missing API token",
                                      "unauthorized")
            return self._v1_error(401, "Unauthorized")
        request.identity = self._people[self.me_id]
        return None

    def decorate(self, request: Request, response: Response) -> None:
        rate: RateDecision | None = request.notes.get("rate")
        if rate is not None:
            response.headers["x-ratelimit-limit"] = str(rate.limit)
            response.headers["x-ratelimit-remaining"] = str(rate.remaining)
            response.headers["x-ratelimit-reset"] = rate.reset_header

    def not_found(self, request: Request) -> Response:
        if request.path.startswith(V3):
            return empty_response(404)
        return self._v1_error(404, "Not found")

    def _body(self, request: Request) -> dict[str, Any] | Response:
        try:
            data = request.json()
        except ValueError:
            return self._v3_error(400, "Invalid body", "the body must be a JSON object")
        if not isinstance(data, dict):
            return self._v3_error(400, "Invalid body", "the body must be a JSON object")
        return data

    def _assignees(self, value: Any, project_id: int, check: bool,
                   current: list[int]) -> list[int] | Response:
        """Parse ``assignees``: ``null`` keeps, empty arrays = "Anyone" (§4.2)."""
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
        tags; the list replaces the task's tags) of a create or update body (§3, §12)."""
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

    def _live_task(self, m: Matched) -> dict[str, Any] | None:
        task = self._tasks.get(int(m["id"]))
        return None if task is None or task["status"] == "deleted" else task

    # ================================================================ task endpoints

    @route("POST", f"{V3}/tasklists/{{id}}/tasks", method_in_name=True)
    def _http_create_task(self, request: Request, m: Matched) -> Response:
        tasklist = self._tasklists.get(int(m["id"]))
        if tasklist is None or tasklist["status"] == "deleted":
            return empty_response(404)
        body = self._body(request)
        if isinstance(body, Response):
            return body
        fields = body.get("task")
        if not isinstance(fields, dict):
            return self._v3_error(400, "Invalid task", "task is required")
        name = fields.get("name")
        if not isinstance(name, str) or not name.strip():
            return self._v3_error(400, "Invalid name", "name is required", "required")
        description = fields.get("description") or ""
        if not isinstance(description, str):
            return self._v3_error(400, "Invalid description", "description must be a string")
        priority = fields.get("priority")
        if priority not in PRIORITIES:
            return self._v3_error(400, "Invalid priority", f"unknown priority {priority!r}")
        options = body.get("taskOptions") or {}
        check = isinstance(options, dict) and bool(options.get("checkInvalidusers"))
        assignees = self._assignees(fields.get("assignees"), tasklist["projectId"], check, [])
        if isinstance(assignees, Response):
            return assignees
        extra = self._dates_and_tags(fields)
        if isinstance(extra, Response):
            return extra
        task = self._new_task(tasklist, name, description, assignees, priority)
        task.update(extra)
        response = json_response(201, {"task": self._public_task(task), "included": {}})
        response.create = True
        return response

    @route("PATCH", f"{V3}/tasks/{{id}}")
    @route("PUT", f"{V3}/tasks/{{id}}")
    def _http_update_task(self, request: Request, m: Matched) -> Response:
        task = self._live_task(m)
        if task is None:
            return empty_response(404)
        body = self._body(request)
        if isinstance(body, Response):
            return body
        fields = body.get("task")
        if not isinstance(fields, dict):
            return self._v3_error(400, "Invalid task", "task is required")
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
            # §4.2: v3 status cannot complete a task; only new/active were accepted.
            return self._v3_error(400, "Invalid status",
                                  f"status {fields['status']!r} cannot be set here")
        if fields.get("tasklistId") is not None:
            target = self._tasklists.get(fields["tasklistId"])
            if target is None or target["projectId"] != self._project_of(task):
                return self._v3_error(400, "Invalid tasklistId",
                                      "the task list must be in the same project")
            changes["tasklistId"] = target["id"]
        extra = self._dates_and_tags(fields)
        if isinstance(extra, Response):
            return extra
        changes.update(extra)
        options = body.get("taskOptions") or {}
        check = isinstance(options, dict) and bool(options.get("checkInvalidusers"))
        assignees = self._assignees(fields.get("assignees"), self._project_of(task), check,
                                    task["assignees"])
        if isinstance(assignees, Response):
            return assignees
        changes["assignees"] = assignees
        changed = {k: v for k, v in changes.items() if task[k] != v}
        if changed:
            self._count_live(task, -1)
            task.update(changed)
            self._count_live(task, +1)
            self._touch(task)
        return json_response(200, {"task": self._public_task(task), "included": {}})

    @route("GET", f"{V3}/tasks/{{id}}")
    def _http_get_task(self, request: Request, m: Matched) -> Response:
        task = self._tasks.get(int(m["id"]))
        if task is None or (task["status"] == "deleted" and self.get_deleted_returns_404):
            return empty_response(404)
        return json_response(200, {"task": self._public_task(task), "included": {}})

    @route("DELETE", f"{V3}/tasks/{{id}}")
    def _http_delete_task(self, request: Request, m: Matched) -> Response:
        task = self._live_task(m)
        if task is None:
            return empty_response(404)
        self._delete(task)
        return empty_response(204)

    def _v1_state(self, m: Matched, change: Callable[[dict[str, Any]], None]) -> Response:
        task = self._live_task(m)
        if task is None:
            return self._v1_error(404, "Not found")
        change(task)
        return json_response(200, {"STATUS": "OK"})

    @route("PUT", "/tasks/{id}/complete")
    def _http_complete(self, request: Request, m: Matched) -> Response:
        return self._v1_state(m, self._complete)

    @route("PUT", "/tasks/{id}/uncomplete")
    def _http_uncomplete(self, request: Request, m: Matched) -> Response:
        return self._v1_state(m, self._uncomplete)

    @route("PUT", "/tasks/{id}/move")
    def _http_move(self, request: Request, m: Matched) -> Response:
        """v1 ``PUT /tasks/{id}/move.json`` ``{"taskListId": N}`` (no wrapper): moves the task
        to a list of any project (§4.2). **Choice:** answers 200 ``{"STATUS": "OK"}`` like the
        other v1 task actions; an unknown list is 404, a missing ``taskListId`` 422."""
        task = self._live_task(m)
        if task is None:
            return self._v1_error(404, "Not found")
        try:
            body = request.json()
        except ValueError:
            body = None
        target_id = body.get("taskListId") if isinstance(body, dict) else None
        if isinstance(target_id, str) and target_id.isdigit():
            target_id = int(target_id)
        if not isinstance(target_id, int) or isinstance(target_id, bool):
            return self._v1_error(422, "taskListId is required")
        target = self._tasklists.get(target_id)
        if target is None or target["status"] == "deleted":
            return self._v1_error(404, "Task list not found")
        if task["tasklistId"] != target_id:
            task["tasklistId"] = target_id
            self._touch(task)
        return json_response(200, {"STATUS": "OK"})

    # ================================================================ tags

    @route("GET", f"{V3}/tags")
    def _http_list_tags(self, request: Request, m: Matched) -> Response:
        """``GET /projects/api/v3/tags.json``: ``searchTerm`` (case-insensitive substring of
        the name), ``projectIds``, paging (§12)."""
        term = (request.arg("searchTerm") or "").strip().lower()
        projects = self._id_list(request.arg("projectIds"))
        found = [dict(t) for _, t in sorted(self._tags.items())
                 if term in t["name"].lower()
                 and (projects is None or t["projectId"] in projects | {0})]
        return self._page(request, "tags", found, lambda t: t)

    @route("POST", f"{V3}/tags", method_in_name=True)
    def _http_create_tag(self, request: Request, m: Matched) -> Response:
        """``POST /projects/api/v3/tags.json`` ``{"tag": {"name", "color"?, "projectId"?}}``
        → 201 ``{"tag": {...}}`` (§12). **Choice:** names are not unique (nothing says they
        are), so a repeated create makes a second tag of that name."""
        body = self._body(request)
        if isinstance(body, Response):
            return body
        fields = body.get("tag")
        name = fields.get("name") if isinstance(fields, dict) else None
        if not isinstance(name, str) or not name.strip():
            return self._v3_error(400, "Invalid name", "tag.name is required", "required")
        project = fields.get("projectId")
        tag_id = self.add_tag(name.strip(), project if isinstance(project, int) else None)
        response = json_response(201, {"tag": dict(self._tags[tag_id])})
        response.create = True
        return response

    # ================================================================ listing

    def _paging(self, request: Request) -> tuple[int, int] | Response:
        page_raw = request.arg("page") or "1"
        size_raw = request.arg("pageSize") or str(PAGE_SIZE_DEFAULT)
        if not page_raw.isdigit() or not size_raw.isdigit() or int(page_raw) < 1 \
                or int(size_raw) < 1:
            return self._v3_error(400, "Invalid paging", "page and pageSize must be positive")
        return int(page_raw), min(int(size_raw), PAGE_SIZE_MAX)

    def _page(self, request: Request, key: str, items: list[Any],
              render: Callable[[Any], dict[str, Any]]) -> Response:
        paging = self._paging(request)
        if isinstance(paging, Response):
            return paging
        page, size = paging
        chunk, more = page_slice(items, page, size)
        return json_response(200, {
            key: [render(i) for i in chunk],
            "meta": {"page": {"pageOffset": page - 1, "pageSize": size, "count": len(items),
                              "hasMore": more}},
            "included": {},
        })

    @staticmethod
    def _id_list(raw: str | None) -> set[int] | None:
        if raw is None or not raw.strip():
            return None
        return {int(p) for p in raw.split(",") if p.strip().isdigit()}

    def _list_tasks(self, request: Request, scope: Callable[[dict[str, Any]], bool]) -> Response:
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
            return not term or any(term in text.lower() for text in
                                   (task["name"], task["description"], tasklist["name"]))

        found = [t for _, t in sorted(self._tasks.items()) if keep(t)]
        return self._page(request, "tasks", found, self._public_task)

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
        if tasklist is None or tasklist["status"] == "deleted":
            return empty_response(404)
        return json_response(200, {"tasklist": dict(tasklist)})

    @route("POST", "/projects/{id}/tasklists", method_in_name=True)
    def _http_create_tasklist(self, request: Request, m: Matched) -> Response:
        project_id = int(m["id"])
        if project_id not in self._projects:
            return self._v1_error(404, "Not found")
        try:
            body = request.json()
        except ValueError:
            body = None
        wrapper = body.get("todo-list") if isinstance(body, dict) else None
        if not isinstance(wrapper, dict):
            return self._v1_error(422, "Could not find the 'todo-list' object in the request")
        name = wrapper.get("name")
        if not isinstance(name, str) or not name.strip():
            return self._v1_error(400, "A task list name is required")
        tasklist_id = self.add_tasklist(project_id, name)
        if isinstance(wrapper.get("description"), str):
            self._tasklists[tasklist_id]["description"] = wrapper["description"]
        response = json_response(201, {"TASKLISTID": str(tasklist_id), "STATUS": "OK"})
        response.create = True
        return response

    # ================================================================ people and projects

    def _list_people(self, request: Request, members: set[int] | None) -> Response:
        words = (request.arg("searchTerm") or "").lower().split()
        ids = self._id_list(request.arg("ids"))

        def keep(person: dict[str, Any]) -> bool:
            fields = (person["firstName"].lower(), person["lastName"].lower(),
                      person["email"].lower())
            return ((members is None or person["id"] in members)
                    and (ids is None or person["id"] in ids)
                    and all(any(w in f for f in fields) for w in words))

        found = [dict(p) for _, p in sorted(self._people.items()) if keep(p)]
        return self._page(request, "people", found, lambda p: p)

    @route("GET", f"{V3}/people")
    def _http_list_people(self, request: Request, m: Matched) -> Response:
        return self._list_people(request, None)

    @route("GET", f"{V3}/projects/{{id}}/people")
    def _http_list_project_people(self, request: Request, m: Matched) -> Response:
        project_id = int(m["id"])
        if project_id not in self._projects:
            return empty_response(404)
        return self._list_people(request, self._members[project_id])

    @route("GET", f"{V3}/people/{{id}}")
    def _http_get_person(self, request: Request, m: Matched) -> Response:
        person = self._people.get(int(m["id"]))
        if person is None:
            return empty_response(404)
        return json_response(200, {"person": dict(person)})

    @route("GET", f"{V3}/me")
    def _http_me(self, request: Request, m: Matched) -> Response:
        return json_response(200, {"person": dict(self._people[self.me_id])})

    @route("GET", f"{V3}/projects/{{id}}")
    def _http_get_project(self, request: Request, m: Matched) -> Response:
        project = self._projects.get(int(m["id"]))
        if project is None:
            return empty_response(404)
        return json_response(200, {"project": dict(project)})

    @route("GET", f"{V3}/projects")
    def _http_list_projects(self, request: Request, m: Matched) -> Response:
        term = (request.arg("searchTerm") or "").strip().lower()
        found = [dict(p) for _, p in sorted(self._projects.items()) if term in p["name"].lower()]
        return self._page(request, "projects", found, lambda p: p)
