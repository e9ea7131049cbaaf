"""End to end: the zdsync command line as real processes, real Redis, both simulators.

Every test ends with the consistency check: Teamwork must hold exactly what the rules imply
for every ticket (no task missing, no duplicate, right title, assignee and completion).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.world import make_world
from zdsync.sim.activity import ActivityGenerator

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("rotated_teamwork_variants")]


@pytest.fixture
def world(redis_server, redis_client):
    yield from make_world(redis_server.port, "e2e:")


def sync_once(world, **env):
    result = world.zdsync("sync", "--once", **env)
    return result


def test_full_lifecycle_through_the_command_line(world):
    a, b = world.agents[0], world.agents[1]
    t1 = world.ticket("Printer on fire", assignee=None)          # opened by agent a
    t2 = world.ticket("Merge me", assignee=a, status="open")
    t3 = world.ticket("Delete me", assignee=b, status="open")
    world.exportable()
    first = sync_once(world)
    assert first.returncode == 0, first.stderr
    assert "tickets seen 3; tasks created 3" in first.stdout
    assert world.check() == []
    [task] = world.tasks_for(t1)
    assert [x["id"] for x in task["assignees"]] == [world.mappings[a]]  # submitter's person

    steps = [
        lambda: world.zendesk.update_ticket(t1, subject="Printer still on fire"),
        lambda: world.zendesk.update_ticket(t1, assignee_id=b, status="open"),
        lambda: world.zendesk.update_ticket(t1, assignee_id=world.unmapped),
        lambda: world.zendesk.update_ticket(t1, status="solved"),
        lambda: world.zendesk.update_ticket(t1, status="open", comment="still broken"),
        lambda: world.zendesk.merge(t2, t1),
        lambda: world.zendesk.delete_ticket(t3),
        lambda: world.zendesk.update_ticket(t1, status="solved"),
        lambda: world.zendesk.update_ticket(t1, status="closed"),
    ]
    for step in steps:
        step()
        world.exportable()
        result = sync_once(world)
        assert result.returncode == 0, result.stdout + result.stderr
        assert world.check() == [], result.stdout
    assert world.tasks_for(t1) == [] and world.tasks_for(t3) == []
    [merged] = world.tasks_for(t2)
    assert merged["status"] == "completed"
    created = world.teamwork.log.count("POST", path="/projects/api/v3/tasklists/*/tasks.json")
    assert created == 3  # one task per ticket, ever


def test_backfill_of_2500_tickets_then_nothing_to_do(redis_server, redis_client):
    for world in make_world(redis_server.port, "bf:",
                            teamwork_kwargs={"rate_limit_per_minute": 100000}):
        for n in range(2500):
            world.ticket(f"Ticket {n}", assignee=world.agents[n % 3],
                         status=("open", "pending", "solved", "hold")[n % 4])
        world.exportable()
        started = time.monotonic()
        result = sync_once(world)
        elapsed = time.monotonic() - started
        assert result.returncode == 0, result.stderr[-2000:]
        assert "tickets seen 2500; tasks created 2500" in result.stdout
        assert len(world.live_tasks()) == 2500
        assert world.check() == []
        exports = world.zendesk.log.count("GET", path="/api/v2/incremental/tickets/cursor*")
        assert exports >= 3  # 1,000 a page at most
        print(f"backfill of 2500 tickets: {elapsed:.1f} s, {exports} export requests")

        world.teamwork.log.clear()
        again = sync_once(world)
        assert again.returncode == 0 and "tickets seen 0" in again.stdout
        writes = [e for e in world.teamwork.log.entries() if e.method != "GET"]
        assert writes == []


@pytest.mark.parametrize(("service", "zendesk_kwargs", "teamwork_kwargs"), [
    ("zendesk", {"export_limit_per_minute": 2}, {"rate_limit_per_minute": 100000}),
    ("teamwork", {}, {"rate_limit_per_minute": 8}),
])
def test_rate_limits_are_honoured_in_simulated_time(redis_server, redis_client, monkeypatch,
                                                    service, zendesk_kwargs, teamwork_kwargs):
    """Each limit is reached on purpose; the client's waits advance the simulated clock.
    Zendesk's export limit is overrun (its 429s are honoured: the request log shows nothing
    sent while locked out); Teamwork's budget headers are followed, so it never is."""
    monkeypatch.setattr("zdsync.defaults.ZENDESK_PAGE_SIZE", 10)
    for world in make_world(redis_server.port, "rl:", zendesk_kwargs=zendesk_kwargs,
                            teamwork_kwargs=teamwork_kwargs):
        for n in range(45):
            world.ticket(f"T{n}", assignee=world.agents[n % 2], status="open")
        world.exportable()
        summary = world.run_pass().run()
        assert summary.error is None and summary.failed == 0, summary.line()
        assert summary.created == 45 and summary.pages >= 5
        assert world.check() == []
        sim = world.zendesk if service == "zendesk" else world.teamwork
        entries = sim.log.entries()
        refused = [e for e in entries if e.status == 429]
        if service == "teamwork":
            # Teamwork reports its budget on every answer and zdsync spends just that, less
            # its reserve of one: the limit is reached but never overrun.
            assert refused == []
            starts = [e.time for e in entries]
            busiest = max(sum(1 for t in starts if s <= t < s + 60) for s in starts)
            assert busiest >= 7, busiest
            return
        assert len(refused) >= 2, "the test means to hit the limit"
        for r in refused:
            # After a refusal the client waits out the window or lock-out: the next request
            # comes at least a window later in simulated time, and is accepted.
            later = [e for e in entries if e.time > r.time]
            assert later and later[0].time - r.time >= 50, later[:1]
            assert later[0].status != 429


def test_faults_converge_without_duplicates_or_losses(world):
    world.zendesk.faults.set(latency_seconds=0.002, error_rate=0.1)
    world.teamwork.faults.set(latency_seconds=0.002, error_rate=0.15, lost_create_rate=0.25)
    gen = ActivityGenerator(world.zendesk, seed=7, mapped_agent_ids=world.agents[:2],
                            unmapped_agent_ids=world.agents[2:])
    gen.run(250)
    world.exportable()
    store = world.store()
    lost = 0
    for attempt in range(8):
        result = sync_once(world)
        assert result.returncode in (0, 1), result.stderr[-2000:]
        if attempt == 0:
            lost = world.teamwork.log.count("POST", status=None)
            world.zendesk.faults.reset()
            world.teamwork.faults.reset()
        if result.returncode == 0 and store.retry_depth() == 0:
            break
        store.retry_now(r.ticket_id for r in store.retries())
    assert lost > 0, "the faults should have lost some create responses"
    assert store.retry_depth() == 0
    assert world.check() == []


SIGKILL_SEEDS = [int(s) for s in os.environ.get("ZDSYNC_SIGKILL_SEEDS", "1,2,3").split(",")]


@pytest.mark.parametrize("seed", SIGKILL_SEEDS)
def test_sigkill_at_a_random_moment_then_rerun_converges(world, seed):
    world.teamwork.faults.set(latency_seconds=0.004)
    gen = ActivityGenerator(world.zendesk, seed=seed, mapped_agent_ids=world.agents[:2],
                            unmapped_agent_ids=world.agents[2:])
    gen.run(400)
    world.exportable()
    proc = subprocess.Popen([sys.executable, "-m", "zdsync", "sync", "--once"],
                            env=world.env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(random.Random(seed).uniform(0.5, 2.0))
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_midway = len(world.live_tasks())
    # The lock of the killed pass would expire after its TTL; spare the test the wait.
    world.store().r.delete(world.prefix + "lock:sync")
    world.teamwork.faults.reset()
    gen.run(50)  # life goes on meanwhile
    world.exportable()
    store = world.store()
    for _ in range(4):
        result = sync_once(world)
        assert result.returncode in (0, 1), result.stderr[-2000:]
        if result.returncode == 0:
            break
        store.retry_now(r.ticket_id for r in store.retries())
    assert result.returncode == 0
    assert world.check() == []
    print(f"seed {seed}: {killed_midway} tasks existed when the pass was killed")


def test_demo_passes_its_consistency_check(redis_server):
    result = subprocess.run(
        [sys.executable, "-m", "zdsync", "demo", "--tickets", "15", "--duration", "6",
         "--faults"],
        env={"PATH": "/usr/bin:/bin", "REDIS_HOST": "127.0.0.1",
             "REDIS_PORT": str(redis_server.port)},
        capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Teamwork matches every ticket" in result.stdout
    assert "removed the demo's" in result.stdout
    leftovers = redis_server.client().keys("zdsync-demo:*")
    assert leftovers == []
