"""The sync lease against a real redis-server started by the test session."""

from __future__ import annotations

import time

import pytest

from zdsync.errors import LeaseLost, LockHeld
from zdsync.store import Store


@pytest.fixture
def store(redis_client) -> Store:
    return Store(redis_client, "t:")


def test_lock_excludes_a_second_holder_and_releases(store):
    first = store.lock(ttl_seconds=5)
    assert first.acquire()
    second = store.lock(ttl_seconds=5)
    assert not second.acquire()
    with pytest.raises(LockHeld, match="another zdsync process holds the lock"):
        store.lock().acquire_or_raise()
    first.release()
    assert second.acquire()
    second.release()


def test_lock_is_renewed_while_held(store, redis_client):
    lock = store.lock(ttl_seconds=1.5)
    assert lock.acquire()
    time.sleep(3.5)  # more than two TTLs: only renewal keeps it
    assert redis_client.get("t:lock:sync") == lock.token
    assert lock.held
    lock.release()
    assert redis_client.get("t:lock:sync") is None


def test_lost_lock_is_noticed_and_not_released_for_others(store, redis_client):
    lock = store.lock(ttl_seconds=0.6)
    assert lock.acquire()
    redis_client.set("t:lock:sync", "someone-else")
    deadline = time.monotonic() + 3
    while not lock.lost.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lock.lost.is_set() and not lock.held
    lock.release()
    assert redis_client.get("t:lock:sync") == "someone-else"


def test_holder_stops_when_renewal_hangs(store):
    """A renewal stuck on a stalled Redis must not let the holder act past its lease."""
    lock = store.lock(ttl_seconds=0.9)
    assert lock.acquire()

    def stalled(*args, **kwargs):
        time.sleep(3)
        return 1

    lock._renew = stalled
    time.sleep(0.75)  # past two thirds of the TTL, with the renewal still hanging
    assert not lock.held
    assert not lock.lost.is_set()  # nobody said it was lost: it is simply not safe to act
    lock.release()


def test_lock_names_its_holder(store):
    import os
    import socket

    lock = store.lock(ttl_seconds=5)
    assert lock.acquire()
    try:
        with pytest.raises(LockHeld, match=f"{socket.gethostname()}:{os.getpid()}"):
            store.lock().acquire_or_raise()
    finally:
        lock.release()


def test_check_raises_once_the_lease_is_not_held(store):
    lock = store.lock(ttl_seconds=5)
    with pytest.raises(LeaseLost):
        lock.check()  # never acquired
    assert lock.acquire()
    lock.check()
    lock.lost.set()
    with pytest.raises(LeaseLost):
        lock.check()
    lock.release()
