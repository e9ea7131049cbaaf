"""The top-level group's options after the command (``zdsync.cli.root.hoisted``)."""

from __future__ import annotations

from zdsync.cli import main
from zdsync.cli.root import hoisted


def test_global_options_after_the_command_move_before_it():
    assert hoisted(["check", "--redis-port", "1", "--json"], main.params) == [
        "--redis-port", "1", "check", "--json"]
    assert hoisted(["--config", "a.toml", "users", "add", "--redis-port=2", "5", "6",
                    "--no-redis-use-sentinel"], main.params) == [
        "--config", "a.toml", "--redis-port=2", "--no-redis-use-sentinel", "users", "add",
        "5", "6"]


def test_what_follows_a_double_dash_or_lacks_its_value_stays():
    assert hoisted(["tickets", "show", "--", "--redis-port", "1"], main.params) == [
        "tickets", "show", "--", "--redis-port", "1"]
    assert hoisted(["check", "--redis-port"], main.params) == ["check", "--redis-port"]
    assert hoisted(["--version"], main.params) == ["--version"]
    assert hoisted(["check", "--help"], main.params) == ["check", "--help"]
