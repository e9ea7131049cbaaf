"""The demo's handling of Redis; the full demo runs end to end in test_e2e.py."""

from __future__ import annotations

import io

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
