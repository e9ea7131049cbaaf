"""The deployment artifacts, each checked with the tool that will consume it: Kustomize renders
every overlay, kubernetes-validate checks the result against the Kubernetes schemas of a
pinned release, zdsync's own config loader reads the rendered ConfigMap and environment,
hadolint lints the Dockerfile, and the docker-compose commands run here as processes."""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import requests
import yaml

from tests.deploy_helpers import (
    DASHBOARD,
    KUBERNETES_VERSION,
    KUSTOMIZE,
    REPO,
    RULES,
    all_exported_names,
    dashboard_queries,
    exported_metric_names,
    kustomize,
    only,
    panels,
    query_metric_names,
    run,
    schema,
    tool,
)
from tests.e2e.test_daemon import Daemon, wait_until
from zdsync import defaults
from zdsync.config import Settings, load
from zdsync.errors import ConfigError
from zdsync.localredis import free_port

SECRET_KEYS = ("ZENDESK_API_TOKEN", "ZENDESK_OAUTH_TOKEN", "TEAMWORK_API_TOKEN",
               "TEAMWORK_OAUTH_TOKEN", "REDIS_URL", "REDIS_PASSWORD", "REDIS_SENTINEL_PASSWORD",
               "WEBHOOK_SECRET")
OVERLAYS = ("standalone", "sentinel")
SITE_SECRETS = {"ZENDESK_API_TOKEN": "zendesk-token", "TEAMWORK_API_TOKEN": "teamwork-token",
                "WEBHOOK_SECRET": "webhook-secret"}


# -- rendering -----------------------------------------------------------------------------


def site_overlay(tmp_path: Path, overlay: str, *, secrets: dict[str, str] | None = None,
                 config: str | None = None, monitoring: bool = False) -> Path:
    """What the README tells an operator to do: copy an overlay, then add their config.toml,
    their secrets.env and, optionally, the monitoring component."""
    site = tmp_path / f"site-{overlay}"
    site.mkdir()
    source = KUSTOMIZE / "overlays" / overlay
    kustomization = yaml.safe_load((source / "kustomization.yaml").read_text())
    base = os.path.relpath(KUSTOMIZE / "base", site)
    kustomization["resources"] = [base if r == "../../base" else r
                                  for r in kustomization["resources"]]
    if config is not None:
        (site / "config.toml").write_text(config)
        kustomization["configMapGenerator"].append(
            {"name": "zdsync-config", "behavior": "replace", "files": ["config.toml"]})
    if secrets is not None:
        (site / "secrets.env").write_text("".join(f"{k}={v}\n" for k, v in secrets.items()))
        kustomization["secretGenerator"] = [
            {"name": "zdsync-secrets", "behavior": "merge", "envs": ["secrets.env"]}]
    if monitoring:
        kustomization["components"] = [os.path.relpath(KUSTOMIZE / "components" / "monitoring",
                                                       site)]
    (site / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    return site


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """Every render once per module: the base, both overlays as shipped, and both as a site
    overlay with secrets and the monitoring component."""
    tmp = tmp_path_factory.mktemp("kustomize")
    renders = {"base": kustomize(KUSTOMIZE / "base")}
    for overlay in OVERLAYS:
        renders[overlay] = kustomize(KUSTOMIZE / "overlays" / overlay)
        renders[f"{overlay}+site"] = kustomize(site_overlay(tmp, overlay, secrets=SITE_SECRETS,
                                                            monitoring=True))
    return renders


def validate(obj: dict[str, Any]) -> None:
    """Built-in kinds against the Kubernetes schemas (strict: unknown fields are errors);
    the Prometheus Operator's custom resources against tests/schemas (kubernetes-validate
    has no schemas for CRDs)."""
    if obj["apiVersion"].startswith("monitoring.coreos.com/"):
        jsonschema.validate(obj, schema(f"{obj['kind'].lower()}.schema.json"))
    else:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def named(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind} {name}: {len(found)} found"
    return found[0]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    containers = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def environment(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The container's environment as Kubernetes would build it from the rendered objects."""
    spec = container(objects)
    env: dict[str, str] = {}
    for source in spec.get("envFrom", []):
        env.update(named(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for var in spec["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            data = named(objects, "Secret", ref["name"])["data"]
            env[var["name"]] = base64.b64decode(data[ref["key"]]).decode()
    return env


def settings_of(objects: list[dict[str, Any]], tmp_path: Path) -> Settings:
    """Load the rendered configuration with zdsync's own loader: config.toml from the
    ConfigMap mounted where ZDSYNC_CONFIG points, plus the container's environment."""
    env = environment(objects)
    spec = container(objects)
    config = Path(env["ZDSYNC_CONFIG"])
    mount = next(m for m in spec["volumeMounts"] if m["mountPath"] == str(config.parent))
    volume = next(v for v in only(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == mount["name"])
    configmap = named(objects, "ConfigMap", volume["configMap"]["name"])
    path = tmp_path / config.name
    path.write_text(configmap["data"][config.name])
    return load(None, {}, {**env, "ZDSYNC_CONFIG": str(path)})


# -- Kubernetes ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["base", *OVERLAYS, *(f"{o}+site" for o in OVERLAYS)])
def test_every_render_is_valid_for_the_pinned_kubernetes(rendered, name):
    objects = rendered[name]
    kinds = sorted(o["kind"] for o in objects)
    expected = ["ConfigMap", "Deployment", "PodDisruptionBudget", "Secret", "Service",
                "ServiceAccount"]
    if name != "base":
        expected.append("ConfigMap")  # zdsync-redis
    if name.endswith("+site"):
        expected += ["PrometheusRule", "ServiceMonitor"]
    assert kinds == sorted(expected)
    for obj in objects:
        validate(obj)
    if name != "base":
        assert {o["metadata"].get("namespace") for o in objects} == {"zdsync"}


def test_the_validators_catch_mistakes(rendered):
    """The checks above have teeth: a misspelt probe field and an unknown ServiceMonitor
    field are both refused."""
    objects = rendered["standalone+site"]
    deployment = copy.deepcopy(only(objects, "Deployment"))
    deployment["spec"]["template"]["spec"]["containers"][0]["readynessProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(deployment)
    monitor = copy.deepcopy(only(objects, "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError):
        validate(monitor)


@pytest.mark.parametrize("name", [*OVERLAYS, *(f"{o}+site" for o in OVERLAYS)])
def test_deployment_is_hardened_and_highly_available(rendered, name):
    objects = rendered[name]
    deployment = only(objects, "Deployment")
    spec = deployment["spec"]
    pod = spec["template"]["spec"]
    c = container(objects)
    assert spec["replicas"] == 2
    rolling = spec["strategy"]["rollingUpdate"]
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert rolling["maxUnavailable"] == 0 and rolling["maxSurge"] == 1  # one stays ready
    budget = only(objects, "PodDisruptionBudget")["spec"]
    assert budget["minAvailable"] == 1
    assert budget["selector"]["matchLabels"].items() <= spec["template"]["metadata"][
        "labels"].items()

    assert pod["enableServiceLinks"] is False
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    security = c["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    for kind in ("requests", "limits"):
        assert set(c["resources"][kind]) == {"cpu", "memory"}, kind
    # SIGTERM: the ticket in hand (SHUTDOWN_SECONDS), the worker (5 s), the server (5 s).
    assert pod["terminationGracePeriodSeconds"] >= defaults.SHUTDOWN_SECONDS + 10

    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http": 8080, "probes": 8081}
    for probe, path in (("startupProbe", "/livez"), ("livenessProbe", "/livez"),
                        ("readinessProbe", "/readyz")):
        assert c[probe]["httpGet"] == {"path": path, "port": "probes"}, probe
    assert c["args"] == ["run"]


@pytest.mark.parametrize("name", [*OVERLAYS, *(f"{o}+site" for o in OVERLAYS)])
def test_every_reference_resolves(rendered, name):
    """Names Kustomize rewrote (hash suffixes), selectors and port names all point at
    something that exists in the same render."""
    objects = rendered[name]
    deployment = only(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    c = container(objects)
    named(objects, "ServiceAccount", pod["serviceAccountName"])
    for source in c["envFrom"]:
        named(objects, "ConfigMap", source["configMapRef"]["name"])
    secret_vars = {}
    for var in c["env"]:
        if "valueFrom" in var:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["key"] in named(objects, "Secret", ref["name"])["data"]
            secret_vars[var["name"]] = ref["key"]
    assert secret_vars == {k: k for k in SECRET_KEYS}
    for volume in pod["volumes"]:
        if "configMap" in volume:
            named(objects, "ConfigMap", volume["configMap"]["name"])
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()

    service = only(objects, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    container_ports = {p["name"] for p in c["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} == container_ports
    if name.endswith("+site"):
        monitor = only(objects, "ServiceMonitor")["spec"]
        assert monitor["selector"]["matchLabels"].items() <= service["metadata"][
            "labels"].items()
        service_port = {p["name"]: p for p in service["spec"]["ports"]}
        [endpoint] = monitor["endpoints"]
        assert endpoint == {**endpoint, "port": "probes", "path": "/metrics"}
        assert service_port[endpoint["port"]]["targetPort"] == "probes"


def test_the_readme_managed_redis_overlay_renders_and_loads(tmp_path, certificates):
    """The README's Kustomize lines for a managed Redis, added to a site overlay: valid
    objects, REDIS_URL from the Secret, the CA from its ConfigMap where REDIS_SSL_CA_CERTS
    points."""
    readme = (REPO / "README.md").read_text()
    [block] = [b for b in re.findall(r"```yaml\n(.*?)```", readme, re.DOTALL)
               if "a site overlay on a managed Redis" in b]
    url = "rediss://zdsync:managed-pw@my-cache.example.com:6380/0"
    site = site_overlay(tmp_path, "standalone", secrets={**SITE_SECRETS, "REDIS_URL": url})
    (site / "redis-ca.pem").write_bytes(Path(certificates.ca).read_bytes())
    kustomization = yaml.safe_load((site / "kustomization.yaml").read_text())
    extra = yaml.safe_load(block)
    kustomization["configMapGenerator"] += extra["configMapGenerator"]
    kustomization["patches"] = extra["patches"]
    (site / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    objects = kustomize(site)
    for obj in objects:
        validate(obj)
    env = environment(objects)
    ca_path = Path(env["REDIS_SSL_CA_CERTS"])
    spec = container(objects)
    mount = next(m for m in spec["volumeMounts"] if m["mountPath"] == str(ca_path.parent))
    volume = next(v for v in only(objects, "Deployment")["spec"]["template"]["spec"]["volumes"]
                  if v["name"] == mount["name"])
    ca = tmp_path / "mounted-ca.pem"  # what the pod would find at ca_path
    ca.write_text(named(objects, "ConfigMap", volume["configMap"]["name"])["data"][ca_path.name])
    settings = load(None, {}, {**env, "ZDSYNC_CONFIG": "", "REDIS_SSL_CA_CERTS": str(ca)},
                    require_services=False)
    assert settings.redis.url.reveal() == url and settings.redis.tls
    assert ca.read_text() == Path(certificates.ca).read_text()


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_configuration_loads_with_zdsync(rendered, overlay, tmp_path):
    """zdsync's own loader reads the rendered ConfigMap and environment: with the secrets an
    operator adds, it loads; as shipped (empty secrets), it refuses and says what is missing."""
    settings = settings_of(rendered[f"{overlay}+site"], tmp_path)
    assert settings.zendesk.api_token.reveal() == SITE_SECRETS["ZENDESK_API_TOKEN"]
    assert settings.webhook.secret.reveal() == SITE_SECRETS["WEBHOOK_SECRET"]
    assert settings.redis.password is None  # an empty value means unset
    assert settings.redis.url is None and settings.zendesk.oauth_token is None
    assert settings.http.port == 8080
    if overlay == "sentinel":
        assert settings.redis.use_sentinel and len(settings.redis.sentinel_hosts) == 3
    else:
        assert not settings.redis.use_sentinel
        assert (settings.redis.host, settings.redis.port) == ("redis", 6379)
    with pytest.raises(ConfigError) as refused:
        settings_of(rendered[overlay], tmp_path)
    text = str(refused.value.problems)
    assert "ZENDESK_API_TOKEN" in text and "TEAMWORK_API_TOKEN" in text


def expected_probes(lock_ttl: float, interval: float) -> dict[str, Any]:
    """The derivation that deployment.yaml and docs/operations.md explain."""
    return {
        "minReadySeconds": lock_ttl / 3,
        "startupProbe": {"periodSeconds": 2, "failureThreshold": lock_ttl / 2},
        "livenessProbe": {"periodSeconds": lock_ttl / 3, "timeoutSeconds": lock_ttl / 6,
                          "failureThreshold": 3},
        "readinessProbe": {"periodSeconds": min(lock_ttl, interval) / 6, "failureThreshold": 2},
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_probe_timings_follow_lock_ttl_and_interval(rendered, overlay, tmp_path):
    objects = rendered[f"{overlay}+site"]
    settings = settings_of(objects, tmp_path)
    want = expected_probes(settings.sync.lock_ttl, settings.sync.interval)
    c = container(objects)
    assert only(objects, "Deployment")["spec"]["minReadySeconds"] == want.pop("minReadySeconds")
    for probe, fields in want.items():
        assert {k: c[probe][k] for k in fields} == fields, probe
    liveness = c["livenessProbe"]
    # Restarted after one lease lifetime, never sooner: a standby can hold the lease by then.
    assert liveness["periodSeconds"] * liveness["failureThreshold"] == settings.sync.lock_ttl
    # The readiness window of zdsync itself (3 intervals + margin) is far longer than the
    # probe's reaction time, so the probe never adds noticeable delay to it.
    readiness = c["readinessProbe"]
    assert readiness["periodSeconds"] * readiness["failureThreshold"] < (
        3 * settings.sync.interval + defaults.HEALTH_MARGIN_SECONDS) / 10


def test_a_site_config_replaces_the_base_one(tmp_path):
    """An operator's config.toml replaces the base file, and its hash-suffixed name reaches
    the Deployment, so a config change rolls the pods."""
    mine = (KUSTOMIZE / "base" / "config.toml").read_text().replace('"acme"', '"initech"')
    objects = kustomize(site_overlay(tmp_path, "standalone", secrets=SITE_SECRETS,
                                     config=mine))
    settings = settings_of(objects, tmp_path)
    assert settings.zendesk.subdomain == "initech" and settings.teamwork.domain == "initech"
    shipped = kustomize(KUSTOMIZE / "overlays" / "standalone")
    names = [[v["configMap"]["name"] for v in only(o, "Deployment")["spec"]["template"]["spec"]
              ["volumes"] if "configMap" in v] for o in (objects, shipped)]
    assert names[0] != names[1] and all(n[0].startswith("zdsync-config-") for n in names)


def test_prometheusrule_carries_the_rule_file(rendered, tmp_path):
    """The component's PrometheusRule holds exactly deploy/prometheus/zdsync-alerts.yml, and
    promtool accepts it as a rule file."""
    rule = only(rendered["standalone+site"], "PrometheusRule")
    assert rule["spec"] == yaml.safe_load(RULES.read_text()), (
        "copy deploy/prometheus/zdsync-alerts.yml into the PrometheusRule's spec")
    path = tmp_path / "from-prometheusrule.yml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    result = run(tool("promtool"), "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


# -- Grafana ---------------------------------------------------------------------------------


def test_dashboard_queries_parse_and_use_only_exported_metrics(tmp_path):
    """Every query parses (Prometheus's own parser through promtool, and promql-parser for
    the metric names) and selects only metrics zdsync exports, from Metrics().registry."""
    dashboard = json.loads(DASHBOARD.read_text())
    queries = list(dashboard_queries(dashboard))
    assert len(queries) >= 20
    exported = all_exported_names()
    used: set[str] = set()
    for where, expr in queries:
        names = query_metric_names(expr)
        assert names and names <= exported, (where, names - exported)
        used |= names
    # Prometheus parses them too: as recording rules, which promtool checks.
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query{n}", "expr": expr} for n, (_, expr) in enumerate(queries)]}]}
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    result = run(tool("promtool"), "check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    # Every family zdsync exports is on the dashboard somewhere.
    missing = [family for family, names in exported_metric_names().items()
               if not names & used]
    assert missing == []


def test_dashboard_layout_and_variables():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "zdsync" and dashboard["title"] == "zdsync"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    everything = list(panels(dashboard["panels"]))
    ids = [p["id"] for p in everything]
    assert len(ids) == len(set(ids))
    cells: dict[tuple[int, int], str] = {}
    for p in everything:
        grid = p["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, p["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{p['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = p["title"]
        if p["type"] != "row":
            assert p["datasource"]["uid"] == "${datasource}", p["title"]
            for target in p["targets"]:
                assert "$job" in target["expr"] and "$instance" in target["expr"], p["title"]


# -- Dockerfile ------------------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    stages: list[list[tuple[str, str]]] = [[]]
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stages.append([])
        stages[-1].append((instruction.upper(), args.strip()))
    return stages


def instruction(stage: list[tuple[str, str]], name: str) -> list[str]:
    return [args for ins, args in stage if ins == name]


def test_dockerfile_is_hadolint_clean():
    result = run(tool("hadolint"), "--no-color", str(REPO / "Dockerfile"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_final_stage_runs_tini_as_non_root_with_no_build_tools():
    preamble, *stages = dockerfile_stages()
    assert len(stages) >= 2, "multi-stage"
    image = dict(re.findall(r"(\w+)=(\S+)", " ".join(instruction(preamble, "ARG"))))
    base = image["PYTHON_IMAGE"]
    assert re.fullmatch(r"python:\d+\.\d+\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", base), base
    final = stages[-1]
    assert instruction(final, "FROM") == ["${PYTHON_IMAGE}"]
    [user] = instruction(final, "USER")
    assert re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", user), "a numeric non-root user"
    [entrypoint] = instruction(final, "ENTRYPOINT")
    assert json.loads(entrypoint)[:3] == ["tini", "--", "zdsync"]
    assert any("--from=build /usr/bin/tini-static" in c for c in instruction(final, "COPY"))
    runs = " ".join(instruction(final, "RUN"))
    for word in ("apt-get", "pip", "gcc", "build-essential", "curl"):
        assert word not in runs, word
    assert set(instruction(final, "EXPOSE")[0].split()) == {"8080", "8081"}
    [healthcheck] = instruction(final, "HEALTHCHECK")
    assert "/livez" in healthcheck


def healthcheck_command() -> list[str]:
    [healthcheck] = instruction(dockerfile_stages()[-1], "HEALTHCHECK")
    command = json.loads(healthcheck.split(" CMD ", 1)[1])
    assert command[0] == "python"
    return [sys.executable, *command[1:]]


# -- docker-compose, run as processes ---------------------------------------------------------


def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_compose_file_wires_the_trial_together():
    services = compose()["services"]
    assert set(services) == {"redis", "zendesk", "teamwork", "setup", "zdsync", "prometheus"}
    for name in ("zendesk", "teamwork", "setup", "zdsync"):
        assert services[name]["build"] == "." and services[name]["image"] == "zdsync:local"
    assert services["setup"]["depends_on"] == {
        "redis": {"condition": "service_healthy"}, "zendesk": {"condition": "service_healthy"},
        "teamwork": {"condition": "service_healthy"}}
    assert services["zdsync"]["depends_on"] == {
        "setup": {"condition": "service_completed_successfully"}}
    assert services["zdsync"]["command"] == ["run"]
    assert services["prometheus"]["profiles"] == ["monitoring"]
    # The settings are complete for zdsync's own loader (hosts are compose service names).
    settings = load(None, {}, services["zdsync"]["environment"])
    assert settings.teamwork.project_id == 801 and settings.redis.host == "redis"
    # Prometheus of the trial loads the shipped rules.
    result = run(tool("promtool"), "check", "config", str(REPO / "deploy" / "prometheus"
                                                           / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


class Trial:
    """docker-compose.yml's services as local processes: each service's command, run by this
    Python's zdsync, with its environment; compose host names become 127.0.0.1 and each
    published port a free local one."""

    def __init__(self, redis_port: int) -> None:
        self.services = compose()["services"]
        self.ports: dict[int, int] = {6379: redis_port}
        for service in self.services.values():
            for mapping in service.get("ports", []):
                self.ports[int(str(mapping).rsplit(":", 1)[1])] = free_port()
        self.hosts = set(self.services)

    def translate(self, value: str, *, host: bool = False) -> str:
        """``host``: the value may be a bare host name (REDIS_HOST), not a word of a command."""
        if (host and value in self.hosts) or value == "0.0.0.0":
            return "127.0.0.1"
        value = re.sub(r"//(\w+):", lambda m: "//127.0.0.1:" if m[1] in self.hosts
                       else m[0], value)
        return re.sub(r"\b(\d{4,5})\b", lambda m: str(self.ports.get(int(m[1]), m[1])), value)

    def command(self, name: str) -> list[str]:
        return [sys.executable, "-m", "zdsync",
                *(self.translate(str(arg)) for arg in self.services[name]["command"])]

    def env(self, name: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(
            ("ZENDESK_", "TEAMWORK_", "REDIS_", "SYNC_", "LOG_", "HTTP_", "WEBHOOK_"))}
        env.update({k: self.translate(str(v), host=True)
                    for k, v in self.services[name].get("environment", {}).items()})
        if name == "zdsync":  # what publishing 8080 and 8081 does
            env.update({"HTTP_HOST": "127.0.0.1", "HTTP_PORT": str(self.ports[8080]),
                        "HTTP_PROBE_PORT": str(self.ports[8081])})
        return env

    def published(self, name: str) -> int:
        """The local port standing in for the service's first published port."""
        return self.ports[int(str(self.services[name]["ports"][0]).rsplit(":", 1)[1])]

    def healthcheck(self, name: str) -> list[str]:
        test = self.services[name]["healthcheck"]["test"]
        assert test[:2] == ["CMD", "python"]
        return [sys.executable, *(self.translate(arg) for arg in test[2:])]


@pytest.fixture
def processes() -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(argv: list[str], env: dict[str, str], port: int) -> Daemon:
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        started.append(Daemon(proc, port, "", port))
        return started[-1]

    yield start
    for process in started:
        if process.proc.poll() is None:
            process.proc.kill()
        process.proc.wait(10)
        process.reader.join(timeout=5)


@pytest.mark.e2e
def test_compose_trial_syncs_the_seeded_tickets(redis_server, redis_client, processes):
    """docker-compose.yml's commands, run here: both simulators (seed data and live activity),
    the set-up that maps agents by e-mail, then `zdsync run`. Tasks are created, some for
    mapped agents' Teamwork people, and the image's HEALTHCHECK passes against the daemon."""
    trial = Trial(redis_server.port)
    sims = {name: processes(trial.command(name), trial.env(name), trial.published(name))
            for name in ("zendesk", "teamwork")}
    for name, sim in sims.items():
        wait_until(lambda sim=sim: sim.get("/_sim/health").ok, 20, f"the {name} simulator")
        check = subprocess.run(trial.healthcheck(name), capture_output=True, timeout=30)
        assert check.returncode == 0, check.stderr
    # Zendesk exports a ticket once it is a minute old: move the simulator's clock on.
    advanced = requests.post(f"{sims['zendesk'].url}/_sim/clock/advance",
                             json={"seconds": 120}, timeout=5)
    assert advanced.ok, advanced.text
    setup = subprocess.run(trial.command("setup"), env=trial.env("setup"), capture_output=True,
                           text=True, timeout=60)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert "stored 2 new mapping(s)" in setup.stdout
    daemon = processes(trial.command("zdsync"), trial.env("zdsync"), trial.published("zdsync"))
    wait_until(lambda: daemon.proc.poll() is None and daemon.get("/readyz").ok, 30,
               "zdsync run to be ready")

    env = trial.env("zdsync")
    listed = subprocess.run([sys.executable, "-m", "zdsync", "users", "list", "--json",
                             "--no-names"], env=env, capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    people = {row["teamwork_person_id"] for row in json.loads(listed.stdout)}
    assert people == {502, 503}  # Alice and Bob of `zdsync sim teamwork --seed-data`
    mapped_seen: list[int] = []

    def synced() -> bool:
        response = requests.get(
            f"{sims['teamwork'].url}/projects/api/v3/tasklists/"
            f"{env['TEAMWORK_TASKLIST_ID']}/tasks.json",
            auth=(env["TEAMWORK_API_TOKEN"], "X"), params={"pageSize": 500}, timeout=5)
        response.raise_for_status()
        for task in response.json()["tasks"]:
            mapped_seen.extend(a["id"] for a in task.get("assignees") or []
                               if a["id"] in people)
        created = daemon.value("zdsync_actions_total", action="create", outcome="ok")
        return created >= 3 and bool(mapped_seen)

    wait_until(synced, 60, "tasks for the seeded tickets, one for a mapped agent",
               interval=0.5)
    wait_until(lambda: daemon.value("zdsync_passes_total", result="success") >= 1, 60,
               "a successful pass", interval=0.5)
    assert daemon.proc.poll() is None, daemon.output()[-3000:]

    command = healthcheck_command()
    healthy = subprocess.run(command, env={**os.environ, "HTTP_PORT": str(trial.ports[8080])},
                             capture_output=True, timeout=30)
    assert healthy.returncode == 0, healthy.stderr
    nobody = subprocess.run(command, env={**os.environ, "HTTP_PORT": str(free_port())},
                            capture_output=True, timeout=30)
    assert nobody.returncode != 0
    assert "Traceback" not in daemon.output(), daemon.output()[-3000:]


def test_readme_shows_the_compose_commands():
    """The README's compose instructions name the services that exist."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Deploying", 1)[1].split("\n## ", 1)[0]
    assert "docker compose up --build" in section
    assert "kubectl apply -k" in section and "components/monitoring" in section
    assert "deploy/grafana/zdsync.json" in section and "docs/operations.md" in section
    for line in re.findall(r"docker compose [^\n`]*", section):
        for service in re.findall(r"(?:logs|restart|stop|exec)\s+(?:-f\s+)?(\w+)", line):
            assert service in compose()["services"], line


def test_the_compose_curls_ask_the_published_probe_port():
    """The README and docker-compose.yml send probes and metrics to the probe port
    (`http.probe_port`), and the compose file publishes it."""
    probe_port = Settings().http.probe_port
    published = {str(p).rsplit(":", 1)[1] for p in compose()["services"]["zdsync"]["ports"]}
    assert str(probe_port) in published
    readme = (REPO / "README.md").read_text()
    texts = [readme.split("### A local trial with docker compose", 1)[1].split("\n### ", 1)[0],
             (REPO / "docker-compose.yml").read_text()]
    curls = [m for text in texts
             for m in re.findall(r"curl [^\n]*?localhost:(\d+)/(readyz|livez|healthz|metrics)",
                                 text)]
    assert len(curls) >= 4, curls
    assert {port for port, _ in curls} == {str(probe_port)}, curls
