"""The unit layer is pure: no Redis, no sockets, no processes. Enforced here, so a test
that needs more fails at once and is moved to tests/integration or tests/e2e instead of
quietly making this layer slow or flaky. (HTTP clients are tested with requests-mock,
which answers without opening a socket.)"""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def redis_server() -> Iterator[None]:
    """Overrides the shared fixture: a unit test asking for Redis is in the wrong layer."""
    pytest.fail("unit tests use no Redis: move this test to tests/integration")
    yield


@pytest.fixture(autouse=True)
def _pure(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(what: str) -> Any:
        def refused(*args: Any, **kwargs: Any) -> Any:
            raise AssertionError(f"unit tests are pure: no {what} (move this test to "
                                 "tests/integration or tests/e2e)")
        return refused

    monkeypatch.setattr(socket.socket, "connect", refuse("network"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("network"))
    monkeypatch.setattr(socket.socket, "bind", refuse("listening socket"))
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse("process"))
