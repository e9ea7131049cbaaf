"""Where the recorded real answers are, and reading them.

The recordings are other projects' cassettes of real Zendesk and Teamwork answers
(``SOURCES.md`` beside them names each repository, commit and path). They are not ours to
copy, so they stay in the shared folder beside the clone (``<repo>/../shared/realdata/
fixtures``, as CI lays it out) or wherever ``ZDSYNC_FIXTURES`` points. Where they are
absent, every test that reads one is skipped with a reason that says where it looked.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import pytest

FIXTURES_ENV = "ZDSYNC_FIXTURES"
REPOSITORY = Path(__file__).resolve().parents[2]
BESIDE_THE_CLONE = REPOSITORY.parent / "shared" / "realdata" / "fixtures"
TEAMWORK = "teamwork-v1"
"""The Teamwork recordings' folder inside the fixtures folder."""


def fixtures_dir() -> Path:
    """The fixtures folder: ``$ZDSYNC_FIXTURES`` if set, else the one beside the clone."""
    override = os.environ.get(FIXTURES_ENV)
    return Path(override) if override else BESIDE_THE_CLONE


def where_looked() -> str:
    override = os.environ.get(FIXTURES_ENV)
    if override:
        return f"{FIXTURES_ENV}={override}"
    return f"{BESIDE_THE_CLONE} (set {FIXTURES_ENV} to read them from elsewhere)"


def path(name: str) -> Path:
    """A recording's path (``teamwork-v1/me.json`` for a Teamwork one); skips the test
    when the recordings, or this one, are not there."""
    found = fixtures_dir() / name
    if not found.is_file():
        pytest.skip(f"recorded answer {name} not found: looked in {where_looked()}")
    return found


@functools.cache
def _load(file: Path) -> Any:
    return json.loads(file.read_text(encoding="utf-8"))


def load(name: str) -> Any:
    """A recording, parsed (read once per session; callers must not change it)."""
    return _load(path(name))


def teamwork(name: str) -> Any:
    return load(f"{TEAMWORK}/{name}")


# -- the Zendesk recordings, by what they hold -----------------------------------------

def export_chain() -> list[dict[str, Any]]:
    """100 consecutive cursor-export pages (``start_time=0``, then each ``after_cursor``),
    each ``{"query": …, "status": …, "body": …}``, in request order."""
    return load("export_2023_cursor_chain.json")["pages"]


def export_last_page() -> dict[str, Any]:
    """One cursor-export page with ``end_of_stream: true`` (its ``body``)."""
    return load("export_2024_page.json")["body"]


def ticket_versions() -> dict[str, dict[str, Any]]:
    """Single tickets as show, create, update and the export answered them, by name."""
    return load("ticket_versions.json")["versions"]


def every_ticket() -> list[dict[str, Any]]:
    """Every recorded ticket object, export pages, versions and shapes alike."""
    tickets = [t for p in export_chain() for t in p["body"]["tickets"]]
    tickets += export_last_page()["tickets"]
    tickets += [v["ticket"] for v in ticket_versions().values()]
    tickets += [v["ticket"] for v in load("ticket_shapes.json")["tickets"]]
    tickets += [v["ticket"] for v in load("rb_closed_pending.json")["tickets"]]
    return tickets


def users() -> list[dict[str, Any]]:
    return [u["user"] for u in load("users.json")["users"]]


def error(status: int) -> dict[str, Any]:
    """The recorded error body of this HTTP status."""
    return next(e["body"] for e in load("errors.json")["errors"] if e["status"] == status)
