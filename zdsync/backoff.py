"""How long to wait before trying again: the two backoff policies, pure functions."""

from __future__ import annotations

from collections.abc import Callable

from zdsync import defaults


def request_backoff_seconds(attempt: int, rng: Callable[[], float]) -> float:
    """A request retried within one call: full jitter, uniform in
    [0, min(cap, base * 2**attempt)], so concurrent clients do not retry in step."""
    cap, base = defaults.HTTP_BACKOFF_CAP_SECONDS, defaults.HTTP_BACKOFF_BASE_SECONDS
    return rng() * min(cap, base * (2**attempt))


def retry_delay(attempts: int) -> float:
    """A failing ticket in the retry set: base * 2**(attempts-1), capped, forever (an hour
    apart at most, so a ticket fixed in Zendesk or Teamwork is picked up within the hour)."""
    return min(defaults.RETRY_CAP_SECONDS, defaults.RETRY_BASE_SECONDS * 2 ** max(0, attempts - 1))
