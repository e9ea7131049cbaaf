"""Small stateful HTTP fakes for requests-mock: enough Zendesk and Teamwork to run whole
passes in unit tests. (End-to-end tests use the real simulators in zdsync.sim.)"""

from __future__ import annotations

import itertools
import json
import re
from typing import Any

import requests

ZD = "https://zd.test"
TW = "https://tw.test"
V3 = TW + "/projects/api/v3"


def fake_env(redis_port: int) -> dict[str, str]:
    """Settings that point zdsync at these fakes and a test Redis."""
    return {"ZENDESK_URL": ZD, "ZENDESK_EMAIL": "ops@zd.test", "ZENDESK_API_TOKEN": "zt",
            "TEAMWORK_URL": TW, "TEAMWORK_API_TOKEN": "tt", "TEAMWORK_PROJECT_ID": "1",
            "TEAMWORK_TASKLIST_ID": "3", "TEAMWORK_RATE_LIMIT": "100000",
            "ZENDESK_EXPORT_RATE_LIMIT": "1000", "TEAMWORK_CONCURRENCY": "1",
            "REDIS_PORT": str(redis_port), "REDIS_KEY_PREFIX": "t:",
            "SYNC_START_TIME": "2023-01-01T00:00:00Z"}


class FakeZendesk:
    """Tickets with a version counter; the export returns each changed ticket once, at its
    latest version, in ``per_page`` pages; the cursor is the last version returned."""

    def __init__(self, mock) -> None:
        self.tickets: dict[int, dict[str, Any]] = {}
        self.clock = itertools.count(1_700_000_000)
        self.export_calls = 0
        mock.get(ZD + "/api/v2/incremental/tickets/cursor.json", json=self._export)
        mock.get(re.compile(re.escape(ZD) + r"/api/v2/tickets/\d+\.json"), json=self._show)
        mock.get(ZD + "/api/v2/tickets/show_many.json", json=self._show_many)

    def put(self, tid: int, **fields: Any) -> dict[str, Any]:
        stamp = next(self.clock)
        ticket = self.tickets.setdefault(tid, {"id": tid, "status": "new", "subject": "",
                                               "assignee_id": None, "submitter_id": None,
                                               "tags": []})
        ticket.update(fields, generated_timestamp=stamp,
                      updated_at=f"2026-01-01T00:00:{stamp % 60:02d}Z#{stamp}")
        return ticket

    def _export(self, request, context) -> dict[str, Any]:
        self.export_calls += 1
        after = int(request.qs["cursor"][0]) if "cursor" in request.qs else 0
        per_page = int(request.qs.get("per_page", ["1000"])[0])
        changed = sorted((t for t in self.tickets.values() if t["generated_timestamp"] > after),
                         key=lambda t: t["generated_timestamp"])
        page = changed[:per_page]
        cursor = str(page[-1]["generated_timestamp"]) if page else str(after)
        return {"tickets": [dict(t) for t in page], "after_cursor": cursor,
                "end_of_stream": len(changed) <= per_page}

    def _show_many(self, request, context):
        ids = [int(i) for i in request.qs.get("ids", [""])[0].split(",") if i]
        return {"tickets": [dict(self.tickets[i]) for i in ids if i in self.tickets
                            and self.tickets[i]["status"] != "deleted"]}

    def _show(self, request, context):
        tid = int(request.path.rsplit("/", 1)[1].split(".")[0])
        ticket = self.tickets.get(tid)
        if ticket is None or ticket["status"] == "deleted":
            context.status_code = 404
            return {"error": "RecordNotFound", "description": "Not found"}
        return {"ticket": dict(ticket)}


class FakeTeamwork:
    """Tasks in task list 3 of project 1. ``lose_next_create`` commits the next create
    and then drops the connection, like a response lost on the way back."""

    def __init__(self, mock) -> None:
        self.tasks: dict[int, dict[str, Any]] = {}
        self.ids = itertools.count(500)
        self.lose_next_create = False
        self.writes: list[str] = []
        mock.post(V3 + "/tasklists/3/tasks.json", json=self._create)
        mock.get(V3 + "/tasklists/3/tasks.json", json=self._list)
        task = re.compile(re.escape(V3) + r"/tasks/(\d+)\.json")
        mock.patch(task, json=self._patch)
        mock.delete(task, json=self._delete)
        mock.get(task, json=self._get)
        mock.put(re.compile(re.escape(TW) + r"/tasks/(\d+)/(complete|uncomplete)\.json"),
                 json=self._complete)
        mock.get(V3 + "/tasks.json", json=self._by_ids)
        self.by_ids_calls: list[list[int]] = []

    def live(self) -> list[dict[str, Any]]:
        return [t for t in self.tasks.values() if t["status"] != "deleted"]

    def _find(self, request, context) -> dict[str, Any] | None:
        tid = int(re.search(r"/tasks/(\d+)", request.path).group(1))
        task = self.tasks.get(tid)
        if task is None or task["status"] == "deleted":
            context.status_code = 404
            return None
        return task

    def _create(self, request, context):
        body = request.json()["task"]
        tid = next(self.ids)
        self.tasks[tid] = {"id": tid, "name": body["name"], "description": body["description"],
                           "status": "new", "tasklistId": 3,
                           "assignees": [{"id": u, "type": "users"}
                                         for u in body["assignees"]["userIds"]]}
        self.writes.append(f"create {tid}")
        if self.lose_next_create:
            self.lose_next_create = False
            raise requests.exceptions.ConnectionError("connection reset by peer")
        context.status_code = 201
        return {"task": self.tasks[tid]}

    def _patch(self, request, context):
        task = self._find(request, context)
        if task is None:
            return None
        body = request.json()["task"]
        if "name" in body:
            task["name"] = body["name"]
        if "assignees" in body:
            task["assignees"] = [{"id": u, "type": "users"} for u in body["assignees"]["userIds"]]
        self.writes.append(f"patch {task['id']} {json.dumps(body, sort_keys=True)}")
        return {"task": task}

    def _complete(self, request, context):
        task = self._find(request, context)
        if task is None:
            return {"MESSAGE": "Not found"}
        done = request.path.endswith("/complete.json")
        task["status"] = "completed" if done else "reopened"
        self.writes.append(f"{'complete' if done else 'uncomplete'} {task['id']}")
        return {"STATUS": "OK"}

    def _delete(self, request, context):
        task = self._find(request, context)
        if task is None:
            return None
        task["status"] = "deleted"
        self.writes.append(f"delete {task['id']}")
        context.status_code = 204
        return None

    def _get(self, request, context):
        task = self._find(request, context)
        return None if task is None else {"task": task}

    def _list(self, request, context):
        term = request.qs.get("searchterm", [""])[0].lower()
        found = [t for t in self.live()
                 if term in (t["name"] + t["description"]).lower()
                 and (t["status"] != "completed" or request.qs.get("includecompletedtasks"))]
        return {"tasks": found, "meta": {"page": {"hasMore": False}}}

    def _by_ids(self, request, context):
        """v3 ``GET /tasks.json?ids=…``: live tasks only (deleted ones need showDeleted)."""
        ids = [int(i) for i in request.qs.get("ids", [""])[0].split(",") if i]
        self.by_ids_calls.append(ids)
        found = [self.tasks[i] for i in ids if i in self.tasks
                 and self.tasks[i]["status"] != "deleted"
                 and (self.tasks[i]["status"] != "completed"
                      or request.qs.get("includecompletedtasks"))]
        return {"tasks": found, "meta": {"page": {"hasMore": False}}}


def _paged(request, items: list[Any], default_size: int = 50) -> tuple[list[Any], bool]:
    page = int(request.qs.get("page", ["1"])[0])
    size = int(request.qs.get("pagesize", request.qs.get("per_page", [str(default_size)]))[0])
    return items[(page - 1) * size:page * size], page * size < len(items)


class FakeDirectory:
    """Zendesk users and Teamwork people (members of project 1), both services' ``me``,
    project 1 and task list 3: what the operator commands (users, check) read."""

    def __init__(self, mock) -> None:
        self.users: dict[int, dict[str, Any]] = {}
        self.people: dict[int, dict[str, Any]] = {}
        self.members: set[int] = set()
        self.zendesk_me: dict[str, Any] = {"id": 1, "name": "Ops Admin",
                                           "email": "ops@zd.test", "role": "admin"}
        self.teamwork_me: dict[str, Any] = {"id": 2, "firstName": "Sync", "lastName": "Bot",
                                            "email": "bot@tw.test"}
        mock.get(ZD + "/api/v2/users/show_many.json", json=self._show_many)
        mock.get(ZD + "/api/v2/users/me.json", json=lambda r, c: {"user": self.zendesk_me})
        mock.get(ZD + "/api/v2/users.json", json=self._list_users)
        mock.get(V3 + "/people.json", json=lambda r, c: self._people(r, None))
        mock.get(V3 + "/projects/1/people.json", json=lambda r, c: self._people(r, self.members))
        mock.get(V3 + "/me.json", json=lambda r, c: {"person": self.teamwork_me})
        mock.get(V3 + "/projects/1.json", json={"project": {"id": 1, "name": "Support"}})
        mock.get(V3 + "/tasklists/3.json",
                 json={"tasklist": {"id": 3, "name": "Zendesk", "projectId": 1}})

    def user(self, uid: int, name: str, email: str, role: str = "agent") -> int:
        self.users[uid] = {"id": uid, "name": name, "email": email, "role": role,
                           "active": True}
        return uid

    def person(self, pid: int, first: str, last: str, email: str, member: bool = True) -> int:
        self.people[pid] = {"id": pid, "firstName": first, "lastName": last, "email": email}
        if member:
            self.members.add(pid)
        return pid

    def _show_many(self, request, context):
        ids = [int(i) for i in request.qs.get("ids", [""])[0].split(",") if i]
        return {"users": [self.users[i] for i in ids if i in self.users]}

    def _list_users(self, request, context):
        roles = set(request.qs.get("role[]", []))
        users = [u for _, u in sorted(self.users.items()) if not roles or u["role"] in roles]
        page = int(request.qs.get("page", ["1"])[0])
        chunk, more = _paged(request, users, 100)
        query = "&".join(f"role[]={r}" for r in sorted(roles))
        return {"users": chunk, "next_page": f"{ZD}/api/v2/users.json?{query}&per_page="
                f"{request.qs.get('per_page', ['100'])[0]}&page={page + 1}" if more else None}

    def _people(self, request, members: set[int] | None):
        ids = {int(i) for i in request.qs.get("ids", [""])[0].split(",") if i}
        people = [p for pid, p in sorted(self.people.items())
                  if (members is None or pid in members) and (not ids or pid in ids)]
        chunk, more = _paged(request, people)
        return {"people": chunk, "meta": {"page": {"hasMore": more}}}
