"""``zdsync sim ...`` starts a simulator, prints how to reach it, and stops on Ctrl-C."""

from __future__ import annotations

import re

import pytest
import requests
from click.testing import CliRunner

from zdsync.sim import cli


@pytest.mark.parametrize("command, needle", [
    (["zendesk", "--port", "0", "--seed-data", "--email", "me@example.com", "--token", "t"],
     "me@example.com/token:t"),
    (["teamwork", "--port", "0", "--seed-data", "--token", "t"], "task list 2001"),
    (["teamwork", "--port", "0", "--variant", "existing_tag=409", "--variant",
      "completed_edits=refused"], "variants: completed_edits=refused,existing_tag=409"),
])
def test_sim_command_serves_until_interrupted(monkeypatch: pytest.MonkeyPatch,
                                              command: list[str], needle: str) -> None:
    seen: dict[str, int] = {}

    def interrupt(_seconds: float) -> None:
        url = re.search(r"url:\s+(\S+)", captured())[1]  # the server answers while serving
        seen["status"] = requests.get(f"{url}/_sim/health", timeout=5).status_code
        raise KeyboardInterrupt

    runner = CliRunner()
    output: list[str] = []

    def captured() -> str:
        return "".join(output)

    monkeypatch.setattr(cli.click, "echo", lambda message="", **_: output.append(f"{message}\n"))
    monkeypatch.setattr(cli.time, "sleep", interrupt)
    result = runner.invoke(cli.sim, command)
    assert result.exit_code == 0, result.output
    assert needle in captured() and "Stopping." in captured()
    assert seen["status"] == 200


@pytest.mark.parametrize("variant", ["existing_tag=maybe", "colour=blue", "existing_tag"])
def test_an_unknown_teamwork_variant_is_refused_naming_the_choices(variant: str) -> None:
    result = CliRunner().invoke(cli.sim, ["teamwork", "--port", "0", "--variant", variant])
    assert result.exit_code == 2
    assert "--variant" in result.output and "existing_tag" in result.output
