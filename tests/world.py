"""A simulated world for end-to-end tests: both simulators, a project and task list, agents
with and without Teamwork people, a Redis key prefix, and ways to run zdsync against them
as a real process (``zdsync``) or in-process in simulated time (``reconciler``)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from zdsync.config import Settings, load
from zdsync.metrics import Metrics
from zdsync.passes import Pass
from zdsync.services import services
from zdsync.sim.adapter import SimAdapter, session_for
from zdsync.sim.base import Clock
from zdsync.sim.consistency import Difference, check, check_routed
from zdsync.sim.server import SimServer
from zdsync.sim.teamwork import TeamworkSim, Variants
from zdsync.sim.teamwork.variants import every_value
from zdsync.sim.zendesk import ZendeskSim
from zdsync.store import Store

TEMPLATE = "[ZD#{id}] {subject}"
VARIANT_SETS = every_value()
"""The Teamwork variant sets the end-to-end, crash-point and routing tests run under:
between them every value of every variant (the defaults first)."""
current_variants: list[Variants] = [Variants()]
"""The variants every World made now uses (set per test by the ``teamwork_variants``
fixtures in tests/conftest.py; a test's own ``teamwork_kwargs`` win)."""
INPROC_ZENDESK = "https://sim.zendesk.com"  # what ZendeskSim calls itself when not serving
INPROC_TEAMWORK = "https://sim.teamwork.com"


@dataclass
class World:
    zendesk: ZendeskSim
    teamwork: TeamworkSim
    clock: Clock
    redis_port: int
    prefix: str
    project: int = 0
    tasklist: int = 0
    agents: list[int] = field(default_factory=list)  # the last one is unmapped
    mappings: dict[int, int] = field(default_factory=dict)
    customer: int = 0
    extra_env: dict[str, str] = field(default_factory=dict)  # every run (ZDSYNC_CONFIG…)
    _lease: Any = None

    @property
    def in_process(self) -> bool:
        """Simulators without sockets: clients reach them through ``SimAdapter``."""
        return not self.zendesk.running

    @property
    def zendesk_url(self) -> str:
        return self.zendesk.url if self.zendesk.running else INPROC_ZENDESK

    @property
    def teamwork_url(self) -> str:
        return self.teamwork.url if self.teamwork.running else INPROC_TEAMWORK

    def setup(self) -> World:
        self.project = self.teamwork.add_project("Support")
        self.tasklist = self.teamwork.add_tasklist(self.project, "Zendesk")
        for n, handle in enumerate(["ada", "bob", "cy"]):
            agent = self.zendesk.add_user(handle.title(), f"{handle}@example.com", "agent")
            self.agents.append(agent)
            if n < 2:
                person = self.teamwork.add_person(handle.title(), "Agent",
                                                  f"{handle}@example.com")
                self.teamwork.add_to_project(self.project, person)
                self.mappings[agent] = person
        self.customer = self.zendesk.add_user("Customer", "customer@example.com")
        self.store().set_mappings(self.mappings)
        return self

    @property
    def unmapped(self) -> int:
        return self.agents[-1]

    def env(self, **extra: Any) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(
            ("ZENDESK_", "TEAMWORK_", "REDIS_", "SYNC_", "LOG_", "HTTP_", "WEBHOOK_"))}
        env.update({
            "ZENDESK_URL": self.zendesk_url, "ZENDESK_EMAIL": self.zendesk.email,
            "ZENDESK_API_TOKEN": self.zendesk.api_token,
            "TEAMWORK_URL": self.teamwork_url, "TEAMWORK_API_TOKEN": self.teamwork.api_token,
            "TEAMWORK_PROJECT_ID": str(self.project), "TEAMWORK_TASKLIST_ID": str(self.tasklist),
            "TEAMWORK_RATE_LIMIT": "100000", "ZENDESK_EXPORT_RATE_LIMIT": "1000",
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": str(self.redis_port),
            "REDIS_KEY_PREFIX": self.prefix,
            "SYNC_START_TIME": str(int(self.clock.now()) - 3600),
        })
        if self.in_process:
            # Simulated time moves when a client waits: one worker keeps it deterministic.
            env["TEAMWORK_CONCURRENCY"] = "1"
        env.update(self.extra_env)
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def settings(self, **extra: Any) -> Settings:
        return load(None, {}, self.env(**extra))

    def store(self) -> Store:
        return Store.from_settings(load(None, {}, self.env(), require_services=False).redis)

    def zdsync(self, *args: str, timeout: float = 300, **extra: Any) -> subprocess.CompletedProcess:
        """Run the zdsync command line as a real process."""
        return subprocess.run([sys.executable, "-m", "zdsync", *args], env=self.env(**extra),
                              capture_output=True, text=True, timeout=timeout)

    def popen(self, *args: str, **extra: Any) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "zdsync", *args], env=self.env(**extra),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def run_pass(self, metrics: Metrics | None = None, *, lock: Any = None,
                 **extra: Any) -> Pass:
        """An in-process pass whose waits advance the simulated clock instead of sleeping:
        rate limits and lock-outs play out in simulated time. Call ``.run()`` on it."""
        settings = self.settings(**extra)
        metrics = metrics or Metrics()
        store = self.store()
        if lock is None:
            if self._lease is not None:  # the previous pass's: its keeper stops renewing
                self._lease.release()
            store.r.delete(self.prefix + "lock:sync")
            lock = self._lease = store.lock(ttl_seconds=300)
            lock.acquire_or_raise()
        wired = services(
            settings, store, metrics=metrics, sleep=self.clock.advance, clock=self.clock.now,
            zendesk_session=session_for(self.zendesk) if self.in_process else None,
            teamwork_session=session_for(self.teamwork) if self.in_process else None)
        return wired.new_pass(lock)

    def check(self) -> list[Difference]:
        return check(self.zendesk, self.teamwork, tasklist_id=self.tasklist,
                     mappings=self.store().mappings(), title_template=TEMPLATE,
                     zendesk_url=self.zendesk_url)

    def use_routes(self, path: Any, toml: str, **env: str) -> None:
        """Run zdsync with ``[[route]]`` tables (written to ``path``) from now on."""
        path.write_text(toml)
        self.extra_env.update(ZDSYNC_CONFIG=str(path), **env)

    def check_routed(self) -> list[Difference]:
        """``check`` for a configuration with routes: every ticket's tasks, in every list
        of the site, against its route (or ``sync.on_unmatch``). The settings are read
        here from the config file and the environment (the environment wins), not through
        the product's config, so the judge shares nothing with what it judges."""
        env = self.env()
        path = env.get("ZDSYNC_CONFIG")
        doc = tomllib.loads(Path(path).read_text()) if path else {}

        def setting(section: str, key: str, default: Any) -> Any:
            return env.get(f"{section}_{key}".upper(), doc.get(section, {}).get(key, default))

        tasklist_id = setting("teamwork", "tasklist_id", None)
        return check_routed(
            self.zendesk, self.teamwork, routes=doc.get("route", []),
            project_id=int(setting("teamwork", "project_id", 0)),
            tasklist_id=None if tasklist_id is None else int(tasklist_id),
            tasklist_name=setting("teamwork", "tasklist_name", "Zendesk"),
            title_template=setting("sync", "title_template", TEMPLATE),
            on_unmatch=setting("sync", "on_unmatch", "keep"),
            mappings=self.store().mappings(), zendesk_url=self.zendesk_url,
            groups={g["id"]: g["name"] for g in self.zendesk._groups.values()})

    def exportable(self) -> None:
        """Move simulated time past Zendesk's last-minute exclusion."""
        self.clock.advance(61)

    def ticket(self, subject: str | None = "Help", *, assignee: int | None = None,
               status: str = "new", **kw: Any) -> int:
        return self.zendesk.create_ticket(subject, requester_id=self.customer,
                                          submitter_id=self.agents[0], assignee_id=assignee,
                                          status=status, **kw)

    def live_tasks(self) -> list[dict[str, Any]]:
        return self.teamwork.tasks(tasklist_id=self.tasklist)

    def tasks_for(self, ticket_id: int, *, everywhere: bool = False) -> list[dict[str, Any]]:
        """The ticket's live tasks in the world's task list (``everywhere``: in any)."""
        link = f"{self.zendesk_url}/agent/tickets/{ticket_id}"
        tasks = self.teamwork.tasks() if everywhere else self.live_tasks()
        return [t for t in tasks
                if any(line.endswith(link) for line in t["description"].splitlines())]


def _with_variants(teamwork_kwargs: dict | None) -> dict:
    return {"variants": current_variants[0], **(teamwork_kwargs or {})}


def make_world(redis_port: int, prefix: str, *, zendesk_kwargs: dict | None = None,
               teamwork_kwargs: dict | None = None) -> Iterator[World]:
    clock = Clock()
    zendesk = ZendeskSim(clock=clock, **(zendesk_kwargs or {})).start()
    teamwork = TeamworkSim(clock=clock, **_with_variants(teamwork_kwargs)).start()
    try:
        yield World(zendesk, teamwork, clock, redis_port, prefix).setup()
    finally:
        zendesk.stop()
        teamwork.stop()


def make_inproc_world(redis_port: int, prefix: str, *, frozen: bool = True,
                      zendesk_kwargs: dict | None = None,
                      teamwork_kwargs: dict | None = None, setup: bool = True) -> World:
    """A World whose simulators run in this process without sockets, on a clock that
    (``frozen``) moves only when a client waits: deterministic, and fast to run often.
    ``setup=False``: empty simulators, for a test that builds its own directory."""
    clock = Clock(frozen=frozen)
    zendesk = ZendeskSim(clock=clock, **(zendesk_kwargs or {}))
    teamwork = TeamworkSim(clock=clock, **_with_variants(teamwork_kwargs))
    world = World(zendesk, teamwork, clock, redis_port, prefix)
    return world.setup() if setup else world


UNLIMITED = 1_000_000
"""Requests a minute the command-line worlds' simulators allow: no command ever waits."""


def make_cli_world(redis_port: int, prefix: str, *, setup: bool = True) -> World:
    """An in-process World for command-line tests (pair it with ``reachable``). The
    simulators' rate limits are out of reach: a command waits in real time, which never
    moves the frozen clock, so a rate-limited command would wait forever. Call
    ``exportable()`` before a command that should see the latest ticket changes."""
    return make_inproc_world(
        redis_port, prefix, setup=setup,
        zendesk_kwargs={"export_limit_per_minute": UNLIMITED,
                        "rate_limit_per_minute": UNLIMITED},
        teamwork_kwargs={"rate_limit_per_minute": UNLIMITED})


@contextlib.contextmanager
def edited_answers(sim: SimServer, route: str, edit: Callable[[Any], Any], *,
                   method: str = "GET") -> Iterator[None]:
    """While inside, the successful answers of ``sim`` on ``route`` (a route name as its
    request log shows them) carry ``edit(body)`` instead of their JSON body: an odd answer
    made from a real one (a malformed ticket in a real export page, a task without id),
    where the simulators' faults (error statuses, lost responses) do not reach."""
    real = sim.dispatch

    def dispatch(request: Any) -> Any:
        answer = real(request)
        matched = sim.match(request)
        if (answer is not None and matched is not None and matched[0].name == route
                and request.method == method and 200 <= answer.status < 300):
            answer.body = json.dumps(edit(json.loads(answer.body))).encode()
        return answer

    sim.dispatch = dispatch  # type: ignore[method-assign]
    try:
        yield
    finally:
        del sim.dispatch


@contextlib.contextmanager
def reachable(world: World) -> Iterator[World]:
    """Make an in-process World's simulators answer any ``requests`` session in this
    process (its URLs are ``INPROC_ZENDESK`` and ``INPROC_TEAMWORK``): command-line tests
    through click's runner then reach them as real clients would, without sockets."""
    adapters = {INPROC_ZENDESK: SimAdapter(world.zendesk),
                INPROC_TEAMWORK: SimAdapter(world.teamwork)}
    original = requests.Session.get_adapter

    def get_adapter(session: requests.Session, url: str) -> Any:
        for prefix, adapter in adapters.items():
            if url.startswith(prefix):
                return adapter
        return original(session, url)

    requests.Session.get_adapter = get_adapter  # type: ignore[method-assign]
    try:
        yield world
    finally:
        requests.Session.get_adapter = original  # type: ignore[method-assign]
