"""Helpers of the deployment tests (tests/test_deploy.py, tests/test_alerts.py): the external
tools, Kustomize rendering, and which metric names zdsync exports and a query uses."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from zdsync.metrics import Metrics

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
KUSTOMIZE = DEPLOY / "kubernetes"
RULES = DEPLOY / "prometheus" / "zdsync-alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "zdsync.json"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
KUBERNETES_VERSION = "1.30.0"
"""The Kubernetes release the manifests are validated against (kubernetes-validate)."""


def tool(name: str) -> str:
    """Path of an external tool: the venv's bin (pip-installed tools), then PATH. Missing:
    a failure under CI (.ci/run installs every tool, so a skip there would hide a gap),
    a skip with the reason elsewhere."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    found = shutil.which(name, path=search)
    if found:
        return found
    message = f"{name} is not installed (.ci/run installs it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def run(*argv: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize DIR``, offline, as a list of objects."""
    result = run(tool("kubectl"), "kustomize", str(directory))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind]
    assert len(found) == 1, f"{len(found)} objects of kind {kind}"
    return found[0]


def schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text())


# -- metric names --------------------------------------------------------------------------

SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
}


def exported_metric_names() -> dict[str, set[str]]:
    """Metric family -> the sample names ``/metrics`` can carry for it, from a fresh
    ``Metrics()``. Labelled families have no samples until first used, so the names follow
    from each family's type; where samples exist they must be among those names."""
    families: dict[str, set[str]] = {}
    for family in Metrics().registry.collect():
        names = {family.name + suffix for suffix in SUFFIXES[family.type]}
        actual = {sample.name for sample in family.samples}
        assert actual <= names, (family.name, actual - names)
        families[family.name] = names
    return families


def all_exported_names() -> set[str]:
    return set().union(*exported_metric_names().values())


def query_metric_names(expr: str) -> set[str]:
    """Every metric a PromQL expression selects (parsed, not grepped). A selector without a
    fixed metric name is refused: it could select anything."""
    names: set[str] = set()
    problems: list[str] = []

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            name = node.name
            for matcher in node.matchers.matchers:
                if matcher.name == "__name__":
                    if matcher.op != promql_parser.MatchOp.Equal:
                        problems.append(f"{node}: a metric name that is not fixed")
                    name = matcher.value
            if not name:
                problems.append(f"{node}: no metric name")
            else:
                names.add(name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    assert not problems, problems
    return names


# -- Grafana ---------------------------------------------------------------------------------

GRAFANA_INTERVALS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h"}


def grafana_to_promql(expr: str) -> str:
    """A dashboard query as Prometheus receives it: interval variables become durations,
    the others (used in ``=~"$job"`` matchers) match everything."""

    def value(match: re.Match[str]) -> str:
        return GRAFANA_INTERVALS.get(match[1] or match[2], ".*")

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", value, expr)


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from panels(item.get("panels", []))


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel target and every query variable."""
    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r} {target['refId']}", grafana_to_promql(target["expr"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            query = query["query"] if isinstance(query, dict) else query
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
            assert match, f"variable {variable['name']}: {query}"
            yield f"variable {variable['name']!r}", grafana_to_promql(match[1])
