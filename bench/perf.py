"""Performance figures of zdsync against its simulators, in one run, printed.

    .venv/bin/python bench/perf.py            # about two minutes on a 2-core machine
    .venv/bin/python bench/perf.py --quick    # smaller sizes, for a smoke run

1. Writes per scenario against the fewest possible (create, retitle, reassign, both, ...).
2. Share of Teamwork's rate limit used, and 429s: a 1,200-ticket backfill against
   600/min, in simulated time (deterministic); then a 600-ticket backfill against 300/min
   with 400 ms added to every Teamwork request, in time-lapsed real time (workers really
   wait on the network), for each concurrency.
3. Redis round trips for a 1,000-ticket page of tickets that need nothing.
4. zdsync's own CPU per ticket that needs nothing and per created ticket (the simulators'
   CPU, which runs in this process, is measured apart and taken out).
5. Resident memory of a process that syncs 1,000 and 20,000 tickets.
6. Teamwork requests of a state rebuild over more tasks than one listing answers (the
   50,000-record cap scaled down with the task count), reading on past the cap and, for
   comparison, stopping at it as zdsync did before.

The simulators run in-process (``zdsync.sim.adapter``) except where the network matters;
Redis is a private redis-server on a free port.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.world import World, make_inproc_world
from zdsync import defaults, sources
from zdsync.localredis import LocalRedis
from zdsync.sim import adapter
from zdsync.sim.base import Clock


def banner(title: str) -> None:
    print(f"\n== {title}")


def fresh_world(server: LocalRedis, prefix: str, **kwargs: Any) -> World:
    server.client().flushall()
    return make_inproc_world(server.port, prefix, **kwargs)


def sync(world: World, **extra: Any) -> Any:
    world.exportable()
    summary = world.run_pass(**extra).run()
    assert summary.error is None, summary.line()
    return summary


# -- 1. writes per scenario ----------------------------------------------------------------

SCENARIOS: list[tuple[str, Callable[[World, int], None], int]] = [
    ("create an open ticket's task", lambda w, t: None, 1),
    ("create a solved ticket's task", lambda w, t: w.zendesk.update_ticket(t, status="solved"),
     2),
    ("retitle", lambda w, t: w.zendesk.update_ticket(t, subject="Renamed"), 1),
    ("reassign", lambda w, t: w.zendesk.update_ticket(t, assignee_id=w.agents[1]), 1),
    ("retitle and reassign together",
     lambda w, t: w.zendesk.update_ticket(t, subject="Renamed", assignee_id=w.agents[1]), 1),
    ("retitle, reassign and solve",
     lambda w, t: w.zendesk.update_ticket(t, subject="R", assignee_id=w.agents[1],
                                          status="solved"), 2),
    ("solve", lambda w, t: w.zendesk.update_ticket(t, status="solved"), 1),
    ("a comment (nothing the task shows)",
     lambda w, t: w.zendesk.update_ticket(t, comment="thanks"), 0),
    ("delete the ticket", lambda w, t: w.zendesk.delete_ticket(t), 1),
]


def writes_per_scenario(server: LocalRedis) -> None:
    banner("1. Teamwork writes per scenario (fewest possible in brackets)")
    for name, change, fewest in SCENARIOS:
        world = fresh_world(server, "w:")
        t = world.ticket("Printer", assignee=world.agents[0], status="open")
        if not name.startswith("create"):
            sync(world)
        change(world, t)
        world.teamwork.log.clear()
        sync(world)
        writes = sum(1 for e in world.teamwork.log.entries() if e.method != "GET")
        assert world.check() == [], name
        mark = "ok" if writes == fewest else "MORE THAN NEEDED"
        print(f"  {name:38s} {writes} [{fewest}]  {mark}")


# -- 2. the rate limit ---------------------------------------------------------------------


def limit_share(world: World) -> tuple[float, int, float]:
    """(share of the limit used, 429s, simulated minutes) over the Teamwork requests."""
    entries = world.teamwork.log.entries()
    accepted = [e for e in entries if e.status != 429]
    minutes = (entries[-1].time - entries[0].time) / 60
    limit = world.teamwork.limiter.limit
    return len(accepted) / (limit * minutes), len(entries) - len(accepted), minutes


def backfill_in_simulated_time(server: LocalRedis, tickets: int, limit: int) -> None:
    world = fresh_world(server, "r:", teamwork_kwargs={"rate_limit_per_minute": limit},
                        zendesk_kwargs={"export_limit_per_minute": 1000})
    for n in range(tickets):
        world.ticket(f"T{n}", assignee=world.agents[n % 3],
                     status=("open", "solved", "pending")[n % 3])
    sync(world, TEAMWORK_RATE_LIMIT=limit)
    share, refused, minutes = limit_share(world)
    assert world.check() == []
    print(f"  {tickets} tickets, {limit}/min, simulated time: {share:.3f} of the limit used, "
          f"{refused} x 429, {minutes:.1f} simulated min, "
          f"{len(world.teamwork.log)} requests")


class ScaledClock(Clock):
    """Real time running ``factor`` times faster: waits are real, only shorter."""

    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor
        self.t0 = time.time()

    def now(self) -> float:
        with self._lock:
            return self.t0 + (time.time() - self.t0) * self.factor + self._offset


def backfill_with_latency(server: LocalRedis, tickets: int, limit: int, latency: float,
                          concurrency: int, factor: float = 5.0) -> float:
    """A backfill where every Teamwork answer takes ``latency`` (simulated) seconds; the
    clock runs ``factor`` times faster than real time so the run is short."""
    from zdsync.sim.teamwork import TeamworkSim
    from zdsync.sim.zendesk import ZendeskSim

    server.client().flushall()
    clock = ScaledClock(factor)
    world = World(ZendeskSim(clock=clock, export_limit_per_minute=1000),
                  TeamworkSim(clock=clock, rate_limit_per_minute=limit), clock, server.port,
                  "l:").setup()
    for n in range(tickets):
        world.ticket(f"T{n}", assignee=world.agents[n % 3], status=("open", "solved")[n % 2])
    world.clock.advance(61)
    world.teamwork.faults.set(latency_seconds=latency / factor)
    p = world.run_pass(TEAMWORK_RATE_LIMIT=limit, TEAMWORK_CONCURRENCY=concurrency)
    for client in (p.reconciler.teamwork.http, p.zendesk.http):
        client.sleep = lambda s: time.sleep(s / factor)
    started = time.monotonic()
    summary = p.run()
    took = (time.monotonic() - started) * factor
    assert summary.error is None, summary.line()
    world.teamwork.faults.reset()
    share, refused, _ = limit_share(world)
    print(f"  {tickets} tickets, {limit}/min, +{latency * 1000:.0f} ms a request, "
          f"concurrency {concurrency}: {share:.3f} of the limit used, {refused} x 429, "
          f"{took:.0f} s (simulated), {world.teamwork.most_in_flight} in flight at most")
    return share


def rate_limit(server: LocalRedis, quick: bool) -> None:
    banner("2. Share of Teamwork's rate limit used (target >= 0.98; >= 0.95 at 400 ms)")
    backfill_in_simulated_time(server, 300 if quick else 1200, 600)
    for concurrency in (1, 2, 4, 8):
        backfill_with_latency(server, 150 if quick else 600, 300, 0.4, concurrency)


# -- 3. Redis round trips per page --------------------------------------------------------


def redis_round_trips(server: LocalRedis) -> None:
    banner("3. Redis round trips for a 1,000-ticket page of tickets that need nothing")
    world = fresh_world(server, "rt:", teamwork_kwargs={"rate_limit_per_minute": 10**6})
    tickets = [world.ticket(f"T{n}", assignee=world.agents[0], status="open")
               for n in range(1000)]
    sync(world)
    for t in tickets:
        world.zendesk.update_ticket(t, comment="nothing zdsync writes")
    world.exportable()
    p = world.run_pass()
    p._begin()
    trips = count_round_trips(lambda: sources.export(p))
    print(f"  {trips} round trips (the cursor read, the records in one read, the commit)")


def count_round_trips(work: Callable[[], None]) -> int:
    real = redis.connection.Connection.send_packed_command
    count = {"n": 0}

    def counted(self: Any, *args: Any, **kwargs: Any) -> None:
        count["n"] += 1
        real(self, *args, **kwargs)

    redis.connection.Connection.send_packed_command = counted  # type: ignore[method-assign]
    try:
        work()
    finally:
        redis.connection.Connection.send_packed_command = real  # type: ignore[method-assign]
    return count["n"]


# -- 4. CPU ---------------------------------------------------------------------------------


def zdsync_cpu(work: Callable[[], None]) -> float:
    """CPU seconds of this thread for ``work``, less what the simulators spent answering."""
    real = adapter.SimAdapter.send
    sims = {"cpu": 0.0}

    def send(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.thread_time()
        try:
            return real(self, *args, **kwargs)
        finally:
            sims["cpu"] += time.thread_time() - started

    adapter.SimAdapter.send = send  # type: ignore[method-assign]
    try:
        started = time.thread_time()
        work()
        return time.thread_time() - started - sims["cpu"]
    finally:
        adapter.SimAdapter.send = real  # type: ignore[method-assign]


def cpu(server: LocalRedis, quick: bool) -> None:
    banner("4. zdsync's CPU per ticket (simulators' CPU taken out)")
    n = 1000 if quick else 5000
    world = fresh_world(server, "c:", teamwork_kwargs={"rate_limit_per_minute": 10**6},
                        zendesk_kwargs={"export_limit_per_minute": 1000})
    tickets = [world.ticket(f"T{k}", assignee=world.agents[k % 3], status="open")
               for k in range(n)]
    world.exportable()
    p = world.run_pass(TEAMWORK_RATE_LIMIT=10**6)
    created = zdsync_cpu(p.run)
    for t in tickets:
        world.zendesk.update_ticket(t, comment="nothing zdsync writes")
    world.exportable()
    p = world.run_pass(TEAMWORK_RATE_LIMIT=10**6)
    noop = zdsync_cpu(p.run)
    print(f"  per created ticket: {created / n * 1000:.2f} ms; per ticket that needs "
          f"nothing: {noop / n * 1e6:.0f} µs ({n} tickets each)")


# -- 5. memory ------------------------------------------------------------------------------

MEMORY_CHILD = """
import json, resource, sys
sys.path.insert(0, {root!r})
from tests.world import make_inproc_world
def rss_mib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
world = make_inproc_world({port}, "m:", teamwork_kwargs={{"rate_limit_per_minute": 10**6}},
                          zendesk_kwargs={{"export_limit_per_minute": 1000}})
for k in range({n}):
    world.ticket(f"T{{k}}", assignee=world.agents[k % 3], status="open")
world.exportable()
before = rss_mib()
summary = world.run_pass(TEAMWORK_RATE_LIMIT=10**6).run()
assert summary.created == {n}, summary.line()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"before": before, "peak": peak}}))
"""


def memory(server: LocalRedis, quick: bool) -> None:
    banner("5. Resident memory of a process that syncs N tickets (simulators included)")
    root = str(Path(__file__).resolve().parent.parent)
    for n in ((1000, 5000) if quick else (1000, 20000)):
        server.client().flushall()
        out = subprocess.run([sys.executable, "-c", MEMORY_CHILD.format(root=root,
                                                                         port=server.port, n=n)],
                             capture_output=True, text=True, check=True).stdout
        figures = json.loads(out.strip().splitlines()[-1])
        print(f"  {n:6d} tickets: {figures['before']:.0f} MiB with the simulators' tickets, "
              f"{figures['peak']:.0f} MiB at the peak of the pass "
              f"(+{figures['peak'] - figures['before']:.0f} MiB for the pass)")


# -- 6. a rebuild past the listing cap ------------------------------------------------------


def rebuild_requests(server: LocalRedis, tasks: int, cap: int, client_cap: int) -> str:
    """One rebuild over ``tasks`` tasks made at Teamwork's real pace (so their updatedAt
    spread as they would), the simulator answering ``cap`` records a listing and the client
    believing ``client_cap``: its Teamwork requests, tasks seen and tasks made again."""
    world = fresh_world(server, "lc:", teamwork_kwargs={"listing_cap": cap},
                        zendesk_kwargs={"export_limit_per_minute": 1000})
    for n in range(tasks):
        world.ticket(f"T{n}", assignee=world.agents[n % 2], status="open")
    sync(world, TEAMWORK_LISTING_CAP=client_cap)
    world.store().r.flushall()
    world.teamwork.log.clear()
    p = world.run_pass(TEAMWORK_LISTING_CAP=client_cap)
    world.exportable()
    summary = p.run()
    listing = world.teamwork.log.count("GET", path=f"/projects/api/v3/tasklists/"
                                                   f"{world.tasklist}/tasks.json")
    made = world.teamwork.log.count("POST", path="/projects/api/v3/tasklists/*/tasks.json")
    seen = world.store().last_rebuild().get("tasks", "?")
    return (f"{listing} listing requests ({len(world.teamwork.log)} Teamwork requests in "
            f"all), {seen} of {tasks} tasks seen, {made} created again"
            + ("" if summary.error is None else f", error: {summary.error}"))


def listing_cap(server: LocalRedis, quick: bool) -> None:
    tasks, cap = (1500, 500) if quick else (3000, 1000)
    banner(f"6. Teamwork requests of a state rebuild over {tasks:,} tasks, a listing answering "
           f"{cap:,} (Teamwork: 50,000 of 150,000), 500 a page")
    print(f"  reading on past the cap:    {rebuild_requests(server, tasks, cap, cap)}")
    print(f"  stopping at it (before):    {rebuild_requests(server, tasks, cap, 10**9)}")
    print(f"  no cap reached (as before): "
          f"{rebuild_requests(server, tasks, 10**9, defaults.TEAMWORK_LISTING_CAP)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller sizes")
    args = parser.parse_args()
    import logging

    logging.disable(logging.CRITICAL)  # the figures, not the pass's log lines
    with LocalRedis() as server:
        writes_per_scenario(server)
        rate_limit(server, args.quick)
        redis_round_trips(server)
        cpu(server, args.quick)
        memory(server, args.quick)
        listing_cap(server, args.quick)


if __name__ == "__main__":
    main()
