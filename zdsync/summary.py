"""What a pass did, counted: for its log line, ``zdsync sync``'s output and the metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from zdsync.times import iso_utc

COUNTS = ("seen", "created", "updated", "completed", "reopened", "deleted", "adopted",
          "skipped", "failed")


@dataclass
class Summary:
    seen: int = 0
    created: int = 0
    updated: int = 0
    completed: int = 0
    reopened: int = 0
    deleted: int = 0
    adopted: int = 0
    skipped: int = 0
    failed: int = 0
    pages: int = 0
    cursor_position: int | None = None
    error: str | None = None  # a service stayed unreachable; the cursor kept its place
    stopped: bool = False  # shutdown or a lost lease: the pass stopped between two steps
    rebuilt: bool = False
    planned: list[tuple[int, list[str]]] = field(default_factory=list)  # dry runs

    def add(self, counts: Any) -> None:
        for name in COUNTS:
            setattr(self, name, getattr(self, name) + counts.get(name, 0))

    def line(self) -> str:
        position = iso_utc(self.cursor_position) if self.cursor_position else "none"
        text = (f"tickets seen {self.seen}; tasks created {self.created}, updated "
                f"{self.updated}, completed {self.completed}, reopened {self.reopened}, "
                f"deleted {self.deleted}; skipped {self.skipped}; failed {self.failed}; "
                f"cursor {position}")
        if self.error:
            text += f"; error: {self.error}"
        return text

    def as_dict(self) -> dict[str, Any]:
        """The counts and how the pass ended, for ``--json`` (the plan is apart)."""
        return {**{name: getattr(self, name) for name in COUNTS}, "pages": self.pages,
                "cursor_position": self.cursor_position,
                "cursor_utc": iso_utc(self.cursor_position) if self.cursor_position else None,
                "error": self.error, "stopped": self.stopped, "rebuilt": self.rebuilt}

    @property
    def result(self) -> str:
        return ("error" if self.error else "stopped" if self.stopped
                else "partial" if self.failed else "success")
