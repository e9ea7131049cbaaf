"""The operator commands through click's runner: real Redis, HTTP fakes on requests-mock."""

from __future__ import annotations

import json
import time

import pytest
from click.testing import CliRunner

from tests.fakes import V3, ZD, FakeDirectory, FakeTeamwork, FakeZendesk
from tests.helpers import seed
from zdsync.cli import main
from zdsync.rules import Applied, Record, Ticket
from zdsync.store import Store

ADA, BOB, CUSTOMER, CY = 100, 101, 102, 103
ADA_P, BOB_P, OUTSIDER_P = 7, 8, 9


@pytest.fixture
def world(requests_mock, redis_client, monkeypatch):
    monkeypatch.setattr("zdsync.defaults.HTTP_BACKOFF_BASE_SECONDS", 0.001)
    zd, tw, directory = FakeZendesk(requests_mock), FakeTeamwork(requests_mock), \
        FakeDirectory(requests_mock)
    directory.user(ADA, "Ada", "ada@example.com")
    directory.user(BOB, "Bob", "Bob@Example.com", role="admin")
    directory.user(CUSTOMER, "Carl Customer", "carl@example.com", role="end-user")
    directory.user(CY, "Cy", "cy@example.com")
    directory.person(ADA_P, "Ada", "Agent", "ada@example.com")
    directory.person(BOB_P, "Bob", "Agent", "bob@example.com")
    directory.person(OUTSIDER_P, "Olga", "Outsider", "cy@example.com", member=False)
    return zd, tw, directory, Store(redis_client, "t:")


def run(env, *args, input=None):
    return CliRunner().invoke(main, list(args), env=env, input=input)


def remapped(store: Store) -> set[str]:
    return {str(a) for a, _ in store.remapped()}


# -- users --------------------------------------------------------------------------------


def test_users_add_verifies_and_shows_both_names(env, world):
    *_, store = world
    result = run(env, "users", "add", str(ADA), str(ADA_P))
    assert result.exit_code == 0, result.output
    assert "Zendesk user 100 (Ada <ada@example.com>, agent) -> Teamwork person 7 " \
           "(Ada Agent)" in result.output
    assert store.mappings() == {ADA: ADA_P} and remapped(store) == {str(ADA)}


def test_users_add_refuses_an_end_user_and_a_person_off_the_project(env, world):
    *_, store = world
    result = run(env, "users", "add", str(CUSTOMER), str(OUTSIDER_P))
    assert result.exit_code == 1
    assert "nothing was changed" in result.output
    assert "Zendesk user 102 (Carl Customer) is an end-user, not an agent or admin" \
        in result.output
    assert "Teamwork person 9 (Olga Outsider) is not on project 1" in result.output
    assert store.mappings() == {} and remapped(store) == set()


def test_users_add_names_ids_that_do_not_exist(env, world):
    *_, store = world
    result = run(env, "users", "add", "555", "666")
    assert result.exit_code == 1
    assert "Zendesk user 555 does not exist" in result.output
    assert "Teamwork person 666 does not exist" in result.output
    assert store.mappings() == {}


def test_users_add_no_verify_makes_no_request(env, world, requests_mock):
    *_, store = world
    result = run(env, "users", "add", "555", "666", "--no-verify")
    assert result.exit_code == 0 and "[not verified]" in result.output
    assert requests_mock.call_count == 0 and store.mappings() == {555: 666}


def test_users_add_rejects_a_bad_id_as_usage_error(env, world):
    result = run(env, "users", "add", "abc", "7")
    assert result.exit_code == 2 and "abc" in result.output


def test_users_list_with_names_and_json(env, world):
    *_, store = world
    store.set_mappings({ADA: ADA_P, 555: 666})
    result = run(env, "users", "list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["ZENDESK", "USER", "NAME", "E-MAIL", "TEAMWORK", "PERSON",
                                "NAME"]
    assert lines[1].split() == ["100", "Ada", "ada@example.com", "7", "Ada", "Agent"]
    assert lines[2].split() == ["555", "-", "-", "666", "-"]
    data = json.loads(run(env, "users", "list", "--json").stdout)
    assert data[0] == {"zendesk_user_id": 100, "zendesk_name": "Ada",
                       "zendesk_email": "ada@example.com", "teamwork_person_id": 7,
                       "teamwork_name": "Ada Agent"}


def test_users_list_without_services_shows_ids(env, world, requests_mock):
    *_, store = world
    store.set_mappings({ADA: ADA_P})
    requests_mock.get(ZD + "/api/v2/users/show_many.json", status_code=503)
    result = run(env, "users", "list")
    assert result.exit_code == 0
    assert "no names: zendesk" in result.stderr and "100" in result.stdout
    no_config = {k: v for k, v in env.items() if not k.startswith("TEAMWORK")}
    result = run(no_config, "users", "list", "--no-names")
    assert result.exit_code == 0 and "1 mapping(s)" in result.stdout


def test_users_remove(env, world):
    *_, store = world
    store.set_mappings({ADA: ADA_P})
    assert run(env, "users", "remove", str(ADA)).exit_code == 0
    assert store.mappings() == {}
    result = run(env, "users", "remove", str(ADA))
    assert result.exit_code == 1 and "has no mapping" in result.output


def test_users_import_applies_every_row(env, world, tmp_path):
    *_, store = world
    store.set_mappings({BOB: BOB_P})
    seed(store, unlist_remapped=True)
    path = tmp_path / "agents.csv"
    path.write_text("\ufeffzendesk_user_id,teamwork_person_id,name\n100,7,Ada\n\n101,8,Bob\n")
    result = run(env, "users", "import", str(path))
    assert result.exit_code == 0, result.output
    assert "imported 2 mapping(s)" in result.output and "1 new, 0 changed, 1 unchanged" \
        in result.output
    assert store.mappings() == {ADA: ADA_P, BOB: BOB_P}
    assert remapped(store) == {str(ADA)}  # only what changed is re-planned


def test_users_import_lists_every_bad_row_and_applies_nothing(env, world, tmp_path,
                                                              requests_mock):
    *_, store = world
    path = tmp_path / "agents.csv"
    path.write_text("zendesk_user_id,teamwork_person_id\n100,7\nx,8\n101\n100,8\n102,-3\n")
    result = run(env, "users", "import", str(path))
    assert result.exit_code == 2
    assert "4 problem(s); nothing was imported" in result.output
    assert "line 3: zendesk_user_id 'x' is not a positive integer" in result.output
    assert "line 4: expected 2 columns, got 1" in result.output
    assert "line 5: Zendesk user 100 is already mapped on line 2" in result.output
    assert "line 6: teamwork_person_id '-3' is not a positive integer" in result.output
    assert store.mappings() == {} and requests_mock.call_count == 0


def test_users_import_verifies_every_row_before_storing(env, world, tmp_path):
    *_, store = world
    path = tmp_path / "agents.csv"
    path.write_text("zendesk_user_id,teamwork_person_id\n100,7\n102,8\n103,9\n")
    result = run(env, "users", "import", str(path))
    assert result.exit_code == 1
    assert "Zendesk user 102 (Carl Customer) is an end-user" in result.output
    assert "Teamwork person 9 (Olga Outsider) is not on project 1" in result.output
    assert store.mappings() == {}


def test_users_import_rejects_a_file_without_the_header(env, world, tmp_path):
    *_, store = world
    path = tmp_path / "agents.csv"
    path.write_text("100,7\n")
    result = run(env, "users", "import", str(path))
    assert result.exit_code == 2 and "the header must name the columns" in result.output
    assert store.mappings() == {}


def test_users_import_dry_run_stores_nothing(env, world, tmp_path):
    *_, store = world
    path = tmp_path / "agents.csv"
    path.write_text("zendesk_user_id,teamwork_person_id\n100,7\n")
    result = run(env, "users", "import", "--dry-run", str(path))
    assert result.exit_code == 0 and "dry run: nothing stored" in result.output
    assert store.mappings() == {}


def test_users_export_round_trips_through_import(env, world, tmp_path):
    *_, store = world
    store.set_mappings({BOB: BOB_P, ADA: ADA_P})
    result = run(env, "users", "export")
    assert result.stdout == "zendesk_user_id,teamwork_person_id\n100,7\n101,8\n"
    path = tmp_path / "out.csv"
    result = run(env, "users", "export", str(path))
    assert result.exit_code == 0 and "exported 2 mapping(s)" in result.stderr
    store.r.delete(store.key("users"))
    assert run(env, "users", "import", "--no-verify", str(path)).exit_code == 0
    assert store.mappings() == {ADA: ADA_P, BOB: BOB_P}


def test_users_auto_proposes_then_applies_new_pairs(env, world):
    _, _, directory, store = world
    directory.user(104, "Dee", "dee@example.com")
    directory.person(10, "Dee", "One", "DEE@example.com")
    directory.person(11, "Dee", "Two", "dee@example.com")  # ambiguous: no guess
    store.set_mappings({ADA: 99})  # by hand: kept
    seed(store, unlist_remapped=True)
    result = run(env, "users", "auto")
    assert result.exit_code == 0, result.output
    out = result.stdout
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line[:1].isdigit()}
    assert rows["101"] == ["101", "Bob", "Bob@Example.com", "8", "Bob", "Agent", "new"]
    assert "kept (mapped to 99)" in out
    assert "unmatched agents (2)" in out
    assert "no Teamwork person on the project has this e-mail" in out  # Cy: not a member
    assert "2 Teamwork people share this e-mail" in out
    assert "Carl" not in out  # end-users are no agents
    assert store.mappings() == {ADA: 99}
    result = run(env, "users", "auto", "--apply", "--json")
    data = json.loads(result.stdout)
    assert data["applied"] == 1
    assert {p["zendesk_user_id"]: p["status"] for p in data["proposals"]} == {
        ADA: "kept", BOB: "new", CY: "unmatched", 104: "unmatched"}
    assert store.mappings() == {ADA: 99, BOB: BOB_P} and remapped(store) == {str(BOB)}


def test_users_auto_follows_agent_pages(env, world):
    _, _, directory, store = world
    for uid in range(200, 330):
        directory.user(uid, f"A{uid}", f"a{uid}@example.com")
        directory.person(uid, "A", str(uid), f"a{uid}@example.com")
    result = run(env, "users", "auto", "--apply")
    assert result.exit_code == 0
    assert len(store.mappings()) == 132  # Ada, Bob and 130 more across two pages


# -- tickets ------------------------------------------------------------------------------


def synced(env, world, **tickets):
    zd, _tw, _, store = world
    store.set_mappings({ADA: ADA_P, BOB: BOB_P})
    for tid, fields in tickets.items():
        zd.put(int(tid[1:]), **fields)
    result = run(env, "sync", "--once")
    assert result.exit_code == 0, result.output


def test_tickets_list_filters_and_json(env, world):
    synced(env, world, t1={"subject": "a", "assignee_id": ADA, "status": "open"},
           t2={"subject": "b", "assignee_id": BOB, "status": "solved"},
           t3={"subject": "c", "assignee_id": ADA, "status": "closed"})
    result = run(env, "tickets", "list")
    assert result.exit_code == 0
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0] == ["TICKET", "STATE", "TASK", "ASSIGNEE", "RETRY", "TITLE"]
    assert rows[1][:5] == ["1", "open", "500", "person", "7"]
    assert rows[3][:3] == ["3", "closed", "-"]
    result = run(env, "tickets", "list", "--state", "solved", "--json")
    assert [(r["ticket_id"], r["task_id"], r["completed"]) for r in json.loads(result.stdout)] \
        == [(2, 501, True)]
    assert run(env, "tickets", "list", "--state", "nonsense").exit_code == 2


def test_tickets_show_record_live_task_drift_and_history(env, world):
    synced(env, world, t1={"subject": "Printer", "assignee_id": ADA, "status": "open"})
    _, tw, _, _ = world
    tw.tasks[500]["name"] = "renamed by hand"
    result = run(env, "tickets", "show", "1")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "ticket 1: open, subject 'Printer'" in out
    assert "task 500: '[ZD#1] Printer', person 7, open" in out
    assert "task 500: 'renamed by hand', person 7, status new, task list 3" in out
    assert "title: titled 'renamed by hand'; should be '[ZD#1] Printer'" in out
    assert "next pass: nothing to do" in out
    assert "task 500: create '[ZD#1] Printer' for person 7" in out
    data = json.loads(run(env, "tickets", "show", "1", "--json").stdout)
    assert data["task"]["name"] == "renamed by hand"
    assert [d["kind"] for d in data["drift"]] == ["title"]
    assert data["record"]["task_id"] == 500 and data["history"]


def test_tickets_show_unknown_ticket(env, world):
    result = run(env, "tickets", "show", "42")
    assert result.exit_code == 1 and "ticket 42 is not known to zdsync" in result.output


def test_tickets_show_when_teamwork_fails(env, world, requests_mock):
    synced(env, world, t1={"subject": "a", "assignee_id": ADA})
    requests_mock.get(V3 + "/tasks/500.json", status_code=503)
    result = run(env, "tickets", "show", "1")
    assert result.exit_code == 1
    assert "could not read it: teamwork" in result.output and "history" in result.output


def test_tickets_resync_reads_zendesk_now(env, world):
    synced(env, world, t1={"subject": "a", "assignee_id": ADA, "status": "open"})
    zd, tw, _, _store = world
    zd.put(1, subject="b", assignee_id=BOB)
    exports = zd.export_calls
    result = run(env, "tickets", "resync", "1")
    assert result.exit_code == 0, result.output
    assert "retitle to '[ZD#1] b'" in result.output and "reassign to person 8" in result.output
    assert "ticket 1 (open): task 500: '[ZD#1] b', person 8, open" in result.output
    assert tw.tasks[500]["name"] == "[ZD#1] b" and zd.export_calls == exports


def test_tickets_resync_unknown_ticket_and_lock(env, world):
    zd, tw, _, store = world
    result = run(env, "tickets", "resync", "42")
    assert result.exit_code == 1 and "not found in Zendesk" in result.output
    zd.put(5, subject="x", assignee_id=ADA)
    lock = store.lock()
    assert lock.acquire()
    try:
        result = run(env, "tickets", "resync", "5")
    finally:
        lock.release()
    assert result.exit_code == 75 and "holds the lock" in result.output
    assert tw.writes == [] and store.record(5) is None


def test_tickets_unlink_leaves_teamwork_alone(env, world):
    synced(env, world, t1={"subject": "a", "assignee_id": ADA})
    _, tw, _, store = world
    writes = list(tw.writes)
    result = run(env, "tickets", "unlink", "1")
    assert result.exit_code == 0 and "task 500 is left in Teamwork untouched" in result.output
    assert store.record(1) is None and tw.writes == writes and tw.live()
    result = run(env, "tickets", "unlink", "1")
    assert result.exit_code == 1 and "not known" in result.output


# -- cursor -------------------------------------------------------------------------------


def test_cursor_show(env, world):
    result = run(env, "cursor", "show")
    assert result.exit_code == 0 and "none yet" in result.output
    synced(env, world, t1={"subject": "a", "assignee_id": ADA})
    result = run(env, "cursor", "show")
    assert "behind now" in result.output and "saved: the next pass resumes" in result.output
    assert "last pass:" in result.output and "success" in result.output
    data = json.loads(run(env, "cursor", "show", "--json").stdout)
    assert data["cursor"] and 0 <= data["behind_seconds"] < 300


def test_cursor_reset_asks_then_restarts_the_export_at_the_time(env, world, requests_mock):
    synced(env, world, t1={"subject": "a", "assignee_id": ADA})
    _, _, _, store = world
    before = store.cursor()
    result = run(env, "cursor", "reset", "--start-time", "2024-05-01T00:00:00Z", input="n\n")
    assert result.exit_code == 1 and "cursor left unchanged" in result.output
    assert store.cursor() == before
    result = run(env, "cursor", "reset", "--start-time", "2024-05-01T00:00:00Z", input="y\n")
    assert result.exit_code == 0, result.output
    assert "fresh export at 2024-05-01 00:00:00 UTC" in result.output
    assert store.cursor().cursor is None and store.cursor().position == 1714521600
    requests_mock.reset_mock()
    assert run(env, "sync", "--once").exit_code == 0
    first = next(r for r in requests_mock.request_history if "incremental" in r.path)
    assert first.qs["start_time"] == ["1714521600"] and "cursor" not in first.qs


def test_cursor_reset_refuses_bad_times_and_a_held_lock(env, world):
    _, _, _, store = world
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
def queued(world):
    *_, store = world
    seed(store, failed={5: "teamwork: PUT /tasks/500/complete.json: 500"})
    seed(store, failed={6: "zendesk: timeout"})
    seed(store, failed={6: "zendesk: timeout"})
    return store


def test_retries_list(env, queued):
    result = run(env, "retries", "list")
    assert result.exit_code == 0
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[1][:5] == ["5", "1", "in", "29", "s"] or rows[1][:4] == ["5", "1", "in", "30"]
    assert "teamwork: PUT /tasks/500/complete.json: 500" in result.stdout
    assert "2 ticket(s) waiting" in result.stdout
    data = json.loads(run(env, "retries", "list", "--json").stdout)
    assert {(e["ticket_id"], e["attempts"]) for e in data} == {(5, 1), (6, 2)}


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


def test_check_all_good(env, world):
    *_, store = world
    store.set_mappings({ADA: ADA_P})
    result = run(env, "check")
    assert result.exit_code == 0, result.output
    assert "✓ configuration" in result.output
    assert "✓ Redis: Redis at localhost:" in result.output
    assert "✓ Zendesk credentials: Ops Admin <ops@zd.test>, role admin" in result.output
    assert "✓ Teamwork credentials: Sync Bot" in result.output
    assert "✓ Teamwork project: 'Support' (1)" in result.output
    assert "✓ task list: 'Zendesk' (3)" in result.output
    assert "all checks passed" in result.output


def test_check_reports_each_failure_with_a_fix(env, world, requests_mock):
    _, _, directory, _ = world
    directory.zendesk_me["role"] = "agent"
    requests_mock.get(V3 + "/me.json", status_code=401, text="")
    result = run(env, "check")
    assert result.exit_code == 1
    out = result.output
    assert "✗ Zendesk credentials: Ops Admin <ops@zd.test>, role agent: the ticket export " \
           "needs an admin" in out
    assert "✗ Teamwork credentials: Teamwork refused the credentials (401)" in out
    assert "fix: check the token of the integration user" in out
    assert "- Teamwork project: skipped" in out
    assert "! agent mappings: none" in out


def test_check_never_hangs_on_a_failing_service(env, world, requests_mock):
    requests_mock.get(ZD + "/api/v2/users/me.json", status_code=503)
    requests_mock.get(V3 + "/me.json", status_code=429, headers={"x-ratelimit-reset": "60"})
    started = time.monotonic()
    result = run(env, "check", "--json")
    assert time.monotonic() - started < 5
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    states = {c["name"]: c["state"] for c in data["checks"]}
    assert states["Zendesk credentials"] == "fail" and states["Teamwork credentials"] == "fail"
    zendesk_calls = [r for r in requests_mock.request_history if r.path == "/api/v2/users/me.json"]
    assert len(zendesk_calls) == 1  # one attempt, no retries
    assert "rate limited for 60 s" in json.dumps(data)


def test_check_bad_configuration_and_redis_down(env, world):
    bad = {**env, "TEAMWORK_PROJECT_ID": "", "REDIS_PORT": "1"}
    result = run(bad, "check")
    assert result.exit_code == 2  # a configuration error, as every command exits
    assert "✗ configuration: teamwork.project_id is required" in result.output
    assert "✗ Redis: Redis at localhost:1: no answer" in result.output
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


def test_check_a_missing_project_and_a_tasklist_to_create(env, world, requests_mock):
    requests_mock.get(V3 + "/projects/1.json", status_code=404)
    result = run(env, "check")
    assert "✗ Teamwork project: project 1 does not exist" in result.output
    assert "- task list: skipped" in result.output
    requests_mock.get(V3 + "/projects/1.json", json={"project": {"id": 1, "name": "S"}})
    requests_mock.get(V3 + "/projects/1/tasklists.json",
                      json={"tasklists": [], "meta": {"page": {"hasMore": False}}})
    result = run({k: v for k, v in env.items() if k != "TEAMWORK_TASKLIST_ID"}, "check")
    assert "✓ task list: no list named 'Zendesk' yet: the first pass creates it" \
        in result.output


def test_sync_dry_run_prints_the_plan_and_totals(env, world):
    zd, tw, _, store = world
    store.set_mappings({ADA: ADA_P})
    zd.put(1, subject="a", assignee_id=ADA)
    zd.put(2, subject="b", assignee_id=None, status="closed")
    result = run(env, "sync", "--once", "--dry-run")
    assert result.exit_code == 0
    assert "ticket 1: create '[ZD#1] a' for person 7" in result.output
    assert "dry run: 1 ticket(s) would change; tickets seen 2; tasks created 1" in result.output
    assert tw.writes == []


# -- audit --------------------------------------------------------------------------------


def drifted(env, world):
    synced(env, world, t1={"subject": "one", "assignee_id": ADA, "status": "open"},
           t2={"subject": "two", "assignee_id": ADA, "status": "open"},
           t3={"subject": "three", "assignee_id": BOB, "status": "open"},
           t4={"subject": "four", "assignee_id": BOB, "status": "solved"},
           t5={"subject": "five", "assignee_id": BOB, "status": "open"})
    _, tw, _, store = world
    tw.tasks[500]["status"] = "deleted"  # deleted by hand
    tw.tasks[501]["status"] = "completed"  # completed by hand
    tw.tasks[502]["assignees"] = [{"id": ADA_P, "type": "users"}]  # reassigned by hand
    tw.tasks[503]["status"] = "reopened"  # reopened although solved
    tw.tasks[504]["name"] = "typo"
    return tw, store


def test_audit_reports_drift(env, world):
    tw, _store = drifted(env, world)
    writes = list(tw.writes)
    result = run(env, "audit")
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert "ticket 1 (task 500):\n  gone: task 500 is deleted or missing in Teamwork" in out
    assert "completed: task 501 is completed; the ticket is open" in out
    assert "assignee: assigned to person 7; should be person 8" in out
    assert "reopened: task 503 is open; the ticket is solved" in out
    assert "title: titled 'typo'; should be '[ZD#5] five'" in out
    assert "5 ticket(s) audited, 5 task(s) looked up: 5 with drift" in out
    assert tw.writes == writes  # an audit without --repair writes nothing
    assert [sorted(c) for c in tw.by_ids_calls] == [[500, 501, 502, 503, 504]]
    data = json.loads(run(env, "audit", "--json").stdout)
    assert {f["ticket_id"]: [d["kind"] for d in f["drift"]] for f in data["drift"]} == {
        1: ["gone"], 2: ["completed"], 3: ["assignee"], 4: ["reopened"], 5: ["title"]}


def test_audit_repair_goes_through_the_reconciler(env, world):
    tw, store = drifted(env, world)
    result = run(env, "audit", "--repair")
    assert result.exit_code == 0, result.output
    assert "5 with drift; 5 repaired, 0 failed" in result.output
    [new] = [t for t in tw.live() if t["name"] == "[ZD#1] one"]
    assert new["id"] != 500 and store.record(1).applied.task_id == new["id"]
    assert tw.tasks[501]["status"] == "reopened"
    assert [a["id"] for a in tw.tasks[502]["assignees"]] == [BOB_P]
    assert tw.tasks[503]["status"] == "completed"
    assert tw.tasks[504]["name"] == "[ZD#5] five"
    assert any(h["what"].startswith("audit: task 500 is deleted") for h in store.history(1))
    result = run(env, "audit")
    assert result.exit_code == 0 and "0 with drift" in result.output


def test_audit_reads_in_batches_and_finds_missing_tasks(env, world):
    _, tw, _, store = world
    store.set_mappings({ADA: ADA_P})
    for tid in range(1, 251):
        ticket = Ticket(tid, "open", f"s{tid}", ADA, None, (), "2026-01-01T00:00:00Z", tid)
        seed(store, [Record(ticket, Applied(10_000 + tid, f"[ZD#{tid}] s{tid}", ADA_P))])
    seed(store, [Record(Ticket(999, "open", "x", ADA))])  # needs a task, has none
    result = run(env, "audit", "--json")
    assert result.exit_code == 1
    assert [len(c) for c in tw.by_ids_calls] == [100, 100, 50]
    data = json.loads(result.stdout)
    assert data["audited"] == 251 and data["tasks_checked"] == 250
    kinds = {f["ticket_id"]: f["drift"][0]["kind"] for f in data["drift"]}
    assert len(kinds) == 251 and kinds[999] == "no_task" and kinds[1] == "gone"


def test_audit_repair_needs_the_lock(env, world):
    tw, store = drifted(env, world)
    lock = store.lock()
    assert lock.acquire()
    try:
        result = run(env, "audit", "--repair")
    finally:
        lock.release()
    assert result.exit_code == 75
    assert tw.tasks[501]["status"] == "completed"  # untouched


def test_check_finds_the_sentinel_master(env, world, sentinel_cluster):
    sentinel = {**env, "REDIS_USE_SENTINEL": "true", "REDIS_SENTINEL_HOSTS": sentinel_cluster.hosts}
    result = run(sentinel, "check")
    assert f"✓ Redis: master 'mymaster' at 127.0.0.1:{sentinel_cluster.master.port} (found by " \
           "Sentinel) answers" in result.output
    result = run({**sentinel, "REDIS_SENTINEL_MASTER": "nope"}, "check")
    assert result.exit_code == 1 and "✗ Redis: no Sentinel knows a master" in result.output


def test_audit_repair_adopts_the_task_of_a_lost_create(env, world):
    zd, tw, _, store = world
    store.set_mappings({ADA: ADA_P})
    zd.put(1, subject="a", assignee_id=ADA, status="open")
    tw.lose_next_create = True
    assert run(env, "sync", "--once").exit_code == 1
    store.drop_retries([1])  # nothing would look at it again until the ticket changes
    result = run(env, "audit", "--repair")
    assert result.exit_code == 0, result.output
    assert "no_task: the ticket has no task (a create was attempted" in result.output
    assert len(tw.tasks) == 1  # found and adopted, not created twice
    record = store.record(1)
    assert record.applied.task_id == 500 and record.in_flight is None


def test_audit_repair_stops_when_the_lock_is_lost(env, world, monkeypatch):
    from zdsync.lease import SyncLock

    tw, _ = drifted(env, world)
    writes_before = len(tw.writes)
    monkeypatch.setattr(SyncLock, "held", property(lambda self: False))
    result = run(env, "audit", "--repair")
    assert result.exit_code == 1 and "lost the sync lock" in result.output
    assert len(tw.writes) == writes_before  # nothing written beside another holder


def test_audit_repair_keeps_a_retry_that_waits_for_a_fresh_read(env, world):
    _, store = drifted(env, world)
    seed(store, failed={2: "malformed: unreadable in the export"})
    result = run(env, "audit", "--repair")
    assert result.exit_code == 0, result.output
    assert [(r.ticket_id, r.error) for r in store.retries()] == [
        (2, "malformed: unreadable in the export")]


def test_check_survives_a_service_that_answers_html(env, world, requests_mock):
    requests_mock.get(ZD + "/api/v2/users/me.json", text="<html>Sign in</html>")
    result = run(env, "check")
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "✗ Zendesk credentials" in result.output


def test_users_remove_of_an_unknown_id_writes_nothing(env, world):
    _, _, _, store = world
    seed(store, unlist_remapped=True)
    result = run(env, "users", "remove", "424242")
    assert result.exit_code == 1 and store.remapped() == []


def test_sync_shows_progress_on_a_terminal_only(env, world, monkeypatch):
    zd, *_ = world
    for tid in range(1, 30):
        zd.put(tid, subject=f"t{tid}", assignee_id=ADA, status="open")
    quiet = run(env, "sync")
    assert quiet.exit_code == 0 and "/min, queued" not in quiet.stderr  # not a terminal
    monkeypatch.setattr("zdsync.cli._stderr_is_terminal", lambda: True)
    monkeypatch.setattr("zdsync.cli.Progress.REFRESH_SECONDS", 0)
    for tid in range(30, 60):
        zd.put(tid, subject=f"t{tid}", assignee_id=ADA, status="open")
    shown = run(env, "sync")
    assert shown.exit_code == 0
    assert " tickets" in shown.stderr and "pages 1, Teamwork" in shown.stderr
    assert "/min, queued" in shown.stderr and "ETA" in shown.stderr
    assert "tickets seen 30" in shown.stdout  # the summary line is unchanged
    for tid in range(60, 70):
        zd.put(tid, subject=f"t{tid}", assignee_id=ADA, status="open")
    assert "/min, queued" not in run(env, "sync", "--quiet").stderr
