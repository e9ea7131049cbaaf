"""Reading one setting's value as the TOML file, a command-line option or an environment
variable gives it: a parser per kind, and the bounds and choices of ``config.setting``.
Each raises ValueError saying what was expected, never more than a short piece of what
it was given."""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from zdsync.secret import Secret
from zdsync.times import epoch_of

if TYPE_CHECKING:
    from zdsync.config import Option

def _parse_bool(raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"expected true or false, got {raw!r}")


def _shown(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 60 else text[:60] + "…"


def _parse_int(raw: Any) -> int:
    if isinstance(raw, bool):
        raise ValueError(f"expected an integer, got {raw!r}")
    if isinstance(raw, int):
        return raw
    text = str(raw).strip()
    if "://" in text:
        # Kubernetes service links inject e.g. REDIS_PORT=tcp://10.0.0.7:6379.
        raise ValueError(
            f"expected an integer, got {_shown(text)} (a Kubernetes service link? "
            "set enableServiceLinks: false on the pod, or set the value explicitly)"
        )
    if not re.fullmatch(r"[+-]?[0-9]{1,30}", text):  # ASCII digits only: int() takes "٣"
        raise ValueError(f"expected an integer, got {_shown(raw)}")
    return int(text)


def _parse_float(raw: Any) -> float:
    if isinstance(raw, bool):
        raise ValueError(f"expected a number, got {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"expected a number, got {_shown(raw)}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {_shown(raw)}")
    return value


def parse_time(raw: Any) -> int:
    """ISO-8601 (naive means UTC) or epoch seconds -> epoch seconds."""
    wrong = ValueError(f"expected ISO-8601 (2026-01-31T12:00:00Z) or epoch seconds, "
                       f"got {_shown(raw)}")
    if isinstance(raw, bool):
        raise wrong
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        if not math.isfinite(raw):  # TOML's inf and nan
            raise wrong
        return int(raw)
    if isinstance(raw, dt.datetime):  # TOML's own date-times
        raw = raw.isoformat()
    try:
        return epoch_of(str(raw))
    except ValueError:
        raise wrong from None


def _parse_hosts(raw: Any) -> tuple[tuple[str, int], ...]:
    items = raw if isinstance(raw, list) else str(raw).split(",")
    hosts = []
    for item in items:
        host, sep, port = str(item).strip().rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port,host:port, got {item!r}")
        hosts.append((host.strip("[]"), int(port)))
    if not hosts:
        raise ValueError("expected at least one host:port")
    return tuple(hosts)


def _parse_url(raw: Any) -> str:
    text = str(raw).strip().rstrip("/")
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"expected an http(s) URL such as https://acme.example.com, got {raw!r}")
    return text


def _parse_redis_url(raw: Any) -> Secret:
    """A redis://, rediss:// or unix:// URL, kept as a ``Secret`` (it may hold a password);
    an error shows it with the password masked."""
    text = str(raw).strip()
    parts = urlsplit(text)
    shown = _shown(text.replace(f":{parts.password}@", ":***@") if parts.password else text)
    scheme = parts.scheme.lower()
    if scheme not in {"redis", "rediss", "unix"}:
        raise ValueError(f"expected redis://, rediss:// (TLS) or unix://, got {shown}")
    query = parse_qs(parts.query)
    path = parts.path.strip("/")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"the port is not a number from 1 to 65535 in {shown}") from None
    if scheme != "unix" and (not parts.hostname or port == 0):
        raise ValueError(f"expected a host (and port) after //, got {shown}")
    if scheme == "unix" and not path:
        raise ValueError(f"expected the socket's path, unix:///run/redis.sock, got {shown}")
    db = query.pop("db", [path if scheme != "unix" else ""])[0]
    if db and not db.isdigit():
        raise ValueError(f"the database must be a number (…/0), got {shown}")
    if query:
        raise ValueError(f"options in the URL ({', '.join(sorted(query))}) are not read: set "
                         f"them as [redis] settings instead, got {shown}")
    return Secret(text)


def _parse_choice(opt: Option, raw: Any) -> str:
    text = str(raw).strip()
    for choice in opt.choices:
        if text.lower() == choice.lower():
            return choice
    listed = ", ".join(opt.choices[:-1]) + f" or {opt.choices[-1]}"
    raise ValueError(f"expected {listed} (any case), got {_shown(raw)}")


def parse_value(opt: Option, raw: Any) -> Any:
    """One raw value (TOML, option or environment) -> the setting's value, within bounds;
    ``ValueError`` says what was expected."""
    value = _parse_choice(opt, raw) if opt.kind == "choice" else PARSERS[opt.kind](raw)
    if opt.low is not None and opt.high is not None and not opt.low <= value <= opt.high:
        raise ValueError(f"must be {opt.bounds}, got {_shown(raw)}")
    return value


PARSERS: dict[str, Callable[[Any], Any]] = {
    "str": lambda raw: str(raw).strip(),
    "secret": lambda raw: Secret(str(raw).strip()),
    "int": _parse_int,
    "float": _parse_float,
    "bool": _parse_bool,
    "time": parse_time,
    "hosts": _parse_hosts,
    "url": _parse_url,
    "redis_url": _parse_redis_url,
}


