"""Redis bytes per ticket: open, closed, and over churn of tickets that come and go, printed.

    .venv/bin/python bench/redis_memory.py            # about two minutes on 2 cores
    .venv/bin/python bench/redis_memory.py --tickets 500   # a smoke run

Against the simulators in process and a private redis-server on a free port. Memory is
Redis's own count (``INFO memory`` used_memory, less what an empty instance uses), so
it includes every overhead: keys, hash entries, the allocator's rounding. Steps:

1. ``--tickets`` open tickets, each assigned, synced: bytes per open ticket;
2. each changed a few times (retitled, reassigned), synced after each round: bytes per
   open ticket after changes (the histories fill up);
3. their histories expired (``HISTORY_TTL_SECONDS`` passed): what an untouched open
   ticket costs in the long run;
4. all solved, then closed, synced: bytes per closed ticket (its task is deleted);
5. churn: a second set of tickets is created, changed and closed in rounds; used memory
   after each round shows whether it stays flat.

Targets (issue 19): at most 300 B per open ticket, 64 B per closed ticket.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.world import World, make_inproc_world
from zdsync.localredis import LocalRedis

OPEN_TARGET, CLOSED_TARGET = 300, 64
PREFIX = "mem:"


def used(world: World) -> int:
    """Redis's used_memory once its cron has shrunk the key tables (every 100 ms)."""
    time.sleep(0.5)
    return int(world.store().r.info("memory")["used_memory"])


def keyspace(world: World) -> int:
    """What zdsync's keys take (MEMORY USAGE, exact: SAMPLES 0), without Redis's own."""
    r = world.store().r
    return sum(r.memory_usage(k, samples=0) or 0 for k in r.scan_iter(match=PREFIX + "*"))


def sync(world: World) -> None:
    for _ in range(5):
        world.exportable()
        summary = world.run_pass().run()
        assert summary.error is None, summary.line()
        if not world.store().retry_depth():
            return
        world.store().retry_now(r.ticket_id for r in world.store().retries())
    raise AssertionError("tickets still failing")


def expire_histories(world: World) -> None:
    r = world.store().r
    for key in r.scan_iter(match=PREFIX + "history:*", count=1000):
        r.delete(key)  # what HISTORY_TTL_SECONDS does, a month later


def per_ticket(world: World, base: tuple[int, int], n: int) -> tuple[float, float]:
    return (used(world) - base[0]) / n, (keyspace(world) - base[1]) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=4, help="churn rounds (step 5)")
    parser.add_argument("--stats", action="store_true", help="print MEMORY STATS")
    args = parser.parse_args()
    n = args.tickets
    started = time.monotonic()
    with LocalRedis() as server:
        world = make_inproc_world(server.port, PREFIX, zendesk_kwargs={
            "export_limit_per_minute": 10**6, "rate_limit_per_minute": 10**6},
            teamwork_kwargs={"rate_limit_per_minute": 10**6})
        sync(world)  # the first start: identity, marks
        server.client().execute_command("MEMORY", "PURGE")
        base = used(world), keyspace(world)
        ada, bob, _ = world.agents
        tickets = [world.ticket(f"Printer {i} is out of toner again", assignee=ada,
                                status="open", tags=["printer", "hardware"]) for i in range(n)]
        sync(world)
        figures = {"open, after the first sync": per_ticket(world, base, n)}
        for round_ in range(3):
            for t in tickets:
                world.zendesk.update_ticket(t, subject=f"Printer {t} round {round_}",
                                            assignee_id=bob if round_ % 2 == 0 else ada)
            sync(world)
        figures["open, after 3 changes each (histories full)"] = per_ticket(world, base, n)
        expire_histories(world)
        figures["open, histories expired"] = per_ticket(world, base, n)
        open_bytes = max(figures["open, histories expired"])
        for t in tickets:
            world.zendesk.update_ticket(t, status="solved")
        sync(world)
        for t in tickets:
            world.zendesk.update_ticket(t, status="closed")
        sync(world)
        figures["closed, task deleted (history kept)"] = per_ticket(world, base, n)
        expire_histories(world)
        figures["closed, histories expired"] = per_ticket(world, base, n)
        if args.stats:
            print(world.store().r.execute_command("MEMORY", "STATS"))
        closed_bytes = max(figures["closed, histories expired"])
        print(f"Redis bytes per ticket, {n} tickets, over an empty store: used_memory / "
              "MEMORY USAGE of zdsync's keys")
        for what, (total, keys) in figures.items():
            print(f"  {what:<45} {total:6.0f} B / {keys:6.0f} B")
        print(f"  open target {OPEN_TARGET} B: {'met' if open_bytes <= OPEN_TARGET else 'MISSED'}"
              f"; closed target {CLOSED_TARGET} B: "
              f"{'met' if closed_bytes <= CLOSED_TARGET else 'MISSED'}")
        print(f"  per million tickets: {open_bytes:.0f} MB open, {closed_bytes:.0f} MB closed")
        print(f"churn, {n // 2} tickets created, changed twice and closed per round:")
        before = used(world)
        r = world.store().r
        for round_ in range(args.rounds):
            batch = [world.ticket(f"Churn {round_} {i}", assignee=ada, status="open")
                     for i in range(n // 2)]
            sync(world)
            for t in batch:
                world.zendesk.update_ticket(t, subject=f"Churn {t} renamed", assignee_id=bob)
            sync(world)
            for t in batch:
                world.zendesk.update_ticket(t, status="solved")
            sync(world)
            for t in batch:
                world.zendesk.update_ticket(t, status="closed")
            sync(world)
            expire_histories(world)
            closed_total = n + (round_ + 1) * (n // 2)
            print(f"  round {round_ + 1}: used {used(world) - base[0]:>10,} B over the empty "
                  f"store, {closed_total} closed tickets, "
                  f"{(used(world) - before) / ((round_ + 1) * (n // 2)):.0f} B per new one, "
                  f"records {r.hlen(PREFIX + 'tickets')}")
        print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
