"""Projects and the people on them, and the people and project endpoints.

A person must be on a task's project to be assigned to it (the SDK's
``checkInvalidusers``); the integration user is on every project.
"""

from __future__ import annotations

from typing import Any

from zdsync.sim.base import Request, Response, empty_response
from zdsync.sim.server import route
from zdsync.sim.teamwork.service import V3, Matched, TeamworkService


class PeopleAndProjects(TeamworkService):
    """``add_project``, ``add_to_project``, ``people``; GET people, me and projects."""

    def add_project(self, name: str) -> int:
        """A project; the integration user is a member of every project."""
        with self.lock:
            pid = self._next("project")
            stamp = self._now()
            self._projects[pid] = {"id": pid, "name": name, "description": "",
                                   "status": "active", "createdAt": stamp, "updatedAt": stamp}
            self._members[pid] = {self.me_id}
            return pid

    def add_to_project(self, project_id: int, person_id: int) -> None:
        with self.lock:
            if person_id not in self._people:
                raise KeyError(person_id)
            self._members[project_id].add(person_id)

    def people(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(p) for _, p in sorted(self._people.items())]

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
        return self._shown("person", self._people.get(int(m["id"])))

    @route("GET", f"{V3}/me")
    def _http_me(self, request: Request, m: Matched) -> Response:
        return self._shown("person", self._people[self.me_id])

    @route("GET", f"{V3}/projects/{{id}}")
    def _http_get_project(self, request: Request, m: Matched) -> Response:
        return self._shown("project", self._projects.get(int(m["id"])))

    @route("GET", f"{V3}/projects")
    def _http_list_projects(self, request: Request, m: Matched) -> Response:
        term = (request.arg("searchTerm") or "").strip().lower()
        found = [dict(p) for _, p in sorted(self._projects.items()) if term in p["name"].lower()]
        return self._page(request, "projects", found, lambda p: p)
