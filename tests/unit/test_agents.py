"""CSV parsing, verification and e-mail matching of agent mappings (pure)."""

from __future__ import annotations

import pytest

from zdsync.agents import CsvError, match_by_email, parse_csv, render_csv, verify
from zdsync.people import Person, User


def test_parse_csv_accepts_bom_extra_columns_blanks_and_any_column_order():
    text = "\ufeff Teamwork_Person_ID , name, zendesk_user_id\n\n7,Ada, 100 \n8,Bob,101\n"
    assert parse_csv(text) == {100: 7, 101: 8}


@pytest.mark.parametrize(("text", "problem"), [
    ("", "the file is empty"),
    ("\n \n", "the file is empty"),
    ("zendesk_user_id\n1\n", "missing teamwork_person_id"),
    ("zendesk_user_id,teamwork_person_id\n", "no mappings"),
    ("zendesk_user_id,teamwork_person_id\n0,7\n", "line 2: zendesk_user_id '0' is not a "
                                                  "positive integer"),
    ("zendesk_user_id,teamwork_person_id\n1.5,7e1\n", "zendesk_user_id '1.5' is not a positive "
                                                      "integer; teamwork_person_id '7e1'"),
])
def test_parse_csv_rejects(text, problem):
    with pytest.raises(CsvError) as info:
        parse_csv(text)
    assert problem in str(info.value)


def test_parse_csv_reports_every_bad_row_at_once():
    with pytest.raises(CsvError) as info:
        parse_csv("zendesk_user_id,teamwork_person_id\na,1\n2,b\n3,3\n3,4\n")
    assert [p.split(":")[0] for p in info.value.problems] == ["line 2", "line 3", "line 5"]


def test_render_csv_is_sorted_and_parses_back():
    text = render_csv({5: 1, 2: 9})
    assert text == "zendesk_user_id,teamwork_person_id\n2,9\n5,1\n"
    assert parse_csv(text) == {2: 9, 5: 1}


def test_verify_lists_every_problem():
    users = {1: User(1, "Ann", role="agent", active=False), 2: User(2, "Ed", role="end-user"),
             3: User(3, "Al", role="admin")}
    members = {10: Person(10)}
    people = {10: Person(10), 11: Person(11, "Olga", "O")}
    problems = verify({1: 10, 2: 11, 3: 12, 4: 10}, users, members, people, 5)
    assert problems == [
        "Zendesk user 1 (Ann) is deactivated",
        "Zendesk user 2 (Ed) is an end-user, not an agent or admin: only agents are assigned "
        "tickets",
        "Teamwork person 11 (Olga O) is not on project 5: add them to the project first",
        "Teamwork person 12 does not exist",
        "Zendesk user 4 does not exist",
    ]
    assert verify({3: 10}, users, members, people, 5) == []


def test_match_by_email():
    agents = [User.from_api(a) for a in [{"id": 4, "name": "D", "email": "", "role": "agent"},
              {"id": 3, "name": "C", "email": " Cy@X.org ", "role": "admin"},
              {"id": 1, "name": "A", "email": "a@x.org", "role": "agent"},
              {"id": 2, "name": "B", "email": "b@x.org", "role": "agent"},
              {"id": 5, "name": "E", "email": "e@x.org", "role": "end-user"}]]
    people = [Person.from_api(p) for p in [{"id": 10, "firstName": "A", "email": "A@x.org"},
              {"id": 11, "firstName": "B", "email": "b@x.org"},
              {"id": 12, "firstName": "C", "email": "cy@x.org"},
              {"id": 13, "email": None}]]
    result = match_by_email(agents, people, {1: 10, 2: 99})
    assert [(p.zendesk_user_id, p.status, p.person_id) for p in result] == [
        (1, "same", 10), (2, "kept", 11), (3, "new", 12), (4, "unmatched", None)]
    assert result[1].mapped_to == 99 and result[3].reason == "no e-mail address"
    assert result[2].person_name == "C"


def test_unicode_digits_are_a_bad_row_not_a_crash():
    with pytest.raises(CsvError) as info:
        parse_csv("zendesk_user_id,teamwork_person_id\n1\u00b2,5\n7,8\n")
    assert "line 2" in str(info.value)


def test_auto_leaves_deactivated_agents_unmatched():
    proposals = match_by_email(
        [User(1, role="agent", email="dora@example.com", active=False)],
        [Person(9, email="dora@example.com")], {})
    assert [(p.status, p.reason) for p in proposals] == [("unmatched", "deactivated in Zendesk")]
