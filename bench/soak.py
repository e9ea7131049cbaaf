"""Soak: zdsync's crash safety at random, with real ``zdsync run`` processes.

Run by hand, not in CI (about 25 minutes for the default 50 seeds on 2 cores):

    .venv/bin/python bench/soak.py
    .venv/bin/python bench/soak.py --seeds 5 --first-seed 17
    .venv/bin/python bench/soak.py --seeds 1 --first-seed 4 --scenario redis-empty
    .venv/bin/python bench/soak.py --variant completed_edits=refused --variant repeat_state=refused

The daemons run the zdsync this script imports. To soak one commit while the tree moves:

    git archive HEAD zdsync | tar -x -C /tmp/snap
    PYTHONPATH=/tmp/snap .venv/bin/python bench/soak.py

A seed fixes the scenario and its plan of blows, not the timing of real processes: a
failure is reported with its logs, and may not repeat when its seed is run again.

Every seed is a fresh world: a private Redis, both simulators served over HTTP in this
process (their clock time-lapsed 60x, as in ``zdsync demo``, so Zendesk's "last minute is
not exported" rule costs a second; both rate limits set high so they never dominate), a
fresh key prefix, and ``ActivityGenerator`` churning tickets in a thread while daemons
work. The seed picks one scenario (``seed % 7``) and the chaos in it:

- ``kill``: one daemon, SIGKILLed several times and restarted at once;
- ``redis-aof``: Redis (append-only file, fsync every second) killed and restarted with
  its data, on the same port and folder;
- ``redis-empty-file`` / ``redis-empty``: Redis restarted empty, with a ``[users] file``,
  or without one (an operator then imports the mappings again once the rebuild is done);
- ``replicas-kill``: two replicas, the leader SIGKILLed (and restarted as a standby);
- ``replicas-freeze``: two replicas, the leader frozen (SIGSTOP) for 2.5 lease lifetimes;
- ``keys-lost``: one daemon; several times, a random few of the kinds of key in
  ``store.KEYS`` are deleted under it (as ``allkeys-*`` eviction or a mistaken ``DEL``
  would); when the mappings went, an operator imports them again once zdsync said so.

Kills and freezes land at a random moment, while a Teamwork write is on the wire, or
right after Teamwork executed one (before the daemon hears back). Then the churn stops,
one daemon is kept, due retries are made due now, and the script waits until Teamwork
matches every ticket (``sim.consistency.check``) for a few seconds in a row, or a deadline.

Measured per seed: duplicates that ever existed (tickets whose link was on more than one
live task at one moment; ``TeamworkSim.most_live_with_one_marker`` is the peak), tickets
still wrong after convergence, and the seconds it took. Exit status 0 only if no seed had
a duplicate, a wrong ticket, a daemon that died on its own, or could not be run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
import requests

import zdsync
from zdsync.agents import render_csv
from zdsync.demo import TimeLapse
from zdsync.localredis import LocalRedis, free_port
from zdsync.sim.activity import ActivityGenerator
from zdsync.sim.base import Clock, Request, Response
from zdsync.sim.consistency import Difference, check
from zdsync.sim.teamwork import VARIANTS, TeamworkSim, Variants
from zdsync.sim.zendesk import ZendeskSim
from zdsync.store import KEYS, Store

SCENARIOS = ("kill", "redis-aof", "redis-empty-file", "redis-empty", "replicas-kill",
             "replicas-freeze", "keys-lost")
TIME_LAPSE = 60.0
"""Simulated seconds per wall second: a change is exportable a wall second after it."""
SIM_RATE_LIMIT = 100_000
"""Requests per simulated minute for both simulators (and zdsync's Teamwork pacing)."""
INTERVAL_SECONDS = 1.0
LOCK_TTL_SECONDS = 3.0
FREEZE_SECONDS = 2.5 * LOCK_TTL_SECONDS
"""Longer than a lease: a standby takes over while the leader is frozen."""
CHURN_PER_SECOND = 8.0
SETTLE_SECONDS = 3.0
"""Clean for this long (three passes) before a seed counts as converged."""
TEMPLATE = "[ZD#{id}] {subject}"
MOMENTS = ("any", "write sent", "write done", "create sent", "create done")
"""When to strike: any time; as a Teamwork write (or a task create) reaches the simulator,
so it lands after the blow; or once Teamwork executed it, before the daemon hears back."""
RECOVERIES = ("adopted the task found", "Teamwork holds no task", "deleted duplicate task",
              "STATE REBUILD", "Redis restarted or failed over", "STATE LOSS")
"""Log lines that show the chaos hit a window zdsync had to recover from."""


# -- the world ------------------------------------------------------------------------------


class WatchedTeamwork(TeamworkSim):
    """The Teamwork simulator, plus what the soak needs to know about it.

    ``doubled``: every task marker (the ticket link line) that was ever on more than one
    live task at once, with its peak, so a duplicate is counted per ticket even if zdsync
    deleted it later. ``moments``: events set when a write (or a create) reaches the
    simulator, and when it has been executed but its response is not sent yet.
    """

    def __init__(self, **kwargs: Any) -> None:
        self.doubled: dict[str, int] = {}
        self.moments = {name: threading.Event() for name in MOMENTS if name != "any"}
        super().__init__(**kwargs)

    def _count_live(self, task: dict[str, Any], delta: int) -> None:
        super()._count_live(task, delta)
        marker = (task["description"] or "").split("\n", 1)[0]
        live = self._live_by_marker.get(marker, 0)
        if marker and live > 1:
            self.doubled[marker] = max(self.doubled.get(marker, 0), live)

    def dispatch(self, request: Request) -> Response | None:
        write = request.method != "GET" and not request.path.startswith("/_sim/")
        kinds = ["write"] + (["create"] if write and request.method == "POST"
                             and request.path.endswith("/tasks.json") else [])
        if write:
            for kind in kinds:
                self.moments[f"{kind} sent"].set()
        try:
            return super().dispatch(request)
        finally:
            if write:
                for kind in kinds:
                    self.moments[f"{kind} done"].set()


def quiet(sim: ZendeskSim | TeamworkSim) -> None:
    """A killed daemon resets its connections: that is the point, not worth a traceback
    from the simulator's HTTP server on stderr."""
    server = sim._server
    assert server is not None
    loud = server.handle_error

    def handle_error(request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            loud(request, client_address)

    server.handle_error = handle_error  # type: ignore[method-assign]


@dataclass
class Daemon:
    """One ``zdsync run`` process and its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    frozen: bool = False
    ended_by_us: bool = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, sig)

    def kill(self) -> None:
        """SIGKILL, as a node failure or an OOM kill would."""
        self.ended_by_us = True
        if self.frozen:
            self.thaw()
        self.signal(signal.SIGKILL)
        self.proc.wait(10)

    def freeze(self) -> None:
        self.signal(signal.SIGSTOP)
        self.frozen = True

    def thaw(self) -> None:
        self.signal(signal.SIGCONT)
        self.frozen = False


@dataclass
class Counts:
    kills: int = 0  # daemon SIGKILLs
    freezes: int = 0
    redis_restarts: int = 0
    key_losses: int = 0  # times some kinds of key were deleted under a daemon
    starts: int = 0  # daemon processes started
    crashes: list[str] = field(default_factory=list)  # daemons that ended on their own
    notes: list[str] = field(default_factory=list)


@dataclass
class Result:
    seed: int
    scenario: str
    counts: Counts
    tickets: int = 0
    doubled: dict[str, int] = field(default_factory=dict)
    most_live: int = 0
    wrong: list[Difference] = field(default_factory=list)
    converge_seconds: float | None = None
    error: str | None = None  # the script could not run the seed
    logs: Path | None = None
    recoveries: dict[str, int] = field(default_factory=dict)  # RECOVERIES seen in the logs

    @property
    def duplicates(self) -> int:
        return len(self.doubled)

    @property
    def wrong_tickets(self) -> int:
        return len({(d.ticket_id, d.detail if d.ticket_id is None else "") for d in self.wrong})

    @property
    def failed(self) -> bool:
        return bool(self.doubled or self.wrong or self.counts.crashes or self.error
                    or self.converge_seconds is None)


class World:
    """One seed's Redis, simulators, agents, churn and daemons; ``close`` ends them all."""

    def __init__(self, seed: int, scenario: str, folder: Path, max_tickets: int,
                 variants: Variants) -> None:
        self.seed = seed
        self.scenario = scenario
        self.rng = random.Random(seed)
        self.folder = folder
        self.counts = Counts()
        self.daemons: list[Daemon] = []
        self.stop_churn = threading.Event()
        self.churn_errors: list[str] = []
        self.max_tickets = max_tickets
        self.prefix = f"soak{seed}-{secrets.token_hex(3)}:"
        self.redis = LocalRedis(appendonly=scenario == "redis-aof")
        self.clock = Clock()
        self.zendesk = ZendeskSim(clock=self.clock, seed=seed,
                                  export_limit_per_minute=SIM_RATE_LIMIT,
                                  rate_limit_per_minute=SIM_RATE_LIMIT)
        self.teamwork = WatchedTeamwork(clock=self.clock, seed=seed, variants=variants,
                                        rate_limit_per_minute=SIM_RATE_LIMIT)
        self.lapse = TimeLapse(self.clock, TIME_LAPSE)
        self.churn = threading.Thread(target=self._churn, name="soak-churn", daemon=True)
        self.users_file: Path | None = None

    # -- set-up and tear-down ------------------------------------------------------------

    def open(self) -> World:
        self.redis.start()
        self.store = Store(redis.Redis(port=self.redis.port, decode_responses=True,
                                       socket_timeout=2, socket_connect_timeout=2),
                           self.prefix)
        for sim in (self.zendesk, self.teamwork):
            sim.start()
            quiet(sim)
        self.project = self.teamwork.add_project("Support")
        self.tasklist = self.teamwork.add_tasklist(self.project, "Zendesk")
        self.agents: list[int] = []
        self.mappings: dict[int, int] = {}
        for n, handle in enumerate(("ada", "bob", "cy")):  # cy has no Teamwork person
            agent = self.zendesk.add_user(handle.title(), f"{handle}@example.com", "agent")
            self.agents.append(agent)
            if n < 2:
                person = self.teamwork.add_person(handle.title(), "Agent",
                                                  f"{handle}@example.com")
                self.teamwork.add_to_project(self.project, person)
                self.mappings[agent] = person
        self.store.set_mappings(self.mappings)
        if self.scenario == "redis-empty-file":
            self.users_file = self.folder / "users.csv"
            self.users_file.write_text(render_csv(self.mappings))
        self.generator = ActivityGenerator(self.zendesk, seed=self.seed,
                                           mapped_agent_ids=self.agents[:2],
                                           unmapped_agent_ids=self.agents[2:])
        # A little latency on Teamwork: kills and freezes can land mid-request.
        self.teamwork.faults.set(latency_seconds=self.rng.choice((0.0, 0.005, 0.02, 0.05)))
        self.start_time = int(self.clock.now()) - 600
        self.lapse.__enter__()
        return self

    def close(self) -> None:
        self.stop_churn.set()
        if self.churn.is_alive():
            self.churn.join(10)
        for daemon in self.daemons:
            if daemon.alive():
                daemon.ended_by_us = True
                if daemon.frozen:
                    daemon.thaw()
                daemon.signal(signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    daemon.proc.wait(10)
        if self.lapse.thread.is_alive():
            self.lapse.__exit__()
        self.zendesk.stop()
        self.teamwork.stop()
        self.redis.stop()

    # -- daemons -----------------------------------------------------------------------

    def env(self, http_port: int) -> dict[str, str]:
        """The daemon's settings. Every port is free and its own: replicas share a host."""
        own = ("ZENDESK_", "TEAMWORK_", "REDIS_", "SYNC_", "LOG_", "HTTP_", "WEBHOOK_",
               "USERS_", "ZDSYNC_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
        env.update({
            "ZENDESK_URL": self.zendesk.url, "ZENDESK_EMAIL": self.zendesk.email,
            "ZENDESK_API_TOKEN": self.zendesk.api_token,
            "TEAMWORK_URL": self.teamwork.url, "TEAMWORK_API_TOKEN": self.teamwork.api_token,
            "TEAMWORK_PROJECT_ID": str(self.project),
            "TEAMWORK_TASKLIST_ID": str(self.tasklist),
            "TEAMWORK_RATE_LIMIT": str(SIM_RATE_LIMIT),
            "ZENDESK_EXPORT_RATE_LIMIT": "1000",  # newer zdsync paces exports (1000: its max)
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(self.redis.port),
            "REDIS_KEY_PREFIX": self.prefix,
            "SYNC_START_TIME": str(self.start_time), "SYNC_INTERVAL": str(INTERVAL_SECONDS),
            "SYNC_LOCK_TTL": str(LOCK_TTL_SECONDS),
            "HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(http_port), "LOG_LEVEL": "INFO",
            "HTTP_PROBE_PORT": str(free_port()),  # newer zdsync serves probes apart
            "PYTHONUNBUFFERED": "1",  # a SIGKILL must not eat the last log lines
        })
        if self.users_file is not None:
            env["USERS_FILE"] = str(self.users_file)
        return env

    def spawn(self) -> Daemon:
        """Start a daemon and wait until its HTTP server answers."""
        port = free_port()
        self.counts.starts += 1
        log = self.folder / f"daemon-{self.counts.starts}.log"
        with log.open("wb") as out:
            # cwd: ``-m`` puts it first on sys.path; the seed's folder holds no zdsync, so
            # the daemons run the same zdsync as this script.
            proc = subprocess.Popen([sys.executable, "-m", "zdsync", "run"], env=self.env(port),
                                    cwd=self.folder, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        daemon = Daemon(f"daemon-{self.counts.starts}", proc, port, log)
        self.daemons.append(daemon)

        def up() -> bool:
            if not daemon.alive():
                raise RuntimeError(f"{daemon.name} exited with {proc.returncode} at start: "
                                   f"{tail(log, 20)}")
            with contextlib.suppress(requests.RequestException):
                return requests.get(f"http://127.0.0.1:{port}/livez", timeout=2).ok
            return False

        poll(up, 30, f"{daemon.name}'s HTTP server")
        return daemon

    def running(self) -> list[Daemon]:
        return [d for d in self.daemons if d.alive()]

    def watch(self) -> None:
        """Note daemons that ended without being told to, and start one in their place."""
        for daemon in self.daemons:
            if not daemon.alive() and not daemon.ended_by_us:
                daemon.ended_by_us = True  # noted once
                self.counts.crashes.append(f"{daemon.name} exited with "
                                           f"{daemon.proc.returncode} ({daemon.log})")
                self.spawn()

    def leader(self) -> Daemon | None:
        """The running daemon whose pid is in the lease, if any."""
        try:
            value = self.store.r.get(self.prefix + "lock:sync")
        except redis.RedisError:
            return None
        if not value:
            return None
        pid = int(value.rsplit(":", 2)[1])
        return next((d for d in self.running() if d.pid == pid and not d.frozen), None)

    def wait_leader(self, timeout: float = 30) -> Daemon:
        def found() -> Daemon | None:
            self.watch()
            return self.leader()

        return poll(found, timeout, "a leader")

    # -- churn -------------------------------------------------------------------------

    def _churn(self) -> None:
        while not self.stop_churn.wait(1.0 / CHURN_PER_SECOND):
            try:
                if len(self.zendesk.ticket_states()) >= self.max_tickets:
                    self.generator.weights["create"] = 0.0
                self.generator.step()
            except Exception as exc:  # the seed is reported as not run
                self.churn_errors.append(repr(exc))
                return

    def start_churn(self) -> None:
        self.churn.start()

    def end_churn(self) -> None:
        self.stop_churn.set()
        self.churn.join(10)

    # -- striking at a moment ----------------------------------------------------------

    def pause(self, low: float, high: float) -> None:
        """Let the daemons work a random while (keeps watching for crashes)."""
        until = time.monotonic() + self.rng.uniform(low, high)
        while time.monotonic() < until:
            self.watch()
            time.sleep(0.1)

    def moment(self) -> str:
        """Wait for a random kind of moment to strike; returns which one it was."""
        kind = self.rng.choice(MOMENTS)
        event = self.teamwork.moments.get(kind)
        if event is not None:
            event.clear()
            if not event.wait(5):
                kind += " (none came: any)"
        return kind

    # -- measuring ---------------------------------------------------------------------

    def differences(self) -> list[Difference]:
        return check(self.zendesk, self.teamwork, tasklist_id=self.tasklist,
                     mappings=self.store.mappings(), title_template=TEMPLATE,
                     zendesk_url=self.zendesk.url)


# -- scenarios ------------------------------------------------------------------------------


def warm_up(w: World) -> None:
    """Daemons up, a leader elected, churn on, the first tasks made."""
    w.wait_leader()
    w.start_churn()
    poll(lambda: w.teamwork.tasks(tasklist_id=w.tasklist), 30, "a first task")


def scenario_kill(w: World) -> None:
    w.spawn()
    warm_up(w)
    for _ in range(w.rng.randint(3, 5)):
        victim = w.wait_leader()
        w.pause(1.0, 4.0)
        how = w.moment()
        victim.kill()
        w.counts.kills += 1
        w.counts.notes.append(f"kill {victim.name} at {how}")
        w.pause(0.0, 1.0)
        w.spawn()
    w.pause(2.0, 4.0)


def restart_redis(w: World, *, keep_data: bool) -> None:
    crash = not keep_data or w.rng.random() < 0.75
    how = w.moment()
    w.redis.halt(crash=crash)
    w.counts.redis_restarts += 1
    down = w.rng.uniform(0.2, 3.0)
    w.counts.notes.append(f"redis {'SIGKILL' if crash else 'SIGTERM'} at {how}, "
                          f"down {down:.1f} s")
    time.sleep(down)  # the outage itself: how long Redis is away
    w.redis.start()


def scenario_redis_aof(w: World) -> None:
    w.spawn()
    warm_up(w)
    for _ in range(w.rng.randint(2, 3)):
        w.pause(2.0, 5.0)
        restart_redis(w, keep_data=True)
    w.pause(3.0, 5.0)


def scenario_redis_empty(w: World) -> None:
    w.spawn()
    warm_up(w)
    for _ in range(w.rng.randint(1, 2)):
        w.pause(3.0, 6.0)
        restart_redis(w, keep_data=False)
        if w.users_file is None:
            # The mappings went with Redis: an operator imports them again once zdsync has
            # rebuilt its links (meanwhile tasks keep their assignees, and churn goes on).
            reimport(w, lambda: bool(w.store.r.exists(w.prefix + "identity")),
                     "the state rebuild")
    w.pause(3.0, 5.0)


def reimport(w: World, ready: Callable[[], bool], what: str) -> None:
    """What an operator does once zdsync says the mappings are lost (``ready``): import
    them again, a moment later."""
    def seen() -> bool:
        w.watch()
        with contextlib.suppress(redis.RedisError):
            return ready()
        return False

    poll(seen, 60, what)
    w.pause(0.5, 3.0)
    w.store.set_mappings(w.mappings)
    w.counts.notes.append(f"mappings imported again after {what}")


def scenario_replicas_kill(w: World) -> None:
    w.spawn()
    w.spawn()
    warm_up(w)
    for _ in range(w.rng.randint(2, 3)):
        victim = w.wait_leader()
        w.pause(1.0, 4.0)
        how = w.moment()
        victim.kill()
        w.counts.kills += 1
        w.counts.notes.append(f"kill leader {victim.name} at {how}")
        w.pause(0.5, 3.0)
        w.spawn()  # back as a standby
    w.pause(2.0, 4.0)


def scenario_replicas_freeze(w: World) -> None:
    w.spawn()
    w.spawn()
    warm_up(w)
    for _ in range(2):
        victim = w.wait_leader()
        w.pause(1.0, 4.0)
        how = w.moment()
        victim.freeze()
        w.counts.freezes += 1
        frozen = time.monotonic()
        w.counts.notes.append(f"freeze leader {victim.name} at {how}")
        while time.monotonic() - frozen < FREEZE_SECONDS:
            w.watch()
            time.sleep(0.1)
        victim.thaw()
    w.pause(2.0, 4.0)


def delete_keys(w: World, names: list[str]) -> int:
    """Delete every key of these kinds (``store.KEYS`` names; ``{x}`` parts: all of them)."""
    keys: list[str] = []
    for name in names:
        if "{" in name:
            head = w.prefix + name.split("{")[0]
            depth = (w.prefix + name).count(":")
            keys += [k for k in w.store.r.scan_iter(match=head + "*", count=1000)
                     if k.count(":") == depth]
        else:
            keys.append(w.prefix + name)
    return int(w.store.r.delete(*keys)) if keys else 0


def scenario_keys_lost(w: World) -> None:
    w.spawn()
    warm_up(w)
    for _ in range(w.rng.randint(2, 4)):
        w.pause(1.0, 4.0)
        names = w.rng.sample(sorted(KEYS), w.rng.randint(1, 4))
        how = w.moment()
        gone = delete_keys(w, names)
        w.counts.key_losses += 1
        w.counts.notes.append(f"deleted {', '.join(names)} ({gone} keys) at {how}")
        if "users" in names:  # no [users] file: zdsync holds the assignees and says so
            reimport(w, lambda: w.store.mappings_and_hold()[1], "the mappings' loss was seen")
    w.pause(3.0, 5.0)


RUNNERS: dict[str, Callable[[World], None]] = {
    "kill": scenario_kill, "redis-aof": scenario_redis_aof,
    "redis-empty-file": scenario_redis_empty, "redis-empty": scenario_redis_empty,
    "replicas-kill": scenario_replicas_kill, "replicas-freeze": scenario_replicas_freeze,
    "keys-lost": scenario_keys_lost,
}


# -- convergence ----------------------------------------------------------------------------


def keep_one(w: World) -> None:
    """Thaw everyone, then stop every daemon but one (the leader, if there is one) with
    SIGTERM, which must exit 0; start one if none runs."""
    for daemon in w.running():
        if daemon.frozen:
            daemon.thaw()
    running = w.running()
    keep = w.leader() or (running[-1] if running else None)
    for daemon in running:
        if daemon is keep:
            continue
        daemon.ended_by_us = True
        daemon.signal(signal.SIGTERM)
        try:
            code: int | None = daemon.proc.wait(30)
        except subprocess.TimeoutExpired:
            code = None
            daemon.kill()
        if code != 0:
            w.counts.crashes.append(f"{daemon.name} exited with {code} on SIGTERM "
                                    f"({daemon.log})")
    if not w.running():
        w.spawn()


def converge(w: World, timeout: float) -> float | None:
    """Seconds until Teamwork matched every ticket and kept matching for SETTLE_SECONDS;
    None if that did not happen within ``timeout``. Due-later retries are made due now."""
    started = time.monotonic()
    clean_since: float | None = None
    while time.monotonic() - started < timeout:
        w.watch()
        try:
            waiting = [r.ticket_id for r in w.store.retries()]
            if waiting:
                w.store.retry_now(waiting)
            clean = not waiting and not w.differences()
        except redis.RedisError:
            clean = False
        now = time.monotonic()
        if clean:
            clean_since = clean_since or now
            if now - clean_since >= SETTLE_SECONDS:
                return clean_since - started
        else:
            clean_since = None
        time.sleep(0.25)
    return None


# -- one seed -------------------------------------------------------------------------------


def run_seed(seed: int, scenario: str, root: Path, *, max_tickets: int,
             converge_timeout: float, variants: Variants | None = None) -> Result:
    folder = root / f"seed-{seed:03d}-{scenario}"
    folder.mkdir(parents=True, exist_ok=True)
    world = World(seed, scenario, folder, max_tickets, variants or Variants())
    result = Result(seed, scenario, world.counts, logs=folder)
    try:
        world.open()
        RUNNERS[scenario](world)
        world.end_churn()
        if world.churn_errors:
            raise RuntimeError(f"churn failed: {world.churn_errors[0]}")
        world.teamwork.faults.reset()
        keep_one(world)
        result.converge_seconds = converge(world, converge_timeout)
        result.wrong = world.differences()
        result.tickets = len(world.zendesk.ticket_states())
        result.doubled = dict(world.teamwork.doubled)
        result.most_live = world.teamwork.most_live_with_one_marker
        result.recoveries = recoveries(world)
        if result.failed:
            explain(world, result)
    except (Exception, KeyboardInterrupt) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, KeyboardInterrupt):
            raise
    finally:
        world.close()
        (folder / "chaos.txt").write_text("\n".join(world.counts.notes) + "\n")
    return result


def recoveries(w: World) -> dict[str, int]:
    found = dict.fromkeys(RECOVERIES, 0)
    for daemon in w.daemons:
        for line in daemon.log.read_text(errors="replace").splitlines():
            for phrase in RECOVERIES:
                if phrase in line:
                    found[phrase] += 1
    return found


def explain(w: World, result: Result) -> None:
    """What a failing seed looked like: differences, each ticket's story in Zendesk,
    Teamwork, Redis and the daemon logs, and the tail of every log."""
    out = [f"--- seed {result.seed} ({result.scenario}) failed; logs in {result.logs}"]
    out += [f"  chaos: {note}" for note in w.counts.notes]
    out += [f"  crash: {c}" for c in w.counts.crashes]
    out += [f"  difference: {d}" for d in result.wrong]
    if result.converge_seconds is None:
        out.append("  did not converge before the deadline")
    link_ids = {int(m.rsplit("/", 1)[1]): n for m, n in result.doubled.items()}
    out += [f"  duplicate: ticket {t} had {n} live tasks at once" for t, n in link_ids.items()]
    ids = sorted({d.ticket_id for d in result.wrong if d.ticket_id is not None}
                 | set(link_ids))
    for tid in ids[:8]:
        out.append(f"  ticket {tid}:")
        ticket = w.zendesk.ticket(tid)
        out.append(f"    zendesk: status {ticket['status']} subject {ticket['subject']!r} "
                   f"assignee {ticket['assignee_id']} submitter {ticket['submitter_id']} "
                   f"tags {ticket['tags']} updated {ticket['updated_at']}")
        link = f"{w.zendesk.url}/agent/tickets/{tid}"
        for task in w.teamwork.tasks(include_deleted=True, tasklist_id=w.tasklist):
            if task["description"].split("\n", 1)[0].endswith(link):
                out.append(f"    teamwork: task {task['id']} {task['status']} "
                           f"{task['name']!r} assignees "
                           f"{[a['id'] for a in task.get('assignees') or []]} "
                           f"created {task.get('createdAt')} updated {task.get('updatedAt')}")
        try:
            raw = w.store.r.hget(w.prefix + "tickets", str(tid))
            out.append(f"    redis record: {raw}")
            for entry in reversed(w.store.history(tid)):
                out.append(f"    history: {entry['what']}")
        except redis.RedisError as exc:
            out.append(f"    redis: {exc}")
        for daemon in w.daemons:
            for line in daemon.log.read_text(errors="replace").splitlines():
                if f"ticket {tid} " in line or f"ticket {tid}:" in line:
                    out.append(f"    {daemon.name}: {line}")
    with contextlib.suppress(redis.RedisError):
        out.append(f"  mappings now {w.store.mappings()} (started with {w.mappings})")
    for daemon in w.daemons:
        out.append(f"  --- tail of {daemon.log}")
        out += [f"    {line}" for line in tail(daemon.log, 25).splitlines()]
    print("\n".join(out), flush=True)


# -- helpers --------------------------------------------------------------------------------


def poll(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll until ``predicate`` returns something truthy; raise after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"no {what} within {timeout:.0f} s")
        time.sleep(0.05)


def tail(path: Path, lines: int) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def line_for(r: Result) -> str:
    c = r.counts
    converged = "never" if r.converge_seconds is None else f"{r.converge_seconds:5.1f} s"
    text = (f"seed {r.seed:4d}  {r.scenario:17s} kills {c.kills} freezes {c.freezes} "
            f"redis {c.redis_restarts} losses {c.key_losses} starts {c.starts}  "
            f"tickets {r.tickets:3d}  "
            f"duplicates {r.duplicates} (most live {r.most_live})  wrong {r.wrong_tickets}  "
            f"converged {converged}  recoveries {sum(r.recoveries.values())}")
    if c.crashes:
        text += f"  CRASHES {len(c.crashes)}"
    if r.error:
        text += f"  NOT RUN: {r.error}"
    return text


def summary(results: list[Result], elapsed: float) -> list[str]:
    times = [r.converge_seconds for r in results if r.converge_seconds is not None]
    ran = [r for r in results if not r.error]
    lines = [
        f"seeds {len(results)} ({len(ran)} run, {len(results) - len(ran)} not run) in "
        f"{elapsed / 60:.1f} min",
        f"chaos: {sum(r.counts.kills for r in results)} daemon kills, "
        f"{sum(r.counts.freezes for r in results)} freezes, "
        f"{sum(r.counts.redis_restarts for r in results)} Redis restarts, "
        f"{sum(r.counts.key_losses for r in results)} losses of keys, "
        f"{sum(r.counts.starts for r in results)} daemon starts",
        f"duplicates ever: {sum(r.duplicates for r in results)} ticket(s) "
        f"(seeds {[r.seed for r in results if r.duplicates] or 'none'})",
        f"tickets wrong after convergence: {sum(r.wrong_tickets for r in results)} "
        f"(seeds {[r.seed for r in results if r.wrong] or 'none'})",
        f"daemons that died on their own: {sum(len(r.counts.crashes) for r in results)}",
        f"never converged: {[r.seed for r in ran if r.converge_seconds is None] or 'none'}",
    ]
    seen = {p: sum(r.recoveries.get(p, 0) for r in results) for p in RECOVERIES}
    lines.append("recoveries in the logs: " + ", ".join(f"{n} x {p!r}" for p, n in seen.items()))
    if times:
        lines.append(f"time to converge: median {statistics.median(times):.1f} s, "
                     f"max {max(times):.1f} s")
    for name in SCENARIOS:
        mine = [r for r in results if r.scenario == name]
        if mine:
            bad = [r.seed for r in mine if r.failed]
            lines.append(f"  {name:17s} {len(mine):3d} seeds, failed {bad or 'none'}")
    return lines


@contextlib.contextmanager
def terminated_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every ``finally`` kills what it started."""
    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=50, help="how many seeds (default 50)")
    parser.add_argument("--first-seed", type=int, default=1, help="first seed (default 1)")
    parser.add_argument("--scenario", choices=SCENARIOS,
                        help="run every seed in this scenario instead of seed %% 7")
    parser.add_argument("--tickets", type=int, default=50,
                        help="tickets per seed, at most (default 50)")
    parser.add_argument("--converge-timeout", type=float, default=90.0,
                        help="wall seconds allowed to converge (default 90)")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=VALUE",
                        help="a Teamwork simulator variant (repeatable; see "
                             "docs/simulators.md): " + "; ".join(
                                 f"{n}={'|'.join(v)}" for n, v in VARIANTS.items()))
    parser.add_argument("--keep-logs", action="store_true",
                        help="keep the logs of seeds that passed too")
    args = parser.parse_args()
    try:
        variants = Variants.parse(args.variant)
    except ValueError as exc:
        parser.error(str(exc))
    if not LocalRedis.available():
        print("soak: redis-server is not on PATH (apt-get install redis-server)")
        return 2
    root = Path(tempfile.mkdtemp(prefix="zdsync-soak-"))
    print(f"soak: {args.seeds} seed(s) from {args.first_seed}; Teamwork variants: "
          f"{variants}; zdsync from "
          f"{Path(zdsync.__file__).parent}; logs under {root}", flush=True)
    results: list[Result] = []
    started = time.monotonic()
    with terminated_as_interrupt():
        try:
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                scenario = args.scenario or SCENARIOS[seed % len(SCENARIOS)]
                result = run_seed(seed, scenario, root, max_tickets=args.tickets,
                                  converge_timeout=args.converge_timeout, variants=variants)
                results.append(result)
                print(line_for(result), flush=True)
                if not result.failed and not args.keep_logs and result.logs:
                    shutil.rmtree(result.logs, ignore_errors=True)
                unrun = [r for r in results[-3:] if r.error]
                if len(unrun) == 3:
                    print("soak: 3 seeds in a row could not be run; stopping", flush=True)
                    break
        except KeyboardInterrupt:
            print("soak: interrupted", flush=True)
    print("\n" + "\n".join(summary(results, time.monotonic() - started)))
    failed = [r for r in results if r.failed]
    if failed:
        print(f"FAILED: seeds {[r.seed for r in failed]}; logs under {root}")
        (root / "results.json").write_text(json.dumps(
            [{"seed": r.seed, "scenario": r.scenario, "error": r.error,
              "wrong": [str(d) for d in r.wrong], "doubled": r.doubled,
              "crashes": r.counts.crashes, "notes": r.counts.notes} for r in failed],
            indent=2))
        return 1
    if not args.keep_logs:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if results and len(results) == args.seeds else 1


if __name__ == "__main__":
    sys.exit(main())
