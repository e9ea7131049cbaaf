"""Fixtures of the integration layer: a real Redis (the session's private redis-server) and
the simulators in process (``cli_world``: see tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.world import World


@pytest.fixture
def env(world: World) -> dict[str, str]:
    """The environment of a zdsync command against the module's ``world`` (in process and
    reachable): the simulators' URLs and credentials, the test Redis, one worker."""
    return world.env()
