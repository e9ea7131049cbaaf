"""The people on either side: Zendesk users and Teamwork people, as plain data.

``from_api`` raises ValueError, KeyError or TypeError on an answer of another shape; the
clients turn that into an ``ApiError``. ``display`` is how every command names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

AGENT_ROLES = frozenset({"agent", "admin"})


@dataclass(frozen=True)
class User:
    """A Zendesk user (``users/{id}``, ``users/show_many``, ``users/me``)."""

    id: int
    name: str = ""
    email: str = ""
    role: str = ""
    active: bool = True

    @property
    def display(self) -> str | None:
        return self.name or self.email or None

    @property
    def is_agent(self) -> bool:
        """Agents and admins are assigned tickets; end-users are not."""
        return self.role in AGENT_ROLES

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> User:
        return cls(id=int(data["id"]), name=str(data.get("name") or ""),
                   email=str(data.get("email") or ""), role=str(data.get("role") or ""),
                   active=data.get("active") is not False)


@dataclass(frozen=True)
class Person:
    """A Teamwork person (v3 ``people``, ``me``)."""

    id: int
    first_name: str = ""
    last_name: str = ""
    email: str = ""

    @property
    def display(self) -> str | None:
        return f"{self.first_name} {self.last_name}".strip() or self.email or None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Person:
        return cls(id=int(data["id"]), first_name=str(data.get("firstName") or ""),
                   last_name=str(data.get("lastName") or ""), email=str(data.get("email") or ""))
