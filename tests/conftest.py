"""Shared fixtures: a private redis-server per test session, flushed per test; the
simulators in process for command-line tests; a Sentinel cluster; TLS servers with ACL
users (``tests/tls.py`` makes their certificates), and a Sentinel cluster behind TLS and
passwords of its own."""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from tests.tls import DATA_LOGIN, SENTINEL_PASSWORD, Certificates, acl_conf
from zdsync.localredis import LocalRedis, Tls


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test using ``teamwork_variants`` runs under every set of ``VARIANT_SETS``."""
    from tests.world import VARIANT_SETS

    if "teamwork_variants" in metafunc.fixturenames:
        metafunc.parametrize("teamwork_variants", VARIANT_SETS, ids=str, indirect=True)


@pytest.fixture
def teamwork_variants(request: pytest.FixtureRequest) -> Iterator[Any]:
    """Every World this test makes answers under these Teamwork variants: each set of
    ``VARIANT_SETS`` in turn (a matrix: modules add it with ``usefixtures``)."""
    yield from _answering_under(request.param)


@pytest.fixture
def rotated_teamwork_variants(request: pytest.FixtureRequest) -> Iterator[Any]:
    """One set of ``VARIANT_SETS`` for this test, chosen by its name: where running every
    set costs too much CI time (real processes), the module's tests share the sets out,
    the same way every run."""
    from tests.world import VARIANT_SETS

    yield from _answering_under(VARIANT_SETS[rotation(request.node.nodeid)])


def rotation(nodeid: str) -> int:
    """Which of ``VARIANT_SETS`` a rotated test runs under: by its name, parameters aside."""
    from tests.world import VARIANT_SETS

    return zlib.crc32(nodeid.split("[")[0].encode()) % len(VARIANT_SETS)


def _answering_under(variants: Any) -> Iterator[Any]:
    from tests import world

    world.current_variants[0] = variants
    try:
        yield variants
    finally:
        world.current_variants[0] = world.Variants()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[LocalRedis]:
    server = LocalRedis().start()
    yield server
    server.stop()


@pytest.fixture
def cli_world(redis_client: redis.Redis) -> Iterator[Any]:
    """Both simulators in process on a frozen clock, reachable by every ``requests``
    session (so commands run through click's runner talk to them as to the real
    services), with the usual project, list, agents and mappings (``World.setup``)."""
    from tests.world import make_cli_world, reachable

    world = make_cli_world(redis_client.connection_pool.connection_kwargs["port"], "t:")
    with reachable(world):
        yield world


@pytest.fixture
def redis_client(redis_server: LocalRedis) -> Iterator[redis.Redis]:
    client = redis_server.client()
    client.flushall()
    yield client
    client.flushall()
    client.close()


class SentinelCluster:
    """A master, a replica and three Sentinels, all real processes on free ports. With
    ``tls``: every process serves TLS only, the data nodes know only the ACL user of
    ``tests.tls.DATA_LOGIN`` and the Sentinels ask for ``SENTINEL_PASSWORD``."""

    def __init__(self, tls: Tls | None = None) -> None:
        data: dict[str, Any] = {}
        watch: dict[str, Any] = {}
        if tls:
            user, password = DATA_LOGIN
            data = {"tls": tls, "login": DATA_LOGIN,
                    "conf": [*acl_conf(), f"masteruser {user}", f"masterauth {password}"]}
            watch = {"tls": tls, "login": (None, SENTINEL_PASSWORD), "conf": [
                f"requirepass {SENTINEL_PASSWORD}",
                f"sentinel auth-user mymaster {user}", f"sentinel auth-pass mymaster {password}",
                f"sentinel sentinel-pass {SENTINEL_PASSWORD}"]}
        self.master = LocalRedis(**data).start()
        self.replica = LocalRedis(replica_of=("127.0.0.1", self.master.port), **data).start()
        self.sentinels = [LocalRedis(sentinel_for=("mymaster", "127.0.0.1", self.master.port),
                                     **watch).start() for _ in range(3)]
        self.wait_until_ready()

    @property
    def hosts(self) -> str:
        return ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)

    def master_port(self) -> int:
        addr = self.sentinels[0].client().execute_command(
            "SENTINEL", "get-master-addr-by-name", "mymaster")
        return int(addr[1])

    def wait_until_ready(self, timeout_seconds: float = 60.0) -> None:
        """Until the replica is in sync and every Sentinel knows the replica and the others."""
        import time
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            try:
                info = self.replica.client().info("replication")
                known = [s.client().sentinel_master("mymaster") for s in self.sentinels]
                if (info.get("master_link_status") == "up"
                        and all(int(k["num-slaves"]) >= 1 and int(k["num-other-sentinels"]) >= 2
                                for k in known)):
                    return
            except redis.RedisError:
                pass
            time.sleep(0.2)
        raise RuntimeError("sentinel cluster did not become ready")

    def failover(self, timeout_seconds: float = 60.0) -> int:
        """SENTINEL FAILOVER; returns the new master's port once Sentinel reports it."""
        import time
        old = self.master_port()
        self.sentinels[0].client().execute_command("SENTINEL", "FAILOVER", "mymaster")
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            port = self.master_port()
            if port != old:
                return port
            time.sleep(0.1)
        raise RuntimeError("failover did not happen")

    def stop(self) -> None:
        for server in [*self.sentinels, self.replica, self.master]:
            server.stop()


@pytest.fixture
def sentinel_cluster() -> Iterator[SentinelCluster]:
    cluster = SentinelCluster()
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return Certificates(tmp_path_factory.mktemp("tls"))


def _tls_server(certs: Certificates, **tls: Any) -> Iterator[LocalRedis]:
    server = LocalRedis(tls=Tls(**{"cert": certs.server, "key": certs.server_key,
                                   "ca": certs.ca, **tls}),
                        login=DATA_LOGIN, conf=acl_conf()).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_redis(certificates: Certificates) -> Iterator[LocalRedis]:
    """TLS only (no plain port), the ``default`` user off, one ACL user: a managed Redis."""
    yield from _tls_server(certificates)


@pytest.fixture(scope="session")
def mtls_redis(certificates: Certificates) -> Iterator[LocalRedis]:
    """As ``tls_redis``, and clients must show a certificate signed by the CA."""
    yield from _tls_server(certificates, auth_clients=True)


@pytest.fixture(scope="session")
def expired_redis(certificates: Certificates) -> Iterator[LocalRedis]:
    """As ``tls_redis``, with a certificate that expired yesterday."""
    yield from _tls_server(certificates, cert=certificates.expired, key=certificates.expired_key)


@pytest.fixture(scope="session")
def misnamed_redis(certificates: Certificates) -> Iterator[LocalRedis]:
    """As ``tls_redis``, with a valid certificate for another host name."""
    yield from _tls_server(certificates, cert=certificates.misnamed,
                           key=certificates.misnamed_key)


@pytest.fixture
def tls_sentinel_cluster(certificates: Certificates) -> Iterator[SentinelCluster]:
    cluster = SentinelCluster(Tls(certificates.server, certificates.server_key, certificates.ca))
    yield cluster
    cluster.stop()
