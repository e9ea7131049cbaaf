"""Benchmark: one backfill pass of N tickets against the simulators and a private Redis.

Prints throughput, API requests, Redis round trips per ticket and peak memory. The
simulators run in this process too, so the figures are a lower bound for zdsync alone.

    .venv/bin/python bench/backfill.py --tickets 10000
"""

from __future__ import annotations

import argparse
import resource
import time

from zdsync.config import load
from zdsync.localredis import LocalRedis
from zdsync.metrics import Metrics
from zdsync.passes import Pass
from zdsync.reconciler import Reconciler
from zdsync.sim.base import Clock
from zdsync.sim.teamwork import TeamworkSim
from zdsync.sim.zendesk import ZendeskSim
from zdsync.store import Store
from zdsync.teamwork import TeamworkClient
from zdsync.zendesk import ZendeskClient


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=10000)
    args = parser.parse_args()

    clock = Clock()
    with LocalRedis() as redis_server, \
            ZendeskSim(clock=clock, export_limit_per_minute=1000) as zendesk, \
            TeamworkSim(clock=clock, rate_limit_per_minute=10**9) as teamwork:
        project = teamwork.add_project("Bench")
        tasklist = teamwork.add_tasklist(project, "Zendesk")
        agent = zendesk.add_user("Agent", "agent@example.com", "agent")
        person = teamwork.add_person("Agent", "Person", "agent@example.com")
        teamwork.add_to_project(project, person)
        customer = zendesk.add_user("Customer", "c@example.com")
        for n in range(args.tickets):
            zendesk.create_ticket(f"Ticket {n}", customer, agent, agent,
                                  status=("open", "solved")[n % 2])
        clock.advance(61)
        settings = load(None, {}, {
            "ZENDESK_URL": zendesk.url, "ZENDESK_EMAIL": zendesk.email,
            "ZENDESK_API_TOKEN": zendesk.api_token, "TEAMWORK_URL": teamwork.url,
            "TEAMWORK_API_TOKEN": teamwork.api_token, "TEAMWORK_PROJECT_ID": str(project),
            "TEAMWORK_TASKLIST_ID": str(tasklist), "TEAMWORK_RATE_LIMIT": "1000000",
            "REDIS_PORT": str(redis_server.port), "SYNC_START_TIME": str(int(clock.now()) - 600),
        })
        store = Store.from_settings(settings.redis)
        store.set_mappings({agent: person})
        metrics = Metrics()
        reconciler = Reconciler(settings, store,
                                TeamworkClient(settings.teamwork, metrics=metrics), metrics,
                                clock=clock.now)
        lock = store.lock()
        lock.acquire_or_raise()
        calls_before = sum(v["calls"] for k, v in store.r.info("commandstats").items())
        started = time.perf_counter()
        summary = Pass(reconciler, ZendeskClient(settings.zendesk, metrics=metrics), lock,
                       metrics=metrics, clock=clock.now).run()
        elapsed = time.perf_counter() - started
        calls = sum(v["calls"] for k, v in store.r.info("commandstats").items()) - calls_before
        peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        assert summary.created == args.tickets, summary.line()
        print(f"tickets:                {args.tickets}")
        print(f"pass:                   {elapsed:.2f} s, {args.tickets / elapsed:.0f} tickets/s")
        print(f"teamwork requests:      {len(teamwork.log)} "
              f"({len(teamwork.log) / args.tickets:.2f} per ticket)")
        print(f"zendesk requests:       {len(zendesk.log)}")
        print(f"redis commands:         {calls} ({calls / args.tickets:.2f} per ticket)")
        print(f"peak RSS (with sims):   {peak_mib:.0f} MiB")
        print(f"summary:                {summary.line()}")


if __name__ == "__main__":
    main()
