"""The end-state check: does the Teamwork simulator hold exactly what the README's rules say?

It judges end-to-end runs, so it states the rules itself, from the README ("What it does"
and "Routes"), and imports nothing of the product's rules, routes or tickets: were it to
ask ``rules.desired_task`` what Teamwork should hold, a bug in the rules would be judged
by itself and never found. The price is that the rule table exists twice, here and in
``zdsync/rules.py``; a difference between the two makes end-to-end tests fail, and one
of them is wrong. It knows nothing about the daemon's store either, so it judges the
result, not the bookkeeping.

For every ticket in the Zendesk simulator (deleted ones included) it compares what the
rules imply with the live tasks that link to the ticket (the ``Zendesk ticket: <link>``
line of their description): in one task list (``check``), or, with ``[[route]]`` tables,
in every list of the site (``check_routed``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from zdsync.sim.teamwork import TeamworkSim
from zdsync.sim.zendesk import ZendeskSim

_LINK_LINE = re.compile(r"^Zendesk ticket:\s*(\S+)\s*$", re.MULTILINE)
_TICKET_ID = re.compile(r"/agent/tickets/(\d+)\Z")

# -- the README's rule table -------------------------------------------------------------

OPEN_STATUSES = frozenset({"new", "open", "pending", "hold"})
"""new, open, pending or on hold: the task is present and not completed."""
MERGE_TAG = "closed_by_merge"
NO_SUBJECT = "(no subject)"
TITLE_LIMIT = 250
"""Titles are cut to this many characters, in the subject (ending "…"), never in the id."""
DESCRIPTION_LIMIT = 10_000
PRIORITY = {"urgent": "high", "high": "high", "normal": "medium", "low": "low"}
"""Zendesk priority -> Teamwork's; none (or any other) -> ``"none"``."""

REQUIRED, FORBIDDEN, IF_EXISTS = "required", "forbidden", "kept if it exists"


@dataclass(frozen=True)
class Expected:
    """What the rules say Teamwork holds for one ticket (for a forbidden task, nothing)."""

    presence: str
    title: str = ""
    assignee: int | None = None  # None: Anyone
    completed: bool = False


def link(zendesk_url: str, ticket_id: int) -> str:
    """The ticket's agent-UI link, as the README shows it."""
    return f"{zendesk_url.rstrip('/')}/agent/tickets/{ticket_id}"


def title(ticket: Mapping[str, Any], template: str) -> str:
    """The title template with ``{id}``, ``{subject}`` (``(no subject)`` without one) and
    ``{status}``; a title over 250 characters keeps the whole template and the longest
    start of the subject that fits, followed by "…"."""
    subject = (ticket.get("subject") or "").strip() or NO_SUBJECT

    def fill(text: str) -> str:
        return template.format(id=ticket["id"], subject=text, status=ticket["status"])

    whole = fill(subject)
    if len(whole) <= TITLE_LIMIT:
        return whole
    for keep in range(min(len(subject), TITLE_LIMIT), -1, -1):
        cut = fill(subject[:keep].rstrip() + "…")
        if len(cut) <= TITLE_LIMIT:
            return cut
    return fill("…")


def assignee(ticket: Mapping[str, Any], mappings: Mapping[int, int]) -> int | None:
    """The person mapped to the assignee (an unmapped assignee: Anyone, never the
    submitter); unassigned, the person mapped to the agent who opened it, else Anyone."""
    if ticket.get("assignee_id") is not None:
        return mappings.get(ticket["assignee_id"])
    if ticket.get("submitter_id") is not None:
        return mappings.get(ticket["submitter_id"])
    return None


def expected(ticket: Mapping[str, Any], mappings: Mapping[int, int],
             title_template: str) -> Expected:
    """The README's table: open statuses -> present, open; solved -> present, completed;
    closed or deleted -> deleted; merged (closed + ``closed_by_merge``) -> completed if it
    has a task, none created."""
    status = ticket["status"]
    if status == "deleted" or (status == "closed" and MERGE_TAG not in ticket.get("tags", ())):
        return Expected(FORBIDDEN)
    if status not in OPEN_STATUSES | {"solved", "closed"}:
        raise ValueError(f"ticket {ticket['id']}: a status the rules do not know: {status!r}")
    return Expected(IF_EXISTS if status == "closed" else REQUIRED,
                    title=title(ticket, title_template), assignee=assignee(ticket, mappings),
                    completed=status not in OPEN_STATUSES)


# -- the check ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Difference:
    """One way Teamwork differs from what the rules imply for a ticket.

    ``kind`` is ``missing``, ``duplicate``, ``wrong_title``, ``wrong_assignee``,
    ``wrong_completion``, ``unexpected`` (a task for a ticket that must have none),
    ``orphan`` (a task linking to no ticket of this Zendesk) or, with routes,
    ``wrong_list``, ``wrong_priority``, ``wrong_due_date``, ``wrong_tags`` and
    ``wrong_description``.
    """

    ticket_id: int | None
    kind: str
    detail: str

    def __str__(self) -> str:
        who = "no ticket" if self.ticket_id is None else f"ticket {self.ticket_id}"
        return f"{who}: {self.kind}: {self.detail}"


def linked_ticket(description: str, zendesk_url: str) -> tuple[int | None, bool]:
    """The ticket id a task's description links to, and whether it has a link at all.

    The link must be exactly the ticket's link on ``zendesk_url``; a link to another
    Zendesk counts as a link that matches no ticket.
    """
    found = _LINK_LINE.search(description or "")
    if not found:
        return None, False
    url = found.group(1)
    number = _TICKET_ID.search(url)
    if number is None or url != link(zendesk_url, int(number.group(1))):
        return None, True
    return int(number.group(1)), True


def _assignees(task: Mapping[str, Any]) -> set[int]:
    return {a["id"] for a in task.get("assignees") or []}


def _linked(tasks: Iterable[dict[str, Any]], tickets: Mapping[int, Any], zendesk_url: str,
            differences: list[Difference]) -> dict[int, list[dict[str, Any]]]:
    """The live tasks by the ticket they link to (tasks without a link are not zdsync's);
    a task linking to no ticket of this Zendesk is an orphan."""
    live: dict[int, list[dict[str, Any]]] = {}
    for task in tasks:
        ticket_id, has_link = linked_ticket(task["description"], zendesk_url)
        if not has_link:
            continue
        if ticket_id is None or ticket_id not in tickets:
            differences.append(Difference(ticket_id, "orphan",
                                          f"task {task['id']} {task['name']!r} links to no "
                                          "ticket of this Zendesk"))
            continue
        live.setdefault(ticket_id, []).append(task)
    for found in live.values():
        found.sort(key=lambda t: t["id"])
    return live


def _judge(ticket_id: int, data: Mapping[str, Any], want: Expected,
           tasks: list[dict[str, Any]], differences: list[Difference]) -> dict[str, Any] | None:
    """Presence, duplicates, title, assignee and completion; the task judged, if any."""
    if want.presence == FORBIDDEN:
        differences.extend(Difference(ticket_id, "unexpected",
                                      f"task {t['id']} exists for a {data['status']} ticket")
                           for t in tasks)
        return None
    if not tasks:
        if want.presence == REQUIRED:
            differences.append(Difference(ticket_id, "missing", f"no task titled {want.title!r}"))
        return None
    if len(tasks) > 1:
        differences.append(Difference(ticket_id, "duplicate", f"tasks {[t['id'] for t in tasks]}"))
    task = tasks[0]
    if task["name"] != want.title:
        differences.append(Difference(ticket_id, "wrong_title", f"task {task['id']} is "
                                      f"{task['name']!r}, want {want.title!r}"))
    wanted = set() if want.assignee is None else {want.assignee}
    if _assignees(task) != wanted:
        differences.append(Difference(ticket_id, "wrong_assignee",
                                      f"task {task['id']} has {sorted(_assignees(task))},"
                                      f" want {sorted(wanted) or 'Anyone'}"))
    if (task["status"] == "completed") != want.completed:
        differences.append(Difference(ticket_id, "wrong_completion",
                                      f"task {task['id']} is {task['status']}, want "
                                      f"{'completed' if want.completed else 'open'}"))
    return task


def _ordered(differences: list[Difference]) -> list[Difference]:
    return sorted(differences, key=lambda d: (d.ticket_id is None, d.ticket_id or 0))


def check(zendesk: ZendeskSim, teamwork: TeamworkSim, *, tasklist_id: int,
          mappings: Mapping[int, int], title_template: str,
          zendesk_url: str) -> list[Difference]:
    """Every difference between one task list and the rules, ordered by ticket id (the
    configuration without routes: every task in ``[teamwork]``'s list).

    Tasks without any ``Zendesk ticket:`` line are not zdsync's and are ignored.
    """
    tickets = {t["id"]: t for t in zendesk.tickets()}
    differences: list[Difference] = []
    live = _linked(teamwork.tasks(tasklist_id=tasklist_id), tickets, zendesk_url, differences)
    for ticket_id, data in sorted(tickets.items()):
        _judge(ticket_id, data, expected(data, mappings, title_template),
               live.get(ticket_id, []), differences)
    return _ordered(differences)


# -- routes ------------------------------------------------------------------------------

_ID_CONDITIONS = ("group_id", "brand_id", "ticket_form_id", "organization_id")
_TEXT_CONDITIONS = ("via", "priority", "type")


def _as_set(value: Any) -> set[Any]:
    items = value if isinstance(value, list) else [value]
    return {i.lower() if isinstance(i, str) else i for i in items}


def route_matches(route: Mapping[str, Any], ticket: Mapping[str, Any]) -> bool:
    """Every condition of ``match`` holds, compared in any case (no match: every ticket);
    a ticket without the field (a group, a brand…) never matches an id condition."""
    tags = {t.lower() for t in ticket.get("tags") or []}
    for key, value in (route.get("match") or {}).items():
        wanted = _as_set(value)
        if key == "tags_any":
            ok = bool(wanted & tags)
        elif key == "tags_all":
            ok = wanted <= tags
        elif key == "tags_none":
            ok = not wanted & tags
        elif key in _ID_CONDITIONS:
            ok = ticket.get(key) in wanted
        elif key in _TEXT_CONDITIONS:
            have = (ticket.get("via") or {}).get("channel") if key == "via" else ticket.get(key)
            ok = (have or "").lower() in wanted
        else:
            raise ValueError(f"route {route.get('name')!r}: a condition the README does not "
                             f"name: match.{key}")
        if not ok:
            return False
    return True


@dataclass(frozen=True)
class Names:
    """What a description may show besides the ticket: read from the simulator."""

    requester_name: str = ""
    requester_email: str = ""
    group: str = ""


def description(ticket: Mapping[str, Any], template: str, names: Names,
                zendesk_url: str) -> str:
    """The ``Zendesk ticket: <link>`` line, a blank line, then the template's rendering
    (priority, type, group… empty when the ticket has none), the whole cut to 10,000
    characters (ending "…")."""
    url = link(zendesk_url, ticket["id"])
    body = template.format(
        id=ticket["id"], subject=(ticket.get("subject") or "").strip() or NO_SUBJECT,
        link=url, status=ticket["status"], priority=ticket.get("priority") or "",
        type=ticket.get("type") or "", tags=", ".join(ticket.get("tags") or []),
        group=names.group, requester_name=names.requester_name,
        requester_email=names.requester_email, created_at=ticket.get("created_at") or "")
    text = f"Zendesk ticket: {url}\n\n{body}"
    if len(text) > DESCRIPTION_LIMIT:
        text = text[:DESCRIPTION_LIMIT - 1].rstrip() + "…"
    return text


def due_date(ticket: Mapping[str, Any]) -> str:
    """A task-type ticket's ``due_at`` as its UTC day (``YYYY-MM-DD``); else no due date."""
    due = ticket.get("due_at")
    if ticket.get("type") != "task" or not due:
        return ""
    return datetime.fromisoformat(due.replace("Z", "+00:00")).astimezone(UTC).date().isoformat()


def check_routed(zendesk: ZendeskSim, teamwork: TeamworkSim, *,
                 routes: list[Mapping[str, Any]], project_id: int, tasklist_id: int | None,
                 tasklist_name: str, title_template: str, on_unmatch: str,
                 mappings: Mapping[int, int], zendesk_url: str,
                 groups: Mapping[int, str] | None = None) -> list[Difference]:
    """Every difference between the site's tasks and the rules with ``[[route]]`` tables.

    ``routes`` are the tables as the config file has them (TOML parsed, nothing filled
    in); the other settings are ``[teamwork]``'s and ``[sync]``'s. The first route that
    matches wins: its task is in the route's list (``tasklist_id``; or the list named
    ``tasklist_name`` in the route's project; or, unset, ``[teamwork]``'s list when the
    route is in ``[teamwork]``'s project, else the list named ``[teamwork] tasklist_name``
    there), titled by the route's template, and with what the route carries (priority, due
    date, tags, description). A ticket no route wants: ``on_unmatch`` ``keep`` judges
    nothing, ``complete`` wants its tasks completed, ``delete`` wants none.
    ``groups``: group names by id, for descriptions that show ``{group}``.
    """
    tickets = {t["id"]: t for t in zendesk.tickets()}
    differences: list[Difference] = []
    live = _linked(teamwork.tasks(), tickets, zendesk_url, differences)
    lists: dict[tuple[int, str], int] = {}
    for tasklist in teamwork.tasklists():  # the oldest of a name is the one found
        if tasklist["status"] != "deleted":
            lists.setdefault((tasklist["projectId"], tasklist["name"]), tasklist["id"])
    on_unmatch = on_unmatch.lower()
    for ticket_id, data in sorted(tickets.items()):
        tasks = live.get(ticket_id, [])
        route = next((r for r in routes if route_matches(r, data)), None)
        if route is None:
            if on_unmatch == "delete":
                differences.extend(Difference(ticket_id, "unexpected", f"task {t['id']} "
                                              "exists for a ticket no route wants "
                                              "(on_unmatch delete)") for t in tasks)
            elif on_unmatch == "complete":
                differences.extend(Difference(ticket_id, "wrong_completion", f"task {t['id']}"
                                              f" is {t['status']}, want completed (no route, "
                                              "on_unmatch complete)")
                                   for t in tasks if t["status"] != "completed")
            continue
        want = expected(data, mappings, route.get("title_template", title_template))
        task = _judge(ticket_id, data, want, tasks, differences)
        if task is None:
            continue
        project = route.get("project_id", project_id)
        if "tasklist_id" in route:
            want_list: int | None = route["tasklist_id"]
        elif "tasklist_name" in route:
            want_list = lists.get((project, route["tasklist_name"].strip()))
        elif project == project_id and tasklist_id is not None:
            want_list = tasklist_id
        else:
            want_list = lists.get((project, tasklist_name))
        seen: list[tuple[str, Any, Any]] = [("wrong_list", task["tasklistId"], want_list)]
        if route.get("priority"):
            # Teamwork shows an unset priority as null ("" and "none" also seen)
            seen.append(("wrong_priority", task["priority"] or "none",
                         PRIORITY.get(data.get("priority") or "", "none")))
        if route.get("due_date"):
            seen.append(("wrong_due_date", task["dueDate"] or "", due_date(data)))
        if route.get("tags"):
            seen.append(("wrong_tags", tuple(teamwork.tag_names(task["id"])),
                         tuple(sorted(set(data.get("tags") or [])))))
        if route.get("description_template") is not None:
            requester = (zendesk.user(data["requester_id"]) if data.get("requester_id")
                         else {})
            names = Names(requester.get("name", ""), requester.get("email", ""),
                          (groups or {}).get(data.get("group_id") or 0, ""))
            seen.append(("wrong_description", task["description"],
                         description(data, route["description_template"], names,
                                     zendesk_url)))
        differences.extend(Difference(ticket_id, kind, f"task {task['id']} has {have!r}, "
                                      f"want {wanted!r}")
                           for kind, have, wanted in seen if have != wanted)
    return _ordered(differences)
