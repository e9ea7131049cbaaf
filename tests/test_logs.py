from __future__ import annotations

import json
import logging

from zdsync.logs import JsonFormatter


def test_json_lines():
    record = logging.LogRecord("zdsync.reconciler", logging.INFO, __file__, 1,
                               "ticket %s task %s: %s: ok", (42, 7, "complete"), None)
    line = JsonFormatter().format(record)
    data = json.loads(line)
    assert data["message"] == "ticket 42 task 7: complete: ok"
    assert data["level"] == "info" and data["logger"] == "zdsync.reconciler"
    assert data["time"].endswith("Z") and "\n" not in line
