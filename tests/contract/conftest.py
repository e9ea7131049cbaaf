"""Contract tests are pure, as the unit layer is (no Redis, sockets or processes): the
clients answer through requests-mock or a simulator mounted in-process."""

from __future__ import annotations

import pytest

from tests.unit.conftest import _pure, redis_server  # noqa: F401  (the same guards)
from zdsync.config import Secret, TeamworkSettings, ZendeskSettings
from zdsync.metrics import Metrics
from zdsync.pacing import Pacer
from zdsync.teamwork import TeamworkClient
from zdsync.zendesk import ZendeskClient

ZENDESK = "https://acme.zendesk.com"
TEAMWORK = "https://acme.teamwork.com"


@pytest.fixture
def zendesk() -> ZendeskClient:
    client = ZendeskClient(ZendeskSettings("acme", "ops@acme.test", Secret("tok")),
                           metrics=Metrics(), sleep=lambda _: None)
    client.export_pacer = Pacer(None)
    return client


@pytest.fixture
def teamwork() -> TeamworkClient:
    return TeamworkClient(TeamworkSettings("acme", Secret("twtok"), 1, rate_limit=6000),
                          metrics=Metrics(), sleep=lambda _: None)
