"""Table-driven tests of routes: the [[route]] tables and their validation, matching,
what a route makes a task show (priority, due date, tags, description) and the target."""

from __future__ import annotations

import pytest

from zdsync.config import load
from zdsync.defaults import MAX_DESCRIPTION_CHARS
from zdsync.errors import ConfigError
from zdsync.routes import (
    Match,
    Names,
    Route,
    Routing,
    Target,
    parse_routes,
    render_description,
    target,
)
from zdsync.rules import linked_ticket_id, task_due_date, task_priority, task_tags
from zdsync.tickets import Ticket

ENV = {"ZENDESK_SUBDOMAIN": "acme", "ZENDESK_EMAIL": "a@b.c", "ZENDESK_API_TOKEN": "z",
       "TEAMWORK_DOMAIN": "acme", "TEAMWORK_API_TOKEN": "t", "TEAMWORK_PROJECT_ID": "100",
       "TEAMWORK_TASKLIST_ID": "200"}
URL = "https://acme.zendesk.com"


def settings_from(tmp_path, toml: str, **env: str):
    path = tmp_path / "zdsync.toml"
    path.write_text(toml)
    return load(str(path), {}, {**ENV, **env})


def problems_of(tmp_path, toml: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        settings_from(tmp_path, toml)
    return info.value.problems


def ticket(**kw) -> Ticket:
    return Ticket(**{"id": 42, "status": "open", "subject": "Refund", **kw})


# -- configuration ---------------------------------------------------------------------


def test_routes_come_from_the_file_with_their_defaults(tmp_path):
    s = settings_from(tmp_path, """
[sync]
title_template = "#{id} {subject}"
on_unmatch = "Complete"

[[route]]
name = "billing"
match.tags_any = ["Billing", "invoice"]
tasklist_name = "Billing"
priority = true

[[route]]
name = "eu"
project_id = 300
match.brand_id = [7, 8]
match.via = "email"

[[route]]
name = "rest"
""")
    billing, eu, rest = s.routes
    assert billing == Route("billing", Match(tags_any=frozenset({"billing", "invoice"})),
                            project_id=100, tasklist_name="Billing",
                            title_template="#{id} {subject}", priority=True)
    # another project and no list: the list named like [teamwork]'s, in that project
    assert (eu.project_id, eu.tasklist_id, eu.tasklist_name) == (300, None, "Zendesk")
    assert eu.match == Match(brand_id=frozenset({7, 8}), via=frozenset({"email"}))
    assert (rest.project_id, rest.tasklist_id, rest.match) == (100, 200, Match())
    routing = s.routing()
    assert routing.explicit and routing.on_unmatch == "complete"


def test_without_routes_the_implicit_route_is_teamwork_and_sync_settings(tmp_path):
    s = settings_from(tmp_path, "[sync]\ntitle_template = \"#{id} {subject}\"\n")
    routing = s.routing()
    assert not routing.explicit and s.routes == ()
    [implicit] = routing.routes
    assert (implicit.project_id, implicit.tasklist_id, implicit.title_template) == (
        100, 200, "#{id} {subject}")
    assert implicit.match == Match()  # every ticket


@pytest.mark.parametrize(("table", "expected"), [
    ('match.tags_any = "x"\nname = "a"', None),  # a single string is a list of one
    ('name = ""', "route[1] (no name): name is required"),
    ('name = "two words"', "route[1] (two words): name is required"),
    ('name = "a"\nbogus = 1', "route[1] (a): bogus is not a route setting"),
    ('name = "a"\nmatch.colour = "red"', "route[1] (a): match.colour is not a condition"),
    ('name = "a"\nmatch.tags_any = []', "route[1] (a): match.tags_any must be a string or a "
                                        "non-empty list"),
    ('name = "a"\nmatch.group_id = "12"', "route[1] (a): match.group_id must be an id"),
    ('name = "a"\nmatch.organization_id = [1, true]', "match.organization_id must be an id"),
    ('name = "a"\nproject_id = 0', "route[1] (a): project_id must be an id"),
    ('name = "a"\ntasklist_id = 5\ntasklist_name = "L"', "tasklist_id and tasklist_name are "
                                                         "both set"),
    ('name = "a"\npriority = "yes"', "route[1] (a): priority must be true or false"),
    ('name = "a"\ntitle_template = "{subject}"', "route[1] (a): title_template is invalid "
                                                 "(it must contain {id})"),
    ('name = "a"\ndescription_template = "{nope}"', "route[1] (a): description_template is "
                                                    "invalid (unknown field 'nope')"),
    ('name = "a"\ndescription_template = "{"', "route[1] (a): description_template is "
                                               "invalid"),
])
def test_each_route_problem_names_the_route_and_the_field(tmp_path, table, expected):
    toml = f"[[route]]\n{table}\n"
    if expected is None:
        assert settings_from(tmp_path, toml).routes[0].match.tags_any == {"x"}
        return
    problems = problems_of(tmp_path, toml)
    assert any(expected in p for p in problems), problems
    assert all(str(tmp_path) in p for p in problems)  # which file


def test_every_problem_of_every_route_is_reported_at_once_with_other_settings(tmp_path):
    problems = problems_of(tmp_path, """
[sync]
on_unmatch = "archive"

[[route]]
name = "a"
project_id = -1

[[route]]
name = "a"
match.via = 5

[[route]]
tags = 1
""")
    wanted = ["sync.on_unmatch", "route[1] (a): project_id", "route[2] (a): name is used by "
              "an earlier route", "route[2] (a): match.via", "route[3] (no name): name",
              "route[3] (no name): tags"]
    for text in wanted:
        assert any(text in p for p in problems), (text, problems)


def test_routes_are_not_a_section_of_settings_and_need_tables(tmp_path):
    problems = problems_of(tmp_path, 'route = "billing"\n')
    assert any("[[route]] tables" in p for p in problems), problems
    routes, problems = parse_routes([1], project_id=1, tasklist_id=None, tasklist_name="Z",
                                    title_template="[ZD#{id}] {subject}")
    assert routes == () and problems == ["route[1] must be a [[route]] table"]


# -- matching --------------------------------------------------------------------------


@pytest.mark.parametrize(("conditions", "fields", "matches"), [
    ({}, {}, True),
    ({"tags_any": {"billing", "invoice"}}, {"tags": ("invoice",)}, True),
    ({"tags_any": {"billing"}}, {"tags": ("vip",)}, False),
    ({"tags_any": {"billing"}}, {"tags": ("BILLING",)}, True),  # any case
    ({"tags_all": {"a", "b"}}, {"tags": ("a", "b", "c")}, True),
    ({"tags_all": {"a", "b"}}, {"tags": ("a",)}, False),
    ({"tags_none": {"spam"}}, {"tags": ("a",)}, True),
    ({"tags_none": {"spam"}}, {"tags": ("spam",)}, False),
    ({"group_id": {5, 6}}, {"group_id": 6}, True),
    ({"group_id": {5}}, {"group_id": None}, False),  # no group never matches an id
    ({"brand_id": {1}}, {"brand_id": 2}, False),
    ({"ticket_form_id": {9}}, {"ticket_form_id": 9}, True),
    ({"organization_id": {3}}, {"organization_id": 3}, True),
    ({"via": {"email"}}, {"via": "email"}, True),
    ({"via": {"email"}}, {"via": "web"}, False),
    ({"priority": {"urgent", "high"}}, {"priority": "high"}, True),
    ({"priority": {"urgent"}}, {"priority": None}, False),
    ({"type": {"task"}}, {"type": "task"}, True),
    # every condition given must hold
    ({"tags_any": {"billing"}, "group_id": {5}}, {"tags": ("billing",), "group_id": 4}, False),
    ({"tags_any": {"billing"}, "group_id": {5}}, {"tags": ("billing",), "group_id": 5}, True),
])
def test_a_match_holds_when_every_condition_given_holds(conditions, fields, matches):
    match = Match(**{k: frozenset(v) for k, v in conditions.items()})
    assert match.matches(ticket(**fields)) is matches


def test_the_first_route_that_matches_wins():
    routing = Routing((Route("vip", Match(tags_any=frozenset({"vip"}))),
                       Route("billing", Match(tags_any=frozenset({"billing"}))),
                       Route("all")), explicit=True)
    assert routing.route_for(ticket(tags=("billing", "vip"))).name == "vip"
    assert routing.route_for(ticket(tags=("billing",))).name == "billing"
    assert routing.route_for(ticket()).name == "all"
    assert Routing(routing.routes[:2], explicit=True).route_for(ticket()) is None


# -- what the task shows ---------------------------------------------------------------


@pytest.mark.parametrize(("priority", "expected"), [
    ("urgent", "high"), ("high", "high"), ("normal", "medium"), ("low", "low"),
    (None, "none"), ("weird", "none"),
])
def test_priority_mapping(priority, expected):
    assert task_priority(ticket(priority=priority)) == expected


@pytest.mark.parametrize(("type_", "due_at", "expected"), [
    ("task", "2026-12-01T23:30:00Z", "2026-12-01"),
    ("task", None, ""),
    ("question", "2026-12-01T23:30:00Z", ""),  # only task tickets have a due date
    (None, "2026-12-01T23:30:00Z", ""),
    ("task", "soon", ""),
])
def test_due_date_only_for_task_tickets(type_, due_at, expected):
    assert task_due_date(ticket(type=type_, due_at=due_at)) == expected


def test_tags_are_sorted_and_unique():
    assert task_tags(ticket(tags=("b", "a", "b"))) == ("a", "b")


def test_the_description_keeps_the_link_first_and_is_capped():
    t = ticket(subject="Refund " * 3000, priority="high", tags=("a", "b"),
               created_at="2026-01-01T00:00:00Z")
    names = Names("Dan Customer", "dan@example.com", "Billing")
    template = ("{subject}\nFrom {requester_name} <{requester_email}>, group {group}, "
                "{priority} {type} {status} [{tags}] {created_at} {link}")
    text = render_description(t, template, names, URL)
    assert text.startswith(f"Zendesk ticket: {URL}/agent/tickets/42\n\n")
    assert MAX_DESCRIPTION_CHARS - 2 <= len(text) <= MAX_DESCRIPTION_CHARS
    assert text.endswith("Refund…")
    assert linked_ticket_id(text, URL) == 42  # the rebuild still finds its ticket
    short = render_description(ticket(subject=None), "{subject} by {requester_name} in "
                               "{group} ({tags})", Names(), URL)
    assert short.endswith("\n\n(no subject) by  in  ()")


def test_the_target_of_each_kind_of_route():
    billing = Route("billing", Match(tags_any=frozenset({"billing"})), project_id=100,
                    tasklist_name="Billing", description_template="From {requester_name}",
                    priority=True, tags=True)
    routing = Routing((billing,), explicit=True, on_unmatch="delete")
    routed = target(ticket(tags=("billing",)), routing, {"billing": 201}, Names("Dan"), URL)
    assert routed == Target(route="billing", tasklist_id=201, project_id=100, priority=True,
                            tags=True, description=f"Zendesk ticket: {URL}/agent/tickets/42"
                                                   "\n\nFrom Dan")
    assert target(ticket(), routing, {}, Names(), URL) == Target(on_unmatch="delete")
    implicit = Routing((Route("default", title_template="#{id}"),))
    assert target(ticket(), implicit, {}, Names(), URL) == Target(title_template="#{id}")
    assert billing.template_fields == {"requester_name"}
