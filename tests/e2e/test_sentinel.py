"""The store behind real Redis Sentinels: a failover loses nothing and is survived; `zdsync
check` finds the master through them."""

from __future__ import annotations

import threading
import time

from click.testing import CliRunner

from zdsync.cli import main
from zdsync.config import load
from zdsync.rules import Record, Ticket
from zdsync.store import Store


def sentinel_store(cluster) -> Store:
    settings = load(None, {}, {"REDIS_USE_SENTINEL": "true",
                               "REDIS_SENTINEL_HOSTS": cluster.hosts}, require_services=False)
    return Store.from_settings(settings.redis)


def test_failover_during_writes_loses_nothing(sentinel_cluster):
    store = sentinel_store(sentinel_cluster)
    store.set_mappings({1: 10, 2: 20})
    lease = store.lock(ttl_seconds=60)
    assert lease.acquire()
    store.r.execute_command("WAIT", 1, 2000)  # the lease is on the replica too
    store.write(lease.token, ops=store.cursor_ops("cursor-1", 1000, time.time()))
    written: list[int] = []
    errors: list[Exception] = []
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            record = Record(Ticket(n, "open", f"s{n}", None, None, (), "u", n))
            try:
                # Replication is asynchronous: a write the old master acknowledged but did
                # not replicate can vanish in a failover (zdsync's replays absorb that). The
                # test counts a write as made once the replica has it.
                store.write(lease.token, [record],
                            store.cursor_ops(f"cursor-{n}", 1000 + n, time.time()))
                store.r.execute_command("WAIT", 1, 1000)
                written.append(n)
            except Exception as exc:  # the test fails on any error surfacing to the caller
                errors.append(exc)
            time.sleep(0.01)

    thread = threading.Thread(target=writer)
    thread.start()
    time.sleep(0.5)
    old_port = sentinel_cluster.master_port()
    new_port = sentinel_cluster.failover()
    assert new_port != old_port
    time.sleep(2.0)  # keep writing against the new master
    stop.set()
    thread.join(timeout=30)

    assert errors == []  # every command retried through the failover
    assert written and len(written) > 20
    assert store.mappings() == {1: 10, 2: 20}
    last = written[-1]
    assert store.cursor().cursor == f"cursor-{last}"
    assert set(store.records(written)) == set(written)
    # And the client really talks to the new master now.
    assert store.r.connection_pool.get_master_address()[1] == new_port
    lease.release()


def test_check_finds_the_sentinel_master(cli_world, sentinel_cluster):
    sentinel = {**cli_world.env(), "REDIS_USE_SENTINEL": "true",
                "REDIS_SENTINEL_HOSTS": sentinel_cluster.hosts}
    result = CliRunner().invoke(main, ["check"], env=sentinel)
    assert f"✓ Redis: master 'mymaster' at 127.0.0.1:{sentinel_cluster.master.port} (found by " \
           "Sentinel) answers" in result.output
    result = CliRunner().invoke(main, ["check"], env={**sentinel, "REDIS_SENTINEL_MASTER": "nope"})
    assert result.exit_code == 1 and "✗ Redis: no Sentinel knows a master" in result.output
