"""The lease check as a write's bytes leave, over real HTTP to the Teamwork simulator.

``Transport.before_write`` runs before requests prepares the request and connects; the
connections of ``transport.new_session`` run it again right before each socket write, so
a process that loses its lease (frozen, partitioned) in between sends nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from zdsync.config import Secret, TeamworkSettings
from zdsync.errors import LeaseLost
from zdsync.sim.base import Clock
from zdsync.sim.teamwork import TeamworkSim
from zdsync.teamwork import TeamworkClient

TOKEN = "tw-secret"
LINK = "Zendesk ticket: https://sim.zendesk.com/agent/tickets/1"


@pytest.fixture
def tw() -> Iterator[TeamworkSim]:
    with TeamworkSim(TOKEN, Clock(frozen=True, start=1_700_000_000.0)) as sim:
        yield sim


@pytest.fixture
def tasklist(tw: TeamworkSim) -> int:
    return tw.add_tasklist(tw.add_project("Support"), "Zendesk tickets")


def client_for(tw: TeamworkSim, check: Callable[[], None]) -> TeamworkClient:
    client = TeamworkClient(TeamworkSettings(url=tw.url, api_token=Secret(TOKEN),
                                             project_id=1, rate_limit=100_000))
    client.http.before_write = check
    return client


def lost_after(passes: int) -> tuple[list[int], Callable[[], None]]:
    """A lease check that holds ``passes`` times, then finds the lease lost."""
    calls: list[int] = []

    def check() -> None:
        calls.append(1)
        if len(calls) > passes:
            raise LeaseLost("the sync lease is no longer held")

    return calls, check


def test_a_lease_lost_after_the_first_check_sends_nothing(tw: TeamworkSim,
                                                          tasklist: int) -> None:
    calls, check = lost_after(1)
    client = client_for(tw, check)
    with pytest.raises(LeaseLost):
        client.create_task(tasklist, "[ZD#1] Printer", LINK, None)
    assert len(calls) == 2  # before requests, then as the first bytes were to leave
    assert tw.log.count("POST") == 0 and tw.tasks() == []
    # The connection was dropped, not left half-used: the next write goes through whole.
    calls.clear()
    client.http.before_write = lost_after(100)[1]
    task = client.create_task(tasklist, "[ZD#1] Printer", LINK, None)
    assert [t["id"] for t in tw.tasks()] == [task.id]


def test_a_held_lease_is_checked_before_and_as_each_write_leaves_and_never_for_a_read(
        tw: TeamworkSim, tasklist: int) -> None:
    calls, check = lost_after(100)
    client = client_for(tw, check)
    task = client.create_task(tasklist, "[ZD#2] Login", LINK, None).id
    writes = len(calls)
    assert writes >= 2  # once before requests, at least once more at the socket
    assert client.get_task(task) is not None
    assert len(calls) == writes
    client.complete_task(task)
    assert len(calls) > writes and tw.tasks()[0]["status"] == "completed"


def test_check_passes_with_oauth_tokens_instead_of_api_tokens(cli_world):
    """Both clients send ``Authorization: Bearer`` and both simulators take it; no e-mail
    is needed for Zendesk then."""
    from click.testing import CliRunner

    from zdsync.cli import main

    env = cli_world.env(ZENDESK_OAUTH_TOKEN=cli_world.zendesk.oauth_token,
                        TEAMWORK_OAUTH_TOKEN=cli_world.teamwork.oauth_token)
    for name in ("ZENDESK_API_TOKEN", "TEAMWORK_API_TOKEN", "ZENDESK_EMAIL"):
        del env[name]
    result = CliRunner().invoke(main, ["check"], env=env)
    assert result.exit_code == 0, result.output
    assert "✓ Zendesk credentials" in result.output and "✓ Teamwork credentials" in result.output
    assert cli_world.zendesk.oauth_token not in result.output
    wrong = CliRunner().invoke(main, ["check"], env={**env, "TEAMWORK_OAUTH_TOKEN": "expired"})
    assert wrong.exit_code == 1 and "teamwork.oauth_token (TEAMWORK_OAUTH_TOKEN)" in wrong.output
