"""The demo's handling of Redis; the full demo runs end to end in test_e2e.py."""

from __future__ import annotations

import io

from tests.tls import DATA_LOGIN
from zdsync import demo
from zdsync.config import load
from zdsync.localredis import LocalRedis, free_port


def test_without_redis_it_says_how_to_get_one(monkeypatch):
    monkeypatch.setattr(LocalRedis, "available", staticmethod(lambda: False))
    out = io.StringIO()
    settings = load(None, {}, {"REDIS_PORT": str(free_port())}, require_services=False)
    assert demo.run_demo(settings, duration_seconds=1, out=out) == 2
    text = out.getvalue()
    assert "redis-server is not on PATH" in text
    assert "apt-get install redis-server" in text and "REDIS_HOST" in text


def test_without_a_configured_redis_it_starts_a_private_one():
    out = io.StringIO()
    settings = load(None, {}, {"REDIS_PORT": str(free_port())}, require_services=False)
    assert demo.run_demo(settings, tickets=5, duration_seconds=2, seed=3, out=out) == 0
    text = out.getvalue()
    assert "started a private redis-server" in text
    assert "Teamwork matches every ticket" in text


def test_it_uses_the_configured_tls_redis_and_cleans_up(tls_redis, certificates):
    user, password = DATA_LOGIN
    settings = load(None, {}, {"REDIS_URL": f"rediss://{user}:{password}@127.0.0.1:"
                                            f"{tls_redis.port}/0",
                               "REDIS_SSL_CA_CERTS": certificates.ca}, require_services=False)
    out = io.StringIO()
    assert demo.run_demo(settings, tickets=5, duration_seconds=2, seed=3, out=out) == 0
    text = out.getvalue()
    assert f"Redis: using Redis at 127.0.0.1:{tls_redis.port} under a private key prefix" in text
    assert "Teamwork matches every ticket" in text and password not in text
    assert not list(tls_redis.client().scan_iter(match="zdsync-demo:*"))  # removed at the end


def test_a_configured_redis_that_refuses_the_settings_is_reported(tls_redis, certificates):
    """Not replaced by a private one behind the operator's back."""
    settings = load(None, {}, {"REDIS_URL": f"rediss://127.0.0.1:{tls_redis.port}/0",
                               "REDIS_SSL_CA_CERTS": certificates.other_ca},
                    require_services=False)
    out = io.StringIO()
    assert demo.run_demo(settings, duration_seconds=1, out=out) == 2
    assert "redis.ssl_ca_certs (REDIS_SSL_CA_CERTS)" in out.getvalue()
    assert "private redis-server" not in out.getvalue()
