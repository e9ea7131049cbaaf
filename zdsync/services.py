"""One way to put a pass together from the settings: the daemon, the CLI, the demo and
the tests all build their clients, reconciler and passes here, so none of them wires
the pieces a little differently from the others."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests

from zdsync.config import Settings
from zdsync.lease import SyncLock
from zdsync.metrics import Metrics
from zdsync.passes import Pass
from zdsync.reconciler import Reconciler
from zdsync.store import Store
from zdsync.teamwork import TeamworkClient
from zdsync.transport import Sleep
from zdsync.zendesk import ZendeskClient


@dataclass
class Services:
    """The configured clients and the reconciler that one process keeps across passes
    (the reconciler caches names, lists and tags between them)."""

    settings: Settings
    store: Store
    zendesk: ZendeskClient
    teamwork: TeamworkClient
    reconciler: Reconciler
    metrics: Metrics
    clock: Callable[[], float]

    def new_pass(self, lease: SyncLock, **options: Any) -> Pass:
        """A pass under ``lease``; ``options`` are ``Pass``'s (dry_run, poll_webhooks, ...)."""
        return Pass(self.reconciler, self.zendesk, lease, metrics=self.metrics,
                    clock=self.clock, **options)


def services(settings: Settings, store: Store, *, metrics: Metrics | None = None,
             sleep: Sleep = time.sleep, clock: Callable[[], float] | None = None,
             zendesk_session: requests.Session | None = None,
             teamwork_session: requests.Session | None = None) -> Services:
    """``sleep`` and ``clock`` replace real waiting and time everywhere at once (the tests
    and benchmarks run in simulated time); sessions let them reach in-process simulators."""
    metrics = metrics or Metrics()
    timing: dict[str, Any] = {"clock": clock} if clock else {}
    zendesk = ZendeskClient(settings.zendesk, metrics=metrics, sleep=sleep,
                            session=zendesk_session, **timing)
    teamwork = TeamworkClient(settings.teamwork, metrics=metrics, sleep=sleep,
                              session=teamwork_session, **timing)
    reconciler = Reconciler(settings, store, teamwork, metrics, **timing)
    reconciler.use_zendesk(zendesk)
    return Services(settings, store, zendesk, teamwork, reconciler, metrics,
                    clock or time.time)
