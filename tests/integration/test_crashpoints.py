"""Crash at every I/O boundary of a pass, restart, and converge: never a duplicate, never
a ticket left wrong.

A seam stops the pass at its N-th I/O boundary: after each Teamwork call returns, and
before and after each Redis write. For every action (create, retitle, reassign, complete,
reopen, delete, adopting the task of a lost create, and with routes: a move within a
project, a move to another project, a create in a route's list, and the complete or
delete of sync.on_unmatch) and every boundary the test
crashes there, "restarts" (new clients, new lease: the dead process's lease would expire),
optionally changes the ticket back, and runs passes until nothing is left to retry. Then
Teamwork must match every ticket, and no two live tasks may ever have existed for one
ticket, not even for a moment.

The simulators run in-process (no sockets) on a frozen clock, so the hundreds of passes
take seconds and nothing depends on timing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.world import World, make_inproc_world
from zdsync.store import Store
from zdsync.transport import Transport

pytestmark = pytest.mark.usefixtures("teamwork_variants")  # every Teamwork variant


class Crash(BaseException):
    """The process dies here (a BaseException: nothing in zdsync may catch it)."""


class Seam:
    """Counts the I/O boundaries a pass crosses; raises ``Crash`` at the ``crash_at``-th."""

    def __init__(self, crash_at: int | None = None) -> None:
        self.crash_at = crash_at
        self.crossed: list[str] = []

    def cross(self, name: str) -> None:
        self.crossed.append(name)
        if self.crash_at is not None and len(self.crossed) - 1 == self.crash_at:
            raise Crash(name)


@pytest.fixture
def seam(monkeypatch) -> Iterator[Callable[[int | None], Seam]]:
    current: list[Seam] = [Seam()]
    real_write = Store.write
    real_request = Transport.request

    def write(self, *args, **kwargs):
        current[0].cross("before a Redis write")
        result = real_write(self, *args, **kwargs)
        current[0].cross("after a Redis write")
        return result

    def request(self, method, path, **kwargs):
        response = real_request(self, method, path, **kwargs)
        if self.service == "teamwork":
            current[0].cross(f"after Teamwork {method} {path.split('?')[0]}")
        return response

    monkeypatch.setattr(Store, "write", write)
    monkeypatch.setattr(Transport, "request", request)

    def install(crash_at: int | None) -> Seam:
        current[0] = Seam(crash_at)
        return current[0]

    yield install


def restart(world: World) -> None:
    """What a new process sees: the dead one's lease is gone (it expires), nothing else."""
    world.store().r.delete(world.prefix + "lock:sync")


def settle(world: World) -> None:
    """Passes until nothing is left to retry (failures a crash leaves are retried now)."""
    store = world.store()
    for _ in range(5):
        world.exportable()
        store.retry_now(r.ticket_id for r in store.retries())
        summary = world.run_pass().run()
        assert summary.error is None, summary.line()
        if not store.retry_depth() and summary.failed == 0:
            return
    raise AssertionError(f"still failing: {store.retries()}")


def sync(world: World) -> None:
    world.exportable()
    summary = world.run_pass().run()
    assert summary.error is None and summary.failed == 0, summary.line()


# Each scenario: (set up the state before the pass under test, the change that pass
# applies, the change back). The pass under test performs exactly the named action.
Step = Callable[[World, int], None]


def _open(w: World, t: int) -> None:
    w.zendesk.update_ticket(t, status="open")


def _solve(w: World, t: int) -> None:
    w.zendesk.update_ticket(t, status="solved")


SCENARIOS: dict[str, tuple[Step, Step, Step | None]] = {
    "create": (lambda w, t: None, lambda w, t: None,
               lambda w, t: w.zendesk.update_ticket(t, subject="Renamed after the crash")),
    "retitle": (lambda w, t: sync(w), lambda w, t: w.zendesk.update_ticket(t, subject="New"),
                lambda w, t: w.zendesk.update_ticket(t, subject="Printer")),
    "reassign": (lambda w, t: sync(w),
                 lambda w, t: w.zendesk.update_ticket(t, assignee_id=w.agents[1]),
                 lambda w, t: w.zendesk.update_ticket(t, assignee_id=w.agents[0])),
    "complete": (lambda w, t: sync(w), _solve, _open),
    "reopen": (lambda w, t: (_solve(w, t), sync(w)), _open, _solve),
    "delete": (lambda w, t: (_solve(w, t), sync(w)),
               lambda w, t: w.zendesk.update_ticket(t, status="closed"), None),
    "delete a deleted ticket": (lambda w, t: sync(w),
                                lambda w, t: w.zendesk.delete_ticket(t), None),
    "adopt after a lost create": (
        lambda w, t: (w.teamwork.faults.lose_next_creates(1), w.exportable(),
                      w.run_pass().run(), w.store().retry_now([t])),
        lambda w, t: None,
        lambda w, t: w.zendesk.update_ticket(t, subject="Renamed after the crash")),
}


def prepare(redis_client, name: str) -> tuple[World, int, int]:
    redis_client.flushall()
    world = make_inproc_world(redis_client.connection_pool.connection_kwargs["port"], "cp:")
    ticket = world.ticket("Printer", assignee=world.agents[0], status="open")
    bystander = world.ticket("Bystander", assignee=world.agents[1], status="open")
    before, change, _ = SCENARIOS[name]
    before(world, ticket)
    change(world, ticket)
    world.zendesk.update_ticket(bystander, subject="Bystander, changed in the same page")
    world.exportable()
    return world, ticket, bystander


def boundaries(redis_client, name: str, seam) -> list[str]:
    world, *_ = prepare(redis_client, name)
    counted = seam(None)
    world.run_pass().run()
    seam(None)
    return counted.crossed


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_a_crash_at_any_boundary_then_a_restart_converges(redis_client, seam, name):
    crossed = boundaries(redis_client, name, seam)
    assert any(b.startswith("after Teamwork P") or b.startswith("after Teamwork D")
               for b in crossed), crossed  # the pass under test writes to Teamwork
    _, _, change_back = SCENARIOS[name]
    tried = 0
    for crash_at, boundary in enumerate(crossed):
        for back in ([False, True] if change_back else [False]):
            world, ticket, _ = prepare(redis_client, name)
            seam(crash_at)
            with pytest.raises(Crash):
                world.run_pass().run()
            seam(None)
            restart(world)
            if back:
                assert change_back is not None
                change_back(world, ticket)
            settle(world)
            where = f"{name}: crash at boundary {crash_at} ({boundary}), changed back: {back}"
            assert world.check() == [], where
            assert world.teamwork.most_live_with_one_marker <= 1, where
            tried += 1
    assert tried >= len(crossed)


# -- routes: moves and on_unmatch ----------------------------------------------------------
#
# The same crash at every boundary, for the writes routes add: a task moved within its
# project (a PATCH of tasklistId, with other fields), moved to another project (the v1
# move, then an update), and the task of a ticket that stops matching every route
# (completed or deleted by sync.on_unmatch). The change back routes the ticket again.

ROUTES = """
[[route]]
name = "billing"
match.tags_any = "billing"
tasklist_name = "Billing"
priority = true
tags = true

[[route]]
name = "eu"
match.brand_id = 7
project_id = {eu_project}
tasklist_id = {eu_list}

[[route]]
name = "rest"
"""
ONLY_BILLING = '[[route]]\nname = "billing"\nmatch.tags_any = "billing"\n'


def _tag(w: World, t: int) -> None:
    w.zendesk.update_ticket(t, tags=["billing"])


def _untag(w: World, t: int) -> None:
    w.zendesk.update_ticket(t, tags=[])


ROUTE_SCENARIOS: dict[str, tuple[str, dict[str, str], Step, Step, Step]] = {
    "move within a project": (ROUTES, {}, lambda w, t: sync(w),
                              lambda w, t: w.zendesk.update_ticket(t, tags=["billing"],
                                                                   priority="high"),
                              _untag),
    "move across projects": (ROUTES, {}, lambda w, t: sync(w),
                             lambda w, t: w.zendesk.update_ticket(t, brand_id=7),
                             lambda w, t: w.zendesk.update_ticket(t, brand_id=1)),
    "move across projects and retitle": (
        ROUTES, {}, lambda w, t: (_tag(w, t), sync(w)),
        lambda w, t: w.zendesk.update_ticket(t, brand_id=7, tags=[], subject="Moved"),
        lambda w, t: w.zendesk.update_ticket(t, brand_id=1, tags=["billing"])),
    "create in a route's list": (ROUTES, {}, lambda w, t: None, _tag, _untag),
    "unmatch: complete": (ONLY_BILLING, {"SYNC_ON_UNMATCH": "complete"},
                          lambda w, t: (_tag(w, t), sync(w)), _untag, _tag),
    "unmatch: delete": (ONLY_BILLING, {"SYNC_ON_UNMATCH": "delete"},
                        lambda w, t: (_tag(w, t), sync(w)), _untag, _tag),
}


def prepare_routed(redis_client, tmp_path, name: str) -> tuple[World, int]:
    redis_client.flushall()
    world = make_inproc_world(redis_client.connection_pool.connection_kwargs["port"], "cp:")
    config, env, before, change, _ = ROUTE_SCENARIOS[name]
    eu_project = world.teamwork.add_project("Europe")
    for person in world.mappings.values():
        world.teamwork.add_to_project(eu_project, person)
    eu_list = world.teamwork.add_tasklist(eu_project, "EU")
    world.use_routes(tmp_path / "routes.toml",
                     config.format(eu_project=eu_project, eu_list=eu_list), **env)
    ticket = world.ticket("Printer", assignee=world.agents[0], status="open")
    bystander = world.ticket("Bystander", assignee=world.agents[1], status="open")
    before(world, ticket)
    change(world, ticket)
    world.zendesk.update_ticket(bystander, subject="Bystander, changed in the same page")
    world.exportable()
    return world, ticket


@pytest.mark.parametrize("name", list(ROUTE_SCENARIOS))
def test_a_crash_at_any_boundary_of_a_move_or_unmatch_converges(redis_client, seam,
                                                                tmp_path, name):
    world, _ = prepare_routed(redis_client, tmp_path, name)
    counted = seam(None)
    world.run_pass().run()
    seam(None)
    crossed = counted.crossed
    assert any(b.startswith(("after Teamwork P", "after Teamwork D")) for b in crossed), crossed
    assert world.check_routed() == []  # without a crash the pass does it right
    change_back = ROUTE_SCENARIOS[name][4]
    for crash_at, boundary in enumerate(crossed):
        for back in (False, True):
            world, ticket = prepare_routed(redis_client, tmp_path, name)
            seam(crash_at)
            with pytest.raises(Crash):
                world.run_pass().run()
            seam(None)
            restart(world)
            if back:
                change_back(world, ticket)
            settle(world)
            where = f"{name}: crash at boundary {crash_at} ({boundary}), changed back: {back}"
            assert world.check_routed() == [], where
            assert world.teamwork.most_live_with_one_marker <= 1, where
