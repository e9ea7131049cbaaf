"""The end-state check: does the Teamwork simulator hold exactly what the rules imply?

For every ticket in the Zendesk simulator (deleted ones included) the pure rules
(:func:`zdsync.rules.desired_task`) say what task should exist; this module compares that
with the live tasks of one task list, found by the ticket link in their description. It
knows nothing about the daemon's store, so it judges the result, not the bookkeeping.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from zdsync.rules import Presence, Ticket, desired_task, ticket_link
from zdsync.sim.teamwork import TeamworkSim
from zdsync.sim.zendesk import ZendeskSim

_LINK_LINE = re.compile(r"^Zendesk ticket:\s*(\S+)\s*$", re.MULTILINE)
_TICKET_ID = re.compile(r"/agent/tickets/(\d+)\Z")


@dataclass(frozen=True)
class Difference:
    """One way Teamwork differs from what the rules imply for a ticket.

    ``kind`` is ``missing``, ``duplicate``, ``wrong_title``, ``wrong_assignee``,
    ``wrong_completion``, ``unexpected`` (a task for a ticket that must have none) or
    ``orphan`` (a task linking to no ticket of this Zendesk).
    """

    ticket_id: int | None
    kind: str
    detail: str

    def __str__(self) -> str:
        who = "no ticket" if self.ticket_id is None else f"ticket {self.ticket_id}"
        return f"{who}: {self.kind}: {self.detail}"


def linked_ticket(description: str, zendesk_url: str) -> tuple[int | None, bool]:
    """The ticket id a task's description links to, and whether it has a link at all.

    The link must be exactly ``ticket_link(zendesk_url, id)``; a link to another Zendesk
    counts as a link that matches no ticket.
    """
    found = _LINK_LINE.search(description or "")
    if not found:
        return None, False
    link = found.group(1)
    number = _TICKET_ID.search(link)
    if number is None or link != ticket_link(zendesk_url, int(number.group(1))):
        return None, True
    return int(number.group(1)), True


def _assignees(task: Mapping[str, Any]) -> set[int]:
    return {a["id"] for a in task.get("assignees") or []}


def check(zendesk: ZendeskSim, teamwork: TeamworkSim, *, tasklist_id: int,
          mappings: Mapping[int, int], title_template: str,
          zendesk_url: str) -> list[Difference]:
    """Every difference between the task list and the rules, ordered by ticket id.

    Tasks without any ``Zendesk ticket:`` line are not zdsync's and are ignored.
    """
    tickets = {t["id"]: t for t in zendesk.tickets()}
    live: dict[int, list[dict[str, Any]]] = {}
    differences: list[Difference] = []
    for task in teamwork.tasks(tasklist_id=tasklist_id):
        ticket_id, has_link = linked_ticket(task["description"], zendesk_url)
        if not has_link:
            continue
        if ticket_id is None or ticket_id not in tickets:
            differences.append(Difference(ticket_id, "orphan",
                                          f"task {task['id']} {task['name']!r} links to no "
                                          "ticket of this Zendesk"))
            continue
        live.setdefault(ticket_id, []).append(task)

    for ticket_id, data in sorted(tickets.items()):
        want = desired_task(Ticket.from_api(data), mappings, title_template)
        tasks = sorted(live.get(ticket_id, []), key=lambda t: t["id"])
        ids = [t["id"] for t in tasks]
        if want.presence is Presence.FORBIDDEN:
            differences.extend(
                Difference(ticket_id, "unexpected",
                           f"task {t['id']} exists for a {data['status']} ticket")
                for t in tasks)
            continue
        if not tasks:
            if want.presence is Presence.REQUIRED:
                differences.append(Difference(ticket_id, "missing",
                                              f"no task titled {want.title!r}"))
            continue
        if len(tasks) > 1:
            differences.append(Difference(ticket_id, "duplicate", f"tasks {ids}"))
        task = tasks[0]
        if task["name"] != want.title:
            differences.append(Difference(ticket_id, "wrong_title",
                                          f"task {task['id']} is {task['name']!r}, "
                                          f"want {want.title!r}"))
        expected = set() if want.assignee is None else {want.assignee}
        if _assignees(task) != expected:
            differences.append(Difference(ticket_id, "wrong_assignee",
                                          f"task {task['id']} has {sorted(_assignees(task))},"
                                          f" want {sorted(expected) or 'Anyone'}"))
        completed = task["status"] == "completed"
        if completed != want.completed:
            differences.append(Difference(ticket_id, "wrong_completion",
                                          f"task {task['id']} is {task['status']}, want "
                                          f"{'completed' if want.completed else 'open'}"))
    return sorted(differences, key=lambda d: (d.ticket_id is None, d.ticket_id or 0))
