"""``zdsync sync``'s progress display on a terminal (standard error, with tqdm).

One line: tickets seen, counted as the summary line counts them (``Summary.seen``, less
those still queued, so the count rises ticket by ticket and ends where the summary line
does); how far the export has got, as a percentage of the time it spans (from where it
started to now) and, once its last page is in hand, the total; pages; Teamwork requests
a minute; and an ETA from the rate limit (``42 s`` under a minute, ``5 min 3 s`` above).

tqdm redraws the line in place. A terminal that reports 0 columns (a tty without a size:
``kubectl exec -t``, some CI runners) cannot be redrawn in place: there, a plain line is
printed every ``PLAIN_SECONDS`` and at the end instead.
"""

from __future__ import annotations

import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import click

from zdsync.cli.output import span
from zdsync.metrics import Metrics


@dataclass(frozen=True)
class Reading:
    """What the line is made of, read from a pass."""

    seen: int  # Summary.seen: the summary line's count
    queued: int  # tickets queued, not yet reconciled
    pages: int
    export_from: int | None  # where the export started (epoch s)
    export_at: int | None  # how far it has got (the committed position)
    export_done: bool  # its last page is in hand: the total is known
    now: float
    requests: float  # Teamwork requests so far
    handled: int  # tickets reconciled so far (requests per ticket)
    per_minute: float  # Teamwork requests a minute the pacer allows (0: unknown)
    minutes: float  # since the display started


def line(r: Reading) -> str:
    """The progress line (pure: the unit tests call it)."""
    done = max(0, r.seen - r.queued)
    total = r.seen if r.export_done else None
    fraction = None
    if total:
        fraction = done / total
    elif r.export_from is not None and r.export_at is not None and r.now > r.export_from:
        fraction = min(1.0, max(0.0, (r.export_at - r.export_from) / (r.now - r.export_from)))
    remaining = (total - done if total is not None
                 else done * (1 - fraction) / fraction if fraction else r.queued)
    per_ticket = r.requests / max(r.handled, 1)
    eta = (span(remaining * per_ticket / r.per_minute * 60)
           if r.per_minute and remaining and per_ticket else "-")
    counted = f"{done}/{total}" if total is not None else str(done)
    how_far = f" {fraction * 100:.0f}%" if fraction is not None else ""
    return (f"{counted} tickets{how_far} | pages {r.pages}, Teamwork "
            f"{r.requests / max(r.minutes, 1e-6):.0f}/min, queued {r.queued}, ETA {eta}")


def terminal_columns() -> int | None:
    """The width standard error's terminal reports (None: it does not say)."""
    from tqdm.std import _screen_shape_wrapper

    shape = _screen_shape_wrapper()
    return shape(sys.stderr)[0] if shape else None


class Progress:
    """Called after each ticket (``Pass``'s ``on_progress``); ``close`` at the end."""

    REFRESH_SECONDS = 0.5
    PLAIN_SECONDS = 10.0

    def __init__(self, enabled: bool, metrics: Metrics) -> None:
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        self.metrics = metrics
        self.started = time.monotonic()
        self.plain = enabled and terminal_columns() == 0
        self.enabled = enabled
        self._printed = 0.0
        self._last = self._shown = ""
        self.bar = tqdm(file=sys.stderr, disable=not enabled or self.plain, bar_format="{desc}",
                        dynamic_ncols=True, mininterval=self.REFRESH_SECONDS)
        # Log lines go above the bar instead of through it.
        self.logs = logging_redirect_tqdm() if not self.bar.disable else nullcontext()
        self.logs.__enter__()

    def teamwork_requests(self) -> float:
        return sum(s.value for family in self.metrics.api_requests.collect()
                   for s in family.samples
                   if s.name.endswith("_total") and s.labels.get("service") == "teamwork")

    def reading(self, p: Any) -> Reading:
        pacer = p.reconciler.teamwork.pacer
        return Reading(
            seen=p.summary.seen, queued=len(p.worker.queue), pages=p.summary.pages,
            export_from=p.export_from, export_at=p.summary.cursor_position,
            export_done=p.export_done, now=p.clock(), requests=self.teamwork_requests(),
            handled=p.worker.handled,
            per_minute=pacer.limit or (60 / pacer.interval if pacer.interval else 0.0),
            minutes=(time.monotonic() - self.started) / 60)

    def __call__(self, p: Any) -> None:
        if not self.enabled:
            return
        self._last = line(self.reading(p))
        if self.plain:
            if time.monotonic() - self._printed >= self.PLAIN_SECONDS:
                self._print()
            return
        self.bar.set_description_str(self._last, refresh=False)
        self.bar.update(1)  # tqdm redraws at most every REFRESH_SECONDS

    def _print(self) -> None:
        self._printed = time.monotonic()
        self._shown = self._last
        click.echo(self._last, err=True)

    def close(self) -> None:
        if self.plain and self._last != self._shown:
            self._print()
        self.bar.close()
        self.logs.__exit__(None, None, None)
