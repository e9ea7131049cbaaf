"""Whether Redis may evict zdsync's keys (its ``maxmemory-policy``).

A Redis used as a cache (``maxmemory-policy allkeys-lru``, ``allkeys-lfu`` or
``allkeys-random``) drops any key when it is full, and zdsync's state is not a cache of
something Redis can read back: every ``allkeys-*`` policy is an error. ``volatile-*``
policies evict only keys with a TTL; zdsync's are the sync lease (``lock:sync``), the
webhook event ids and the ticket histories, all harmless to lose (``store.KEYS``), so
they are accepted; ``noeviction`` is what to use. Then a full Redis refuses writes
(``store.RedisFull``): the pass stops, nothing is lost and the cursor keeps its place.
Some managed services refuse ``CONFIG GET``: the policy is then reported as unknown and
zdsync goes on. (BullMQ and Sidekiq check the same thing, for the same reason.)
"""

from __future__ import annotations

import logging

import redis

from zdsync.metrics import Metrics

log = logging.getLogger(__name__)

FIX = "set maxmemory-policy noeviction (redis.conf, or CONFIG SET maxmemory-policy noeviction)"


def read_policy(client: redis.Redis) -> str | None:
    """Redis's ``maxmemory-policy``, or None when the server refuses ``CONFIG GET``."""
    try:
        return str(client.config_get("maxmemory-policy").get("maxmemory-policy") or "") or None
    except redis.ResponseError:
        return None


def problem(policy: str) -> str | None:
    """Why this policy endangers zdsync's state (None when it does not)."""
    if policy.startswith("allkeys-"):
        return (f"Redis's maxmemory-policy is {policy}: when Redis is full it evicts any "
                "key, and zdsync's state is not a cache")
    return None


def check(client: redis.Redis, metrics: Metrics | None = None) -> str | None:
    """Read and judge the policy: an unsafe one is an ERROR line (and the metric
    ``zdsync_redis_eviction_unsafe`` 1); unknown is a WARNING (-1). Returns the policy."""
    policy = read_policy(client)
    if policy is None:
        log.warning("could not read Redis's maxmemory-policy (CONFIG GET refused, as some "
                    "managed services do); make sure it is noeviction or volatile-*")
        state = -1
    elif (why := problem(policy)) is not None:
        log.error("%s: %s", why, FIX)
        state = 1
    else:
        state = 0
    if metrics is not None:
        metrics.eviction_unsafe.set(state)
    return policy
