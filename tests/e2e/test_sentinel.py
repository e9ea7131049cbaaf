"""The store behind real Redis Sentinels: a failover loses nothing and is survived; `zdsync
check` finds the master through them. The same with TLS everywhere, an ACL user on the data
nodes and a password of the Sentinels' own."""

from __future__ import annotations

import threading
import time

from click.testing import CliRunner

from tests.e2e.test_daemon import wait_until
from tests.tls import DATA_LOGIN, SENTINEL_PASSWORD
from zdsync.cli import main
from zdsync.config import load
from zdsync.rules import Record, Ticket
from zdsync.store import Store


def sentinel_env(cluster) -> dict[str, str]:
    return {"REDIS_USE_SENTINEL": "true", "REDIS_SENTINEL_HOSTS": cluster.hosts}


def tls_sentinel_env(cluster, certificates) -> dict[str, str]:
    """What an operator sets for ``tls_sentinel_cluster``: TLS to both, the data nodes' ACL
    user, the Sentinels' own password."""
    user, password = DATA_LOGIN
    return {**sentinel_env(cluster), "REDIS_SSL": "true", "REDIS_SENTINEL_SSL": "true",
            "REDIS_SSL_CA_CERTS": certificates.ca, "REDIS_USERNAME": user,
            "REDIS_PASSWORD": password, "REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD}


def sentinel_store(env: dict[str, str]) -> Store:
    return Store.from_settings(load(None, {}, env, require_services=False).redis)


def test_failover_during_writes_loses_nothing(sentinel_cluster):
    writes_survive_a_failover(sentinel_cluster, sentinel_store(sentinel_env(sentinel_cluster)))


def test_failover_behind_tls_and_passwords_loses_nothing(tls_sentinel_cluster, certificates):
    """The lease, the fenced writes and the WAIT fence, all over TLS, through a failover."""
    store = sentinel_store(tls_sentinel_env(tls_sentinel_cluster, certificates))
    writes_survive_a_failover(tls_sentinel_cluster, store)


def writes_survive_a_failover(sentinel_cluster, store: Store) -> None:
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
    # and, on a slow machine (TLS handshakes), until there are enough writes to judge
    wait_until(lambda: len(written) > 20 or errors, 60, "writes")
    stop.set()
    thread.join(timeout=30)

    assert errors == [], [str(e) for e in errors]  # every command retried through the failover
    assert written and len(written) > 20
    assert store.mappings() == {1: 10, 2: 20}
    last = written[-1]
    assert store.cursor().cursor == f"cursor-{last}"
    assert set(store.records(written)) == set(written)
    # And the client really talks to the new master now.
    assert store.r.connection_pool.get_master_address()[1] == new_port
    lease.release()


def test_check_finds_the_sentinel_master(cli_world, sentinel_cluster):
    sentinel = {**cli_world.env(), **sentinel_env(sentinel_cluster)}
    result = CliRunner().invoke(main, ["check"], env=sentinel)
    assert f"✓ Redis: master 'mymaster' at 127.0.0.1:{sentinel_cluster.master.port} (found by " \
           "Sentinel) answers" in result.output
    result = CliRunner().invoke(main, ["check"], env={**sentinel, "REDIS_SENTINEL_MASTER": "nope"})
    assert result.exit_code == 1 and "✗ Redis: no Sentinel knows a master" in result.output


def test_check_through_tls_sentinels_with_their_own_password(cli_world, tls_sentinel_cluster,
                                                             certificates):
    cluster = tls_sentinel_cluster
    env = {**cli_world.env(), **tls_sentinel_env(cluster, certificates)}
    result = CliRunner().invoke(main, ["check"], env=env)
    assert result.exit_code == 0, result.output
    assert (f"✓ Redis: master 'mymaster' at 127.0.0.1:{cluster.master.port} (found by "
            "Sentinel) answers (Redis 7.") in result.output
    assert ", TLS, user zdsync;" in result.output
    sentinel_port = cluster.sentinels[0].port
    wrong = {
        # The old default: the data nodes' password sent to the Sentinels, none of their own.
        "REDIS_SENTINEL_PASSWORD": ("", f"the Sentinel at 127.0.0.1:{sentinel_port} asks for "
                                    "a login: set redis.sentinel_username"),
        "REDIS_SENTINEL_SSL": ("false", "closed the connection at once: if it serves TLS "
                               "only, turn TLS on (redis.sentinel_ssl (REDIS_SENTINEL_SSL))"),
        "REDIS_PASSWORD": ("not-it", "refused the user name and password: fix "
                           "redis.username (REDIS_USERNAME) / redis.password (REDIS_PASSWORD)"),
        "REDIS_SSL": ("false", "closed the connection at once: if it serves TLS only, turn TLS "
                      "on (redis.ssl (REDIS_SSL)"),
    }
    for name, (value, message) in wrong.items():
        result = CliRunner().invoke(main, ["check"], env={**env, name: value})
        assert result.exit_code == 2, (name, result.output)
        line = next(line for line in result.output.splitlines() if line.startswith("✗ Redis"))
        assert message in line, (name, line)
        assert DATA_LOGIN[1] not in result.output and SENTINEL_PASSWORD not in result.output
