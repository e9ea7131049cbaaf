"""Redis's memory limit: a policy that may evict zdsync's keys is reported; a Redis that is
full refuses the write and loses nothing. A redis-server of its own (its settings change)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis

from tests.world import World, make_inproc_world
from zdsync import checks, eviction
from zdsync.localredis import LocalRedis
from zdsync.metrics import Metrics
from zdsync.store import RedisFull


@pytest.fixture
def server() -> Iterator[LocalRedis]:
    with LocalRedis() as local:
        yield local


@pytest.fixture
def world(server) -> World:
    return make_inproc_world(server.port, "ev:")


@pytest.mark.parametrize(("policy", "state", "check"), [
    ("allkeys-lru", 1, checks.FAIL), ("allkeys-lfu", 1, checks.FAIL),
    ("allkeys-random", 1, checks.FAIL), ("volatile-lru", 0, checks.OK),
    ("volatile-ttl", 0, checks.OK), ("noeviction", 0, checks.OK)])
def test_a_policy_that_can_evict_zdsyncs_keys_is_an_error(world, server, caplog, policy,
                                                           state, check):
    server.client().config_set("maxmemory-policy", policy)
    metrics = Metrics()
    with caplog.at_level(logging.ERROR):
        assert eviction.check(server.client(), metrics) == policy
    assert metrics.eviction_unsafe._value.get() == state
    assert any("noeviction" in r.message for r in caplog.records) == (state == 1)
    found = checks.eviction_policy(world.store())
    assert found.state == check and (check == checks.OK or "noeviction" in found.hint)


def test_a_policy_that_cannot_be_read_is_said_and_zdsync_goes_on(world, server, caplog):
    """Some managed services rename or refuse CONFIG: a user without it stands for them."""
    admin = server.client()
    admin.execute_command("ACL", "SETUSER", "app", "on", ">pw", "~*", "&*", "+@all",
                          "-config")
    limited = redis.Redis(port=server.port, username="app", password="pw",
                          decode_responses=True)
    metrics = Metrics()
    with caplog.at_level(logging.WARNING):
        assert eviction.check(limited, metrics) is None
    assert metrics.eviction_unsafe._value.get() == -1
    assert "could not read" in caplog.text


def test_a_full_redis_fails_the_write_cleanly(world, server):
    """Redis full, noeviction: the pass stops at the first write refused, naming the
    cause; the cursor is where it was, and every record still says what Teamwork holds
    (or that a write is in flight: a small write may squeeze in before the refusal);
    once memory is freed, the next pass applies the change."""
    tickets = [world.ticket(f"T{n}", assignee=world.agents[0], status="open")
               for n in range(5)]
    world.exportable()
    world.run_pass().run()
    r = server.client()
    store = world.store()
    cursor = r.dump(world.prefix + "cursor")
    for t in tickets:
        world.zendesk.update_ticket(t, subject=f"Renamed {t}")
    world.exportable()
    p = world.run_pass()  # the lease is taken before Redis fills up
    r.config_set("maxmemory-policy", "noeviction")
    r.config_set("maxmemory", str(r.info("memory")["used_memory"] + 256 * 1024))
    filler = "x" * 4096
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        for n in range(10_000):
            r.set(f"filler:{n}", filler)
    # And kept full: Redis frees a few KB of client buffers in its cron, which would let a
    # pass of small writes through at times. Under a limit it is far above, nothing is.
    r.config_set("maxmemory", str(r.info("memory")["used_memory"] // 2))
    with pytest.raises(RedisFull, match=r"Redis is full.*nothing was written.*cursor"):
        p.run()
    assert r.dump(world.prefix + "cursor") == cursor
    for t, record in store.records(tickets).items():
        [task] = world.tasks_for(t)
        assert record.in_flight or (record.applied.task_id, record.applied.title) \
            == (task["id"], task["name"])
    assert world.teamwork.most_live_with_one_marker == 1
    r.config_set("maxmemory", "0")
    world.exportable()
    world.run_pass().run()
    assert world.check() == []
