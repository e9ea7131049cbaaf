"""The activity generator: reproducible for a seed, and never breaks Zendesk's lifecycle."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from zdsync.sim.activity import ActivityGenerator
from zdsync.sim.base import Clock
from zdsync.sim.zendesk import ZendeskSim

START = 1_700_000_000.0


def make(seed: int) -> tuple[ZendeskSim, ActivityGenerator, Clock]:
    clock = Clock(frozen=True, start=START)
    zd = ZendeskSim(clock=clock)
    mapped = [zd.add_user(f"M{n}", f"m{n}@example.com", "agent") for n in range(3)]
    unmapped = [zd.add_user("U", "u@example.com", "agent")]
    customers = [zd.add_user(f"C{n}", f"c{n}@example.com") for n in range(4)]
    gen = ActivityGenerator(zd, seed=seed, mapped_agent_ids=mapped,
                            unmapped_agent_ids=unmapped, requester_ids=customers)
    return zd, gen, clock


def run(seed: int, events: int) -> tuple[list[str], list[dict[str, Any]]]:
    zd, gen, clock = make(seed)
    descriptions = []
    for _ in range(events):
        descriptions.append(gen.step())
        clock.advance(1)
    return descriptions, zd.tickets()


def test_same_seed_same_history_different_seed_different_history() -> None:
    first, tickets_a = run(7, 300)
    second, tickets_b = run(7, 300)
    assert first == second and tickets_a == tickets_b
    other, _ = run(8, 300)
    assert other != first


def test_lifecycle_stays_valid_and_every_kind_happens() -> None:
    zd, gen, clock = make(3)
    seen: dict[int, dict[str, Any]] = {}
    kinds: Counter[str] = Counter()
    for _ in range(1000):
        kinds[gen.step().split()[0]] += 1
        clock.advance(1)
        for ticket in zd.tickets():
            before = seen.get(ticket["id"])
            status = ticket["status"]
            if status in ("solved", "closed") and "closed_by_merge" not in ticket["tags"]:
                assert ticket["assignee_id"] is not None, ticket
            if before is not None:
                if before["status"] == "deleted":
                    assert ticket == before  # nothing touches a deleted ticket
                if before["status"] != "new":
                    assert status != "new"
                if before["status"] == "closed" and status == "closed":
                    changed = {k for k in ticket if ticket[k] != before[k]}
                    assert changed <= {"subject", "raw_subject", "tags", "priority",
                                       "updated_at", "generated_timestamp"}, changed
                if before["status"] == "closed":
                    assert status in ("closed", "deleted")
            seen[ticket["id"]] = ticket
    assert gen.events == 1000
    for kind in ("create", "priority", "tag", "comment", "retitle", "reassign", "unassign",
                 "solve", "reopen", "close", "merge", "delete", "pending", "hold"):
        assert kinds[kind] > 0, (kind, kinds)
    statuses = Counter(t["status"] for t in zd.tickets())
    assert {"new", "open", "solved", "closed", "deleted"} <= set(statuses)
    subjects = {t["subject"] for t in zd.tickets()}
    assert None in subjects or "   " in subjects or "" in subjects


def test_run_for_stops_on_the_event() -> None:
    zd, gen, _ = make(1)
    stop = threading.Event()
    timer = threading.Timer(0.1, stop.set)
    timer.start()
    done = gen.run_for(30, 200, stop)
    timer.cancel()
    assert 1 <= done <= 100 and len(zd.tickets()) >= 1
    assert gen.run(5) and gen.events == done + 5
