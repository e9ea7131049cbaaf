"""The operator commands through click's runner: real Redis, the real simulators in process
(reached through ``tests.world.reachable``) on a frozen clock."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from click.testing import CliRunner

from tests.helpers import seed
from tests.world import World, make_cli_world, reachable
from zdsync import defaults
from zdsync.cli import main
from zdsync.rules import Applied, Record, Ticket
from zdsync.store import Store

EXPORT = "/api/v2/incremental/tickets/cursor"
BY_IDS = "/projects/api/v3/tasks.json"  # v3's read of many tasks by id


@dataclass(frozen=True)
class Ids:
    """The directory every test starts with (ids as the simulators hand them out)."""

    ada: int  # agent
    bob: int  # admin, e-mail in mixed case
    customer: int  # end-user
    cy: int  # agent whose e-mail only an outsider to the project has
    ada_p: int
    bob_p: int
    outsider_p: int  # not on the project


@pytest.fixture
def world(redis_client, monkeypatch) -> Iterator[World]:
    monkeypatch.setattr(defaults, "HTTP_BACKOFF_BASE_SECONDS", 0.001)  # real sleeps here
    w = make_cli_world(redis_client.connection_pool.connection_kwargs["port"], "t:",
                       setup=False)
    zd, tw = w.zendesk, w.teamwork
    w.project = tw.add_project("Support")
    w.tasklist = tw.add_tasklist(w.project, "Zendesk")
    ada = zd.add_user("Ada", "ada@example.com", "agent")
    bob = zd.add_user("Bob", "Bob@Example.com", "admin")
    w.customer = zd.add_user("Carl Customer", "carl@example.com")
    cy = zd.add_user("Cy", "cy@example.com", "agent")
    w.agents = [ada, bob, cy]
    people = [tw.add_person("Ada", "Agent", "ada@example.com"),
              tw.add_person("Bob", "Agent", "bob@example.com")]
    for person in people:
        tw.add_to_project(w.project, person)
    outsider = tw.add_person("Olga", "Outsider", "cy@example.com")
    w.ids = Ids(ada, bob, w.customer, cy, *people, outsider)  # type: ignore[attr-defined]
    with reachable(w):
        yield w


@pytest.fixture
def ids(world) -> Ids:
    return world.ids


def run(env, *args, input=None):
    return CliRunner().invoke(main, list(args), env=env, input=input)


def remapped(store: Store) -> set[str]:
    return {str(a) for a, _ in store.remapped()}


def writes(world: World) -> list[str]:
    return [f"{e.method} {e.path}" for e in world.teamwork.log.entries() if e.method != "GET"]


def no_requests(world: World) -> bool:
    return len(world.zendesk.log) == 0 and len(world.teamwork.log) == 0


# -- users --------------------------------------------------------------------------------


def test_users_add_verifies_and_shows_both_names(env, world, ids):
    store = world.store()
    result = run(env, "users", "add", str(ids.ada), str(ids.ada_p))
    assert result.exit_code == 0, result.output
    assert f"Zendesk user {ids.ada} (Ada <ada@example.com>, agent) -> Teamwork person " \
           f"{ids.ada_p} (Ada Agent)" in result.output
    assert store.mappings() == {ids.ada: ids.ada_p} and remapped(store) == {str(ids.ada)}


def test_users_add_refuses_an_end_user_and_a_person_off_the_project(env, world, ids):
    store = world.store()
    result = run(env, "users", "add", str(ids.customer), str(ids.outsider_p))
    assert result.exit_code == 1
    assert "nothing was changed" in result.output
    assert f"Zendesk user {ids.customer} (Carl Customer) is an end-user, not an agent or " \
           "admin" in result.output
    assert f"Teamwork person {ids.outsider_p} (Olga Outsider) is not on project " \
           f"{world.project}" in result.output
    assert store.mappings() == {} and remapped(store) == set()


def test_users_add_names_ids_that_do_not_exist(env, world):
    store = world.store()
    result = run(env, "users", "add", "555", "666")
    assert result.exit_code == 1
    assert "Zendesk user 555 does not exist" in result.output
    assert "Teamwork person 666 does not exist" in result.output
    assert store.mappings() == {}


def test_users_add_no_verify_makes_no_request(env, world):
    store = world.store()
    result = run(env, "users", "add", "555", "666", "--no-verify")
    assert result.exit_code == 0 and "[not verified]" in result.output
    assert no_requests(world) and store.mappings() == {555: 666}


def test_users_add_rejects_a_bad_id_as_usage_error(env, world):
    result = run(env, "users", "add", "abc", "7")
    assert result.exit_code == 2 and "abc" in result.output


def test_users_list_with_names_and_json(env, world, ids):
    store = world.store()
    store.set_mappings({ids.ada: ids.ada_p, 99999: 88888})  # known to neither simulator
    result = run(env, "users", "list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ZENDESK", "USER", "NAME", "E-MAIL", "TEAMWORK", "PERSON",
                                "NAME"]
    assert lines[1].split() == [str(ids.ada), "Ada", "ada@example.com", str(ids.ada_p), "Ada",
                                "Agent"]
    assert lines[2].split() == ["99999", "-", "-", "88888", "-"]
    data = json.loads(run(env, "users", "list", "--json").stdout)
    assert data[0] == {"zendesk_user_id": ids.ada, "zendesk_name": "Ada",
                       "zendesk_email": "ada@example.com", "teamwork_person_id": ids.ada_p,
                       "teamwork_name": "Ada Agent"}


def test_users_list_without_services_shows_ids(env, world, ids):
    store = world.store()
    store.set_mappings({ids.ada: ids.ada_p})
    world.zendesk.faults.set(routes={"/api/v2/users/show_many"}, error_rate=1.0,
                             error_statuses=[503])
    result = run(env, "users", "list")
    assert result.exit_code == 0
    assert "no names: zendesk" in result.stderr and str(ids.ada) in result.stdout
    no_config = {k: v for k, v in env.items() if not k.startswith("TEAMWORK")}
    result = run(no_config, "users", "list", "--no-names")
    assert result.exit_code == 0 and "1 mapping(s)" in result.stdout


def test_users_remove(env, world, ids):
    store = world.store()
    store.set_mappings({ids.ada: ids.ada_p})
    assert run(env, "users", "remove", str(ids.ada)).exit_code == 0
    assert store.mappings() == {}
    result = run(env, "users", "remove", str(ids.ada))
    assert result.exit_code == 1 and "has no mapping" in result.output


def test_users_import_applies_every_row(env, world, ids, tmp_path):
    store = world.store()
    store.set_mappings({ids.bob: ids.bob_p})
    seed(store, unlist_remapped=True)
    path = tmp_path / "agents.csv"
    path.write_text(f"\ufeffzendesk_user_id,teamwork_person_id,name\n{ids.ada},{ids.ada_p},"
                    f"Ada\n\n{ids.bob},{ids.bob_p},Bob\n")
    result = run(env, "users", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "imported 2 mapping(s)" in result.output and "1 new, 0 changed, 1 unchanged" \
        in result.output
    assert store.mappings() == {ids.ada: ids.ada_p, ids.bob: ids.bob_p}
    assert remapped(store) == {str(ids.ada)}  # only what changed is re-planned


def test_users_import_lists_every_bad_row_and_applies_nothing(env, world, ids, tmp_path):
    """Format and verification problems together, one a line, in the file's order."""
    store = world.store()
    path = tmp_path / "agents.csv"
    path.write_text(f"zendesk_user_id,teamwork_person_id\n{ids.ada},{ids.ada_p}\nx,8\n"
                    f"{ids.bob}\n{ids.ada},{ids.bob_p}\n{ids.customer},-3\n"
                    f"{ids.customer},{ids.bob_p}\n")
    result = run(env, "users", "import", str(path))
    assert result.exit_code == 2
    assert result.stderr.splitlines()[:6] == [
        f"zdsync: {path}: 5 problem(s); nothing was imported:",
        "  - line 3: zendesk_user_id 'x' is not a positive integer",
        f"  - line 4: expected 2 columns, got 1: '{ids.bob}'",
        f"  - line 5: Zendesk user {ids.ada} is already mapped on line 2",
        "  - line 6: teamwork_person_id '-3' is not a positive integer",
        f"  - line 7: Zendesk user {ids.customer} (Carl Customer) is an end-user, not an "
        "agent or admin: only agents are assigned tickets"]
    assert store.mappings() == {}
    world.zendesk.log.clear()
    world.teamwork.log.clear()
    result = run(env, "users", "import", "--no-verify", str(path))
    assert result.exit_code == 2 and "4 problem(s)" in result.stderr and no_requests(world)


def test_users_import_hints_at_a_file_separated_by_semicolons(env, world, ids, tmp_path):
    path = tmp_path / "agents.csv"
    path.write_text(f"zendesk_user_id;teamwork_person_id\n{ids.ada};{ids.ada_p}\n")
    result = run(env, "users", "import", str(path))
    assert result.exit_code == 2
    assert "separate its columns with ';'" in result.stderr.splitlines()[-2]


def test_users_import_verifies_every_row_before_storing(env, world, ids, tmp_path):
    store = world.store()
    path = tmp_path / "agents.csv"
    path.write_text(f"zendesk_user_id,teamwork_person_id\n{ids.ada},{ids.ada_p}\n"
                    f"{ids.customer},{ids.bob_p}\n{ids.cy},{ids.outsider_p}\n")
    result = run(env, "users", "import", str(path))
    assert result.exit_code == 1
    assert f"line 3: Zendesk user {ids.customer} (Carl Customer) is an end-user" \
        in result.output
    assert f"line 4: Teamwork person {ids.outsider_p} (Olga Outsider) is not on project " \
           f"{world.project}" in result.output
    assert store.mappings() == {}


def test_users_import_rejects_a_file_without_the_header(env, world, tmp_path):
    store = world.store()
    path = tmp_path / "agents.csv"
    path.write_text("100,7\n")
    result = run(env, "users", "import", str(path))
    assert result.exit_code == 2 and "the header must name the columns" in result.output
    assert store.mappings() == {}


def test_users_import_dry_run_stores_nothing(env, world, ids, tmp_path):
    store = world.store()
    path = tmp_path / "agents.csv"
    path.write_text(f"zendesk_user_id,teamwork_person_id\n{ids.ada},{ids.ada_p}\n")
    result = run(env, "users", "import", "--dry-run", str(path))
    assert result.exit_code == 0 and "dry run: nothing stored" in result.output
    assert store.mappings() == {}


def test_users_export_round_trips_through_import(env, world, ids, tmp_path):
    store = world.store()
    store.set_mappings({ids.bob: ids.bob_p, ids.ada: ids.ada_p})
    result = run(env, "users", "export")
    assert result.stdout == (f"zendesk_user_id,teamwork_person_id\n{ids.ada},{ids.ada_p}\n"
                             f"{ids.bob},{ids.bob_p}\n")
    path = tmp_path / "out.csv"
    result = run(env, "users", "export", str(path))
    assert result.exit_code == 0 and "exported 2 mapping(s)" in result.stderr
    store.r.delete(store.key("users"))
    assert run(env, "users", "import", "--no-verify", str(path)).exit_code == 0
    assert store.mappings() == {ids.ada: ids.ada_p, ids.bob: ids.bob_p}


def test_users_auto_proposes_then_applies_new_pairs(env, world, ids):
    store = world.store()
    dee = world.zendesk.add_user("Dee", "dee@example.com", "agent")
    for last, email in (("One", "DEE@example.com"), ("Two", "dee@example.com")):
        world.teamwork.add_to_project(world.project,  # two of them: ambiguous, no guess
                                      world.teamwork.add_person("Dee", last, email))
    store.set_mappings({ids.ada: 99})  # by hand: kept
    seed(store, unlist_remapped=True)
    result = run(env, "users", "auto")
    assert result.exit_code == 0, result.output
    out = result.stdout
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line[:1].isdigit()}
    assert rows[str(ids.bob)] == [str(ids.bob), "Bob", "Bob@Example.com", str(ids.bob_p),
                                  "Bob", "Agent", "new"]
    assert "kept (mapped to 99)" in out
    # Cy (only an outsider has the e-mail), Dee (ambiguous) and the simulator's own admin,
    # whose token the command uses (no Teamwork person has its e-mail).
    assert "unmatched agents (3)" in out
    assert "no Teamwork person on the project has this e-mail" in out
    assert "2 Teamwork people share this e-mail" in out
    assert "Carl" not in out  # end-users are no agents
    assert store.mappings() == {ids.ada: 99}
    result = run(env, "users", "auto", "--apply", "--json")
    data = json.loads(result.stdout)
    assert data["applied"] == 1
    assert {p["zendesk_user_id"]: p["status"] for p in data["proposals"]} == {
        world.zendesk.admin_id: "unmatched", ids.ada: "kept", ids.bob: "new",
        ids.cy: "unmatched", dee: "unmatched"}
    assert store.mappings() == {ids.ada: 99, ids.bob: ids.bob_p}
    assert remapped(store) == {str(ids.bob)}


def test_users_auto_follows_agent_pages(env, world):
    store = world.store()
    for n in range(130):
        world.zendesk.add_user(f"A{n}", f"a{n}@example.com", "agent")
        world.teamwork.add_to_project(world.project, world.teamwork.add_person(
            "A", str(n), f"a{n}@example.com"))
    result = run(env, "users", "auto", "--apply")
    assert result.exit_code == 0
    assert len(store.mappings()) == 132  # Ada, Bob and 130 more across two pages
    assert world.zendesk.log.count(path="/api/v2/users.json") >= 2


# -- tickets ------------------------------------------------------------------------------


def ticket(world: World, subject: str, assignee: int | None, status: str = "new") -> int:
    """A ticket from the customer; a closed one is solved first (Zendesk closes only
    solved tickets)."""
    created = world.zendesk.create_ticket(subject, world.customer, assignee_id=assignee,
                                          status="solved" if status == "closed" else status)
    if status == "closed":
        world.zendesk.update_ticket(created, status="closed")
    return created


def synced(world: World, env: dict[str, str], *tickets: tuple[str, int, str]) -> list[int]:
    """Ada and Bob mapped, the tickets made, one pass run; the tickets' ids."""
    world.store().set_mappings({world.ids.ada: world.ids.ada_p,
                                world.ids.bob: world.ids.bob_p})
    made = [ticket(world, *t) for t in tickets]
    world.exportable()  # the export leaves out the last minute
    result = run(env, "sync", "--once")
    assert result.exit_code == 0, result.output
    return made


def task_of(world: World, ticket_id: int) -> int:
    [task] = world.tasks_for(ticket_id)
    return task["id"]


def test_tickets_list_filters_and_json(env, world, ids):
    t1, t2, t3 = synced(world, env, ("a", ids.ada, "open"), ("b", ids.bob, "solved"),
                        ("c", ids.ada, "closed"))
    result = run(env, "tickets", "list")
    assert result.exit_code == 0
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0] == ["TICKET", "STATE", "TASK", "ASSIGNEE", "RETRY", "TITLE"]
    assert rows[1][:5] == [str(t1), "open", str(task_of(world, t1)), "person", str(ids.ada_p)]
    assert rows[3] == ["2", "ticket(s)"]  # t3, closed without a task: a tombstone now
    assert world.store().record(t3).ticket.status == "closed"
    result = run(env, "tickets", "list", "--state", "solved", "--json")
    assert [(r["ticket_id"], r["task_id"], r["completed"]) for r in json.loads(result.stdout)] \
        == [(t2, task_of(world, t2), True)]
    assert run(env, "tickets", "list", "--state", "nonsense").exit_code == 2


def test_tickets_show_record_live_task_drift_and_history(env, world, ids):
    [t] = synced(world, env, ("Printer", ids.ada, "open"))
    task = task_of(world, t)
    world.teamwork.update_task(task, name="renamed by hand")
    result = run(env, "tickets", "show", str(t))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert f"ticket {t}: open, subject 'Printer'" in out
    assert f"task {task}: '[ZD#{t}] Printer', person {ids.ada_p}, open" in out
    assert f"task {task}: 'renamed by hand', person {ids.ada_p}, status new, task list " \
           f"{world.tasklist}" in out
    assert f"title: titled 'renamed by hand'; should be '[ZD#{t}] Printer'" in out
    assert "next pass: nothing to do" in out
    assert f"task {task}: create '[ZD#{t}] Printer' for person {ids.ada_p}" in out
    data = json.loads(run(env, "tickets", "show", str(t), "--json").stdout)
    assert data["task"]["name"] == "renamed by hand"
    assert [d["kind"] for d in data["drift"]] == ["title"]
    assert data["record"]["task_id"] == task and data["history"]


def test_tickets_show_unknown_ticket(env, world):
    result = run(env, "tickets", "show", "42")
    assert result.exit_code == 1 and "ticket 42 is not known to zdsync" in result.output


def test_tickets_show_when_teamwork_fails(env, world, ids):
    [t] = synced(world, env, ("a", ids.ada, "new"))
    world.teamwork.faults.set(routes={"/projects/api/v3/tasks/{id}"}, error_rate=1.0,
                              error_statuses=[503])
    result = run(env, "tickets", "show", str(t))
    assert result.exit_code == 1
    assert "could not read it: teamwork" in result.output and "history" in result.output


def test_tickets_resync_reads_zendesk_now(env, world, ids):
    [t] = synced(world, env, ("a", ids.ada, "open"))
    task = task_of(world, t)
    world.zendesk.update_ticket(t, subject="b", assignee_id=ids.bob)
    exports = world.zendesk.log.count(route=EXPORT)
    result = run(env, "tickets", "resync", str(t))
    assert result.exit_code == 0, result.output
    assert f"retitle to '[ZD#{t}] b'" in result.output
    assert f"reassign to person {ids.bob_p}" in result.output
    assert f"ticket {t} (open): task {task}: '[ZD#{t}] b', person {ids.bob_p}, open" \
        in result.output
    assert world.teamwork.task(task)["name"] == f"[ZD#{t}] b"
    assert world.zendesk.log.count(route=EXPORT) == exports


def test_tickets_resync_unknown_ticket_and_lock(env, world, ids):
    store = world.store()
    result = run(env, "tickets", "resync", "42")
    assert result.exit_code == 1 and "not found in Zendesk" in result.output
    t = ticket(world, "x", ids.ada)
    lock = store.lock()
    assert lock.acquire()
    try:
        result = run(env, "tickets", "resync", str(t))
    finally:
        lock.release()
    assert result.exit_code == 75 and "holds the lock" in result.output
    assert writes(world) == [] and store.record(t) is None


def test_tickets_unlink_leaves_teamwork_alone(env, world, ids):
    [t] = synced(world, env, ("a", ids.ada, "new"))
    store = world.store()
    task = task_of(world, t)
    before = writes(world)
    result = run(env, "tickets", "unlink", str(t))
    assert result.exit_code == 0
    assert f"task {task} is left in Teamwork untouched" in result.output
    assert store.record(t) is None and writes(world) == before and world.live_tasks()
    result = run(env, "tickets", "unlink", str(t))
    assert result.exit_code == 1 and "not known" in result.output


# -- cursor -------------------------------------------------------------------------------


def test_cursor_show(env, world, ids):
    result = run(env, "cursor", "show")
    assert result.exit_code == 0 and "none yet" in result.output
    synced(world, env, ("a", ids.ada, "new"))
    result = run(env, "cursor", "show")
    assert "behind now" in result.output and "saved: the next pass resumes" in result.output
    assert "last pass:" in result.output and "success" in result.output
    data = json.loads(run(env, "cursor", "show", "--json").stdout)
    assert data["cursor"] and 0 <= data["behind_seconds"] < 300


def test_cursor_reset_asks_then_restarts_the_export_at_the_time(env, world, ids):
    synced(world, env, ("a", ids.ada, "new"))
    store = world.store()
    before = store.cursor()
    result = run(env, "cursor", "reset", "--start-time", "2024-05-01T00:00:00Z", input="n\n")
    assert result.exit_code == 1 and "cursor left unchanged" in result.output
    assert store.cursor() == before
    result = run(env, "cursor", "reset", "--start-time", "2024-05-01T00:00:00Z", input="y\n")
    assert result.exit_code == 0, result.output
    assert "fresh export at 2024-05-01 00:00:00 UTC" in result.output
    assert store.cursor().cursor is None and store.cursor().position == 1714521600
    world.zendesk.log.clear()
    assert run(env, "sync", "--once").exit_code == 0
    first = next(e for e in world.zendesk.log.entries() if e.route == EXPORT)
    assert first.query["start_time"] == "1714521600" and "cursor" not in first.query


def test_cursor_reset_refuses_bad_times_and_a_held_lock(env, world):
    store = world.store()
    result = run(env, "cursor", "reset", "--start-time", "yesterday", "--yes")
    assert result.exit_code == 2 and "expected ISO-8601" in result.output
    result = run(env, "cursor", "reset", "--start-time", str(int(time.time()) + 3600), "--yes")
    assert result.exit_code == 2 and "in the future" in result.output
    lock = store.lock()
    assert lock.acquire()
    try:
        result = run(env, "cursor", "reset", "--start-time", "1700000000", "--yes")
    finally:
        lock.release()
    assert result.exit_code == 75 and store.cursor().position is None


# -- retries ------------------------------------------------------------------------------


@pytest.fixture
def queued_at() -> float:
    return time.time()


@pytest.fixture
def queued(world, queued_at):
    store = world.store()
    seed(store, failed={5: "teamwork: PUT /tasks/500/complete.json: 500"}, now=queued_at)
    seed(store, failed={6: "zendesk: timeout"}, now=queued_at)
    seed(store, failed={6: "zendesk: timeout"}, now=queued_at)
    return store


def test_retries_list(env, queued, queued_at, monkeypatch):
    with monkeypatch.context() as m:  # listed a moment after queueing, however busy the machine
        m.setattr(time, "time", lambda: queued_at + 0.2)
        result = run(env, "retries", "list")
    assert result.exit_code == 0
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[1][:5] == ["5", "1", "in", "29", "s"] or rows[1][:4] == ["5", "1", "in", "30"]
    assert "teamwork: PUT /tasks/500/complete.json: 500" in result.stdout
    assert "2 ticket(s) waiting" in result.stdout
    data = json.loads(run(env, "retries", "list", "--json").stdout)
    assert {(e["ticket_id"], e["attempts"]) for e in data} == {(5, 1), (6, 2)}


def test_retries_list_shows_both_ends_of_a_long_error(env, world):
    long = "teamwork: POST /tasklists/9/tasks.json: 500 <html>" + "x" * 300 + \
        "</html>: task list 9 not found"
    seed(world.store(), failed={7: long})
    shown = run(env, "retries", "list").stdout
    assert "teamwork: POST /tasklists/9/tasks.json: …x" in shown  # its start,
    assert "xxx</html>: task list 9 not found" in shown  # its end, which names the problem


def test_retries_retry_and_drop(env, queued):
    store = queued
    result = run(env, "retries", "retry", "5", "77")
    assert result.exit_code == 1 and "not in the retry set: 77" in result.output
    assert store.due_retries() == []  # nothing changed
    assert run(env, "retries", "retry", "5").exit_code == 0
    assert store.due_retries() == [5]
    assert run(env, "retries", "retry", "--all").exit_code == 0
    assert sorted(store.due_retries()) == [5, 6]
    assert run(env, "retries", "retry").exit_code == 2
    assert run(env, "retries", "retry", "5", "--all").exit_code == 2
    result = run(env, "retries", "drop", "6", "77")
    assert result.exit_code == 1 and store.retry_depth() == 2
    assert run(env, "retries", "drop", "6").exit_code == 0
    assert [e.ticket_id for e in store.retries()] == [5]


# -- check --------------------------------------------------------------------------------


def test_check_all_good(env, world, ids):
    world.store().set_mappings({ids.ada: ids.ada_p})
    result = run(env, "check")
    assert result.exit_code == 0, result.output
    assert "✓ configuration" in result.output
    assert f"✓ Redis: Redis at 127.0.0.1:{world.redis_port}" in result.output
    assert "✓ Zendesk credentials: Sim Admin <admin@example.com>, role admin" in result.output
    assert "✓ Teamwork credentials: Sync Bot" in result.output
    assert f"✓ Teamwork project: 'Support' ({world.project})" in result.output
    assert f"✓ task list: 'Zendesk' ({world.tasklist})" in result.output
    assert "all checks passed" in result.output


def test_check_reports_each_failure_with_a_fix(env, world):
    # Zendesk's token works with any user's e-mail: here an agent's, not an admin's.
    result = run({**env, "ZENDESK_EMAIL": "ada@example.com",
                  "TEAMWORK_API_TOKEN": "revoked"}, "check")
    assert result.exit_code == 1
    out = result.output
    assert "✗ Zendesk credentials: Ada <ada@example.com>, role agent: the ticket export " \
           "needs an admin" in out
    assert "✗ Teamwork credentials: Teamwork refused the credentials (401)" in out
    assert "fix: check the token of the integration user" in out
    assert "- Teamwork project: skipped" in out
    assert "! agent mappings: none" in out


def test_check_never_hangs_on_a_failing_service(env, world):
    world.zendesk.faults.set(routes={"/api/v2/users/me"}, error_rate=1.0,
                             error_statuses=[503])
    world.teamwork.limiter.limit = 0  # its budget is spent: the client is locked out 60 s
    started = time.monotonic()
    result = run(env, "check", "--json")
    # Far below the 60 s lock-out a waiting check would sit out (and bound loosely: the
    # machine may be busy); that no request is retried is counted below.
    assert time.monotonic() - started < 30
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    states = {c["name"]: c["state"] for c in data["checks"]}
    assert states["Zendesk credentials"] == "fail" and states["Teamwork credentials"] == "fail"
    assert world.zendesk.log.count(route="/api/v2/users/me") == 1  # one attempt, no retries
    assert world.teamwork.log.count(status=429) == 1
    assert "rate limited for 60 s" in json.dumps(data)


def test_check_bad_configuration_and_redis_down(env, world):
    bad = {**env, "TEAMWORK_PROJECT_ID": "", "REDIS_PORT": "1"}
    result = run(bad, "check")
    assert result.exit_code == 2  # a configuration error, as every command exits
    assert "✗ configuration: teamwork.project_id is required" in result.output
    assert "✗ Redis: Redis at 127.0.0.1:1 does not answer" in result.output
    assert "fix: start Redis" in result.output
    assert "- Zendesk credentials: skipped" in result.output


def test_check_exits_2_on_any_configuration_error(env, world):
    result = run({**env, "SYNC_LOCK_TTL": "1e300"}, "check", "--json")
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data["ok"] is False and "sync.lock_ttl" in data["checks"][0]["detail"]


@pytest.mark.parametrize("bad", ["²", "①", "4²", "٣", "0", "+5", "9" * 4301, str(2**63)])
def test_ids_on_the_command_line_are_positive_ascii_integers(env, world, bad):
    for args in (["tickets", "show", bad], ["users", "add", bad, "7"],
                 ["retries", "drop", bad]):
        result = run(env, *args)
        assert result.exit_code == 2 and "is not an id" in result.output, (args, result.output)


def test_check_a_missing_project_and_a_tasklist_to_create(env, world):
    missing = world.project + 1000
    result = run({**env, "TEAMWORK_PROJECT_ID": str(missing)}, "check")
    assert f"✗ Teamwork project: project {missing} does not exist" in result.output
    assert "- task list: skipped" in result.output
    empty = world.teamwork.add_project("S")  # no task list yet
    by_name = {k: v for k, v in env.items() if k != "TEAMWORK_TASKLIST_ID"}
    result = run({**by_name, "TEAMWORK_PROJECT_ID": str(empty)}, "check")
    assert "✓ task list: no list named 'Zendesk' yet: the first pass creates it" \
        in result.output


def test_sync_dry_run_prints_the_plan_and_totals(env, world, ids):
    world.store().set_mappings({ids.ada: ids.ada_p})
    t = ticket(world, "a", ids.ada)
    ticket(world, "b", ids.cy, "closed")
    world.exportable()
    result = run(env, "sync", "--once", "--dry-run")
    assert result.exit_code == 0
    assert f"ticket {t}: create '[ZD#{t}] a' for person {ids.ada_p}" in result.output
    assert "dry run: 1 ticket(s) would change; tickets seen 2; tasks created 1" in result.output
    assert writes(world) == []


# -- audit --------------------------------------------------------------------------------


def drifted(world: World, env: dict[str, str]) -> tuple[list[int], list[int]]:
    """Five tickets synced, then their tasks changed by hand; the tickets and tasks."""
    ids = world.ids
    tickets = synced(world, env, ("one", ids.ada, "open"), ("two", ids.ada, "open"),
                     ("three", ids.bob, "open"), ("four", ids.bob, "solved"),
                     ("five", ids.bob, "open"))
    tasks = [task_of(world, t) for t in tickets]
    tw = world.teamwork
    tw.delete_task(tasks[0])  # deleted by hand
    tw.complete_task(tasks[1])  # completed by hand
    tw.update_task(tasks[2], assignee_ids=[ids.ada_p])  # reassigned by hand
    tw.uncomplete_task(tasks[3])  # reopened although solved
    tw.update_task(tasks[4], name="typo")
    return tickets, tasks


def by_ids_reads(world: World) -> list[list[int]]:
    return [sorted(int(i) for i in e.query["ids"].split(","))
            for e in world.teamwork.log.entries() if e.method == "GET" and e.path == BY_IDS]


def test_audit_reports_drift(env, world, ids):
    tickets, tasks = drifted(world, env)
    before = writes(world)
    result = run(env, "audit")
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert f"ticket {tickets[0]} (task {tasks[0]}):\n  gone: task {tasks[0]} is deleted or " \
           "missing in Teamwork" in out
    assert f"completed: task {tasks[1]} is completed; the ticket is open" in out
    assert f"assignee: assigned to person {ids.ada_p}; should be person {ids.bob_p}" in out
    assert f"reopened: task {tasks[3]} is open; the ticket is solved" in out
    assert f"title: titled 'typo'; should be '[ZD#{tickets[4]}] five'" in out
    assert "5 ticket(s) audited, 5 task(s) looked up: 5 with drift" in out
    assert writes(world) == before  # an audit without --repair writes nothing
    assert by_ids_reads(world) == [sorted(tasks)]
    data = json.loads(run(env, "audit", "--json").stdout)
    assert {f["ticket_id"]: [d["kind"] for d in f["drift"]] for f in data["drift"]} == dict(
        zip(tickets, [["gone"], ["completed"], ["assignee"], ["reopened"], ["title"]],
            strict=True))


def test_audit_repair_goes_through_the_reconciler(env, world, ids):
    tickets, tasks = drifted(world, env)
    store = world.store()
    result = run(env, "audit", "--repair")
    assert result.exit_code == 0, result.output
    assert "5 with drift; 5 repaired, 0 failed" in result.output
    [new] = [t for t in world.live_tasks() if t["name"] == f"[ZD#{tickets[0]}] one"]
    assert new["id"] != tasks[0] and store.record(tickets[0]).applied.task_id == new["id"]
    tw = world.teamwork
    assert tw.task(tasks[1])["status"] == "reopened"
    assert [a["id"] for a in tw.task(tasks[2])["assignees"]] == [ids.bob_p]
    assert tw.task(tasks[3])["status"] == "completed"
    assert tw.task(tasks[4])["name"] == f"[ZD#{tickets[4]}] five"
    assert any(h["what"].startswith(f"audit: task {tasks[0]} is deleted")
               for h in store.history(tickets[0]))
    result = run(env, "audit")
    assert result.exit_code == 0 and "0 with drift" in result.output


def test_audit_reads_in_batches_and_finds_missing_tasks(env, world, ids):
    store = world.store()
    store.set_mappings({ids.ada: ids.ada_p})
    for tid in range(1, 251):  # tasks Teamwork does not hold (its ids start at 100001)
        t = Ticket(tid, "open", f"s{tid}", ids.ada, None, (), "2026-01-01T00:00:00Z", tid)
        seed(store, [Record(t, Applied(10_000 + tid, f"[ZD#{tid}] s{tid}", ids.ada_p))])
    seed(store, [Record(Ticket(999, "open", "x", ids.ada))])  # needs a task, has none
    result = run(env, "audit", "--json")
    assert result.exit_code == 1
    assert [len(c) for c in by_ids_reads(world)] == [100, 100, 50]
    data = json.loads(result.stdout)
    assert data["audited"] == 251 and data["tasks_checked"] == 250
    kinds = {f["ticket_id"]: f["drift"][0]["kind"] for f in data["drift"]}
    assert len(kinds) == 251 and kinds[999] == "no_task" and kinds[1] == "gone"


def test_audit_repair_needs_the_lock(env, world):
    _, tasks = drifted(world, env)
    lock = world.store().lock()
    assert lock.acquire()
    try:
        result = run(env, "audit", "--repair")
    finally:
        lock.release()
    assert result.exit_code == 75
    assert world.teamwork.task(tasks[1])["status"] == "completed"  # untouched


def test_audit_repair_adopts_the_task_of_a_lost_create(env, world, ids):
    store = world.store()
    store.set_mappings({ids.ada: ids.ada_p})
    t = ticket(world, "a", ids.ada, "open")
    world.teamwork.faults.lose_next_creates(1)  # committed, then the connection drops
    world.exportable()
    assert run(env, "sync", "--once").exit_code == 1
    store.drop_retries([t])  # nothing would look at it again until the ticket changes
    result = run(env, "audit", "--repair")
    assert result.exit_code == 0, result.output
    assert "no_task: the ticket has no task (a create was attempted" in result.output
    [task] = world.teamwork.tasks(include_deleted=True)  # found and adopted, not made twice
    record = store.record(t)
    assert record.applied.task_id == task["id"] and record.in_flight is None


def test_audit_repair_stops_when_the_lock_is_lost(env, world, monkeypatch):
    from zdsync.lease import SyncLock

    drifted(world, env)
    before = writes(world)
    monkeypatch.setattr(SyncLock, "held", property(lambda self: False))
    result = run(env, "audit", "--repair")
    assert result.exit_code == 1 and "lost the sync lock" in result.output
    assert writes(world) == before  # nothing written beside another holder


def test_audit_repair_keeps_a_retry_that_waits_for_a_fresh_read(env, world):
    tickets, _ = drifted(world, env)
    store = world.store()
    seed(store, failed={tickets[1]: "malformed: unreadable in the export"})
    result = run(env, "audit", "--repair")
    assert result.exit_code == 0, result.output
    assert [(r.ticket_id, r.error) for r in store.retries()] == [
        (tickets[1], "malformed: unreadable in the export")]


def test_check_survives_a_service_that_answers_html(env, world):
    # A 200 with an HTML page (a sign-in page, say) instead of the JSON documented.
    world.zendesk.faults.set(routes={"/api/v2/users/me"}, error_rate=1.0,
                             error_statuses=[200])
    result = run(env, "check")
    assert result.exit_code == 1
    assert world.zendesk.log.count(route="/api/v2/users/me", status=200) >= 1
    assert "Traceback" not in result.output and "✗ Zendesk credentials" in result.output


def test_users_remove_of_an_unknown_id_writes_nothing(env, world):
    store = world.store()
    seed(store, unlist_remapped=True)
    result = run(env, "users", "remove", "424242")
    assert result.exit_code == 1 and store.remapped() == []


def test_sync_shows_progress_on_a_terminal_only(env, world, ids, monkeypatch):
    for n in range(1, 30):
        ticket(world, f"t{n}", ids.ada, "open")
    world.exportable()
    quiet = run(env, "sync")
    assert quiet.exit_code == 0 and "/min, queued" not in quiet.stderr  # not a terminal
    monkeypatch.setattr("zdsync.cli.sync._stderr_is_terminal", lambda: True)
    monkeypatch.setattr("zdsync.cli.sync.Progress.REFRESH_SECONDS", 0)
    for n in range(30, 60):
        ticket(world, f"t{n}", ids.ada, "open")
    world.exportable()
    shown = run(env, "sync")
    assert shown.exit_code == 0
    assert " tickets" in shown.stderr and "pages 1, Teamwork" in shown.stderr
    assert "/min, queued" in shown.stderr and "ETA" in shown.stderr
    assert "tickets seen 30" in shown.stdout  # the summary line is unchanged
    # The last drawing: its count agrees with the summary line, the last page gave a total.
    assert shown.stderr.rsplit("\r", 1)[-1].startswith("30/30 tickets 100% | pages 1")
    for n in range(60, 70):
        ticket(world, f"t{n}", ids.ada, "open")
    world.exportable()
    assert "/min, queued" not in run(env, "sync", "--quiet").stderr


def last_error_line(result) -> str:
    """The line a failed command ends with on standard error (log lines come before it)."""
    return result.stderr.strip().splitlines()[-1]


def test_every_exit_1_ends_with_one_line_that_says_why(env, world, ids):
    store = world.store()
    seed(store, failed={77: "teamwork: 503"})  # waits, not due yet
    result = run(env, "sync")
    assert result.exit_code == 1 and "failed 0" in result.stdout
    assert last_error_line(result).startswith("zdsync: 1 ticket(s) wait in the retry set "
                                              "(0 failed in this pass; next try in ")
    store.drop_retries([77])
    [t] = synced(world, env, ("a", ids.ada, "open"))
    world.zendesk.update_ticket(t, subject="b")
    world.exportable()
    result = run({**env, "TEAMWORK_API_TOKEN": "revoked"}, "sync")
    assert result.exit_code == 1 and "teamwork.api_token" in last_error_line(result)
    world.teamwork.update_task(task_of(world, t), name="typo")
    result = run(env, "audit")
    assert result.exit_code == 1
    assert last_error_line(result) == "zdsync: 1 ticket(s) with drift; zdsync audit --repair " \
                                      "fixes it"
    result = run({**env, "TEAMWORK_API_TOKEN": "revoked"}, "check", "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["ok"] is False
    assert last_error_line(result) == "zdsync: 1 of 8 check(s) failed: Teamwork credentials"
    world.teamwork.faults.set(routes={"/projects/api/v3/tasks/{id}"}, error_rate=1.0,
                              error_statuses=[503])
    result = run(env, "tickets", "show", str(t), "--json")
    assert result.exit_code == 1
    assert last_error_line(result).startswith(f"zdsync: could not read task "
                                              f"{task_of(world, t)} from Teamwork: teamwork")


def test_a_first_start_and_a_dry_run_are_no_incident(env, world, ids):
    """Only links Redis really lost make an ERROR line and "after Redis had lost them": not
    a first start, not a dry run, not a recover with nothing lost."""
    first = run(env, "sync")  # a first start: no identity, no task in Teamwork
    assert first.exit_code == 0 and " ERROR " not in first.stderr
    assert "rebuilt from Teamwork" not in first.stderr
    shown = run(env, "cursor", "show").stdout
    assert "had lost" not in shown and "none needed: a first start" in shown
    synced(world, env, ("a", ids.ada, "open"))
    for args in (["recover", "--dry-run"], ["recover"]):
        result = run(env, *args)
        assert result.exit_code == 0, result.output
        assert " ERROR " not in result.stderr
    assert "by zdsync recover" in run(env, "cursor", "show").stdout
    world.store().r.flushall()  # now Redis does lose them
    world.store().set_mappings({ids.ada: ids.ada_p})
    dry = run(env, "sync", "--dry-run")
    assert dry.exit_code == 0 and " ERROR " not in dry.stderr
    lost = run(env, "sync")
    assert lost.exit_code == 0 and " ERROR zdsync.rebuild: STATE REBUILD" in lost.stderr
    assert "after Redis had lost them" in run(env, "cursor", "show").stdout


def test_check_tests_redis_whatever_else_is_wrong_and_lists_problems_one_a_line(
        env, world, tmp_path):
    config = tmp_path / "zdsync.toml"
    config.write_text("[sync]\nintervall = 5\n")  # a typo
    result = run({**env, "SYNC_INTERVAL": "x", "ZDSYNC_CONFIG": str(config)}, "check")
    assert result.exit_code == 2
    lines = result.stdout.splitlines()
    assert lines[0] == "✗ configuration: 2 problems"
    assert lines[1].startswith("    - config file ") and "unknown setting 'intervall'" in lines[1]
    assert lines[2].startswith("    - sync.interval from environment variable SYNC_INTERVAL")
    assert f"✓ Redis: Redis at 127.0.0.1:{world.redis_port} answers" in result.stdout
    data = json.loads(run({**env, "SYNC_INTERVAL": "x"}, "check", "--json").stdout)
    assert data["checks"][0]["problems"][0].startswith("sync.interval")
    assert data["checks"][1]["state"] == "ok"


def test_check_falls_back_to_ascii_where_the_terminal_cannot_encode(env, world):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "zdsync", "check"], capture_output=True, timeout=60,
        env={**env, "PYTHONIOENCODING": "latin-1", "TEAMWORK_PROJECT_ID": "",
             "REDIS_PORT": "1"})
    assert result.returncode == 2 and b"Traceback" not in result.stderr
    out = result.stdout.decode("latin-1")
    assert "x configuration: teamwork.project_id is required" in out
    assert "x Redis: Redis at 127.0.0.1:1 does not answer" in out


def test_a_redis_that_does_not_answer_fails_a_command_fast_with_a_fix(env, world,
                                                                       monkeypatch):
    import redis.connection

    attempts: list[int] = []
    connect = redis.connection.Connection._connect

    def counted(self):
        attempts.append(self.port)
        return connect(self)

    monkeypatch.setattr(redis.connection.Connection, "_connect", counted)
    result = run({**env, "REDIS_PORT": "1"}, "tickets", "list")
    # One attempt, no retries: a refused connection ends it at once (the store's retries
    # took 11 s). Counted, not timed, so a busy machine cannot fail it.
    assert attempts == [1]
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0].startswith("zdsync: Redis at 127.0.0.1:1 does not answer")
    assert result.stderr.splitlines()[1].startswith("  fix: start Redis, or point zdsync at it")


def test_an_option_overridden_by_the_environment_is_said_once(env, world):
    result = run({**env, "REDIS_PORT": "1"}, "--redis-port", str(world.redis_port), "tickets",
                 "list")
    assert result.exit_code == 1  # the environment wins, as documented
    notes = [line for line in result.stderr.splitlines() if "overrides" in line]
    assert notes == ["zdsync: REDIS_PORT=1 in the environment overrides --redis-port (the "
                     "environment wins; unset REDIS_PORT to use the option)"]


def test_version_typed_help_and_boolean_flags(env, world):
    from zdsync import __version__

    assert run(env, "--version").stdout == f"zdsync, version {__version__}\n"
    shown = " ".join(run(env, "--help").stdout.split())
    assert "--redis-port INTEGER" in shown and "--sync-interval NUMBER" in shown
    assert "--redis-use-sentinel / --no-redis-use-sentinel" in shown
    assert "--log-level [DEBUG|INFO|WARNING|ERROR]" in shown
    result = run({**env, "REDIS_USE_SENTINEL": ""}, "--redis-use-sentinel", "tickets", "list")
    assert result.exit_code == 2 and "redis.sentinel_hosts is required" in result.stderr


def test_global_options_after_the_command_are_accepted(env, world):
    portless = {k: v for k, v in env.items() if k != "REDIS_PORT"}
    port = str(world.redis_port)
    for args in (["tickets", "list", "--redis-port", port],
                 ["tickets", "list", f"--redis-port={port}", "--no-redis-use-sentinel"],
                 ["users", "list", "--no-names", "--redis-port", port, "--json"]):
        result = run(portless, *args)
        assert result.exit_code == 0, (args, result.output)
    result = run(portless, "tickets", "show", "--", "--redis-port")  # after --: an argument
    assert result.exit_code == 2 and "is not an id" in result.output


def test_no_command_has_an_option_named_like_a_global_one():
    """Global options after a command are moved before it: a command option of the same
    name would never be reached."""
    import click

    globals_ = {name for p in main.params for name in [*p.opts, *p.secondary_opts]}

    def options(command: click.Command) -> set[str]:
        found = {name for p in command.params for name in [*p.opts, *p.secondary_opts]}
        for sub in getattr(command, "commands", {}).values():
            found |= options(sub)
        return found

    clashes = set().union(*(options(c) for c in main.commands.values())) & globals_
    assert clashes <= {"-h", "--help"}


def test_json_numbers_are_numbers_and_dry_runs_have_json_plans(env, world, ids):
    world.store().set_mappings({ids.ada: ids.ada_p})
    t = ticket(world, "a", ids.ada, "solved")
    world.exportable()
    data = json.loads(run(env, "sync", "--dry-run", "--json").stdout)
    assert data["planned"] == [{"ticket_id": t, "actions": [
        f"create '[ZD#{t}] a' for person {ids.ada_p}", "complete"]}]
    assert data["summary"]["created"] == 1 and data["summary"]["seen"] == 1
    assert run(env, "sync").exit_code == 0
    last = json.loads(run(env, "cursor", "show", "--json").stdout)
    assert isinstance(last["last_pass"]["at"], float)
    assert last["last_pass"]["retry_depth"] == 0 and last["last_pass"]["result"] == "success"
    assert isinstance(last["last_rebuild"]["tickets"], int)
    world.zendesk.update_ticket(t, subject="b")
    world.store().r.hdel(world.store().key("tickets"), str(t))  # its link lost
    result = run(env, "recover", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["dry_run"], data["linked"], data["tasks"]) == (True, 1, 1)
    assert data["planned"] == [{"ticket_id": t, "actions": [f"retitle to '[ZD#{t}] b'"]}]


def test_progress_on_a_terminal_of_0_columns_is_plain_lines(env, world, ids, monkeypatch):
    monkeypatch.setattr("zdsync.cli.sync._stderr_is_terminal", lambda: True)
    monkeypatch.setattr("zdsync.cli.progress.terminal_columns", lambda: 0)
    for n in range(1, 6):
        ticket(world, f"t{n}", ids.ada, "open")
    world.exportable()
    shown = run(env, "sync")
    assert shown.exit_code == 0 and "\r" not in shown.stderr
    lines = [x for x in shown.stderr.splitlines() if " tickets" in x and "| pages" in x]
    assert lines[0].startswith("1/5 tickets 20% |") and lines[-1].startswith("5/5 tickets 100% |")
