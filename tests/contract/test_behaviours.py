"""The table of behaviours stays true: public sources, recordings that exist, every
recorded behaviour checked against its recordings, and docs/contract.md listing them all."""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import tests.contract
from tests.contract import recordings
from tests.contract.behaviours import BEHAVIOURS

SOURCE = re.compile(r"https://\S+|[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+ [^\s§]+")
"""A URL, or "owner/repository path/in/it"."""


def covered() -> dict[str, list[str]]:
    """Behaviour -> the contract tests that say ``@covers`` it."""
    found: dict[str, list[str]] = {key: [] for key in BEHAVIOURS}
    for module in pkgutil.iter_modules(tests.contract.__path__):
        if not module.name.startswith("test_"):
            continue
        loaded = importlib.import_module(f"tests.contract.{module.name}")
        for name, test in vars(loaded).items():
            for key in getattr(test, "behaviours", ()):
                found[key].append(f"{module.name}::{name}")
    return found


@pytest.mark.parametrize("key", sorted(BEHAVIOURS))
def test_every_source_is_public_and_named_in_full(key: str) -> None:
    behaviour = BEHAVIOURS[key]
    assert behaviour.service == key.split(".")[0]
    assert behaviour.sources, f"{key} names no source"
    for source in behaviour.sources:
        assert SOURCE.fullmatch(source), f"{key}: {source!r} is not a URL or repository path"


def test_every_named_recording_exists() -> None:
    named = sorted({r for b in BEHAVIOURS.values() for r in b.recordings})
    missing = [r for r in named if not (recordings.fixtures_dir() / r).is_file()]
    if len(missing) == len(named):
        pytest.skip(f"no recordings: looked in {recordings.where_looked()}")
    assert not missing


def test_every_recorded_behaviour_is_checked_against_its_recordings() -> None:
    found = covered()
    unchecked = [k for k, b in BEHAVIOURS.items() if b.recordings and not found[k]]
    assert not unchecked


def test_every_test_named_elsewhere_exists() -> None:
    root = recordings.REPOSITORY
    for key, behaviour in BEHAVIOURS.items():
        for test in behaviour.checked_by:
            path, name = test.split("::")
            assert f"def {name}(" in (root / path).read_text(), f"{key}: no {test}"


def test_docs_list_every_behaviour_and_say_how_it_is_checked() -> None:
    docs = (recordings.REPOSITORY / "docs" / "contract.md").read_text()
    found = covered()
    for key, behaviour in BEHAVIOURS.items():
        line = next((x for x in docs.splitlines() if f"`{key}`" in x), None)
        assert line is not None, f"docs/contract.md does not list {key}"
        recorded = "recorded" if behaviour.recordings else "documented"
        assert recorded in line, f"docs/contract.md: {key} should say {recorded}"
        assert found[key] or behaviour.checked_by or "unchecked" in line, key
