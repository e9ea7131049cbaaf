"""Routes: which tickets sync, and where and how their tasks are kept. Pure, no I/O.

A ``[[route]]`` table (TOML only: a list of tables fits no option or environment
variable) names a route, the tickets it matches and the task list that receives them.
The first route that matches wins; once any route exists, a ticket matching none is
handled by ``sync.on_unmatch``. Without routes, one implicit route built from
``[teamwork]`` and ``[sync]`` keeps zdsync's behaviour exactly as before routes existed.
"""

from __future__ import annotations

from dataclasses import dataclass

from zdsync.tickets import MAX_ID  # noqa: F401

DEFAULT_TITLE_TEMPLATE = "[ZD#{id}] {subject}"


@dataclass(frozen=True)
class Target:
    """Where and how the ticket's route wants its task (``routes.target`` builds it; the
    shell resolves task-list ids). The defaults are the implicit route of a configuration
    without ``[[route]]``: the shell picks the list, nothing moves, and only the title,
    assignee and completion are managed, as before routes existed.

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


