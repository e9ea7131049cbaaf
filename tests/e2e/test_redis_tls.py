"""``zdsync run`` on a managed-style Redis: TLS only, an ACL user, the CA in a file, all from
a ``REDIS_URL``. Passes, the lease and the webhook's own client all work through it; with
the wrong CA, /readyz says which setting to fix."""

from __future__ import annotations

import requests

from tests.e2e.test_daemon import event, wait_until, world  # noqa: F401 (a fixture)
from tests.tls import DATA_LOGIN


def rediss(server) -> str:
    user, password = DATA_LOGIN
    return f"rediss://{user}:{password}@127.0.0.1:{server.port}/0"


def test_the_daemon_syncs_through_a_tls_redis_with_an_acl_user(world, spawn, tls_redis,  # noqa: F811
                                                               certificates):
    first = world.ticket("Over TLS", assignee=world.agents[0], status="open")
    world.exportable()
    daemon = spawn(world, REDIS_URL=rediss(tls_redis), REDIS_SSL_CA_CERTS=certificates.ca,
                   SYNC_INTERVAL=3600)
    try:
        wait_until(lambda: world.tasks_for(first), 60, "the first pass's task")
        ready = requests.get(daemon.probe_url + "/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        # The webhook's own client queues in the same (TLS) Redis; the worker takes it out.
        new = world.ticket("Webhook over TLS", assignee=world.agents[1], status="open")
        r = daemon.post(event(new))
        assert r.status_code == 202, r.text
        wait_until(lambda: world.tasks_for(new), 60, "the webhook's task")
        data = tls_redis.client()
        assert data.exists(world.prefix + "cursor") and data.exists(world.prefix + "lock:sync")
        wait_until(lambda: data.hexists(world.prefix + "tickets", str(new)), 30,
                   "the webhook ticket's record")
    finally:
        tls_redis.client().flushall()
    assert DATA_LOGIN[1] not in daemon.output()


def test_readyz_names_the_setting_when_redis_refuses_the_certificate(world, spawn,  # noqa: F811
                                                                   tls_redis, certificates):
    daemon = spawn(world, REDIS_URL=rediss(tls_redis),
                   REDIS_SSL_CA_CERTS=certificates.other_ca)

    def refused() -> dict | None:
        r = requests.get(daemon.probe_url + "/readyz", timeout=5)
        return r.json() if r.status_code == 503 and "certificate" in r.text else None

    body = wait_until(refused, 30, "/readyz to say why")
    [problem] = [p for p in body["problems"] if p.startswith("redis:")]
    assert "certificate is not trusted" in problem
    assert "redis.ssl_ca_certs (REDIS_SSL_CA_CERTS)" in problem
    assert DATA_LOGIN[1] not in problem and DATA_LOGIN[1] not in daemon.output()
    assert f"ERROR zdsync.daemon: {problem}; zdsync keeps trying" in daemon.output()
