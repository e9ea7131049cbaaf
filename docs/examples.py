"""Makes the example outputs of docs/cli.md and README.md from real runs, and checks them.

    .venv/bin/python docs/examples.py           # rewrite every block between markers
    .venv/bin/python docs/examples.py --check   # change nothing; exit 1 naming stale blocks

Each example is the real ``zdsync`` command line (click's runner, in this process) against
the simulators' ``--seed-data`` world (``zdsync/sim/seed.py``) and a private redis-server.
A block in a Markdown file is written between ``<!-- output: NAME -->`` and
``<!-- end -->``, each on a line of its own; NAME is an example a scenario below makes
(``Session.run``'s first argument).

Deterministic by construction: the simulators and zdsync share one clock, frozen at
2026-12-01 12:00:00 UTC, that moves only where a scenario says (``time.time`` is that
clock in this process), so every timestamp, "in 30 s" and "behind now" is the same on every
run. The simulators answer in process at the URLs a reader would use
(``http://127.0.0.1:8181`` and ``:8182``, their default ports), without rate limits (a
frozen clock never refills a budget); zdsync works one ticket at a time, so that the
tickets get their tasks (and task ids) in the same order on every run. What still varies
is made fixed by ``normalise``, the one place that does: the private Redis's port is shown
as 6379 and its version as 7.0.15, durations measured on the monotonic clock (a pass's, a
rebuild's) as 0.01 s, and a lock holder (host name and process id) as host:4242.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shlex
import socket
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

START = 1796126400.0  # 2026-12-01 12:00:00 UTC
_clock: Any = None


def _now() -> float:
    return START if _clock is None else _clock.now()


time.time = _now  # before zdsync is imported: some functions take time.time as a default

import redis  # noqa: E402
import requests  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from zdsync.cli import main as zdsync  # noqa: E402
from zdsync.localredis import LocalRedis  # noqa: E402
from zdsync.sim.adapter import SimAdapter  # noqa: E402
from zdsync.sim.base import Clock  # noqa: E402
from zdsync.sim.seed import seed_teamwork, seed_zendesk  # noqa: E402
from zdsync.sim.teamwork import TeamworkSim  # noqa: E402
from zdsync.sim.zendesk import ZendeskSim  # noqa: E402
from zdsync.store import Store  # noqa: E402

FILES = [REPO / "docs" / "cli.md", REPO / "README.md"]
REGENERATE = ".venv/bin/python docs/examples.py"
ZENDESK_URL = "http://127.0.0.1:8181"  # the simulators' default ports
TEAMWORK_URL = "http://127.0.0.1:8182"
SHOWN_REDIS_PORT = 6379
SHOWN_HOLDER = "host:4242"  # a lock holder: host name and process id
UNLIMITED = 1_000_000
BLOCK = re.compile(r"^([ \t]*<!-- output: (?P<name>[\w.-]+) -->\n)(?P<body>.*?)"
                   r"^([ \t]*<!-- end -->)", re.DOTALL | re.MULTILINE)
MARKER = re.compile(r"^[ \t]*<!-- output:", re.MULTILINE)  # a block starts on its own line
ENV = {
    "COLUMNS": "100",  # a fixed terminal width, should an output ever depend on it
    "ZENDESK_URL": ZENDESK_URL, "ZENDESK_EMAIL": "admin@example.com",
    "ZENDESK_API_TOKEN": "sim-zendesk-token",
    "TEAMWORK_URL": TEAMWORK_URL, "TEAMWORK_API_TOKEN": "sim-teamwork-token",
    "TEAMWORK_PROJECT_ID": "801", "REDIS_HOST": "127.0.0.1",
    "TEAMWORK_CONCURRENCY": "1",  # tickets in one order: the same task ids on every run
}
SETTINGS_PREFIXES = ("ZENDESK_", "TEAMWORK_", "REDIS_", "SYNC_", "LOG_", "HTTP_", "WEBHOOK_",
                     "USERS_", "ZDSYNC_")


SHOWN_REDIS_VERSION = "7.0.15"
"""What ``zdsync check`` shows as the Redis server's version, whichever one made it."""


def normalise(text: str, redis_port: int) -> str:
    """The one place where output that varies between runs is made fixed."""
    text = re.sub(rf":{redis_port}\b", f":{SHOWN_REDIS_PORT}", text)
    text = re.sub(r"\bRedis \d+\.\d+\.\d+,", f"Redis {SHOWN_REDIS_VERSION},", text)
    text = text.replace(f"{socket.gethostname()}:{os.getpid()}", SHOWN_HOLDER)
    text = re.sub(r"(, (?:success|partial|failed), )\d+\.\d+ s:", r"\g<1>0.01 s:", text)
    text = re.sub(r'("(?:duration|seconds)": )\d+(?:\.\d+)?', r"\g<1>0.01", text)  # --json
    return re.sub(r"(done in )\d+\.\d+ s", r"\g<1>0.01 s", text)


@dataclass
class World:
    """Both simulators, seeded as ``--seed-data`` seeds them, on a clock of their own that
    starts at ``START`` and is this process's ``time.time`` while the world lives."""

    zendesk: ZendeskSim
    teamwork: TeamworkSim
    clock: Clock

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)


@dataclass
class Session:
    """Runs commands and keeps their output, by example name."""

    redis: LocalRedis
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    world: World | None = None

    def run(self, name: str | None, *args: str, env: dict[str, str] | None = None,
            answer: str | None = None, code: int | None = None) -> None:
        """Run ``zdsync ARGS`` with ``env`` added (and shown on the command line), and keep
        it as example ``name``; fail when the exit status is not ``code`` (when given)."""
        extra = env or {}
        result = CliRunner().invoke(zdsync, list(args), env={**self.env, **extra}, input=answer)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise RuntimeError(f"zdsync {' '.join(args)} raised") from result.exception
        if code is not None and result.exit_code != code:
            raise RuntimeError(f"zdsync {' '.join(args)} exited {result.exit_code}, not "
                               f"{code}:\n{result.output}")
        shown = " ".join([*(f"{k}={shlex.quote(v)}" for k, v in extra.items()), "zdsync",
                          *map(shlex.quote, args)])
        if answer is not None:
            shown = f"echo {shlex.quote(answer.strip())} | {shown}"
        text = normalise(f"```console\n$ {shown}\n{result.output}$ echo $?\n"
                         f"{result.exit_code}\n```\n", self.redis.port)
        if name is not None:
            if name in self.outputs:
                raise RuntimeError(f"example {name} is made twice")
            self.outputs[name] = text

    def file(self, name: str, path: str, text: str) -> None:
        """Write a file the next commands read, and show it (``cat``) in example ``name``."""
        (self.workdir / path).write_text(text)
        shown = self.outputs.get(name, "```console\n```\n")[:-len("```\n")]
        self.outputs[name] = f"{shown}$ cat {path}\n{text}```\n"

    def store(self) -> Store:
        return Store(self.redis_client())

    @contextmanager
    def new_world(self) -> Iterator[World]:
        """A fresh seeded world (and an empty Redis) whose clock is ``time.time``."""
        global _clock
        self.redis_client().flushall()
        clock = Clock(frozen=True, start=START)
        zendesk = ZendeskSim(clock=clock, export_limit_per_minute=UNLIMITED,
                             rate_limit_per_minute=UNLIMITED)
        teamwork = TeamworkSim(clock=clock, rate_limit_per_minute=UNLIMITED)
        seed_zendesk(zendesk)
        seed_teamwork(teamwork)
        _clock, self.world = clock, World(zendesk, teamwork, clock)
        try:
            yield self.world
        finally:
            _clock, self.world = None, None

    def redis_client(self) -> redis.Redis:
        return redis.Redis(port=self.redis.port)


@contextmanager
def in_process_simulators(session: Session) -> Iterator[None]:
    """Requests to the simulators' URLs reach the session's current world in process."""
    original = requests.Session.get_adapter

    def get_adapter(http: requests.Session, url: str) -> Any:
        if session.world is not None:
            if url.startswith(ZENDESK_URL):
                return SimAdapter(session.world.zendesk)
            if url.startswith(TEAMWORK_URL):
                return SimAdapter(session.world.teamwork)
        return original(http, url)

    requests.Session.get_adapter = get_adapter  # type: ignore[method-assign]
    try:
        yield
    finally:
        requests.Session.get_adapter = original  # type: ignore[method-assign]


# -- the scenarios --------------------------------------------------------------------------


def first_run(s: Session) -> None:
    """README: "Running one pass", a first run without sync.start_time sees nothing, one
    with a start time in the past (on a fresh world) backfills the seeded tickets; the
    check and a configuration error."""
    for name, env in (("first-sync", {}),
                      ("backfill-sync", {"SYNC_START_TIME": "2026-12-01T11:00:00Z"})):
        with s.new_world() as w:
            w.advance(120)  # the seeded tickets are two minutes old: Zendesk exports them
            if not env:
                s.run("check", "check", code=0)
                s.run("config-error", "sync", code=2,
                      env={"TEAMWORK_PROJECT_ID": "abc", "ZENDESK_API_TOKEN": ""})
            s.run(None, "users", "auto", "--apply", code=0)
            s.run(name, "sync", env=env, code=0)


def reference(s: Session) -> None:
    """docs/cli.md, section by section, on one world with a backfill from 11:00."""
    s.env.update(SYNC_START_TIME="2026-12-01T11:00:00Z", LOG_LEVEL="WARNING")
    with s.new_world() as w:
        w.advance(120)
        s.run("check-bad-token", "check", env={"ZENDESK_API_TOKEN": "wrong"}, code=1)
        s.run("check-redis-down", "check", env={"REDIS_PORT": "1"}, code=1)
        s.run("check-config-error", "check",
              env={"TEAMWORK_PROJECT_ID": "0", "SYNC_LOCK_TTL": "1e300"}, code=2)
        users(s)
        s.run("sync-dry-run", "sync", "--dry-run", code=0)
        s.run("sync", "sync", code=1)  # carol's ticket 3 fails: person 504 does not exist
        s.run("tickets-list", "tickets", "list", code=0)
        s.run("tickets-list-json", "tickets", "list", "--state", "open", "--json", code=0)
        s.run("tickets-show", "tickets", "show", "1", code=0)
        s.run("tickets-show-failed", "tickets", "show", "3", code=0)
        s.run("tickets-show-unknown", "tickets", "show", "424242", code=1)
        w.advance(2)
        s.run("retries-list", "retries", "list", code=0)
        s.run("cursor-show", "cursor", "show", code=0)
        s.run("cursor-show-json", "cursor", "show", "--json", code=0)
        s.run("retries-retry-unknown", "retries", "retry", "3", "999", code=1)
        s.run("retries-retry-all", "retries", "retry", "--all", code=0)
        s.run("retries-drop", "retries", "drop", "3", code=0)
        s.run("users-remove", "users", "remove", "10004", code=0)
        w.zendesk.update_ticket(2, subject="Cannot log in (SSO)")
        w.advance(61)
        s.run("tickets-resync", "tickets", "resync", "2", code=0)
        s.run("tickets-resync-unknown", "tickets", "resync", "424242", code=1)
        lock = s.store().lock(ttl_seconds=30).acquire_or_raise()
        try:
            s.run("tickets-resync-locked", "tickets", "resync", "1", code=75)
        finally:
            lock.release()
        audit(s, w)
        w.advance(60)
        s.run("cursor-reset-declined", "cursor", "reset", "--start-time",
              "2026-01-01T00:00:00Z", answer="n\n", code=1)
        s.run("cursor-reset", "cursor", "reset", "--start-time", "2026-12-01T11:30:00Z",
              "--yes", code=0)
        s.run("cursor-show-reset", "cursor", "show", code=0)
        s.run(None, "sync", code=0)
        recover(s, w)
        s.run("tickets-unlink", "tickets", "unlink", "2", code=0)


def users(s: Session) -> None:
    """Alice and Bob mapped by e-mail; carol, whose e-mail no Teamwork person has, mapped
    unverified to person 504, who does not exist: her ticket's create fails."""
    s.run("users-add-customer", "users", "add", "10005", "504", code=1)
    s.run("users-add-no-person", "users", "add", "10004", "504", code=1)
    s.run("users-add", "users", "add", "10002", "502", code=0)
    s.run("users-auto", "users", "auto", code=0)
    s.run("users-auto-apply", "users", "auto", "--apply", code=0)
    s.run("users-list", "users", "list", code=0)
    s.run("users-list-json", "users", "list", "--json", code=0)
    s.run("users-list-no-names", "users", "list", "--no-names", code=0)
    s.file("users-import-files", "bad.csv",
           "zendesk_user_id,teamwork_person_id\n10002,502\nabc,503\n10002,503\n")
    s.file("users-import-files", "agents.csv",
           "zendesk_user_id,teamwork_person_id,name\n10002,502,Alice\n10003,503,Bob\n")
    s.run("users-import-bad", "users", "import", "bad.csv", code=2)
    s.run("users-import", "users", "import", "agents.csv", code=0)
    s.run("users-export", "users", "export", code=0)
    s.run("users-add-no-verify", "users", "add", "--no-verify", "10004", "504", code=0)


def audit(s: Session, w: World) -> None:
    """Tasks changed by hand in Teamwork: ticket 1's deleted; ticket 2's completed,
    renamed and given to Bob; ticket 3 has none (its retry was dropped)."""
    tasks = {t["name"]: t["id"] for t in w.teamwork.tasks()}
    w.teamwork.delete_task(tasks["[ZD#1] Printer on fire"])
    second = tasks["[ZD#2] Cannot log in (SSO)"]
    w.teamwork.complete_task(second)
    w.teamwork.update_task(second, name="Login (looking into it)", assignee_ids=[503])
    s.run("audit", "audit", code=1)
    s.run("audit-json", "audit", "--json", code=1)
    s.run("audit-repair", "audit", "--repair", code=0)
    s.run("audit-clean", "audit", code=0)


def recover(s: Session, w: World) -> None:
    """Redis loses everything; meanwhile ticket 3 is closed, ticket 2 retitled, and a
    second task for ticket 1 appears."""
    s.redis_client().flushall()
    w.advance(60)
    w.zendesk.update_ticket(3, status="solved")
    w.zendesk.update_ticket(3, status="closed")
    w.zendesk.update_ticket(2, subject="Cannot log in since Monday")
    first = next(t for t in w.teamwork.tasks() if t["name"].startswith("[ZD#1]"))
    w.teamwork.create_task(first["tasklistId"], first["name"], first["description"])
    w.advance(61)
    s.run("recover-dry-run", "recover", "--dry-run", code=0)
    s.run("recover", "recover", code=0)
    s.run("cursor-show-recovered", "cursor", "show", code=0)


ROUTES = """\
[sync]
on_unmatch = "complete"

[[route]]
name = "billing"
match.tags_any = ["billing", "invoice"]
tasklist_name = "Billing"
priority = true
tags = true
description_template = \"\"\"
Requester: {requester_name} <{requester_email}>, priority {priority}
Tags: {tags}
\"\"\"

[[route]]
name = "europe"
match.brand_id = 7
project_id = 802
tasklist_id = 2002
"""


def routes(s: Session) -> None:
    """docs/cli.md's examples with routes: the seeded world plus a project "Europe" (802)
    with a list "EU tickets" (2002), and two tickets: 4, tagged invoice, and 5, of brand 7.
    The seeded tickets 1 to 3 match no route."""
    s.env.update(SYNC_START_TIME="2026-12-01T11:00:00Z", LOG_LEVEL="WARNING")
    (s.workdir / "zdsync.toml").write_text(ROUTES)
    s.outputs["routes-config"] = f"```toml\n{ROUTES}```\n"
    with s.new_world() as w:
        europe = w.teamwork.add_project("Europe")
        w.teamwork.add_tasklist(europe, "EU tickets")
        for person in (502, 503):
            w.teamwork.add_to_project(europe, person)
        customer = 10005
        w.zendesk.create_ticket("Invoice copy", customer, 10002, 10002, "open", ["invoice"],
                                priority="high")
        w.zendesk.create_ticket("Bonjour", customer, 10003, 10003, "open", brand_id=7)
        w.advance(120)
        s.run(None, "users", "auto", "--apply", code=0)
        config = ("--config", "zdsync.toml")
        s.run("routes-check", *config, "check", code=0)
        (s.workdir / "wrong.toml").write_text(ROUTES.replace("tasklist_id = 2002",
                                                             "tasklist_id = 2001"))
        s.run("routes-check-wrong-list", "--config", "wrong.toml", "check", code=1)
        (s.workdir / "invalid.toml").write_text(ROUTES.replace("match.brand_id = 7",
                                                               'match.brand_id = "seven"'))
        s.run("routes-check-invalid", "--config", "invalid.toml", "check", code=2)
        s.run("routes-dry-run", *config, "sync", "--dry-run", code=0)
        s.run(None, *config, "sync", code=0)
        s.run("routes-tickets-show", *config, "tickets", "show", "4", code=0)
        w.zendesk.update_ticket(4, tags=[])
        w.zendesk.update_ticket(5, brand_id=1, tags=["billing"])
        w.advance(61)
        s.run("routes-dry-run-changed", *config, "sync", "--dry-run", code=0)
        s.run(None, *config, "sync", code=0)
        s.run("routes-tickets-show-unmatched", *config, "tickets", "show", "4", code=0)


# -- the files ------------------------------------------------------------------------------


def make_examples() -> dict[str, str]:
    for key in [k for k in os.environ if k.startswith(SETTINGS_PREFIXES)]:
        del os.environ[key]  # the examples' settings are ENV's and the scenarios', only
    redis_server = LocalRedis().start()
    try:
        with tempfile.TemporaryDirectory(prefix="zdsync-docs-") as workdir:
            session = Session(redis_server, Path(workdir),
                              {**ENV, "REDIS_PORT": str(redis_server.port)})
            cwd = os.getcwd()
            os.chdir(workdir)  # file arguments (users import) are shown as typed
            try:
                with in_process_simulators(session):
                    first_run(session)
                    reference(session)
                    routes(session)
            finally:
                os.chdir(cwd)
            return session.outputs
    finally:
        redis_server.stop()


def render(text: str, outputs: dict[str, str], path: Path) -> str:
    """``text`` with each block's body replaced by the example it names."""
    if len(BLOCK.findall(text)) != len(MARKER.findall(text)):
        raise SystemExit(f"{path}: an <!-- output: NAME --> marker has no <!-- end --> "
                         "before the next one")

    def block(m: re.Match[str]) -> str:
        name = m["name"]
        if name not in outputs:
            raise SystemExit(f"{path}: no example named {name!r} (see docs/examples.py)")
        indent = m[1][:len(m[1]) - len(m[1].lstrip())]  # a block inside a list item
        body = "".join(indent + line if line.strip() else line
                       for line in outputs[name].splitlines(True))
        return f"{m[1]}{body}{m[4]}"

    return BLOCK.sub(block, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="change nothing; exit 1 when a block differs from a real run")
    parser.add_argument("files", nargs="*", type=Path, default=FILES, metavar="FILE",
                        help="Markdown files with example blocks (default: docs/cli.md and "
                        "README.md)")
    parser.add_argument("--show", action="store_true",
                        help="print every example and change nothing")
    args = parser.parse_args(argv)
    outputs = make_examples()
    if args.show:
        print("\n".join(f"== {name}\n{text}" for name, text in outputs.items()))
        return 0
    check = args.check
    stale: list[str] = []
    used: set[str] = set()
    for path in args.files:
        text = path.read_text()
        used.update(m["name"] for m in BLOCK.finditer(text))
        new = render(text, outputs, path)
        if new == text:
            continue
        if check:
            stale.append("".join(difflib.unified_diff(
                text.splitlines(True), new.splitlines(True), f"{path} (as written)",
                f"{path} (as zdsync runs now)")))
        else:
            path.write_text(new)
            print(f"rewrote {path}")
    unused = sorted(set(outputs) - used)
    if unused and args.files == FILES:
        print(f"examples made but shown nowhere: {', '.join(unused)}", file=sys.stderr)
    if stale:
        print("".join(stale), file=sys.stderr)
        print(f"the examples above no longer match zdsync's output; regenerate them with "
              f"{REGENERATE}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
