"""How commands print: aligned tables, JSON for scripts, durations for people."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click

ASCII_MARKS = {"ok": "+", "fail": "x", "warn": "!", "skip": "-"}


def mark(state: str) -> str:
    """A check's mark (``checks.MARKS``), or its ASCII stand-in when standard output
    cannot encode it (``PYTHONIOENCODING=latin-1``, an old console): never a traceback."""
    from zdsync.checks import MARKS

    symbol = MARKS[state]
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        symbol.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return ASCII_MARKS[state]
    return symbol


def span(seconds: float) -> str:
    """A duration for people: 42 s, 5 min 3 s, 3 h 12 min, 4 d 2 h."""
    total = int(abs(seconds))
    if total < 60:
        return f"{total} s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def elided(text: str, width: int = 100) -> str:
    """A long message on one line of ``width``: its start (the service and request) and
    its end (where errors name the problem), the middle left out."""
    flat = " ".join(text.split())
    if len(flat) <= width:
        return flat
    head = width * 2 // 5
    return f"{flat[:head]}…{flat[len(flat) - (width - head - 1):]}"


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    cells = [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    for row in [list(headers), *cells]:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


_INT = re.compile(r"-?[0-9]{1,30}")
_FLOAT = re.compile(r"-?[0-9]{1,30}\.[0-9]*(?:e[+-]?[0-9]{1,3})?")


def numbers(fields: dict[str, str]) -> dict[str, Any]:
    """A Redis hash for ``--json``: the values that are numbers as numbers (Redis keeps
    only strings), the rest as they are, keys sorted (a hash has no order of its own, and
    scripts and the generated docs want the same output every time)."""
    def value(text: str) -> Any:
        if _INT.fullmatch(text):
            return int(text)
        return float(text) if _FLOAT.fullmatch(text) else text
    return {key: value(fields[key]) for key in sorted(fields)}


def dump_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))
