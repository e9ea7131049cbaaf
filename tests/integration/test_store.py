"""The Redis store against a real redis-server started by the test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from zdsync.backoff import retry_delay
from zdsync.errors import LeaseLost
from zdsync.lease import SyncLock
from zdsync.queues import EVERY_AGENT, HELD
from zdsync.rules import Applied, Record, Ticket, is_stale
from zdsync.store import Fence, NodeChanged, Store


@pytest.fixture
def store(redis_client) -> Store:
    return Store(redis_client, "t:")


@pytest.fixture
def lease(store) -> Iterator[SyncLock]:
    lock = store.lock(ttl_seconds=30)
    assert lock.acquire()
    yield lock
    lock.release()


def rec(tid: int, task: int | None = None, status: str = "open", *, gts: int = 100,
        updated: str = "2026-01-01T00:00:00Z", in_flight: str | None = None) -> Record:
    return Record(Ticket(tid, status, f"s{tid}", 1, 2, (), updated, gts),
                  Applied(task, f"[ZD#{tid}] s{tid}", 5, False), in_flight)


def calls(redis_client, command: str) -> int:
    return redis_client.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0)


def test_records_round_trip_in_one_round_trip(store, lease, redis_client):
    assert store.write(lease.token, [rec(1, 11), rec(2, in_flight="write")]) == 2
    before = calls(redis_client, "hmget")
    got = store.records([1, 2, 3, 1])
    assert calls(redis_client, "hmget") - before == 2  # records, tombstones: one pipeline
    assert got == {1: rec(1, 11), 2: rec(2, in_flight="write")}
    assert set(redis_client.keys("*")) <= {"t:tickets", "t:lock:sync"}  # under the prefix


def test_a_closed_ticket_without_task_leaves_a_tombstone_that_turns_old_snapshots_away(
        store, lease, redis_client):
    closed = rec(5, status="closed", gts=200)
    assert store.tombstone_ops(rec(5, 55, status="closed")) is None  # it has a task
    assert store.tombstone_ops(rec(5, status="open")) is None
    assert store.tombstone_ops(rec(5, status="deleted", gts=0,
                                   in_flight="write")) is None
    store.write(lease.token, [rec(5, 55, gts=150)])
    store.write(lease.token, ops=store.tombstone_ops(closed))
    assert redis_client.hget("t:tickets", "5") is None
    [tomb] = store.records([5]).values()
    assert tomb.ticket.generated_timestamp == 200 and tomb.applied.task_id is None
    assert is_stale(rec(5, gts=150).ticket, tomb) and not is_stale(rec(5, gts=201).ticket, tomb)
    gone = redis_client.memory_usage("t:gone:0")
    for tid in range(6, 128):
        store.write(lease.token, ops=store.tombstone_ops(rec(tid, status="closed", gts=2**31)))
    assert (redis_client.memory_usage("t:gone:0") - gone) / 122 < 16  # bytes a tombstone


def test_unreadable_record_is_treated_as_new(store, redis_client):
    redis_client.hset("t:tickets", "7", "{not json")
    assert store.records([7]) == {}


def test_a_write_without_the_lease_writes_nothing(store, lease, redis_client):
    store.write(lease.token, [rec(1, 11)])
    with pytest.raises(LeaseLost):
        store.write("someone-else", [rec(1, 99)], [["set", "t:x", "1"]])
    redis_client.set("t:lock:sync", "a-successor")  # the lease moved on meanwhile
    with pytest.raises(LeaseLost):
        store.write(lease.token, [rec(1, 99)])
    assert store.record(1) == rec(1, 11) and redis_client.get("t:x") is None


def test_a_write_pinned_to_another_redis_node_writes_nothing(store, lease, redis_client):
    """A pass reads its state from one Redis process and writes only there: after a
    failover its writes never reach a new master that lacks what it read."""
    node = store.check_state(lease.token).node
    assert store.write(Fence(lease.token, node), [rec(1, 11)]) == 1
    with pytest.raises(NodeChanged):
        store.write(Fence(lease.token, "the-old-master"), [rec(1, 99)])
    assert store.record(1) == rec(1, 11) and store.replication.in_doubt()


@pytest.mark.parametrize(("stored", "new", "kept"), [
    ((100, "2026-01-01T00:00:05Z"), (101, "2026-01-01T00:00:00Z"), "new"),  # later export
    ((101, "2026-01-01T00:00:00Z"), (100, "2026-01-01T00:00:09Z"), "stored"),  # older one
    ((100, "2026-01-01T00:00:05Z"), (100, "2026-01-01T00:00:05Z"), "new"),  # same: applied
    ((100, "2026-01-01T00:00:05Z"), (0, "2026-01-01T00:00:06Z"), "new"),  # fresh read
    ((100, "2026-01-01T00:00:05Z"), (0, "2026-01-01T00:00:04Z"), "stored"),
    ((0, "2026-01-01T00:00:05Z"), (100, "2026-01-01T00:00:04Z"), "stored"),
])
def test_an_older_record_never_overwrites_a_newer_one(store, lease, stored, new, kept):
    old = rec(1, 11, gts=stored[0], updated=stored[1])
    newer = rec(1, 12, gts=new[0], updated=new[1])
    store.write(lease.token, [old])
    assert store.write(lease.token, [newer]) == (1 if kept == "new" else 0)
    assert store.record(1) == (newer if kept == "new" else old)


def test_retry_entries_count_attempts_and_clear_on_success(store, lease):
    now = 1_000_000.0
    store.write(lease.token, ops=store.retry_ops({2: "teamwork: 500"}, [1], now)
                + store.cursor_ops("c1", 900, now))
    assert (store.cursor().cursor, store.cursor().position) == ("c1", 900)
    assert store.due_retries(now) == []
    assert store.due_retries(now + retry_delay(1)) == [2]
    entry = store.retries()[0]
    assert (entry.ticket_id, entry.attempts, entry.error) == (2, 1, "teamwork: 500")
    store.write(lease.token, ops=store.retry_ops({2: "again"}, [], now + 100))
    assert store.retries()[0].attempts == 2
    assert store.retries()[0].next_at == now + 100 + retry_delay(2)
    assert store.retries()[0].since == now
    store.write(lease.token, ops=store.retry_ops({}, [2], now + 200))
    assert store.retries() == []
    # A cursor update without a cursor keeps the previous one.
    store.write(lease.token, ops=store.cursor_ops(None, 950, now))
    assert store.cursor().cursor == "c1" and store.cursor().position == 950


def test_retry_backoff_is_capped():
    assert retry_delay(1) < retry_delay(2) < retry_delay(3)
    assert retry_delay(100) == retry_delay(200)


def test_mappings_mark_agents_for_replanning(store, lease):
    store.set_mappings({10: 100, 11: 110})
    assert store.mappings() == {10: 100, 11: 110}
    pending = store.remapped()
    assert {a for a, _ in pending} == {10, 11}
    store.set_mappings({11: 111})  # changed again while the first change is re-planned
    store.write(lease.token, ops=store.dequeue_ops("remap", pending))
    assert [a for a, _ in store.remapped()] == [11]  # the later change is not lost
    store.write(lease.token, ops=store.dequeue_ops("remap", store.remapped()))
    assert store.remapped() == []
    assert store.remove_mapping(10) is True
    assert store.remove_mapping(10) is False
    assert store.mappings() == {11: 111}
    assert [a for a, _ in store.remapped()] == [10]


def test_merge_mappings_changes_only_what_differs_and_ends_a_hold(store, lease, redis_client):
    store.set_mappings({10: 100, 11: 110})
    store.write(lease.token, ops=store.dequeue_ops("remap", store.remapped()))
    redis_client.hset("t:users", HELD, "1")  # the mappings were lost once
    assert store.mappings_and_hold() == ({10: 100, 11: 110}, True)
    assert store.merge_mappings({10: 100, 11: 111, 12: 120}) == 2
    assert store.mappings() == {10: 100, 11: 111, 12: 120}
    assert {a for a, _ in store.remapped()} == {11, 12, EVERY_AGENT}  # the hold ended
    store.write(lease.token, ops=store.dequeue_ops("remap", store.remapped()))
    store.set_mappings({13: 130})
    assert {a for a, _ in store.remapped()} == {13}  # no hold to end this time
    assert store.mappings_and_hold()[1] is False


def test_history_is_bounded(store, lease):
    for i in range(60):
        store.write(lease.token, ops=store.history_ops(5, [f"a{i}"], float(i)))
    history = store.history(5)
    assert len(history) == 50
    assert history[0] == {"at": 59.0, "what": "a59"}


def test_tasklist_cache_and_last_pass(store):
    assert store.tasklist_id(1, "Zendesk") is None
    store.set_tasklist_id(1, "Zendesk", 77)
    assert store.tasklist_id(1, "Zendesk") == 77
    store.save_last_pass({"result": "success", "at": 5})
    assert store.last_pass() == {"result": "success", "at": "5"}


def test_state_check_sees_no_identity_then_a_claimed_one(store, lease):
    first = store.check_state(lease.token)
    assert first.identity is None and not first.restarted
    identity = store.claim_identity(lease.token)
    again = store.check_state(lease.token)
    assert again.identity == identity and not again.restarted
    assert not store.replication.in_doubt()


def test_a_redis_restart_puts_recent_writes_in_doubt(store, lease, redis_client):
    store.check_state(lease.token)
    redis_client.set("t:redis_run", "the-run-id-before-a-restart")
    state = store.check_state(lease.token)
    assert state.restarted and store.replication.in_doubt()
    assert redis_client.get("t:redis_run") == redis_client.info("server")["run_id"]


def test_restart_export_keeps_the_position_and_drops_the_cursor(store, lease):
    store.write(lease.token, ops=store.cursor_ops("c9", 500, 1.0))
    store.restart_export(lease.token, 123)
    state = store.cursor()
    assert state.cursor is None and state.position == 123
