"""What the Teamwork simulator answers where nobody outside Teamwork knows the answer.

Each variant is one open question (teamwork-api.md's "Facts from Teamwork's own code",
item 7, and the two its items 1 and 2 leave open), with every plausible answer as a named
value. ``VARIANTS`` lists them all in one place so tests can run under each; the first
value of each is the default: Teamwork's documented answer where there is one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, replace

VARIANTS: dict[str, tuple[str, ...]] = {
    # Does a v3 task answer carry the 2021 spec's flat ``tasklistId`` beside the SDK's
    # ``tasklist`` relationship? The SDK's Task has only the relationship.
    "flat_tasklist_id": ("absent", "present"),
    # A v3 PATCH/PUT of a deleted task: 404 like a missing one, or 200 (as a GET is).
    "update_deleted": ("404", "200"),
    # A v3 edit (and a v1 move) of a completed task: applied, or refused until reopened
    # (v1 needs the task reopened first).
    "completed_edits": ("accepted", "refused"),
    # v1 complete of a completed task, uncomplete of an open one: 200, or refused.
    "repeat_state": ("idempotent", "refused"),
    # v3 POST /tags.json with a name that exists: 200 with that tag (the v3 spec's text),
    # or 409.
    "existing_tag": ("returned", "409"),
    # Does a task listing's ``updatedAfter`` keep the tasks updated at that very second?
    # (apidocs "How does paging work?" says to page on with it, not whether it is strict.)
    "updated_after": ("exclusive", "inclusive"),
}


@dataclass(frozen=True)
class Variants:
    """One choice per open question (values as in ``VARIANTS``)."""

    flat_tasklist_id: str = "absent"
    update_deleted: str = "404"
    completed_edits: str = "accepted"
    repeat_state: str = "idempotent"
    existing_tag: str = "returned"
    updated_after: str = "exclusive"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value not in VARIANTS[f.name]:
                raise ValueError(f"teamwork variant {f.name}={value!r}: choose one of "
                                 f"{', '.join(VARIANTS[f.name])}")

    @classmethod
    def parse(cls, pairs: Iterable[str]) -> Variants:
        """``name=value`` pairs (``zdsync sim teamwork --variant``); others default."""
        chosen: dict[str, str] = {}
        for pair in pairs:
            name, sep, value = pair.partition("=")
            if not sep or name.strip() not in VARIANTS:
                raise ValueError(f"teamwork variant {pair!r}: write name=value, name one of "
                                 f"{', '.join(VARIANTS)}")
            chosen[name.strip()] = value.strip()
        return cls(**chosen)

    def __str__(self) -> str:
        changed = [f"{f.name}={getattr(self, f.name)}" for f in fields(self)
                   if getattr(self, f.name) != VARIANTS[f.name][0]]
        return ",".join(changed) or "defaults"


def every_value() -> list[Variants]:
    """The fewest variant sets that between them take every value of every variant: the
    defaults, then the n-th other value of every variant at once (n = 1, 2, ...)."""
    widest = max(len(values) for values in VARIANTS.values())
    return [Variants(**{name: values[min(n, len(values) - 1)]
                        for name, values in VARIANTS.items()}) for n in range(widest)]


def each_alone() -> Iterator[Variants]:
    """The defaults with one variant changed, for every other value of every variant."""
    for name, values in VARIANTS.items():
        for value in values[1:]:
            yield replace(Variants(), **{name: value})
