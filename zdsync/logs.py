"""Logging set-up: readable text, or one JSON object per line for log shippers.

Log lines carry values from outside (ticket ids and subjects from Zendesk, event ids and
bodies from webhooks, error bodies from both APIs). Two rules keep such a value from
forging or flooding lines: ``clip`` escapes and shortens one value where it is logged, and
both formatters escape control characters in every message as a safety net, so a newline
can never start a line of its own.
"""

from __future__ import annotations

import json
import logging
import re
import reprlib
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from zdsync import defaults

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = _REPR.maxlong = defaults.MAX_LOGGED_VALUE_CHARS
_REPR.maxlevel = 3


def escape(text: str) -> str:
    """Control characters (newlines included) as visible escapes: one line stays one line."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def clip(value: object, limit: int = defaults.MAX_LOGGED_VALUE_CHARS) -> str:
    """An outside value made fit for a log line: escaped, and at most ``limit`` characters
    (plus a note of how many were left out). Strings are shown as they are, anything else
    as a bounded ``repr`` (deeply nested or huge values cannot blow up the logger)."""
    if isinstance(value, str):
        text = value
    else:
        try:
            text = _REPR.repr(value)
        except (ValueError, RecursionError):  # e.g. an int too long to print
            text = f"<{type(value).__name__}>"
    text = escape(text)
    if len(text) > limit:
        text = f"{text[:limit]}…(+{len(text) - limit} chars)"
    return text


def _escaped(record: logging.LogRecord) -> str:
    return escape(record.getMessage())


class TextFormatter(logging.Formatter):
    """The text format, with the message escaped (tracebacks stay multi-line)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape(record.message)
        return super().formatMessage(record)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": _escaped(record),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data)


class Throttled:
    """Log a repetitive warning at most once per ``every_seconds`` per key, with a count of
    the ones left out; those still go out at DEBUG. For warnings that anyone on the network
    can trigger (a rejected webhook): metrics count each one, the log need not."""

    def __init__(self, logger: logging.Logger, every_seconds: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.logger = logger
        self.every_seconds = every_seconds
        self.clock = clock
        self._last: dict[str, float] = {}
        self._left_out: dict[str, int] = {}
        self._lock = threading.Lock()

    def warning(self, key: str, message: str, *args: Any) -> None:
        with self._lock:
            now = self.clock()
            last = self._last.get(key)
            if last is not None and now - last < self.every_seconds:
                self._left_out[key] = self._left_out.get(key, 0) + 1
                loud = False
            else:
                self._last[key] = now
                left_out = self._left_out.pop(key, 0)
                loud = True
        if not loud:
            self.logger.debug(message, *args)
            return
        if left_out:
            message += f" ({left_out} more like this in the last {self.every_seconds:.0f} s " \
                       "were logged at DEBUG only)"
        self.logger.warning(message, *args)


def setup(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt.lower() == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # urllib3 logs full URLs at DEBUG; they carry no secrets (auth is a header), but are noisy.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    # APScheduler logs two INFO lines a pass ("Running job", "executed successfully"): noise
    # beside zdsync's own pass lines, kept for DEBUG. Its warnings and errors still show.
    logging.getLogger("apscheduler").setLevel(
        logging.NOTSET if level.upper() == "DEBUG" else logging.WARNING)
