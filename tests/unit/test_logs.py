from __future__ import annotations

import json
import logging

from zdsync.defaults import MAX_LOGGED_VALUE_CHARS
from zdsync.logs import JsonFormatter, TextFormatter, Throttled, clip


def test_json_lines():
    record = logging.LogRecord("zdsync.reconciler", logging.INFO, __file__, 1,
                               "ticket %s task %s: %s: ok", (42, 7, "complete"), None)
    line = JsonFormatter().format(record)
    data = json.loads(line)
    assert data["message"] == "ticket 42 task 7: complete: ok"
    assert data["level"] == "info" and data["logger"] == "zdsync.reconciler"
    assert data["time"].endswith("Z") and "\n" not in line


def _line(formatter: logging.Formatter, message: str, *args: object) -> str:
    record = logging.LogRecord("zdsync.server", logging.WARNING, __file__, 1, message, args,
                               None)
    return formatter.format(record)


FORGED = "evt-1\n2026-01-01 00:00:00,000 ERROR zdsync.reconciler: forged\r\u2028line"


def test_text_lines_escape_outside_values():
    """A newline (or CR, or a Unicode line separator) in a value from outside cannot start
    a log line of its own."""
    line = _line(TextFormatter(), "webhook: ticket %s queued (event %s)", 5, FORGED)
    assert "\n" not in line and "\r" not in line and "\u2028" not in line
    assert "evt-1\\n2026-01-01" in line and "\\r\\u2028line" in line


def test_json_lines_escape_outside_values():
    line = _line(JsonFormatter(), "ticket %s: skipped", FORGED)
    assert "\n" not in line
    assert json.loads(line)["message"].startswith("ticket evt-1\\n2026")


def test_tracebacks_stay_readable():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed: %s", ("a\nb",),
                                   sys.exc_info())
    text = TextFormatter().format(record)
    assert text.splitlines()[0].endswith("failed: a\\nb")
    assert "Traceback (most recent call last)" in text and "ValueError: boom" in text


def test_clip_escapes_and_caps_values():
    assert clip("a\nb") == "a\\nb"
    long = clip("x" * 100_000)
    assert len(long) < MAX_LOGGED_VALUE_CHARS + 30 and long.endswith("…(+99800 chars)")
    nested: list = []
    for _ in range(5000):  # str() of this would exceed the recursion limit
        nested = [nested]
    assert len(clip(nested)) <= MAX_LOGGED_VALUE_CHARS + 30
    assert clip(5) == "5" and clip(None) == "None"


def test_throttled_warnings_once_a_minute_per_key_with_a_count(caplog):
    now = [1000.0]
    throttled = Throttled(logging.getLogger("zdsync.test"), 60, clock=lambda: now[0])
    caplog.set_level(logging.DEBUG, "zdsync.test")
    for _ in range(50):
        throttled.warning("bad_signature", "webhook rejected (%s)", "bad_signature")
    throttled.warning("stale", "webhook rejected (%s)", "stale")
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warnings] == ["webhook rejected (bad_signature)",
                                                  "webhook rejected (stale)"]
    assert sum(r.levelno == logging.DEBUG for r in caplog.records) == 49
    now[0] += 61
    throttled.warning("bad_signature", "webhook rejected (%s)", "bad_signature")
    last = [r for r in caplog.records if r.levelno == logging.WARNING][-1].getMessage()
    assert last.startswith("webhook rejected (bad_signature) (49 more like this")


def test_apscheduler_speaks_at_info_only_when_asked_for_debug():
    from zdsync.logs import setup

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    executor = logging.getLogger("apscheduler.executors.default")
    try:
        setup("INFO")
        assert not executor.isEnabledFor(logging.INFO)  # "Running job ...", "executed ..."
        assert executor.isEnabledFor(logging.WARNING)
        setup("DEBUG")
        assert executor.isEnabledFor(logging.INFO)
    finally:
        root.handlers[:], root.level = handlers, level
        logging.getLogger("apscheduler").setLevel(logging.NOTSET)
