"""Routes: which tickets sync, and where and how their tasks are kept. Pure, no I/O.

A ``[[route]]`` table (TOML only: a list of tables fits no option or environment
variable) names a route, the tickets it matches and the task list that receives them.
The first route that matches wins; once any route exists, a ticket matching none is
handled by ``sync.on_unmatch``. Without routes, one implicit route built from
``[teamwork]`` and ``[sync]`` keeps zdsync's behaviour exactly as before routes existed:
the shell picks the list, nothing moves, only title, assignee and completion are managed.

Decisions (also in the README):

- Conditions compare case-insensitively (Zendesk stores tags lower-case); every condition
  given must hold; an id condition takes an int or a list of ints, a text one a string or
  a list of strings; an empty list is an error (it could never match).
- A route without ``tasklist_id``/``tasklist_name`` uses ``[teamwork]``'s list when it is
  in ``[teamwork]``'s project, else the list named ``[teamwork] tasklist_name`` in its own
  project (looked up, created if missing).
- The description is the ``Zendesk ticket: <link>`` line, a blank line, then the
  template's rendering, cut to ``defaults.MAX_DESCRIPTION_CHARS``: the link stays first, where the
  rebuild and the lost-create search read it.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from zdsync import defaults
from zdsync.tickets import (
    ELLIPSIS,
    LINK_LINE,
    MAX_ID,
    NO_SUBJECT,
    Ticket,
    ticket_link,
    title_template_problem,
)

DEFAULT_TITLE_TEMPLATE = "[ZD#{id}] {subject}"
ON_UNMATCH = ("keep", "complete", "delete")
DESCRIPTION_FIELDS = ("id", "subject", "link", "status", "priority", "type", "tags", "group",
                      "requester_name", "requester_email", "created_at")
REQUESTER_FIELDS = frozenset({"requester_name", "requester_email"})
ID_CONDITIONS = ("group_id", "brand_id", "ticket_form_id", "organization_id")
TEXT_CONDITIONS = ("via", "priority", "type")
TAG_CONDITIONS = ("tags_any", "tags_all", "tags_none")
ROUTE_KEYS = ("name", "match", "project_id", "tasklist_id", "tasklist_name", "title_template",
              "description_template", "priority", "due_date", "tags")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Target:
    """Where and how the ticket's route wants its task (``target`` builds it; the shell
    resolves task-list ids). The defaults are the implicit route.

    ``None`` for ``description``, and False for the three flags, mean "not managed": never
    compared, never written (the description is then the link written at create).
    ``on_unmatch`` is set when routes exist and none matched: ``keep``, ``complete`` or
    ``delete`` (``sync.on_unmatch``), and nothing else is managed."""

    title_template: str = DEFAULT_TITLE_TEMPLATE
    route: str | None = None
    tasklist_id: int | None = None
    project_id: int | None = None
    description: str | None = None
    priority: bool = False
    due_date: bool = False
    tags: bool = False
    on_unmatch: str | None = None


@dataclass(frozen=True)
class Match:
    """A route's conditions; every one given must hold (None or empty: not given)."""

    tags_any: frozenset[str] = frozenset()
    tags_all: frozenset[str] = frozenset()
    tags_none: frozenset[str] = frozenset()
    group_id: frozenset[int] | None = None
    brand_id: frozenset[int] | None = None
    ticket_form_id: frozenset[int] | None = None
    organization_id: frozenset[int] | None = None
    via: frozenset[str] | None = None
    priority: frozenset[str] | None = None
    type: frozenset[str] | None = None

    def matches(self, ticket: Ticket) -> bool:
        tags = {t.lower() for t in ticket.tags}
        if self.tags_any and not self.tags_any & tags:
            return False
        if not self.tags_all <= tags or self.tags_none & tags:
            return False
        for key in ID_CONDITIONS:
            wanted = getattr(self, key)
            if wanted is not None and getattr(ticket, key) not in wanted:
                return False
        for key in TEXT_CONDITIONS:
            wanted = getattr(self, key)
            if wanted is not None and (getattr(ticket, key) or "").lower() not in wanted:
                return False
        return True


@dataclass(frozen=True)
class Route:
    """One route, its defaults filled in from ``[teamwork]`` and ``[sync]``."""

    name: str
    match: Match = field(default_factory=Match)
    project_id: int | None = None
    tasklist_id: int | None = None
    tasklist_name: str | None = None  # used when tasklist_id is None
    title_template: str = DEFAULT_TITLE_TEMPLATE
    description_template: str | None = None
    priority: bool = False
    due_date: bool = False
    tags: bool = False

    @property
    def template_fields(self) -> frozenset[str]:
        """The fields the description template uses (which names must be read)."""
        if self.description_template is None:
            return frozenset()
        return frozenset(f for _, f, _, _ in string.Formatter().parse(
            self.description_template) if f)

    @property
    def place(self) -> str:
        """Where its tasks go, for people."""
        where = (f"task list {self.tasklist_id}" if self.tasklist_id is not None
                 else f"task list {self.tasklist_name!r}")
        return f"{where} in project {self.project_id}"


@dataclass(frozen=True)
class Routing:
    """The routes in order, whether they were configured (``explicit``), and what happens
    to a ticket that matches none."""

    routes: tuple[Route, ...]
    explicit: bool = False
    on_unmatch: str = "keep"

    def route_for(self, ticket: Ticket) -> Route | None:
        """The first route that matches (always the implicit one without routes)."""
        return next((r for r in self.routes if r.match.matches(ticket)), None)


def routing(routes: tuple[Route, ...], *, project_id: int | None, tasklist_id: int | None,
            tasklist_name: str, title_template: str, on_unmatch: str = "keep") -> Routing:
    """The configured routes, or the one implicit route of ``[teamwork]`` and ``[sync]``."""
    if routes:
        return Routing(routes, explicit=True, on_unmatch=on_unmatch)
    implicit = Route("default", project_id=project_id, tasklist_id=tasklist_id,
                     tasklist_name=None if tasklist_id is not None else tasklist_name,
                     title_template=title_template)
    return Routing((implicit,), explicit=False, on_unmatch=on_unmatch)


# -- what a task shows ----------------------------------------------------------------


@dataclass(frozen=True)
class Names:
    """Zendesk names a description may show (read in batches by the shell)."""

    requester_name: str = ""
    requester_email: str = ""
    group: str = ""


def render_description(ticket: Ticket, template: str, names: Names, zendesk_url: str) -> str:
    """The link line, a blank line and the template's rendering, at most
    ``defaults.MAX_DESCRIPTION_CHARS`` (the rendering is cut, never the link line)."""
    link = ticket_link(zendesk_url, ticket.id)
    body = template.format(
        id=ticket.id, subject=(ticket.subject or "").strip() or NO_SUBJECT, link=link,
        status=ticket.status, priority=ticket.priority or "", type=ticket.type or "",
        tags=", ".join(ticket.tags), group=names.group, requester_name=names.requester_name,
        requester_email=names.requester_email, created_at=ticket.created_at or "")
    text = f"{LINK_LINE}{link}\n\n{body}"
    if len(text) > defaults.MAX_DESCRIPTION_CHARS:
        text = text[:defaults.MAX_DESCRIPTION_CHARS - len(ELLIPSIS)].rstrip() + ELLIPSIS
    return text


def target(ticket: Ticket, routes: Routing, tasklists: Mapping[str, int | None],
           names: Names, zendesk_url: str) -> Target:
    """Where and how the ticket's route wants its task. ``tasklists``: each explicit
    route's resolved list id (by route name)."""
    route = routes.route_for(ticket)
    if route is None:
        return Target(on_unmatch=routes.on_unmatch)
    if not routes.explicit:
        return Target(title_template=route.title_template)
    description = None
    if route.description_template is not None:
        description = render_description(ticket, route.description_template, names,
                                         zendesk_url)
    return Target(title_template=route.title_template, route=route.name,
                  tasklist_id=tasklists.get(route.name), project_id=route.project_id,
                  description=description, priority=route.priority,
                  due_date=route.due_date, tags=route.tags)


# -- reading [[route]] tables ----------------------------------------------------------


class _Problems(list[str]):
    def add(self, where: str, key: str, text: str) -> None:
        self.append(f"{where}: {key} {text}")


def _ids(value: Any) -> frozenset[int] | None:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(i, int) and not isinstance(i, bool)
                            and 0 < i <= MAX_ID for i in items):
        return None
    return frozenset(items)


def _texts(value: Any) -> frozenset[str] | None:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(i, str) and i.strip() for i in items):
        return None
    return frozenset(i.strip().lower() for i in items)


def _match(raw: Any, where: str, problems: _Problems) -> Match:
    if raw is None:
        return Match()
    if not isinstance(raw, dict):
        problems.add(where, "match", "must be a table (match.tags_any = [...], ...)")
        return Match()
    texts = (_texts, "a string or a non-empty list of strings")
    ids = (_ids, "an id or a non-empty list of ids (positive integers)")
    readers = {**dict.fromkeys(TAG_CONDITIONS + TEXT_CONDITIONS, texts),
               **dict.fromkeys(ID_CONDITIONS, ids)}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in readers:
            known = ", ".join(TAG_CONDITIONS + ID_CONDITIONS + TEXT_CONDITIONS)
            problems.add(where, f"match.{key}", f"is not a condition (known: {known})")
            continue
        read, wanted = readers[key]
        parsed = read(value)
        if parsed is None:
            problems.add(where, f"match.{key}", f"must be {wanted}, got {value!r}"[:200])
        else:
            values[key] = parsed
    return Match(**values)


def parse_routes(raw: Any, *, project_id: int | None, tasklist_id: int | None,
                 tasklist_name: str, title_template: str) -> tuple[tuple[Route, ...], list[str]]:
    """Routes from the TOML ``route`` array of tables, their defaults filled in from
    ``[teamwork]`` and ``[sync]``, and every problem found, each naming ``route[N] (name)``
    (N counts the ``[[route]]`` tables from 1) and the field."""
    problems = _Problems()
    if not isinstance(raw, list):
        return (), ["route must be written as [[route]] tables (an array of tables)"]
    routes: list[Route] = []
    seen: set[str] = set()
    for number, table in enumerate(raw, 1):
        if not isinstance(table, dict):
            problems.append(f"route[{number}] must be a [[route]] table")
            continue
        name = table.get("name")
        where = f"route[{number}] ({name if isinstance(name, str) and name else 'no name'})"
        for key in table:
            if key not in ROUTE_KEYS:
                problems.add(where, key, f"is not a route setting (known: {', '.join(ROUTE_KEYS)})")
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            problems.add(where, "name", "is required: 1 to 64 letters, digits, '.', '_' or "
                         "'-', starting with a letter or digit")
        elif name in seen:
            problems.add(where, "name", "is used by an earlier route: names must be unique")
        else:
            seen.add(name)
        values: dict[str, Any] = {}
        for key in ("project_id", "tasklist_id"):
            if key in table:
                value = table[key]
                if isinstance(value, bool) or not isinstance(value, int) \
                        or not 0 < value <= MAX_ID:
                    problems.add(where, key, f"must be an id (a positive integer), got {value!r}")
                else:
                    values[key] = value
        if "tasklist_name" in table:
            value = table["tasklist_name"]
            if not isinstance(value, str) or not value.strip():
                problems.add(where, "tasklist_name", "must be a non-empty string")
            else:
                values["tasklist_name"] = value.strip()
        if "tasklist_id" in table and "tasklist_name" in table:
            problems.add(where, "tasklist_id", "and tasklist_name are both set: give one")
        for key in ("priority", "due_date", "tags"):
            if key in table:
                if not isinstance(table[key], bool):
                    problems.add(where, key, f"must be true or false, got {table[key]!r}")
                else:
                    values[key] = table[key]
        title = table.get("title_template", title_template)
        problem = (title_template_problem(title) if isinstance(title, str)
                   else "not a string")
        if problem is not None:
            problems.add(where, "title_template", f"is invalid ({problem}); fields are "
                         "{id}, {subject}, {status}")
        description = table.get("description_template")
        if description is not None:
            problem = _description_problem(description)
            if problem:
                problems.add(where, "description_template", f"is invalid ({problem}); fields "
                             f"are {', '.join('{' + f + '}' for f in DESCRIPTION_FIELDS)}")
        match = _match(table.get("match"), where, problems)
        project = values.get("project_id", project_id)
        if "tasklist_id" not in values and "tasklist_name" not in values:
            if project == project_id and tasklist_id is not None:
                values["tasklist_id"] = tasklist_id
            else:
                values["tasklist_name"] = tasklist_name
        routes.append(Route(str(name), match, project_id=project,
                            tasklist_id=values.get("tasklist_id"),
                            tasklist_name=values.get("tasklist_name"),
                            title_template=title if isinstance(title, str) else "",
                            description_template=description if isinstance(description, str)
                            else None,
                            priority=values.get("priority", False),
                            due_date=values.get("due_date", False),
                            tags=values.get("tags", False)))
    return tuple(routes), list(problems)


def _description_problem(template: Any) -> str | None:
    if not isinstance(template, str):
        return "not a string"
    try:
        template.format(**dict.fromkeys(DESCRIPTION_FIELDS, "x"))
    except KeyError as exc:
        return f"unknown field {exc}"
    except Exception as exc:  # format() can raise almost anything on a bad template
        return str(exc) or type(exc).__name__
    return None
