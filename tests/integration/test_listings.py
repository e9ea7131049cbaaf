"""The state rebuild and ``audit`` over more tasks than one Teamwork listing answers: real
Redis, the simulators in process on a frozen clock, a listing cap of 25 (Teamwork's is
50,000), under both readings of ``updatedAfter``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.world import UNLIMITED, World, make_inproc_world, reachable
from zdsync.cli import main
from zdsync.sim.teamwork import VARIANTS, Variants

CAP = 25
TICKETS = 60
PER_SECOND = 8
CREATE = "/projects/api/v3/tasklists/*/tasks.json"


@pytest.fixture(params=VARIANTS["updated_after"], ids=lambda v: f"updatedAfter-{v}")
def world(request, redis_client) -> Iterator[World]:
    w = make_inproc_world(
        redis_client.connection_pool.connection_kwargs["port"], "l:",
        zendesk_kwargs={"export_limit_per_minute": UNLIMITED,
                        "rate_limit_per_minute": UNLIMITED},
        teamwork_kwargs={"rate_limit_per_minute": UNLIMITED, "listing_cap": CAP,
                         "variants": Variants(updated_after=request.param)})
    w.extra_env["TEAMWORK_LISTING_CAP"] = str(CAP)
    with reachable(w):
        yield w


def sync(world: World, **extra: str) -> object:
    world.exportable()
    summary = world.run_pass(**extra).run()
    assert summary.error is None, summary.line()
    return summary


def crowded(world: World) -> list[int]:
    """``TICKETS`` tickets synced; then their tasks change, ``PER_SECOND`` in each second,
    the newest first (Teamwork's default order and updatedAt's differ): more tasks than a
    listing answers, many sharing one ``updatedAt``."""
    tickets = [world.ticket(f"T{n}", assignee=world.agents[n % 2], status="open")
               for n in range(TICKETS)]
    sync(world)
    tasks = sorted(world.live_tasks(), key=lambda t: -t["id"])
    assert len(tasks) == TICKETS
    for start in range(0, TICKETS, PER_SECOND):
        world.clock.advance(1)
        for task in tasks[start:start + PER_SECOND]:
            world.teamwork.update_task(task["id"], name=task["name"])  # touched
    return tickets


def test_a_rebuild_past_the_cap_links_every_ticket_and_creates_no_task(world, tmp_path: Path):
    """Before listings were read past the cap, the rebuild saw 25 of the 60 tasks and
    made a second task for each of the other 35 tickets."""
    tickets = crowded(world)
    users = tmp_path / "mappings.csv"
    users.write_text("zendesk_user_id,teamwork_person_id\n"
                     + "".join(f"{a},{p}\n" for a, p in world.mappings.items()))
    world.store().r.flushall()  # Redis back empty: the links come from Teamwork
    creates = world.teamwork.log.count("POST", path=CREATE)
    world.teamwork.log.clear()
    summary = sync(world, USERS_FILE=str(users))
    assert summary.rebuilt
    assert world.store().last_rebuild()["tickets"] == str(TICKETS)
    assert world.teamwork.log.count("POST", path=CREATE) == 0
    assert creates == TICKETS and world.teamwork.most_live_with_one_marker == 1
    tasks = {t["id"] for t in world.live_tasks()}
    assert {world.store().record(t).applied.task_id for t in tickets} == tasks
    assert world.check() == []
    windows = [e.query for e in world.teamwork.log.entries() if "updatedAfter" in e.query]
    assert windows and all(q["orderBy"] == "updatedAt" for q in windows)


def test_audit_past_the_cap_sees_every_task(world):
    """Before, 35 of the 60 tasks were reported deleted, and ``--repair`` would have made
    them again."""
    crowded(world)
    world.exportable()
    result = CliRunner().invoke(main, ["audit", "--json"], env=world.env())
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["tasks_checked"] == TICKETS and report["drift"] == []
