"""Faithful in-memory simulators of the Zendesk and Teamwork APIs, for tests and demos.

See docs/simulators.md for the behaviour of every endpoint and the reference it follows.
"""

from zdsync.sim.activity import ActivityGenerator
from zdsync.sim.base import Clock, Faults, RateLimiter, RequestLog
from zdsync.sim.consistency import Difference, check
from zdsync.sim.teamwork import TeamworkSim
from zdsync.sim.zendesk import ZendeskSim

__all__ = [
    "ActivityGenerator", "Clock", "Difference", "Faults", "RateLimiter", "RequestLog",
    "TeamworkSim", "ZendeskSim", "check",
]
