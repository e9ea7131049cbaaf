"""The Teamwork simulator's listings over real HTTP: the cap of records one listing answers,
``count`` as a lower bound, and ``updatedAfter`` with ordering by ``updatedAt`` (both
readings of ``updatedAfter``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from zdsync.sim.base import Clock, iso_utc
from zdsync.sim.teamwork import VARIANTS, TeamworkSim, Variants

TOKEN = "tw-secret"
V3 = "/projects/api/v3"
START = 1_700_000_000


@pytest.fixture(params=VARIANTS["updated_after"])
def tw(request: pytest.FixtureRequest) -> Iterator[TeamworkSim]:
    clock = Clock(frozen=True, start=float(START))
    with TeamworkSim(TOKEN, clock, listing_cap=5,
                     variants=Variants(updated_after=request.param)) as sim:
        yield sim


@pytest.fixture
def listed(tw: TeamworkSim) -> Iterator[Any]:
    """``listed(**params)``: the answer of the task list's v3 listing."""
    session = requests.Session()
    session.auth = (TOKEN, "X")
    tasklist = tw.add_tasklist(tw.add_project("Support"), "Zendesk")

    def get(**params: Any) -> dict[str, Any]:
        answer = session.get(f"{tw.url}{V3}/tasklists/{tasklist}/tasks.json", params=params)
        assert answer.status_code == 200, answer.text
        return answer.json()

    get.tasklist = tasklist  # type: ignore[attr-defined]
    yield get
    session.close()


def ids(answer: dict[str, Any]) -> list[int]:
    return [t["id"] for t in answer["tasks"]]


def test_a_listing_ends_at_the_cap_and_counts_a_lower_bound(tw: TeamworkSim, listed) -> None:
    made = [tw.create_task(listed.tasklist, f"T{n}") for n in range(7)]
    pages = [listed(pageSize=2, page=n) for n in (1, 2, 3, 4)]
    assert [ids(p) for p in pages] == [made[0:2], made[2:4], made[4:5], []]
    assert [p["meta"]["page"]["hasMore"] for p in pages] == [True, True, False, False]
    # (page x pageSize) + 1 while more follow, never the 7 there are; then the listing's own
    assert [p["meta"]["page"]["count"] for p in pages] == [3, 5, 5, 5]
    assert ids(listed(pageSize=500)) == made[:5]  # one page, cut at the cap as well


def test_updated_after_and_ordering_by_updated_at(tw: TeamworkSim, listed) -> None:
    first, second, third = (tw.create_task(listed.tasklist, f"T{n}") for n in range(3))
    tw.clock.advance(1)
    tw.update_task(first, name="T0 edited")  # now the latest change, a second on
    assert ids(listed()) == [first, second, third]  # by id unless asked
    assert ids(listed(orderBy="updatedAt")) == [second, third, first]  # ties by id
    assert ids(listed(orderBy="updatedAt", orderMode="desc")) == [first, third, second]
    at_start = listed(updatedAfter=iso_utc(START))
    if tw.updated_after_inclusive:
        assert ids(at_start) == [first, second, third]
    else:
        assert ids(at_start) == [first]
    assert ids(listed(updatedAfter="2023-11-14T22:13:19+00:00")) == [first, second, third]
    assert ids(listed(updatedAfter=iso_utc(START + 1))) == (
        [first] if tw.updated_after_inclusive else [])


def test_the_cap_holds_for_windows_too_and_bad_dates_are_refused(tw: TeamworkSim,
                                                                 listed) -> None:
    made = [tw.create_task(listed.tasklist, f"T{n}") for n in range(12)]
    window = listed(orderBy="updatedAt", updatedAfter=iso_utc(START - 1), pageSize=500)
    assert ids(window) == made[:5] and window["meta"]["page"]["hasMore"] is False
    session = requests.Session()
    session.auth = (TOKEN, "X")
    for bad in ("yesterday", "1700000000", "2023-13-01T00:00:00Z"):
        answer = session.get(f"{tw.url}{V3}/tasks.json", params={"updatedAfter": bad})
        assert answer.status_code == 400, bad
        assert answer.json()["errors"][0]["title"] == "Invalid updatedAfter"


def test_the_command_line_sets_the_cap_and_the_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from zdsync.sim import cli

    made: list[TeamworkSim] = []

    class Recorded(TeamworkSim):
        def start(self, *args: Any, **kwargs: Any) -> TeamworkSim:
            made.append(self)
            raise KeyboardInterrupt  # built as asked: no need to serve

    monkeypatch.setattr(cli, "TeamworkSim", Recorded)
    result = CliRunner().invoke(cli.sim, ["teamwork", "--port", "0", "--listing-cap", "25",
                                          "--updated-after", "inclusive"])
    assert made and (made[0].listing_cap, made[0].updated_after_inclusive) == (25, True), \
        result.output
    assert CliRunner().invoke(cli.sim, ["teamwork", "--listing-cap", "0"]).exit_code == 2
