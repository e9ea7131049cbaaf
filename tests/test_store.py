"""The Redis store against a real redis-server started by the test session."""

from __future__ import annotations

import time

import pytest

from zdsync.errors import LockHeld
from zdsync.rules import Applied, Record, Ticket
from zdsync.store import Store, retry_delay


@pytest.fixture
def store(redis_client) -> Store:
    return Store(redis_client, "t:")


def rec(tid: int, task: int | None = None, status: str = "open") -> Record:
    return Record(Ticket(tid, status, f"s{tid}", 1, 2, (), "2026-01-01T00:00:00Z", 100),
                  Applied(task, f"[ZD#{tid}] s{tid}", 5, False))


def test_records_round_trip_in_one_round_trip(store, redis_client):
    store.commit([rec(1, 11), rec(2)])
    before = redis_client.info("commandstats").get("cmdstat_hmget", {}).get("calls", 0)
    got = store.records([1, 2, 3, 1])
    after = redis_client.info("commandstats")["cmdstat_hmget"]["calls"]
    assert after - before == 1
    assert got == {1: rec(1, 11), 2: rec(2)}
    assert set(redis_client.keys("*")) <= {"t:tickets"}  # everything under the prefix


def test_unreadable_record_is_treated_as_new(store, redis_client):
    redis_client.hset("t:tickets", "7", "{not json")
    assert store.records([7]) == {}


def test_commit_moves_cursor_with_work_and_schedules_retries(store):
    now = 1_000_000.0
    store.commit([rec(1, 11), rec(2)], failed={2: "teamwork: 500"}, cursor=("c1", 900),
                 now=now)
    state = store.cursor()
    assert (state.cursor, state.position) == ("c1", 900)
    assert store.due_retries(now) == []
    assert store.due_retries(now + retry_delay(1)) == [(2, False)]
    entry = store.retries()[0]
    assert (entry.ticket_id, entry.attempts, entry.error) == (2, 1, "teamwork: 500")
    store.commit([rec(2)], failed={2: "again"}, now=now + 100)
    assert store.retries()[0].attempts == 2
    assert store.retries()[0].next_at == now + 100 + retry_delay(2)
    store.commit([rec(2, 12)], succeeded=[2])
    assert store.retries() == []
    # A cursor update without a cursor keeps the previous one.
    store.commit(cursor=(None, 950))
    assert store.cursor().cursor == "c1"
    assert store.cursor().position == 950


def test_refetch_retries_are_marked(store):
    store.commit(refetch={9: "malformed"}, now=0)
    assert store.due_retries(10**9) == [(9, True)]


def test_retry_backoff_is_capped():
    assert retry_delay(1) < retry_delay(2) < retry_delay(3)
    assert retry_delay(100) == retry_delay(200)


def test_mappings_mark_agents_for_replanning(store):
    store.set_mappings({10: 100, 11: 110})
    assert store.mappings() == {10: 100, 11: 110}
    pending = store.remapped()
    assert {a for a, _ in pending} == {10, 11}
    store.set_mappings({11: 111})  # changed again while the first change is re-planned
    store.remap_done(pending)
    assert [a for a, _ in store.remapped()] == [11]  # the later change is not lost
    store.remap_done(store.remapped())
    assert store.remapped() == []
    assert store.remove_mapping(10) is True
    assert store.remove_mapping(10) is False
    assert store.mappings() == {11: 111}
    assert [a for a, _ in store.remapped()] == [10]


def test_history_is_bounded(store):
    for i in range(60):
        store.commit(history={5: [f"a{i}"]})
    history = store.history(5)
    assert len(history) == 50
    assert history[0]["what"] == "a59"


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


def test_tasklist_cache_and_last_pass(store):
    assert store.tasklist_id(1, "Zendesk") is None
    store.set_tasklist_id(1, "Zendesk", 77)
    assert store.tasklist_id(1, "Zendesk") == 77
    store.save_last_pass({"result": "success", "at": 5})
    assert store.last_pass() == {"result": "success", "at": "5"}


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
