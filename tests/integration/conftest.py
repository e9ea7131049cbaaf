"""Fixtures of the integration layer: a real Redis (the session's private redis-server, see
tests/conftest.py) and the simulators in process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.world import World, make_cli_world, reachable


@pytest.fixture
def cli_world(redis_client) -> Iterator[World]:
    """Both simulators in process on a frozen clock, reachable by every ``requests``
    session (so commands run through click's runner talk to them as to the real
    services), with the usual project, list, agents and mappings (``World.setup``)."""
    world = make_cli_world(redis_client.connection_pool.connection_kwargs["port"], "t:")
    with reachable(world):
        yield world

