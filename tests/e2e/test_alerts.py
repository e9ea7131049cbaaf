"""The alert rules: promtool checks them and runs their unit tests, every metric they name is
one zdsync exports, every alert has a runbook, and a real Prometheus scraping real
`zdsync run` processes fires exactly the alerts each situation calls for."""

from __future__ import annotations

import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

import click
import pytest
import requests
import yaml

from tests.deploy_helpers import (
    DEPLOY,
    REPO,
    RULES,
    all_exported_names,
    exported_metric_names,
    query_metric_names,
    run,
    tool,
)
from tests.e2e.test_daemon import wait_until, world_on
from zdsync.cli import main
from zdsync.localredis import free_port

RUNBOOKS = REPO / "docs" / "operations.md"


def rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"]
            for rule in group["rules"]]


def test_rule_file_passes_promtool_check():
    result = run(tool("promtool"), "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_rule_unit_tests_pass_and_cover_every_alert():
    tests = DEPLOY / "prometheus" / "zdsync-alerts.test.yml"
    result = run(tool("promtool"), "test", "rules", str(tests), cwd=tests.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = {case["alertname"] for test in yaml.safe_load(tests.read_text())["tests"]
              for case in test["alert_rule_test"] if case.get("exp_alerts")}
    assert tested == {rule["alert"] for rule in rules()}


def test_alerts_use_only_exported_metrics():
    exported = all_exported_names() | {"up"}  # up: Prometheus's own, per scrape target
    for rule in rules():
        names = query_metric_names(rule["expr"])
        assert names and names <= exported, (rule["alert"], names - exported)


def test_readme_lists_exactly_the_exported_metrics():
    """The README's metric list is what an operator writes queries from: it names every
    family zdsync exports and nothing else."""
    readme = (REPO / "README.md").read_text()
    paragraph = readme.split("Metrics (never a ticket id as a label):", 1)[1].split("\n\n")[0]
    listed = set(re.findall(r"`(zdsync_\w+)", paragraph))
    # Counters by their sample name (…_total), the others by their family name.
    exported = {f"{f}_total" if f"{f}_total" in names else f
                for f, names in exported_metric_names().items()}
    assert listed == exported


def runbook_sections() -> dict[str, str]:
    text = RUNBOOKS.read_text().split("\n## Runbooks\n", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"^### (\w+)\n", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


def cli_commands() -> set[tuple[str, ...]]:
    """Every command path of the zdsync CLI: ("check",), ("retries", "list"), …"""
    paths: set[tuple[str, ...]] = set()

    def walk(command: click.Command, prefix: tuple[str, ...]) -> None:
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                paths.add((*prefix, name))
                walk(sub, (*prefix, name))

    walk(main, ())
    return paths


def test_every_alert_has_a_runbook_naming_real_commands():
    sections = runbook_sections()
    commands = cli_commands()
    for rule in rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        assert rule["annotations"]["runbook_url"] == f"docs/operations.md#{name.lower()}"
        assert name in sections, f"docs/operations.md has no '### {name}'"
        body = sections[name]
        for heading in ("What it means", "What to check"):
            assert f"**{heading}**" in body, (name, heading)
        named = re.findall(r"`zdsync ([a-z][a-z ]*?)(?: [A-Z-\[]|`)", body)
        assert named, f"{name}: the runbook names no zdsync command"
        for words in named:
            path = tuple(words.split())
            known = any(path[:n] in commands for n in (2, 1))
            assert known, f"{name}: `zdsync {words}` is no zdsync command"
    assert set(sections) == {rule["alert"] for rule in rules()}


# -- a real Prometheus against real daemons ---------------------------------------------------


def shortened_rules(path: Path, for_duration: str = "2s") -> Path:
    """A test copy of the rule file with every `for:` cut to ``for_duration``: a `for: 30m`
    cannot play out in a test. Expressions, labels and annotations stay as shipped."""
    data = yaml.safe_load(RULES.read_text())
    for group in data["groups"]:
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = for_duration
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


class Prometheus:
    """A private prometheus server (temporary storage, a free port, 1 s scrapes and rule
    evaluations), killed at the end of the test."""

    def __init__(self, tmp_path: Path, targets: dict[str, int]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s",
                       "scrape_timeout": "1s"},
            "rule_files": [str(shortened_rules(tmp_path / "zdsync-alerts.yml"))],
            "scrape_configs": [{"job_name": job, "metrics_path": "/metrics",
                                "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                               for job, port in targets.items()],
        }
        path = tmp_path / "prometheus.yml"
        path.write_text(yaml.safe_dump(config))
        self.log = (tmp_path / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            [tool("prometheus"), f"--config.file={path}",
             f"--storage.tsdb.path={tmp_path / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def get(self, path: str, **params: str) -> Any:
        response = requests.get(self.url + path, params=params, timeout=5)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]

    def wait_ready(self) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.proc.returncode}")
            return requests.get(self.url + "/-/ready", timeout=2).ok

        wait_until(ready, 30, "prometheus to be ready", interval=0.2)

    def value(self, query: str) -> float | None:
        result = self.get("/api/v1/query", query=query)["result"]
        return float(result[0]["value"][1]) if result else None

    def alerts(self) -> dict[str, set[tuple[str, str]]]:
        """job -> {(alertname, state)} of the pending and firing alerts."""
        active: dict[str, set[tuple[str, str]]] = {}
        for alert in self.get("/api/v1/alerts")["alerts"]:
            active.setdefault(alert["labels"].get("job", ""), set()).add(
                (alert["labels"]["alertname"], alert["state"]))
        return active

    def last_evaluation(self) -> str:
        return max(group["lastEvaluation"] for group in self.get("/api/v1/rules")["groups"])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self.log.close()


@pytest.mark.e2e
def test_prometheus_fires_exactly_the_alerts_each_daemon_calls_for(redis_server, redis_client,
                                                                   spawn, tmp_path):
    """Three daemons, one Prometheus (rules as shipped, `for:` shortened):

    - healthy: simulators that work; tickets and webhooks flow. No alert, pending or firing.
    - teamwork-down: TEAMWORK_URL is a port where nothing listens, and a Zendesk whose
      webhook secret no longer matches keeps delivering. Teamwork requests fail, the failed
      tickets pile up in the retry set, webhooks are refused: ZdsyncApiFailing (teamwork),
      ZdsyncRetrySetGrowing and ZdsyncWebhookRejections fire, and nothing else.
    - standby: another process holds the lease. ZdsyncNoLeader and ZdsyncLastPassTooOld.
    """
    tool("prometheus")  # skip (or, under CI, fail) before starting anything
    run_id = uuid.uuid4().hex[:6]
    with world_on(redis_server.port, f"ok{run_id}:") as healthy_world, \
            world_on(redis_server.port, f"tw{run_id}:") as failing_world, \
            world_on(redis_server.port, f"sb{run_id}:") as standby_world:
        for world in (healthy_world, failing_world):
            for n in range(2):
                world.ticket(f"Alert test {n}", assignee=world.agents[n], status="open")
            world.exportable()
        standby_world.store().r.set(standby_world.prefix + "lock:sync", "elsewhere:1:x",
                                    px=600_000)
        # An installation that has run before: a first start would rebuild its links from
        # Teamwork before anything else, and with Teamwork down it would attempt no ticket.
        failing_world.store().r.set(failing_world.prefix + "identity", "has run before")
        healthy = spawn(healthy_world)
        failing = spawn(failing_world, TEAMWORK_URL=f"http://127.0.0.1:{free_port()}")
        standby = spawn(standby_world)
        prometheus = Prometheus(tmp_path, {"healthy": healthy.port,
                                           "teamwork-down": failing.port,
                                           "standby": standby.port})
        try:
            prometheus.wait_ready()
            expected = {
                "teamwork-down": {("ZdsyncApiFailing", "firing"),
                                  ("ZdsyncRetrySetGrowing", "firing"),
                                  ("ZdsyncWebhookRejections", "firing")},
                "standby": {("ZdsyncNoLeader", "firing"), ("ZdsyncLastPassTooOld", "firing")},
            }
            sent = {"bad": 0, "good": 0}

            def settled() -> bool:
                # Zendesk retrying deliveries signed with an old secret; real ones elsewhere.
                if sent["bad"] < 200:
                    failing.post({"ticket_id": 1}, secret="rotated-away")
                    sent["bad"] += 1
                if sent["good"] < 50:
                    healthy.post({"ticket_id": 1, "id": f"evt-{sent['good']}"})
                    sent["good"] += 1
                return prometheus.alerts() == expected

            wait_until(settled, 150, "exactly the expected alerts", interval=0.5)
            # Not one lucky sample: the same over three later rule evaluations.
            for _ in range(3):
                before = prometheus.last_evaluation()
                wait_until(lambda before=before: prometheus.last_evaluation() > before, 20,
                           "the next rule evaluation", interval=0.2)
                assert prometheus.alerts() == expected
            # The healthy daemon was scraped, leads and passes: its silence means something.
            assert prometheus.value('up{job="healthy"}') == 1
            assert prometheus.value('zdsync_leader{job="healthy"}') == 1
            assert prometheus.value(
                'zdsync_passes_total{job="healthy", result="success"}') >= 1
            assert prometheus.value(
                'zdsync_webhook_requests_total{job="healthy", outcome="accepted"}') >= 1
            failed_alert = prometheus.get("/api/v1/alerts")["alerts"]
            api = next(a for a in failed_alert if a["labels"]["alertname"] == "ZdsyncApiFailing")
            assert api["labels"]["service"] == "teamwork"
        finally:
            prometheus.stop()
        assert healthy_world.check() == []
        assert "Traceback" not in healthy.output() + failing.output() + standby.output()
