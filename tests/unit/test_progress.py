"""The progress line of ``zdsync sync`` (``zdsync.cli.progress.line``)."""

from __future__ import annotations

from dataclasses import replace

from zdsync.cli.progress import Reading, line

BASE = Reading(seen=40, queued=10, pages=1, export_from=1000, export_at=None,
               export_done=False, now=2000, requests=60, handled=30, per_minute=120,
               minutes=0.5)


def test_the_count_is_the_summary_lines_less_what_is_still_queued():
    assert line(BASE).startswith("30 tickets | pages 1, Teamwork 120/min, queued 10, ETA 10 s")


def test_the_export_tells_how_far_it_is_by_time_then_by_total():
    halfway = replace(BASE, export_at=1500)
    assert line(halfway).startswith("30 tickets 50% |")
    # 30 done at half the time span: about 30 to go, 2 requests each at 120 a minute.
    assert line(halfway).endswith("ETA 30 s")
    last_page = replace(BASE, export_done=True)
    assert line(last_page).startswith("30/40 tickets 75% |")
    assert line(replace(last_page, queued=0)).startswith("40/40 tickets 100% |")
    assert line(replace(last_page, queued=0)).endswith("ETA -")


def test_the_eta_is_in_seconds_under_a_minute_and_in_minutes_above():
    assert line(replace(BASE, queued=10)).endswith("ETA 10 s")
    assert line(replace(BASE, queued=600, seen=630)).endswith("ETA 10 min 0 s")
    assert line(replace(BASE, per_minute=0)).endswith("ETA -")
