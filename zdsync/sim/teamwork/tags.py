"""Tags: made in Teamwork's UI or over v3, searched by name, put on tasks by id."""

from __future__ import annotations

from typing import Any

from zdsync.sim.base import Request, Response, json_response
from zdsync.sim.server import route
from zdsync.sim.teamwork.service import V3, Matched, TeamworkService


class Tags(TeamworkService):
    """``add_tag``, ``tags``, ``tag_names``; GET and POST ``/tags``."""

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

    @route("GET", f"{V3}/tags")
    def _http_list_tags(self, request: Request, m: Matched) -> Response:
        """``GET /projects/api/v3/tags.json``: ``searchTerm`` (case-insensitive substring of
        the name), ``projectIds``, paging (Teamwork/twapi-go-sdk ``projects/tag.go``)."""
        term = (request.arg("searchTerm") or "").strip().lower()
        projects = self._id_list(request.arg("projectIds"))
        found = [dict(t) for _, t in sorted(self._tags.items())
                 if term in t["name"].lower()
                 and (projects is None or t["projectId"] in projects | {0})]
        return self._page(request, "tags", found, lambda t: t)

    @route("POST", f"{V3}/tags", method_in_name=True)
    def _http_create_tag(self, request: Request, m: Matched) -> Response:
        """``POST /projects/api/v3/tags.json`` ``{"tag": {"name", "color"?, "projectId"?}}``
        → 201 ``{"tag": {...}}`` (Teamwork/twapi-go-sdk ``projects/tag.go``). A name that
        exists (any case): 200 with that tag, as the v3 spec's text says, or 409 under
        ``existing_tag=409``. Tags made in Teamwork's UI may still share a name."""
        body = self._body(request)
        if isinstance(body, Response):
            return body
        fields = body.get("tag")
        name = fields.get("name") if isinstance(fields, dict) else None
        if not isinstance(name, str) or not name.strip():
            return self._v3_error(400, "Invalid name", "tag.name is required", "required")
        existing = [t for _, t in sorted(self._tags.items())
                    if t["name"].lower() == name.strip().lower()]
        if existing and self.variants.existing_tag == "409":
            return self._v3_error(409, "Conflict", f"a tag named {name!r} exists", "conflict")
        if existing:
            return json_response(200, {"tag": dict(existing[0])})
        project = fields.get("projectId")
        tag_id = self.add_tag(name.strip(), project if isinstance(project, int) else None)
        return self._created({"tag": dict(self._tags[tag_id])})
