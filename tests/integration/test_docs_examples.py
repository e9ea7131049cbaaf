"""docs/cli.md's and README.md's example outputs are what zdsync prints: docs/examples.py
makes them again from real runs (a seeded world, a private redis-server, a frozen clock)
and compares."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REGENERATE = ".venv/bin/python docs/examples.py"


def examples(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "docs/examples.py", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300)


def test_the_documented_examples_are_what_zdsync_prints_now():
    result = examples("--check")
    assert result.returncode == 0, (
        f"docs/cli.md or README.md shows output zdsync no longer prints; regenerate it "
        f"with `{REGENERATE}` and review the diff:\n{result.stderr[-8000:]}")


def test_a_stale_example_is_named_with_the_command_that_regenerates_it(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("Intro.\n\n<!-- output: users-export -->\n```console\n$ zdsync users "
                    "export\nzendesk_user_id,teamwork_person_id\n10002,999\n```\n"
                    "<!-- end -->\n")
    result = examples("--check", str(page))
    assert result.returncode == 1
    assert "-10002,999" in result.stderr and "+10002,502" in result.stderr
    assert REGENERATE in result.stderr
    assert "10002,999" in page.read_text()  # --check changes nothing

    assert examples(str(page)).returncode == 0
    assert "10002,502\n10003,503\n$ echo $?\n0\n```\n<!-- end -->" in page.read_text()
    assert page.read_text().startswith("Intro.\n\n<!-- output: users-export -->\n")


def test_a_marker_naming_no_example_fails(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("<!-- output: users-frobnicate -->\n<!-- end -->\n")
    result = examples("--check", str(page))
    assert result.returncode != 0 and "no example named 'users-frobnicate'" in result.stderr
