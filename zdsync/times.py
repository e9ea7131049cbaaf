"""Time as zdsync reads and shows it: epoch seconds inside; ISO-8601 UTC in and out.

Both services write ``YYYY-MM-DDTHH:MM:SSZ``; settings and webhooks also take epoch
seconds. One reading and one rendering, so they never differ from place to place.
"""

from __future__ import annotations

import datetime as dt
import re

_DIGITS = re.compile(r"[+-]?[0-9]{1,30}")  # ASCII only: int() would also take "٣"


def epoch_of(text: str) -> int:
    """Epoch seconds from ASCII digits or an ISO-8601 time (naive means UTC); raises
    ValueError for anything else."""
    text = text.strip()
    if _DIGITS.fullmatch(text):
        return int(text)
    if len(text) > 64:
        raise ValueError("too long for a time")
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    try:
        return int(value.timestamp())
    except (OverflowError, ValueError):  # e.g. 0001-01-01 with a positive offset
        raise ValueError("out of range") from None


def iso_utc(epoch: float) -> str:
    """``2026-01-31T12:00:00Z``: what both services write, and what logs and records keep."""
    return dt.datetime.fromtimestamp(int(epoch), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def for_people(epoch: float | None) -> str:
    """``2026-01-31 12:00:00 UTC`` for command output; ``-`` when unknown."""
    if epoch is None:
        return "-"
    try:
        return dt.datetime.fromtimestamp(int(epoch), dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return f"epoch {epoch:.0f}"


def epoch_or_none(stamp: str) -> int | None:
    """An ISO-8601 stamp from an answer, or None when it is not one."""
    try:
        return epoch_of(stamp) if stamp else None
    except ValueError:
        return None
