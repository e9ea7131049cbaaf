"""The key table: every Redis key zdsync writes says whether its loss matters."""

from __future__ import annotations

import ast
from pathlib import Path

import zdsync
from zdsync.store import KEYS, MARKED

SOURCE = Path(zdsync.__file__).parent


def named_keys() -> dict[str, str]:
    """Every key named in zdsync's code (``<x>.key("a", b)`` -> ``a:{}``), and where."""
    found = {}
    for path in SOURCE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "key" and node.args):
                parts = [a.value if isinstance(a, ast.Constant) else "{}" for a in node.args]
                found[":".join(str(p) for p in parts)] = f"{path.name}:{node.lineno}"
    return found


def listed(name: str) -> bool:
    """Whether a key named in the code is in ``KEYS`` (a ``{}`` part matches any part)."""
    parts = name.split(":")
    for entry in KEYS:
        listed_parts = entry.split(":")
        if len(listed_parts) == len(parts) and all(
                a == b or a == "{}" or b.startswith("{") for a, b in zip(parts, listed_parts,
                                                                         strict=True)):
            return True
    return False


def test_every_key_the_code_names_says_whether_its_loss_matters():
    names = named_keys()
    assert len(names) > 15  # the scan sees the code
    unlisted = {n: where for n, where in names.items() if not listed(n)}
    assert unlisted == {}, "add these keys to store.KEYS, saying what their loss costs"


def test_a_key_not_in_the_table_is_caught():
    assert not listed("a_new_key") and not listed("history:{}:extra")
    assert listed("history:{}") and listed("lock:{}") and listed("users:held")


def test_every_key_whose_loss_matters_can_carry_the_identity():
    for name, key in KEYS.items():
        assert key.loss, name
        assert key.loss.startswith("harmless") != key.marked, name
        if key.marked:
            assert key.type in ("hash", "zset") and "{" not in name, name
    assert set(MARKED) == {"cursor", "tickets", "users", "remap", "suspect", "retry"}
