"""``zdsync run``: the long-running process.

Threads, and why:

- the APScheduler job runs a pass at start and every ``sync.interval`` seconds
  (``max_instances=1``, ``coalesce=True``, an explicit ``misfire_grace_time``: APScheduler's
  1 s default silently drops late runs). Missed and failed runs are counted;
- the worker elects the leader (a Redis lease, see ``lease.SyncLock``) and, on the leader,
  handles webhook-queued tickets between passes; a running pass takes them first itself;
- waitress serves the webhook (with the probes and metrics) on ``http.port``, and only
  the probes and metrics on ``http.probe_port``, each with threads of its own: slow
  clients or webhooks stuck on Redis at the first cannot starve the probes at the second.

Only the leader touches Zendesk and Teamwork, and it checks the lease before every write.
Passes and webhook work on the leader are serialised by one in-process lock, so one
ticket is never reconciled twice at once; standby replicas stay live and ready (they can
still take webhooks: that only queues ids in Redis).

Shutdown (SIGTERM/SIGINT): stop taking webhooks, stop the work in hand at the next
boundary (a wait for a rate limit or a retry is cut short; the ticket in hand stays marked
in flight and is observed by whoever works next; nothing counts as failed), release the
lease, exit 0. A second signal exits at once. SIGHUP reloads ``[users] file``.
"""

from __future__ import annotations

import datetime as dt
import errno
import logging
import os
import signal
import socket
import threading
import time
from types import FrameType

import redis
from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from zdsync import defaults, eviction
from zdsync.agents import CsvError, read_mappings_file
from zdsync.config import BY_DEST, Settings
from zdsync.connection import connect
from zdsync.diagnosis import Probe
from zdsync.errors import ConfigError, ShuttingDown
from zdsync.lease import SyncLock
from zdsync.metrics import Metrics
from zdsync.passes import Pass
from zdsync.server import App, Health, Server
from zdsync.services import services
from zdsync.store import Store

log = logging.getLogger(__name__)



def listen_problem(setting: str, host: str, port: int, exc: OSError | ValueError) -> str:
    """Why ``host:port`` cannot be listened on, naming the setting to change."""
    code = getattr(exc, "errno", None)
    if code == errno.EADDRINUSE:
        return (f"{setting} {port} is already in use on {host}: stop the other process or "
                f"choose a free port: {BY_DEST[setting.replace('.', '_')].how_to_set()}")
    if code == errno.EACCES:
        return (f"{setting} {port} needs privileges on {host} (ports below 1024 do): "
                f"{BY_DEST[setting.replace('.', '_')].how_to_set()}")
    if isinstance(exc, socket.gaierror | ValueError) or code == errno.EADDRNOTAVAIL:
        return (f"http.host {host!r} cannot be listened on ({exc}): use an address of this "
                f"machine, or 0.0.0.0 for all: {BY_DEST['http_host'].how_to_set()}")
    return (f"cannot listen on {host}:{port} ({exc}): check http.host and {setting}")


class Daemon:
    def __init__(self, settings: Settings, *, metrics: Metrics | None = None,
                 store: Store | None = None, http_port: int | None = None) -> None:
        self.settings = settings
        self.metrics = metrics or Metrics()
        self.store = store or Store.from_settings(settings.redis)
        self.probe = Probe(settings.redis)
        # The webhook's own client: no retries, a short timeout (a hung Redis -> 503 fast).
        self.webhook_store = Store(connect(settings.redis, attempts=0,
                                           timeout_seconds=defaults.WEBHOOK_REDIS_TIMEOUT_SECONDS),
                                   settings.redis.key_prefix)
        self.lock_ttl_seconds = settings.sync.lock_ttl
        self.stopping = threading.Event()
        self.work = threading.Lock()  # one reconciler at a time in this process
        self.lock: SyncLock | None = None
        self.started_at = time.time()
        self.pass_running = False
        self.current: Pass | None = None  # the work in hand, for the probes
        self.identity: str | None = None  # the store identity seen: another one means lost
        self.reload_users = threading.Event()
        self.services = services(settings, self.store, metrics=self.metrics, sleep=self._sleep)
        self.scheduler = BackgroundScheduler(
            executors={"default": ThreadPoolExecutor(1)},
            job_defaults={"max_instances": 1, "coalesce": True,
                          "misfire_grace_time": defaults.MISFIRE_GRACE_SECONDS},
            timezone="UTC",
        )
        self.scheduler.add_listener(self._on_job_event,
                                    EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        secret = settings.webhook.secret.reveal() if settings.webhook.secret else None
        self.app = App(self.metrics, Health(self._live_problems, self._ready_problems),
                       enqueue=self.webhook_store.enqueue_webhook, webhook_secret=secret)
        self.server = self._listen("http.port",
                                   settings.http.port if http_port is None else http_port)
        self.probe_server: Server | None = None
        if settings.http.probe_port:
            try:
                self.probe_server = self._listen("http.probe_port", settings.http.probe_port,
                                                 probes_only=True)
            except ConfigError:
                self.server.server.close()  # type: ignore[union-attr]
                raise
        self.worker = threading.Thread(target=self._work, name="zdsync-worker", daemon=True)

    def _listen(self, setting: str, port: int, *, probes_only: bool = False) -> Server:
        """Bind now, before anything starts: an unusable address is a configuration
        error (exit 2 naming the setting), not a traceback."""
        host = self.settings.http.host
        try:
            return Server(self.app, host, port, probes_only=probes_only)
        except (OSError, ValueError) as exc:
            raise ConfigError([listen_problem(setting, host, port, exc)]) from None

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Daemon:
        self.reload_users.set()  # the worker loads [users] file, retrying while Redis is down
        self.server.start()
        if self.probe_server is not None:
            self.probe_server.start()
        self.scheduler.add_job(self._pass_job, "interval", seconds=self.settings.sync.interval,
                               id="pass", next_run_time=_now_utc())
        self.scheduler.start()
        self.worker.start()  # after the job exists: winning the lease reschedules it
        log.info("zdsync running: pass every %.0f s; http on %s:%s (probes also on %s); "
                 "webhook %s", self.settings.sync.interval, self.settings.http.host,
                 self.server.port,
                 self.probe_server.port if self.probe_server else "no separate port",
                 "on" if self.app.secret else "off")
        problem = self.probe.problem()
        if problem:  # said once, plainly; /readyz keeps saying it until Redis answers
            log.error("%s; zdsync keeps trying, unready meanwhile", problem)
        return self

    def run(self) -> int:
        """Start, wait for a signal, shut down. Returns the exit code."""
        signals = 0

        def handle(signum: int, frame: FrameType | None) -> None:
            nonlocal signals
            signals += 1
            if signals > 1:
                log.warning("second signal: exiting now")
                os._exit(1)
            log.info("signal %s: shutting down", signal.Signals(signum).name)
            self.stopping.set()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)
        signal.signal(signal.SIGHUP, lambda signum, frame: self.reload_users.set())
        self.start()
        self.stopping.wait()
        if not self.shutdown():
            os._exit(0)  # do not wait for the abandoned request's thread
        return 0

    def shutdown(self) -> bool:
        """Stop; True when the work in hand finished (False: it is abandoned mid-request)."""
        self.stopping.set()
        self.app.accepting.clear()
        self.scheduler.shutdown(wait=False)
        # Wait for the ticket in hand: the pass and the worker both stop at a boundary.
        finished = self.work.acquire(timeout=defaults.SHUTDOWN_SECONDS)
        if finished:
            self.work.release()
        self.worker.join(timeout=5)
        if finished:
            self._resign()
        else:
            # A request is still in flight: releasing the lease would let a standby act on
            # the same ticket at once. Let the lease expire instead.
            log.warning("the ticket in hand did not finish in %.0f s; leaving the lease to "
                        "expire", defaults.SHUTDOWN_SECONDS)
        self.server.stop()
        if self.probe_server is not None:
            self.probe_server.stop()
        log.info("zdsync stopped")
        return finished

    def _sleep(self, seconds: float) -> None:
        """Waits inside API clients; cut short by shutdown."""
        if self.stopping.wait(seconds):
            raise ShuttingDown("shutting down")

    def load_users_file(self) -> None:
        """Apply ``[users] file`` (at start and on SIGHUP); a bad file is logged and the
        mappings in Redis stay as they are."""
        path = self.settings.users.file
        if not path:
            return
        try:
            changed = self.store.merge_mappings(read_mappings_file(path))
        except (OSError, UnicodeDecodeError, CsvError) as exc:
            log.error("users.file %s not loaded, mappings unchanged: %s", path, exc)
            return
        log.info("users.file %s loaded: %d mapping(s) changed", path, changed)

    # -- leadership --------------------------------------------------------------------

    @property
    def leader(self) -> bool:
        return self.lock is not None and self.lock.held

    def _elect(self) -> None:
        if self.lock is not None and self.lock.lost.is_set():
            log.warning("lost the leader lease; standing by")
            self._resign()
        if self.lock is None:
            lock = self.store.lock("sync", self.lock_ttl_seconds)
            if lock.acquire():
                self.lock = lock
                log.info("became the leader")
                self.scheduler.modify_job("pass", next_run_time=_now_utc())
        self.metrics.leader.set(1 if self.leader else 0)

    def _resign(self) -> None:
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        self.metrics.leader.set(0)

    def _work(self) -> None:
        next_elect = 0.0
        while not self.stopping.is_set():
            try:
                self.store.replication.follow_master()
                if self.reload_users.is_set():
                    self.load_users_file()
                    eviction.check(self.store.r, self.metrics)
                    self.reload_users.clear()
                if time.monotonic() >= next_elect or (self.lock and self.lock.lost.is_set()):
                    self._elect()
                    next_elect = time.monotonic() + min(defaults.ELECT_EVERY_SECONDS,
                                                        self.settings.sync.interval)
                if self.leader and self.work.acquire(blocking=False):
                    try:
                        self._drain()
                    finally:
                        self.work.release()
            except redis.RedisError as exc:
                log.warning("worker: Redis error (retrying): %s", exc)
            except Exception:
                log.exception("worker: unexpected error")
            self.stopping.wait(defaults.WORKER_TICK_SECONDS)

    # -- work --------------------------------------------------------------------------

    def _new_pass(self) -> Pass:
        assert self.lock is not None
        return self.services.new_pass(self.lock, poll_webhooks=True,
                                      expected_identity=self.identity,
                                      stopping=self.stopping.is_set)

    def _pass_job(self) -> None:
        if not self.leader or self.stopping.is_set():
            return
        with self.work:
            self.pass_running = True
            try:
                self.current = self._new_pass()
                summary = self.current.run()
                self.identity = self.current.identity or self.identity
                log.info("pass: %s", summary.line())
            except redis.RedisError as exc:
                # The cursor only moves with the work it covers: the next pass resumes.
                self.metrics.passes.labels("error").inc()
                log.error("pass failed, Redis unavailable: %s", exc)
            finally:
                self.pass_running = False
                self.current = None

    def _drain(self) -> None:
        """Reconcile webhook-queued tickets between passes (the same path as a pass).
        Tickets not handled (shutdown, a lost lease) stay queued for whoever leads next."""
        if not self.store.webhook_batch(1):
            self.metrics.webhook_queue.set(0)
            return
        self._new_pass().webhooks()

    def _on_job_event(self, event: object) -> None:
        code = getattr(event, "code", 0)
        name = {EVENT_JOB_MISSED: "missed", EVENT_JOB_ERROR: "error",
                EVENT_JOB_MAX_INSTANCES: "max_instances"}.get(code, "other")
        self.metrics.scheduler_events.labels(name).inc()
        if code == EVENT_JOB_ERROR:
            log.error("pass crashed: %r", getattr(event, "exception", None))
        else:
            log.warning("scheduler: pass %s", name)

    # -- health ------------------------------------------------------------------------

    def _live_problems(self) -> list[str]:
        problems = []
        if not self.scheduler.running and not self.stopping.is_set():
            problems.append("scheduler not running")
        if not self.worker.is_alive() and not self.stopping.is_set():
            problems.append("worker thread died")
        return problems

    def _ready_problems(self) -> list[str]:
        problems = []
        if self.stopping.is_set():
            problems.append("shutting down")
        redis_problem = self.probe.problem()
        if redis_problem:
            problems.append(redis_problem)
        current = self.current
        if current is not None and current.rebuilding:
            problems.append("rebuilding the ticket->task links from Teamwork (Redis had "
                            "lost the state)")
        if self.leader and self.services.reconciler.mappings_held:
            problems.append("agent mappings lost from Redis: tasks keep their assignees "
                            "until they are restored (zdsync users import)")
        if self.leader:
            window = 3 * self.settings.sync.interval + defaults.HEALTH_MARGIN_SECONDS
            now = time.time()
            last = self.services.reconciler.last_success_at or self.started_at
            busy = self.pass_running and now - self.services.reconciler.progress_at <= window
            if now - last > window and not busy:
                problems.append(f"no successful pass for {now - last:.0f} s")
        return problems


def _now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)
