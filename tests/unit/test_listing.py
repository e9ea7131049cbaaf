"""Reading task listings past Teamwork's cap: the windows (``zdsync.listing``) and the
client reading them, against a requests-mock Teamwork that answers as the paging guide
says (at most ``cap`` records a listing, then ``hasMore: false``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from zdsync.config import Secret, TeamworkSettings
from zdsync.errors import ApiError
from zdsync.listing import ORDERED, ListingTooDense, next_window
from zdsync.metrics import Metrics
from zdsync.teamwork import TeamworkClient
from zdsync.times import epoch_of, iso_utc

BASE = "https://acme.teamwork.com"
LIST = BASE + "/projects/api/v3/tasklists/3/tasks.json"
BY_IDS = BASE + "/projects/api/v3/tasks.json"
T0 = 1_700_000_000


# -- the windows ------------------------------------------------------------------------


def test_a_cut_first_window_is_read_again_ordered_by_updated_at():
    """The first window comes in Teamwork's default order: where it stopped says nothing."""
    assert next_window([T0 + 5, T0, T0 + 9], {}) == ORDERED


def test_the_next_window_starts_a_second_before_the_last_change():
    """Whether updatedAfter keeps its own second or not, that second is read again."""
    window = next_window([T0, T0, T0 + 3, T0 + 3], ORDERED)
    assert window == {**ORDERED, "updatedAfter": iso_utc(T0 + 2)}
    assert next_window([T0 + 3, T0 + 7], window)["updatedAfter"] == iso_utc(T0 + 6)


@pytest.mark.parametrize("stamps", [
    [T0 + 2, T0 + 2, T0 + 2],  # a whole window in the second it would resume from
    [T0 + 2, T0 + 3, T0 + 3],  # ...or in that second and the next
])
def test_a_window_that_cannot_move_on_fails_rather_than_skips(stamps):
    after = {**ORDERED, "updatedAfter": iso_utc(T0 + 2)}
    with pytest.raises(ListingTooDense, match="cannot page past them"):
        next_window(stamps, after)


@pytest.mark.parametrize("stamps", [
    [T0 + 5, T0 + 1],  # not ordered as asked
    [T0 + 1, None],  # a record without a readable updatedAt
    [],
    [T0 - 9, T0 + 1],  # older than the updatedAfter asked
])
def test_a_window_not_ordered_as_asked_fails(stamps):
    with pytest.raises(ListingTooDense, match="not ordered by updatedAt"):
        next_window(stamps, {**ORDERED, "updatedAfter": iso_utc(T0)})


# -- the client, against a Teamwork with a cap --------------------------------------------


class Teamwork:
    """Tasks (id -> updatedAt epoch) as a v3 task listing answers them: ``ids`` and
    ``updatedAfter`` filters (``inclusive`` or not), ``orderBy=updatedAt`` (ties by id)
    else by id, ``page``/``pageSize``, at most ``cap`` records a listing."""

    def __init__(self, stamps: dict[int, int], cap: int, *, inclusive: bool) -> None:
        self.stamps, self.cap, self.inclusive = stamps, cap, inclusive
        self.queries: list[dict[str, str]] = []

    def __call__(self, request: Any, context: Any) -> dict[str, Any]:
        query = {k: v[0] for k, v in request.qs.items()}
        self.queries.append(query)
        found = sorted(self.stamps)
        if "ids" in query:
            found = [i for i in found if str(i) in query["ids"].split(",")]
        if "updatedafter" in query:
            after = epoch_of(query["updatedafter"].upper())
            found = [i for i in found if self.stamps[i] > after
                     or (self.inclusive and self.stamps[i] == after)]
        if query.get("orderby") == "updatedat":
            found.sort(key=lambda i: (self.stamps[i], i))
        found = found[:self.cap]
        page, size = int(query.get("page", 1)), int(query.get("pagesize", 50))
        chunk = found[(page - 1) * size:page * size]
        return {"tasks": [{"id": i, "name": f"T{i}", "description": "d", "status": "new",
                           "tasklistId": 3, "assignees": [], "updatedAt": iso_utc(self.stamps[i])}
                          for i in chunk],
                "meta": {"page": {"hasMore": page * size < len(found)}}}


@pytest.fixture
def client():
    def make(cap: int) -> TeamworkClient:
        settings = TeamworkSettings("acme", Secret("twtok"), 1, rate_limit=60_000,
                                    listing_cap=cap)
        return TeamworkClient(settings, metrics=Metrics(), sleep=lambda s: None)
    return make


@pytest.fixture(params=[False, True], ids=["exclusive", "inclusive"])
def inclusive(request) -> bool:
    return request.param


def crowded(count: int, per_second: int) -> dict[int, int]:
    """``count`` tasks, ``per_second`` of them changed in each second, the newest ids
    first (Teamwork's default order and updatedAt's differ)."""
    return {1000 + n: T0 + (count - 1 - n) // per_second for n in range(count)}


def test_below_the_cap_nothing_changes(client, requests_mock, inclusive):
    tw = Teamwork(crowded(1200, 7), cap=50_000, inclusive=inclusive)
    requests_mock.get(LIST, json=tw)
    tasks = list(client(50_000).tasklist_tasks(3))
    assert sorted(t.id for t in tasks) == sorted(tw.stamps)
    assert [q["page"] for q in tw.queries] == ["1", "2", "3"]  # 500 a page
    assert not any("orderby" in q or "updatedafter" in q for q in tw.queries)


@pytest.mark.parametrize(("count", "per_second", "cap"), [
    (60, 8, 25),  # windows of one page (the rebuild's pages are 500)
    (1000, 120, 250),  # whole pages of 100 sharing one second, four pages a window
    (100, 1, 25),  # every task in its own second
])
def test_past_the_cap_every_task_is_read_once(client, requests_mock, inclusive, count,
                                             per_second, cap):
    tw = Teamwork(crowded(count, per_second), cap=cap, inclusive=inclusive)
    requests_mock.get(LIST, json=tw)
    tasks = list(client(cap).search_tasks(3, "T"))
    assert len(tasks) == count and {t.id for t in tasks} == set(tw.stamps)
    windows = [q for q in tw.queries if q.get("page") == "1"]
    assert windows[0].keys().isdisjoint({"orderby", "updatedafter"})  # the first as usual
    assert all(w["orderby"] == "updatedat" and w["ordermode"] == "asc" for w in windows[1:])
    assert len(windows) > 2


def test_reading_by_ids_past_the_cap(client, requests_mock, inclusive):
    """The audit's read: 100 ids a request, fewer than that a listing here."""
    tw = Teamwork(crowded(130, 9), cap=25, inclusive=inclusive)
    requests_mock.get(BY_IDS, json=tw)
    found = client(25).tasks_by_ids([*tw.stamps, 1])
    assert set(found) == set(tw.stamps)


def test_a_cap_of_tasks_in_one_second_fails_loudly(client, requests_mock, inclusive):
    tw = Teamwork(crowded(40, 30), cap=25, inclusive=inclusive)
    requests_mock.get(LIST, json=tw)
    with pytest.raises(ApiError, match="cannot page past them"):
        list(client(25).tasklist_tasks(3))


def test_a_listing_that_ignores_the_order_fails_loudly(client, requests_mock):
    """If Teamwork did not order by updatedAt as asked, resuming from the last record
    would skip tasks: the read fails instead of returning a short list."""
    stamps = {1000 + n: T0 + (n * 7919) % 97 for n in range(60)}  # ids and changes unrelated
    tw = Teamwork(stamps, cap=25, inclusive=False)
    requests_mock.get(LIST, json=lambda request, context: tw(_unordered(request), context))
    with pytest.raises(ApiError, match="not ordered by updatedAt"):
        list(client(25).tasklist_tasks(3))


def _unordered(request: Any) -> Any:
    request.qs.pop("orderby", None)
    return request


def test_updated_after_is_rfc3339_utc(client, requests_mock):
    tw = Teamwork(crowded(30, 1), cap=25, inclusive=False)
    requests_mock.get(LIST, json=tw)
    list(client(25).tasklist_tasks(3))
    sent = [q["updatedafter"] for q in tw.queries if "updatedafter" in q]
    assert sent and all(dt.datetime.strptime(s.upper(), "%Y-%m-%dT%H:%M:%SZ") for s in sent)
