"""Users and groups as the API shows them: show, show_many, search and list users; list
groups. Groups are made with ``add_group`` and named on tickets by ``group_id``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from zdsync.sim.base import Request, Response, iso_utc, json_response, page_slice
from zdsync.sim.server import route
from zdsync.sim.zendesk.service import NOT_FOUND, ROLES, ZendeskService, invalid, one_page

GROUPS_PER_PAGE_MAX = 100
USERS_PER_PAGE_MAX = 100


class UsersAndGroups(ZendeskService):
    """``add_group``, ``rename_group``; the user and group endpoints."""

    def add_group(self, name: str) -> int:
        """Create an agent group (tickets name it by ``group_id``)."""
        with self.lock:
            gid = self._next_group_id
            self._next_group_id += 1
            stamp = iso_utc(self.clock.now())
            self._groups[gid] = {"id": gid, "name": name, "description": "", "default": False,
                                 "deleted": False, "created_at": stamp, "updated_at": stamp}
            return gid

    def rename_group(self, group_id: int, name: str) -> None:
        with self.lock:
            self._groups[group_id].update(name=name, updated_at=iso_utc(self.clock.now()))

    @route("GET", "/api/v2/users/{id}")
    def _show_user(self, request: Request, m: re.Match[str]) -> Response:
        user = self._users.get(int(m["id"]))
        if user is None:
            return json_response(404, NOT_FOUND)
        return json_response(200, {"user": self._public_user(user)})

    @route("GET", "/api/v2/users/me")
    def _me(self, request: Request, _m: re.Match[str]) -> Response:
        return json_response(200, {"user": self._public_user(request.identity)})

    @route("GET", "/api/v2/users/show_many")
    def _show_many_users(self, request: Request, _m: re.Match[str]) -> Response:
        ids = self._ids(request)
        if isinstance(ids, Response):
            return ids
        found = [self._public_user(self._users[i]) for i in ids if i in self._users]
        return one_page("users", found)

    @route("GET", "/api/v2/users/search")
    def _search_users(self, request: Request, _m: re.Match[str]) -> Response:
        query = (request.arg("query") or "").strip()
        if not query:
            return invalid("query is required")
        if query.lower().startswith("email:"):
            query = query[len("email:"):].strip()
        needle = query.lower()
        if "@" in needle:
            found = [u for u in self._users.values() if u["email"].lower() == needle]
        else:
            found = [u for u in self._users.values()
                     if needle in u["name"].lower() or needle in u["email"].lower()]
        return one_page("users", [self._public_user(u)
                                  for u in sorted(found, key=lambda u: u["id"])])

    @route("GET", "/api/v2/users")
    def _list_users(self, request: Request, _m: re.Match[str]) -> Response:
        roles = set(request.args("role") + request.args("role[]"))
        if roles - set(ROLES):
            return invalid(f"role must be one of {ROLES}")
        users = [u for _, u in sorted(self._users.items()) if not roles or u["role"] in roles]
        return self._offset_page(request, "users", users, self._public_user,
                                 USERS_PER_PAGE_MAX, [("role[]", r) for r in sorted(roles)])

    @route("GET", "/api/v2/groups")
    def _list_groups(self, request: Request, _m: re.Match[str]) -> Response:
        """``GET /api/v2/groups``: offset paging as for users (``page``, ``per_page`` up to
        100, ``next_page``); deleted groups are left out."""
        groups = [g for _, g in sorted(self._groups.items()) if not g["deleted"]]
        return self._offset_page(
            request, "groups", groups,
            lambda g: {**g, "url": f"{self._base_url()}/api/v2/groups/{g['id']}.json"},
            GROUPS_PER_PAGE_MAX)

    def _offset_page(self, request: Request, key: str, items: list[dict[str, Any]],
                     render: Callable[[dict[str, Any]], dict[str, Any]], per_page_max: int,
                     extra_query: list[tuple[str, str]] | None = None) -> Response:
        """Offset paging (``page``, ``per_page``; ``next_page``/``previous_page`` links that
        keep ``extra_query``), as users and groups are listed."""
        page_raw, per_page_raw = request.arg("page") or "1", request.arg("per_page") or "100"
        if not page_raw.isdigit() or not per_page_raw.isdigit() or int(page_raw) < 1:
            return invalid("page and per_page must be positive integers")
        page, per_page = int(page_raw), max(1, min(int(per_page_raw), per_page_max))
        chunk, more = page_slice(items, page, per_page)

        def link(n: int) -> str:
            query = [("page", str(n)), ("per_page", str(per_page)), *(extra_query or [])]
            return f"{self._base_url()}/api/v2/{key}.json?{urlencode(query)}"

        return json_response(200, {
            key: [render(i) for i in chunk],
            "next_page": link(page + 1) if more else None,
            "previous_page": link(page - 1) if page > 1 else None,
            "count": len(items),
        })
