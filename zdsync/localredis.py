"""A private ``redis-server`` on a free port in a temporary folder.

Used by ``zdsync demo`` when no Redis answers, and by the test suite, which must never
touch anybody's data. Nothing is persisted unless ``appendonly=True``; the folder is removed
on ``stop()``. ``halt()`` stops the process but keeps the folder, so that ``start()`` brings
the same server back on the same port (with its data, when it has an append-only file):
how the soak script restarts Redis under a running daemon.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis


class RedisUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class Tls:
    """TLS for a test server: its certificate and key (also its client certificate towards
    other servers), the CA it trusts, and whether clients must show a certificate."""

    cert: str
    key: str
    ca: str
    auth_clients: bool = False

    def conf(self, port: int) -> list[str]:
        return ["port 0", f"tls-port {port}", f"tls-cert-file {self.cert}",
                f"tls-key-file {self.key}", f"tls-ca-cert-file {self.ca}",
                f"tls-auth-clients {'yes' if self.auth_clients else 'no'}",
                "tls-replication yes"]

    def client_kwargs(self) -> dict[str, Any]:
        """For the harness's own clients, which check no certificate (some test servers
        have bad ones on purpose; the tests check zdsync's clients)."""
        return {"ssl": True, "ssl_cert_reqs": "none", "ssl_certfile": self.cert,
                "ssl_keyfile": self.key}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalRedis:
    """One redis-server process (a master, a replica, or a sentinel)."""

    def __init__(self, port: int | None = None, *, replica_of: tuple[str, int] | None = None,
                 sentinel_for: tuple[str, str, int] | None = None,
                 appendonly: bool = False, tls: Tls | None = None,
                 login: tuple[str | None, str] | None = None, conf: Sequence[str] = ()) -> None:
        """``appendonly``: keep an append-only file, fsynced every second (what a Redis
        on a persistent volume does), so a restart after ``halt()`` finds the data.
        ``tls``: serve TLS only, on ``port``. ``login``: the (user, password) this object's
        own clients use. ``conf``: more configuration lines (ACL users, ``masterauth``,
        Sentinel's ``auth-pass``…), written last."""
        self.port = port or free_port()
        self.replica_of = replica_of
        self.sentinel_for = sentinel_for  # (master name, host, port)
        self.appendonly = appendonly
        self.tls = tls
        self.login = login
        self.extra_conf = list(conf)
        self.dir = Path(tempfile.mkdtemp(prefix="zdsync-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return shutil.which("redis-server") is not None

    def start(self, timeout_seconds: float = 10.0) -> LocalRedis:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RedisUnavailable("redis-server is not on PATH")
        conf = [
            *(self.tls.conf(self.port) if self.tls else [f"port {self.port}"]),
            "bind 127.0.0.1", f"dir {self.dir}", 'save ""',
            "appendonly yes" if self.appendonly else "appendonly no",
            "protected-mode no", f"logfile {self.dir / 'redis.log'}",
        ]
        if self.appendonly:
            conf.append("appendfsync everysec")
        if self.replica_of:
            conf.append(f"replicaof {self.replica_of[0]} {self.replica_of[1]}")
        args = [exe, str(self.dir / "redis.conf")]
        if self.sentinel_for:
            name, host, mport = self.sentinel_for
            conf += [
                f"sentinel monitor {name} {host} {mport} 2",
                f"sentinel down-after-milliseconds {name} 1000",
                f"sentinel failover-timeout {name} 5000",
                f"sentinel parallel-syncs {name} 1",
            ]
            args.append("--sentinel")
        conf += self.extra_conf
        (self.dir / "redis.conf").write_text("\n".join(conf) + "\n")
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RedisUnavailable(f"redis-server exited: {self.log_tail()}")
            try:
                if self.client(socket_timeout=0.5).ping():
                    return self
            except redis.RedisError:
                time.sleep(0.05)
        self.stop()
        raise RedisUnavailable(f"redis-server did not answer on port {self.port}")

    def log_tail(self) -> str:
        log = self.dir / "redis.log"
        return log.read_text()[-2000:] if log.exists() else ""

    def client(self, **kwargs: Any) -> redis.Redis:
        """A client of this server, with its TLS files and login when it has them."""
        if self.tls:
            kwargs.update(self.tls.client_kwargs())
        if self.login:
            kwargs.update(username=self.login[0], password=self.login[1])
        return redis.Redis(port=self.port, decode_responses=True, **kwargs)

    def halt(self, *, crash: bool = False) -> None:
        """Stop the process and keep the folder: ``start()`` brings it back on the same
        port and folder. ``crash``: SIGKILL, so that Redis cannot write anything more (an
        append-only file then loses up to its last second, as in a real crash)."""
        if self.proc and self.proc.poll() is None:
            if crash:
                self.proc.send_signal(signal.SIGKILL)
            else:
                self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def stop(self) -> None:
        self.halt()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> LocalRedis:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
