"""Redis losing part of zdsync's state: each key of ``store.KEYS``, alone and in seeded
random combinations, deleted at a seeded random moment of a churned run (real Redis,
the simulators in process on a frozen clock). Afterwards no ticket ever had two live
tasks, Teamwork matches every ticket, and no task lost its person for lack of mappings.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from click.testing import CliRunner

from tests.world import World, make_inproc_world, reachable
from zdsync import recovery
from zdsync.cli import main
from zdsync.metrics import Metrics
from zdsync.rules import IN_FLIGHT_WRITE, Record, Ticket
from zdsync.sim.activity import ActivityGenerator
from zdsync.sim.consistency import assignee
from zdsync.store import KEYS, MARKED, Store, is_tombstone


@pytest.fixture
def world(redis_client) -> World:
    return make_inproc_world(redis_client.connection_pool.connection_kwargs["port"], "sl:")


def matching(world: World, name: str) -> list[str]:
    """The Redis keys of one entry of ``KEYS`` (a ``{x}`` part: every key it stands for)."""
    if "{" not in name:
        return [world.prefix + name]
    head = name.split("{")[0]
    return [k for k in world.store().r.scan_iter(match=world.prefix + head + "*")
            if k.count(":") == (world.prefix + name).count(":")]


class Losses:
    """Deletes ``names`` as the ``at``-th write of the sync state is about to run (in the
    middle of a pass), or, ``at`` beyond the writes, before pass ``at - WRITES``."""

    WRITES = 40

    def __init__(self, world: World, names: list[str], at: int) -> None:
        self.world, self.names, self.at = world, names, at
        self.writes = 0
        self.done = False

    def fire(self) -> None:
        self.done = True
        for name in self.names:
            for key in matching(self.world, name):
                self.world.store().r.delete(key)

    def before_pass(self, n: int) -> None:
        if self.at - self.WRITES == n and not self.done:
            self.fire()

    def install(self, monkeypatch: Any) -> None:
        real = Store.write

        def write(store: Store, *args: Any, **kwargs: Any) -> int:
            self.writes += 1
            if self.writes == self.at and not self.done:
                self.fire()
            return real(store, *args, **kwargs)

        monkeypatch.setattr(Store, "write", write)


def persons(world: World) -> dict[int, set[int]]:
    return {t["id"]: {a["id"] for a in t["assignees"]} for t in world.live_tasks()}


def stripped(world: World, before: dict[int, set[int]]) -> list[int]:
    """Tasks that had a person and now have none, though their ticket's agent is mapped."""
    link = f"{world.zendesk_url}/agent/tickets/"
    out = []
    for task in world.live_tasks():
        if before.get(task["id"]) and not task["assignees"]:
            tid = int(task["description"].splitlines()[0].rsplit(link, 1)[-1].split()[0])
            if assignee(world.zendesk.ticket(tid), world.mappings) is not None:
                out.append(tid)
    return out


def run(world: World, names: list[str], seed: int, monkeypatch: Any) -> Metrics:
    """Churn, converge, then go on churning while ``names`` vanish at a random write;
    check after every pass; finally restore what an operator would and converge."""
    rng = random.Random(seed)
    gen = ActivityGenerator(world.zendesk, seed=seed, mapped_agent_ids=world.agents[:2],
                            unmapped_agent_ids=world.agents[2:])
    gen.run(60)
    metrics = Metrics()
    for _ in range(3):
        world.exportable()
        world.run_pass(metrics).run()
    assert world.check() == []
    losses = Losses(world, names, at=rng.randint(1, Losses.WRITES + 10))
    losses.install(monkeypatch)
    for n in range(12):
        gen.run(rng.randint(0, 15))
        before = persons(world)
        world.clock.advance(rng.randint(61, 900))
        losses.before_pass(n)
        summary = world.run_pass(metrics, SYNC_START_TIME="").run()  # backfill done
        assert summary.error is None, summary.line()
        assert stripped(world, before) == []
        assert world.teamwork.most_live_with_one_marker <= 1
    assert losses.done
    monkeypatch.undo()
    store = world.store()
    if store.mappings_and_hold()[1]:  # the operator imports the mappings again
        assert metrics.mappings_held._value.get() == 1
        store.set_mappings(world.mappings)
    for _ in range(6):
        store.retry_now(r.ticket_id for r in store.retries())
        world.exportable()
        world.run_pass(metrics, SYNC_START_TIME="").run()
    assert world.check() == []
    assert world.teamwork.most_live_with_one_marker == 1
    assert store.check_state("", update=False).lost == frozenset()
    return metrics


@pytest.mark.parametrize("name", sorted(KEYS))
def test_one_key_lost_at_a_random_moment(world, monkeypatch, name):
    metrics = run(world, [name], seed=sorted(KEYS).index(name), monkeypatch=monkeypatch)
    if name in MARKED:
        assert metrics.state_losses.labels(name)._value.get() >= 1


@pytest.mark.parametrize("seed", range(8))
def test_keys_lost_together_at_a_random_moment(world, monkeypatch, seed):
    rng = random.Random(1000 + seed)
    names = rng.sample(sorted(KEYS), rng.randint(2, 6))
    run(world, names, seed=1000 + seed, monkeypatch=monkeypatch)


def test_the_cursor_lost_resumes_where_the_records_prove_safe(world):
    """Issue 19: the cursor deleted, no sync.start_time: a retitle made just before must
    still be applied (the export resumes before it, not from now)."""
    t = world.ticket("Printer", assignee=world.agents[0], status="open")
    world.exportable()
    world.run_pass().run()
    world.clock.advance(600)
    world.zendesk.update_ticket(t, subject="Printer on fire", assignee_id=world.agents[1])
    world.store().r.delete(world.prefix + "cursor")
    world.clock.advance(120)
    metrics = Metrics()
    world.run_pass(metrics, SYNC_START_TIME="").run()
    [task] = world.tasks_for(t)
    assert task["name"] == "[ZD#1] Printer on fire"
    assert [a["id"] for a in task["assignees"]] == [world.mappings[world.agents[1]]]
    assert metrics.state_losses.labels("cursor")._value.get() == 1
    assert "cursor" in world.store().losses()
    with reachable(world):
        shown = CliRunner().invoke(main, ["cursor", "show"], env=world.env())
    assert "lost:" in shown.stdout and "the key 'cursor'" in shown.stdout, shown.output


def test_the_records_lost_rebuild_and_keep_the_rest(world):
    t = world.ticket("Printer", assignee=world.agents[0], status="open")
    closed = world.ticket("Done", assignee=world.agents[0], status="open")
    world.exportable()
    world.run_pass().run()
    store = world.store()
    identity = store.check_state("", update=False).identity
    store.r.delete(world.prefix + "tickets")
    world.zendesk.update_ticket(t, subject="Printer, renamed")
    world.zendesk.update_ticket(closed, status="solved")
    world.zendesk.update_ticket(closed, status="closed")
    world.exportable()
    summary = world.run_pass().run()
    assert summary.rebuilt
    assert [x["name"] for x in world.tasks_for(t)] == ["[ZD#1] Printer, renamed"]
    assert world.tasks_for(closed) == []
    assert store.check_state("", update=False).identity == identity  # kept
    assert store.mappings() == world.mappings
    assert world.check() == []


def test_the_mappings_lost_without_a_file_hold_assignees_and_say_so(world, tmp_path):
    t = world.ticket("Printer", assignee=world.agents[0], status="open")
    world.exportable()
    world.run_pass().run()
    store = world.store()
    store.r.delete(world.prefix + "users")
    world.zendesk.update_ticket(t, subject="Printer, renamed")
    world.exportable()
    metrics = Metrics()
    p = world.run_pass(metrics)
    p.run()
    [task] = world.tasks_for(t)
    assert task["name"] == "[ZD#1] Printer, renamed"
    assert [a["id"] for a in task["assignees"]] == [world.mappings[world.agents[0]]]
    assert p.reconciler.mappings_held and metrics.mappings_held._value.get() == 1
    users = tmp_path / "users.csv"
    users.write_text("zendesk_user_id,teamwork_person_id\n"
                     + "".join(f"{a},{p}\n" for a, p in world.mappings.items()))
    store.r.delete(world.prefix + "users")
    world.exportable()
    world.run_pass(USERS_FILE=str(users)).run()  # with a file: restored from it
    assert store.mappings_and_hold() == (world.mappings, False)


def test_the_retry_set_lost_retries_what_the_records_say_failed(world):
    world.run_pass().run()  # the first start's (empty) rebuild
    t = world.ticket("Printer", assignee=world.agents[0], status="open")
    world.teamwork.faults.set(routes={"POST /projects/api/v3/tasklists/{id}/tasks"})
    world.teamwork.faults.fail_next(40, status=500)
    world.exportable()
    world.run_pass().run()
    world.teamwork.faults.reset()
    store = world.store()
    assert [r.ticket_id for r in store.retries()] == [t] and store.record(t).failed
    store.r.delete(world.prefix + "retry", world.prefix + "retry:info")
    summary = world.run_pass().run()  # retried at once, from what the record says
    assert summary.created == 1 and store.retries() == []
    assert len(world.tasks_for(t)) == 1 and not store.record(t).failed


def test_resume_position_takes_the_saved_position_and_stops_at_in_flight():
    def rec(tid: int, gts: int, in_flight: str | None = None) -> Record:
        return Record(Ticket(tid, "open", "s", generated_timestamp=gts,
                             updated_at="2026-01-01T00:00:00Z"), in_flight=in_flight)

    margin = recovery.defaults.CURSOR_RECOVERY_MARGIN_SECONDS
    now = 10_000_000
    assert recovery.resume_position([rec(1, 9_000_000)], None, None, now) == 9_000_000 - margin
    assert recovery.resume_position([rec(1, 9_000_000)], 8_000_000, None, now) \
        == 8_000_000 - margin
    assert recovery.resume_position([rec(1, 9_000_000), rec(2, 7_000_000, IN_FLIGHT_WRITE)],
                                    None, None, now) == 7_000_000 - margin
    assert recovery.resume_position([rec(1, 9_000_000)], None, 8_999_999, now) == 8_999_999
    assert recovery.resume_position([], None, None, now) == now - 90  # no record: now


# -- bounded state -------------------------------------------------------------------------


def test_a_closed_ticket_leaves_a_tombstone_and_a_replay_changes_nothing(world):
    """Closed, its task deleted: its record goes, a tombstone of a few bytes stays; the
    export rewound past its whole life (cursor reset) writes nothing to Teamwork."""
    tickets = [world.ticket(f"T{n}", assignee=world.agents[0], status="open")
               for n in range(40)]
    start = int(world.clock.now()) - 120
    world.exportable()
    world.run_pass().run()
    store = world.store()
    keys_before = sum(store.r.memory_usage(k, samples=0) for k in store.r.scan_iter("sl:*")
                      if ":history:" not in k)
    for t in tickets:
        world.zendesk.update_ticket(t, status="solved")
        world.zendesk.update_ticket(t, status="closed")
    world.exportable()
    world.run_pass().run()
    assert world.live_tasks() == [] and world.check() == []
    assert store.r.hlen("sl:tickets") == 2  # only its marks: @store, @position
    assert all(is_tombstone(store.record(t)) for t in tickets)
    keys_after = sum(store.r.memory_usage(k, samples=0) for k in store.r.scan_iter("sl:*")
                     if ":history:" not in k)
    assert keys_after < keys_before / 3  # each record gave way to a tombstone
    store.restart_export(world._lease.token, start)  # the operator rewinds by hand
    writes = len(world.teamwork.log.entries())
    world.run_pass().run()
    assert [e.method for e in world.teamwork.log.entries()[writes:]
            if e.method != "GET"] == []
    assert world.live_tasks() == []


def test_state_stays_flat_over_churn_of_the_same_tickets(world):
    tickets = [world.ticket(f"T{n}", assignee=world.agents[0], status="open")
               for n in range(30)]
    world.exportable()
    world.run_pass().run()
    store = world.store()
    sizes = []
    for round_ in range(4):
        for t in tickets:
            world.zendesk.update_ticket(t, subject=f"T{t} round {round_}",
                                        assignee_id=world.agents[round_ % 2])
        world.exportable()
        world.run_pass().run()
        sizes.append((store.r.hlen("sl:tickets"),
                      store.r.memory_usage("sl:tickets", samples=0)))
    assert len(set(sizes)) <= 2 and sizes[-1][0] == 32  # 30 records and the two marks
    assert world.check() == []
