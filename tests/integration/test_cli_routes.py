"""The command line with routes: the dry run names each ticket's route, ``tickets show``
shows it, ``zdsync check`` checks every route's project and list, and a bad route is a
configuration error (exit 2). Against the simulators over HTTP and a real Redis."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from tests.world import World, make_world
from zdsync.cli import main

pytestmark = pytest.mark.usefixtures("teamwork_variants")  # every Teamwork variant

ROUTES = """
[[route]]
name = "billing"
match.tags_any = "billing"
tasklist_name = "Billing"

[[route]]
name = "eu"
match.brand_id = 7
project_id = {eu_project}
tasklist_id = {eu_list}
"""


@pytest.fixture
def world(redis_server, redis_client, tmp_path):
    for w in make_world(redis_server.port, "cr:"):
        w.eu_project = w.teamwork.add_project("Europe")  # type: ignore[attr-defined]
        w.eu_list = w.teamwork.add_tasklist(w.eu_project, "EU")  # type: ignore[attr-defined]
        for person in w.mappings.values():
            w.teamwork.add_to_project(w.eu_project, person)
        w.use_routes(tmp_path / "routes.toml",
                     ROUTES.format(eu_project=w.eu_project, eu_list=w.eu_list))
        yield w


def run(world: World, *args: str):
    return CliRunner().invoke(main, list(args), env=world.env(), catch_exceptions=False)


def test_the_dry_run_names_each_tickets_route_and_writes_nothing(world):
    billing = world.ticket("Refund", assignee=world.agents[0], status="open", tags=["billing"])
    europe = world.ticket("Bonjour", assignee=world.agents[0], status="open", brand_id=7)
    world.ticket("Neither", assignee=world.agents[0], status="open")
    world.exportable()
    result = run(world, "sync", "--once", "--dry-run")
    assert result.exit_code == 0, result.output
    assert f"ticket {billing}: route billing: create '[ZD#{billing}] Refund' for person" \
        in result.output
    assert (f"ticket {europe}: route eu: create '[ZD#{europe}] Bonjour' for person "
            f"{world.mappings[world.agents[0]]} in task list {world.eu_list}") in result.output
    assert "dry run: 2 ticket(s) would change; tickets seen 3; tasks created 2" in result.output
    assert world.teamwork.log.count("POST") == 0  # not even the Billing list


def test_tickets_show_tells_the_route_and_where_its_task_is(world):
    t = world.ticket("Refund", assignee=world.agents[0], status="open", tags=["billing"])
    world.exportable()
    assert run(world, "sync", "--once").exit_code == 0
    billing = next(x["id"] for x in world.teamwork.tasklists() if x["name"] == "Billing")
    shown = run(world, "tickets", "show", str(t))
    assert shown.exit_code == 0, shown.output
    assert (f"route: billing (task list 'Billing' in project {world.project}; task list id "
            f"{billing})") in shown.output
    assert f", open, task list {billing}" in shown.output
    assert "next pass: nothing to do" in shown.output
    world.zendesk.update_ticket(t, tags=[], brand_id=7)
    world.exportable()
    assert run(world, "sync", "--once").exit_code == 0
    data = json.loads(run(world, "tickets", "show", str(t), "--json").output)
    assert (data["route"], data["task"]["tasklist_id"], data["task"]["project_id"]) == (
        "eu", world.eu_list, world.eu_project)
    world.zendesk.update_ticket(t, brand_id=1)  # now no route wants it
    world.exportable()
    assert run(world, "sync", "--once").exit_code == 0
    shown = run(world, "tickets", "show", str(t))
    assert "route: none matches (sync.on_unmatch = keep)" in shown.output
    assert json.loads(run(world, "tickets", "list", "--json").output)[0]["route"] is None


def test_check_validates_every_routes_project_and_list(world, tmp_path):
    result = run(world, "check")
    assert result.exit_code == 0, result.output
    assert (f"✓ route billing: project 'Support' ({world.project}): no list named 'Billing' "
            "yet: the first pass that routes a ticket there creates it") in result.output
    assert (f"✓ route eu: project 'Europe' ({world.eu_project}), task list 'EU' "
            f"({world.eu_list})") in result.output
    world.use_routes(tmp_path / "bad.toml", ROUTES.format(eu_project=world.eu_project,
                                                          eu_list=world.tasklist))
    result = run(world, "check")
    assert result.exit_code == 1
    assert (f"✗ route eu: task list {world.tasklist} belongs to project {world.project}, "
            f"not {world.eu_project}") in result.output
    assert "fix project_id / tasklist_id / tasklist_name of route 'eu'" in result.output


def test_a_bad_route_is_a_configuration_error_for_every_command(world, tmp_path):
    world.use_routes(tmp_path / "bad.toml", '[[route]]\nname = "x"\nmatch.group_id = "7"\n')
    for args in (["check"], ["sync", "--once", "--dry-run"]):
        result = run(world, *args)
        assert result.exit_code == 2, result.output
        assert "route[1] (x): match.group_id must be an id" in result.output
