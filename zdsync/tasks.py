"""Teamwork's objects as zdsync sees them: plain data, read from v3 answers.

Every documented spelling is read, and nothing the official SDK's ``Task``
(Teamwork/twapi-go-sdk ``projects/task.go``) does not give is relied on: the list comes
from the relationship ``tasklist.id`` or the 2021 spec's flat ``tasklistId``; the project
is read when an answer carries ``projectId`` (the SDK's does not: the client finds it
through the list); a task is deleted when its ``status`` says so or ``deletedAt`` is set;
an unset priority may come as ``null``, ``""`` or ``"none"``.

Pure: the rules, the audit and the rebuild compare tasks without importing an I/O
module. ``from_api`` raises ValueError, KeyError or TypeError on an answer of another
shape; the Teamwork client turns that into an ``ApiError``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from zdsync.tickets import NO_PRIORITY


@dataclass(frozen=True)
class Task:
    id: int
    name: str
    description: str
    assignees: tuple[int, ...]
    status: str
    tasklist_id: int | None
    updated_at: str = ""
    updated_by: int | None = None
    project_id: int | None = None
    priority: str = "none"  # low, medium, high; NO_PRIORITY when unset
    due_date: str = ""  # YYYY-MM-DD, "" for none
    tag_ids: tuple[int, ...] = ()

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def deleted(self) -> bool:
        return self.status == "deleted"

    @property
    def assignee(self) -> int | None:
        """The single person zdsync assigns, or None for "Anyone" (or several people)."""
        return self.assignees[0] if len(self.assignees) == 1 else None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Task:
        """A v3 task; ``project_id`` None when the answer does not say (the SDK's never
        does)."""
        assignees = tuple(
            int(a["id"]) for a in data.get("assignees") or []
            if isinstance(a, dict) and a.get("type", "users") == "users"
        )
        return cls(
            id=int(data["id"]),
            name=data.get("name") or "",
            description=data.get("description") or "",
            assignees=assignees,
            status="deleted" if data.get("deletedAt") else data.get("status") or "new",
            tasklist_id=_id(data.get("tasklistId")) or _related_id(data.get("tasklist")),
            updated_at=data.get("updatedAt") or "",
            updated_by=data.get("updatedBy") if isinstance(data.get("updatedBy"), int) else None,
            project_id=data.get("projectId") if isinstance(data.get("projectId"), int) else None,
            priority=str(data.get("priority") or NO_PRIORITY),
            due_date=_date(data.get("dueDate")),
            tag_ids=tuple(int(t["id"]) for t in data.get("tags") or []
                          if isinstance(t, dict) and t.get("id") is not None),
        )


def _id(value: Any) -> int | None:
    """A positive id, as a number or a string of digits; None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    return value if isinstance(value, int) and value > 0 else None


def _related_id(value: Any) -> int | None:
    """The id of a v3 relationship ``{"id": …, "type": …}``."""
    return _id(value.get("id")) if isinstance(value, dict) else None


def _date(value: Any) -> str:
    """A v3 ``dueDate`` as ``YYYY-MM-DD`` (it may come as a date, a timestamp or v1's
    ``YYYYMMDD``); "" for none."""
    text = value if isinstance(value, str) else ""
    if re.fullmatch(r"[0-9]{8}", text):
        return f"{text[:4]}-{text[4:6]}-{text[6:]}"
    return text[:10] if re.match(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text) else ""


@dataclass(frozen=True)
class TaskList:
    id: int
    name: str
    project_id: int | None
    status: str = "new"

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> TaskList:
        project = data.get("projectId") or (data.get("project") or {}).get("id")
        return cls(id=int(data["id"]), name=str(data.get("name") or "").strip(),
                   project_id=int(project) if project is not None else None,
                   status=str(data.get("status") or "new"))
