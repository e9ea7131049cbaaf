"""Pacing under a rate limit, against the simulators' own limiter on a simulated clock."""

from __future__ import annotations

import itertools

import pytest

from zdsync.pacing import BudgetPacer, Pacer
from zdsync.sim.base import Clock, RateLimiter


class Server:
    """Teamwork's limit as the simulator enforces it: a fixed window per token opened by
    its first request, a lock-out after a refusal, and the budget headers on answers."""

    def __init__(self, limit: int, clock: Clock) -> None:
        self.limiter = RateLimiter(limit, clock, lockout_seconds=60)
        self.refused = 0
        self.accepted = 0

    def answer(self, who: str = "zdsync") -> dict[str, str] | None:
        decision = self.limiter.hit(who)
        if not decision.allowed:
            self.refused += 1
            return None
        self.accepted += 1
        return {"x-ratelimit-limit": str(decision.limit),
                "x-ratelimit-remaining": str(decision.remaining),
                "x-ratelimit-reset": decision.reset_header}


def drive(pacer: Pacer, server: Server, clock: Clock, minutes: float, *,
          others_per_window: int = 0, latency: float = 0.0) -> None:
    """Requests back to back through ``pacer`` for ``minutes`` of simulated time; someone
    else with the same token spends ``others_per_window`` requests early in each window."""
    end = clock.now() + minutes * 60
    spent_by_others: dict[int, int] = {}
    while clock.now() < end:
        clock.advance(pacer.reserve())
        window = int(clock.now() // 60)
        if spent_by_others.get(window, 0) < others_per_window:
            spent_by_others[window] = spent_by_others.get(window, 0) + 1
            server.answer()  # the operator's request, on the same budget
        clock.advance(latency)
        pacer.observe(server.answer())


@pytest.mark.parametrize("limit", [150, 600])
def test_the_budget_is_spent_to_98_percent_without_a_refusal(limit):
    clock = Clock(frozen=True, start=1_800_000_000)
    server = Server(limit, clock)
    pacer = BudgetPacer(limit * 0.9, clock.now)
    drive(pacer, server, clock, minutes=10)
    share = server.accepted / (limit * 10)
    print(f"limit {limit}/min: {share:.3f} of it used, {server.refused} refused")
    assert server.refused == 0
    assert share >= 0.98


def test_requests_are_spread_over_the_window_not_burst():
    clock = Clock(frozen=True, start=1_800_000_000)
    server = Server(600, clock)
    pacer = BudgetPacer(540, clock.now)
    drive(pacer, server, clock, minutes=1)
    stamps = [clock.now()]
    for _ in range(50):
        clock.advance(pacer.reserve())
        pacer.observe(server.answer())
        stamps.append(clock.now())
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert max(gaps) < 1.0  # about 60 s / 594 apart, never a burst then a long wait


def test_others_on_the_same_token_are_left_room():
    clock = Clock(frozen=True, start=1_800_000_000)
    server = Server(150, clock)
    pacer = BudgetPacer(135, clock.now)
    drive(pacer, server, clock, minutes=6, others_per_window=20)
    assert server.refused == 0
    assert server.accepted >= 0.95 * 150 * 6


def test_latency_does_not_make_it_overspend():
    clock = Clock(frozen=True, start=1_800_000_000)
    server = Server(300, clock)
    pacer = BudgetPacer(270, clock.now)
    drive(pacer, server, clock, minutes=5, latency=0.4)
    assert server.refused == 0


def test_without_headers_it_keeps_the_fixed_pace():
    clock = Clock(frozen=True, start=1_800_000_000)
    pacer = BudgetPacer(120, clock.now)
    waits = []
    for _ in range(5):
        waits.append(pacer.reserve())
        pacer.observe({})  # answers without the budget headers
    assert waits == [0.0, 0.5, 1.0, 1.5, 2.0]


def test_a_reset_given_as_an_epoch_and_a_lock_out_are_honoured():
    clock = Clock(frozen=True, start=1_800_000_000)
    pacer = BudgetPacer(150, clock.now, epoch=clock.now)
    pacer.reserve()
    pacer.observe({"x-ratelimit-limit": "150", "x-ratelimit-remaining": "0",
                   "x-ratelimit-reset": str(clock.now() + 30)})
    assert pacer.reserve() == pytest.approx(30, abs=0.01)  # nothing left until the reset
    pacer.observe(None)
    pacer.hold_until(60)  # a 429's lock-out
    assert pacer.reserve() >= 60


def test_the_fixed_pacer_spaces_requests_and_holds_during_a_lock_out():
    clock = Clock(frozen=True, start=0)
    pacer = Pacer(60, clock.now)
    assert [pacer.reserve() for _ in range(3)] == [0.0, 1.0, 2.0]
    pacer.hold_until(10)
    assert pacer.reserve() == 10.0
