"""The sync lease: at most one process works on tickets at a time.

A Redis key with a random token and a TTL, renewed by a token-checking script. Redis
replication is asynchronous and a paused process can wake up past its TTL, so the lease
alone is an efficiency lock; what makes it safe is that every write of the sync state
is *fenced* by the token (``store.StateWriter`` refuses to write for a stale holder), and
every Teamwork write is preceded by ``check()`` (nothing can fence Teamwork itself).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time

import redis

from zdsync import scripts
from zdsync.errors import LeaseLost, LockHeld

log = logging.getLogger(__name__)



class SyncLock:
    """A lease in Redis with a random token and a TTL, renewed by a token-checking script.

    A background thread renews it every third of the TTL; ``lost`` is set when a renewal
    finds the lock gone or the TTL runs out unrenewed. ``held`` also turns false two thirds
    of a TTL after the last renewal was sent, even while a renewal hangs on a stalled
    Redis: by then a standby may take over, so the holder stops first (as
    controller-runtime's renew deadline does). ``held`` reads the monotonic clock, which
    keeps running while a process is frozen (SIGSTOP, a long GC, a suspended VM), so a
    holder that wakes up late knows it at once, without asking Redis.

    The value is ``host:pid:random``, so "who holds it" can be told; the scripts compare
    the whole value.
    """

    def __init__(self, client: redis.Redis, key: str, ttl_seconds: float) -> None:
        self.r = client
        self.key = key
        self.ttl_ms = int(ttl_seconds * 1000)
        self.token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(8)}"
        self.lost = threading.Event()
        self._held = False
        self._valid_until = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._renew = client.register_script(scripts.RENEW_LEASE)
        self._release = client.register_script(scripts.RELEASE_LEASE)

    @property
    def held(self) -> bool:
        return (self._held and not self.lost.is_set()
                and time.monotonic() < self._valid_until)

    def check(self) -> None:
        """Raise ``LeaseLost`` unless the lease is held now: called before every write."""
        if not self.held:
            raise LeaseLost("the sync lease is no longer held")

    def _validity_from(self, sent: float) -> None:
        self._valid_until = sent + self.ttl_ms / 1000 * 2 / 3

    def acquire(self) -> bool:
        sent = time.monotonic()
        if self.r.set(self.key, self.token, nx=True, px=self.ttl_ms):
            self._held = True
            self._validity_from(sent)
            self.lost.clear()
            self._start_keeper()
            return True
        return False

    def acquire_or_raise(self) -> SyncLock:
        if not self.acquire():
            holder = (self.r.get(self.key) or "?").rsplit(":", 1)[0]
            ttl = self.r.pttl(self.key) / 1000
            raise LockHeld(f"another zdsync process holds the lock {self.key}: {holder} "
                           f"(it expires {ttl:.0f} s after its holder stops renewing it)")
        return self

    def renew(self) -> bool:
        sent = time.monotonic()
        ok = bool(self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))
        if ok:
            self._validity_from(sent)
        else:
            self.lost.set()
        return ok

    def _start_keeper(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._keep, name="zdsync-lock", daemon=True)
        self._thread.start()

    def _keep(self) -> None:
        interval = self.ttl_ms / 3000
        deadline = time.monotonic() + self.ttl_ms / 1000
        while not self._stop.wait(interval):
            try:
                if not self.renew():
                    log.error("lost the lock %s", self.key)
                    return
                deadline = time.monotonic() + self.ttl_ms / 1000
            except redis.RedisError as exc:
                log.warning("could not renew the lock %s: %s", self.key, exc)
                if time.monotonic() >= deadline:
                    self.lost.set()
                    return

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._held:
            try:
                self._release(keys=[self.key], args=[self.token])
            except redis.RedisError as exc:
                log.warning("could not release the lock %s (it expires by itself): %s",
                            self.key, exc)
        self._held = False
