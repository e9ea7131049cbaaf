"""``zdsync demo``: zdsync at work against the built-in simulators, with no accounts.

It starts both simulators, creates agents, people and their mappings, and runs the real
reconciler on a short interval while the seeded activity generator works tickets; then it
runs the consistency check and exits 0 only if Teamwork matches the tickets.

The demo is a time-lapse: the simulators' clock runs ``TIME_LAPSE`` times faster than the
wall clock, so Zendesk's "last minute is not exported" rule and both rate limits (10 export
requests and 150 Teamwork requests per simulated minute) still apply, yet a session fits in
under a minute. zdsync paces Teamwork to the same budget in simulated time.

Redis: the configured one if it answers (under a key prefix of the demo's own, removed at
the end), else a private ``redis-server`` on a free port, else instructions.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import sys
import threading
import time
from dataclasses import replace
from typing import TextIO

import redis

from zdsync.config import (
    RedisSettings,
    Secret,
    Settings,
    SyncSettings,
    TeamworkSettings,
    ZendeskSettings,
)
from zdsync.connection import connect, where
from zdsync.diagnosis import explain
from zdsync.localredis import LocalRedis, RedisUnavailable
from zdsync.metrics import Metrics
from zdsync.services import services
from zdsync.sim.activity import ActivityGenerator
from zdsync.sim.base import Clock
from zdsync.sim.consistency import check
from zdsync.sim.teamwork import TeamworkSim
from zdsync.sim.zendesk import ZendeskSim
from zdsync.store import Store
from zdsync.summary import COUNTS, Summary

TIME_LAPSE = 60.0
"""Simulated seconds per wall-clock second."""
PASS_EVERY_SECONDS = 1.0
"""Wall-clock seconds between two passes (a simulated minute)."""
SETTLE_PASSES = 20
"""Most passes after the activity stops, to apply the last changes and due retries."""

AGENTS = [("Ada Agent", "ada"), ("Bob Agent", "bob"), ("Cy Agent", "cy"), ("Dee Agent", "dee")]
"""Demo agents; the last one has no Teamwork person (its tickets go to Anyone)."""


class TimeLapse:
    """Moves a simulator clock forward in a background thread."""

    def __init__(self, clock: Clock, factor: float) -> None:
        self.clock, self.factor = clock, factor
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="zdsync-demo-clock", daemon=True)

    def _run(self) -> None:
        step = 0.05
        while not self.stop.wait(step):
            self.clock.advance(step * (self.factor - 1))

    def __enter__(self) -> TimeLapse:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _redis(settings: RedisSettings, out: TextIO) -> tuple[redis.Redis, LocalRedis | None]:
    """The configured Redis (its address, login and TLS, as every command uses them) if it
    answers; one that refuses the settings is reported, not replaced behind the back."""
    client = connect(settings, attempts=0, timeout_seconds=1.0)
    try:
        client.ping()
        print(f"Redis: using {where(settings)} under a private key prefix", file=out)
        return client, None
    except redis.RedisError as exc:
        failure = explain(exc, settings)
        if failure.misconfigured:
            raise RedisUnavailable(failure.text) from None
    if not LocalRedis.available():
        raise RedisUnavailable(
            "no Redis answers at the configured address and redis-server is not on PATH.\n"
            "Install it (Debian/Ubuntu: sudo apt-get install redis-server; macOS: brew install "
            "redis) or point the demo at one: REDIS_HOST=… REDIS_PORT=… zdsync demo")
    local = LocalRedis().start()
    print(f"Redis: started a private redis-server on port {local.port}", file=out)
    return local.client(), local


def _cleanup(client: redis.Redis, prefix: str) -> int:
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    for i in range(0, len(keys), 500):
        client.delete(*keys[i:i + 500])
    return len(keys)


def run_demo(settings: Settings, *, tickets: int = 60, duration_seconds: float = 30.0,
             seed: int = 1, faults: bool = False, keep_running: bool = False,
             out: TextIO = sys.stdout) -> int:
    if settings.log.level.upper() == "INFO":  # the progress line says it all; keep warnings
        logging.getLogger().setLevel(logging.WARNING)
    try:
        client, local = _redis(settings.redis, out)
    except RedisUnavailable as exc:
        print(f"zdsync demo: {exc}", file=out)
        return 2
    prefix = f"zdsync-demo:{secrets.token_hex(4)}:"
    clock = Clock()
    zendesk = ZendeskSim(clock=clock, seed=seed).start()
    teamwork = TeamworkSim(clock=clock, seed=seed).start()
    try:
        return _run(settings, client, prefix, clock, zendesk, teamwork, tickets=tickets,
                    duration_seconds=duration_seconds, seed=seed, faults=faults,
                    keep_running=keep_running, out=out)
    finally:
        zendesk.stop()
        teamwork.stop()
        removed = _cleanup(client, prefix)
        print(f"Redis: removed the demo's {removed} keys ({prefix}*)", file=out)
        if local is not None:
            local.stop()


def _run(settings: Settings, client: redis.Redis, prefix: str, clock: Clock,
         zendesk: ZendeskSim, teamwork: TeamworkSim, *, tickets: int, duration_seconds: float,
         seed: int, faults: bool, keep_running: bool, out: TextIO) -> int:
    # The world: a project and task list in Teamwork, agents in Zendesk, people for three.
    project = teamwork.add_project("Support escalations")
    agents, mappings = [], {}
    for n, (name, handle) in enumerate(AGENTS):
        agent = zendesk.add_user(name, f"{handle}@example.com", "agent")
        agents.append(agent)
        if n < len(AGENTS) - 1:
            first, last = name.split()
            person = teamwork.add_person(first, last, f"{handle}@example.com")
            teamwork.add_to_project(project, person)
            mappings[agent] = person
    store = Store(client, prefix)
    store.set_mappings(mappings)
    run_settings = replace(
        settings,
        zendesk=ZendeskSettings(email=zendesk.email, api_token=Secret(zendesk.api_token),
                                url=zendesk.url, export_rate_limit=10 * TIME_LAPSE),
        teamwork=TeamworkSettings(api_token=Secret(teamwork.api_token), project_id=project,
                                  url=teamwork.url, rate_limit=150 * TIME_LAPSE),
        redis=replace(settings.redis, key_prefix=prefix),
        sync=SyncSettings(start_time=int(clock.now()) - 120, interval=PASS_EVERY_SECONDS,
                          title_template=settings.sync.title_template),
    )
    print(f"Zendesk simulator:  {zendesk.url}  (user {zendesk.email}, token "
          f"{zendesk.api_token})", file=out)
    print(f"Teamwork simulator: {teamwork.url}  (token {teamwork.api_token}, project "
          f"{project})", file=out)
    print(f"Agents {agents}; mapped to people {mappings}; agent {agents[-1]} is unmapped.",
          file=out)
    if faults:
        zendesk.faults.set(latency_seconds=0.01, error_rate=0.03)
        teamwork.faults.set(latency_seconds=0.01, error_rate=0.05, lost_create_rate=0.1)
        print("Faults on: latency, 3-5 % errors (500/502/503), 10 % of create responses lost.",
              file=out)

    metrics = Metrics()
    # Everything in simulated time: a wait of s simulated seconds lasts s / TIME_LAPSE.
    wired = services(run_settings, store, metrics=metrics, clock=clock.now,
                     sleep=lambda seconds: time.sleep(seconds / TIME_LAPSE))
    generator = ActivityGenerator(zendesk, seed=seed, mapped_agent_ids=agents[:-1],
                                  unmapped_agent_ids=agents[-1:])
    stop = threading.Event()
    rate = max(1.0, tickets * 6 / duration_seconds)  # about one event in six is a create

    def activity() -> None:
        while not stop.is_set():
            if len(zendesk.tickets()) >= tickets:
                generator.weights["create"] = 0.0
            generator.step()
            stop.wait(1.0 / rate)

    totals = Summary()
    lock = store.lock("sync")
    lock.acquire_or_raise()

    def one_pass() -> Summary:
        return wired.new_pass(lock).run()

    started = time.monotonic()
    worker = threading.Thread(target=activity, name="zdsync-demo-activity", daemon=True)
    print(f"\nRunning for {duration_seconds:.0f} s: ~{tickets} tickets, a pass every "
          f"{PASS_EVERY_SECONDS:.0f} s (a simulated minute).\n", file=out)
    try:
        with TimeLapse(clock, TIME_LAPSE):
            worker.start()
            while time.monotonic() - started < duration_seconds:
                _add(totals, one_pass())
                _progress(out, started, zendesk, teamwork, store, totals, clock)
                time.sleep(PASS_EVERY_SECONDS)
            stop.set()
            worker.join()
            zendesk.faults.reset()  # let the last changes through, then settle
            teamwork.faults.reset()
            for _ in range(SETTLE_PASSES):
                time.sleep(PASS_EVERY_SECONDS)  # past the last minute, in simulated time
                store.retry_now(r.ticket_id for r in store.retries())
                summary = one_pass()
                _add(totals, summary)
                _progress(out, started, zendesk, teamwork, store, totals, clock)
                if (summary.seen == 0 and not summary.failed and not store.retry_depth()
                        and summary.error is None):
                    break
    finally:
        lock.release()
    print("\n", file=out)
    differences = check(zendesk, teamwork, tasklist_id=wired.reconciler.tasklist_id(),
                        mappings=mappings, title_template=run_settings.sync.title_template,
                        zendesk_url=zendesk.url)
    _summary(out, zendesk, teamwork, totals, metrics, generator.events)
    if differences:
        print(f"Consistency check: {len(differences)} difference(s):", file=out)
        for diff in differences:
            print(f"  - {diff}", file=out)
    else:
        print("Consistency check: Teamwork matches every ticket. ✓", file=out)
    if keep_running:
        print(f"\nSimulators still up (Ctrl-C to stop):\n  curl -u {zendesk.email}/token:"
              f"{zendesk.api_token} {zendesk.url}/api/v2/tickets/1.json\n  curl -u "
              f"{teamwork.api_token}:X {teamwork.url}/projects/api/v3/tasks/1.json", file=out)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()
    return 1 if differences else 0


def _add(totals: Summary, summary: Summary) -> None:
    totals.add({name: getattr(summary, name) for name in COUNTS})


def _progress(out: TextIO, started: float, zendesk: ZendeskSim, teamwork: TeamworkSim,
              store: Store, totals: Summary, clock: Clock) -> None:
    position = store.cursor().position
    lag = f"{clock.now() - position:.0f}s" if position else "-"
    line = (f"{time.monotonic() - started:5.1f}s  tickets {len(zendesk.tickets()):4d}  "
            f"tasks {len(teamwork.tasks()):4d}  created {totals.created}  updated "
            f"{totals.updated}  completed {totals.completed}  reopened {totals.reopened}  "
            f"deleted {totals.deleted}  adopted {totals.adopted}  failed {totals.failed}  "
            f"retries {store.retry_depth()}  lag {lag} (simulated)")
    if out.isatty():
        print("\r" + line, end="", file=out, flush=True)
    else:  # a log, not a terminal: a line every few seconds
        _progress.count = getattr(_progress, "count", 0) + 1  # type: ignore[attr-defined]
        if _progress.count % 5 == 1:  # type: ignore[attr-defined]
            print(line, file=out, flush=True)


def _summary(out: TextIO, zendesk: ZendeskSim, teamwork: TeamworkSim, totals: Summary,
             metrics: Metrics, events: int) -> None:
    statuses: dict[str, int] = {}
    for ticket in zendesk.tickets():
        statuses[ticket["status"]] = statuses.get(ticket["status"], 0) + 1
    requests_by = {}
    for service in ("zendesk", "teamwork"):
        requests_by[service] = sum(
            metrics.registry.get_sample_value("zdsync_api_requests_total",
                                              {"service": service, "status": s}) or 0
            for s in ("2xx", "4xx", "5xx", "429", "error"))
    waits = sum(metrics.registry.get_sample_value("zdsync_rate_limit_waits_total",
                                                  {"service": s}) or 0
                for s in ("zendesk", "teamwork"))
    print(f"Activity: {events} events on {len(zendesk.tickets())} tickets "
          f"({', '.join(f'{k} {v}' for k, v in sorted(statuses.items()))})", file=out)
    print(f"Teamwork: {len(teamwork.tasks())} live tasks; zdsync created {totals.created}, "
          f"updated {totals.updated}, completed {totals.completed}, reopened "
          f"{totals.reopened}, deleted {totals.deleted}, adopted {totals.adopted} after lost "
          f"responses; {totals.failed} failed attempts were retried", file=out)
    print(f"API requests: Zendesk {requests_by['zendesk']:.0f}, Teamwork "
          f"{requests_by['teamwork']:.0f}; rate-limit waits {waits:.0f}", file=out)
