"""The ``--seed-data`` world of ``zdsync sim zendesk`` and ``zdsync sim teamwork``: a few
agents, a customer and tickets; a project, its task list and two people. One definition,
so that docs/cli.md's examples (made by docs/examples.py on this world) can be recreated
with the two commands."""

from __future__ import annotations

from dataclasses import dataclass

from zdsync.sim.teamwork import TeamworkSim
from zdsync.sim.zendesk import ZendeskSim

TASKLIST_NAME = "Zendesk"  # zdsync's default teamwork.tasklist_name: found, not created


@dataclass(frozen=True)
class ZendeskSeed:
    agents: list[int]  # alice, bob, carol (carol has no Teamwork person)
    customer: int
    tickets: list[int]


@dataclass(frozen=True)
class TeamworkSeed:
    project: int
    tasklist: int
    people: list[int]  # alice, bob, both on the project


def seed_zendesk(sim: ZendeskSim) -> ZendeskSeed:
    agents = [sim.add_user("Alice Agent", "alice@example.com", "agent"),
              sim.add_user("Bob Agent", "bob@example.com", "agent"),
              sim.add_user("Carol Unmapped", "carol@example.com", "agent")]
    customer = sim.add_user("Dan Customer", "dan@example.com", "end-user")
    tickets = [sim.create_ticket("Printer on fire", customer, agents[0], agents[0], "open"),
               sim.create_ticket("Cannot log in", customer, customer),
               sim.create_ticket(None, customer, agents[1], agents[2], "open")]
    return ZendeskSeed(agents, customer, tickets)


def seed_teamwork(sim: TeamworkSim) -> TeamworkSeed:
    project = sim.add_project("Support")
    tasklist = sim.add_tasklist(project, TASKLIST_NAME)
    people = [sim.add_person("Alice", "Agent", "alice@example.com"),
              sim.add_person("Bob", "Agent", "bob@example.com")]
    for person in people:
        sim.add_to_project(project, person)
    return TeamworkSeed(project, tasklist, people)
