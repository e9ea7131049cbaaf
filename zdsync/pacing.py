"""Pacing requests under a service's rate limit: a fixed pace, or the budget the server
reports.

Teamwork's rate limit is the bound on everything zdsync does, and it says where it stands
on every answer (``x-ratelimit-limit``, ``-remaining``, ``-reset``). ``BudgetPacer``
spends exactly that: what is left of the window, spread evenly over the time left, less
a small reserve for whatever else uses the same token (an operator's ``zdsync`` command,
another integration). With no such headers it falls back to a fixed pace. Both hold every
request while the server has locked the client out. Thread-safe: concurrent workers
share one pacer, which is what bounds their total.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping

from zdsync import defaults

Clock = Callable[[], float]


class Pacer:
    """Spaces requests evenly at ``per_minute`` (None: no pacing), and holds all of them
    during a lock-out announced by the server."""

    def __init__(self, per_minute: float | None, clock: Clock = time.monotonic) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.clock = clock
        self._next = 0.0
        self._lock = threading.Lock()

    def reserve(self) -> float:
        """Claim the next slot; return how long to wait before using it."""
        with self._lock:
            return self._reserve(self.clock())

    def _reserve(self, now: float) -> float:
        slot = max(now, self._next)
        self._next = slot + self.interval
        return slot - now

    def hold_until(self, seconds_from_now: float) -> None:
        with self._lock:
            self._next = max(self._next, self.clock() + seconds_from_now)

    def observe(self, headers: Mapping[str, str] | None) -> None:
        """The answer to a request ``reserve`` paced (None: no answer came)."""


def _number(headers: Mapping[str, str], name: str) -> float | None:
    try:
        value = float(headers[name])
    except (KeyError, TypeError, ValueError):
        return None
    return value if math.isfinite(value) and value >= 0 else None


class BudgetPacer(Pacer):
    """Spends the budget the server reports, evenly over the rest of its window.

    Each answer's ``x-ratelimit-reset`` (seconds, or an epoch when it looks like one)
    gives an upper bound of when the window ends; the smallest bound seen in a window is
    kept, so the estimate closes in on the true end without ever being early. What is left
    is the smaller of the server's ``remaining`` less the requests still in flight, and
    zdsync's own count of what it sent. ``reserve_share`` of the limit (at least one
    request) is never spent. Before the first answer with the headers, and if they stop
    coming, requests go at the fixed ``fallback_per_minute``.
    """

    def __init__(self, fallback_per_minute: float, clock: Clock = time.monotonic, *,
                 reserve_share: float = defaults.TEAMWORK_RESERVE_SHARE,
                 epoch: Clock = time.time) -> None:
        super().__init__(fallback_per_minute, clock)
        self.reserve_share = reserve_share
        self.epoch = epoch
        self.limit: int | None = None
        self.remaining = 0.0  # what this window has left, as far as zdsync can tell
        self.window_end = 0.0  # on ``clock``: never earlier than the server's reset
        self.window_seconds = defaults.TEAMWORK_WINDOW_SECONDS
        self.in_flight = 0

    @property
    def kept(self) -> int:
        """Requests of each window left for others."""
        return max(1, math.ceil((self.limit or 0) * self.reserve_share))

    def _reserve(self, now: float) -> float:
        self.in_flight += 1
        if self.limit is None:
            return super()._reserve(now)
        if now >= self.window_end:  # the window is over: the budget is whole again
            self._open_window(now)
        spare = self.remaining - self.kept
        if spare < 1:  # spent: the next slot is in the next window
            slot = max(now, self.window_end, self._next)
            self._open_window(slot)
            spare = self.remaining - self.kept
        else:
            slot = max(now, self._next)
        self._next = slot + max(0.0, self.window_end - slot) / max(spare, 1.0)
        self.remaining -= 1
        return slot - now

    def _open_window(self, start: float) -> None:
        assert self.limit is not None
        self.remaining = float(self.limit)
        self.window_end = start + self.window_seconds
        self._next = start

    def hold_until(self, seconds_from_now: float) -> None:
        super().hold_until(seconds_from_now)
        with self._lock:
            if self.limit is not None:  # locked out: nothing is left until then
                self.window_end = max(self.window_end, self.clock() + seconds_from_now)
                self.remaining = 0.0

    def observe(self, headers: Mapping[str, str] | None) -> None:
        with self._lock:
            self.in_flight = max(0, self.in_flight - 1)
            if headers is None:
                return
            limit = _number(headers, "x-ratelimit-limit")
            remaining = _number(headers, "x-ratelimit-remaining")
            reset = _number(headers, "x-ratelimit-reset")
            if limit is None or limit < 1 or remaining is None or reset is None:
                return
            now = self.clock()
            if reset > 1e9:  # an epoch
                reset = max(0.0, reset - self.epoch())
            end = now + reset  # the window ends at the latest then
            left = remaining - self.in_flight
            if self.limit is None or end > self.window_end + 1.0:
                # First headers, or the server is in a window zdsync had not counted yet.
                self.limit = int(limit)
                self.window_end = end
                self.remaining = left
                self._next = now
                self.window_seconds = max(self.window_seconds, reset)
            else:
                self.limit = int(limit)
                self.window_end = min(self.window_end, end) if end > now else self.window_end
                self.remaining = min(self.remaining, left)
