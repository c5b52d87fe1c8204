"""The commands as a new user finds them: `--help` and the README's commands table agree with
the parser, and what surprises (map's @timestamp) is said in both places."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from elastic_connector.cli import _parser, main

README = Path(__file__).resolve().parents[1] / "README.md"


def _commands_table() -> dict[str, str]:
    """README's commands table: subcommand -> its row."""
    text = README.read_text(encoding="utf-8")
    section = text.split("### Commands", 1)[1].split("\n\n", 2)[1]
    rows = {}
    for line in section.splitlines():
        match = re.match(r"\| `elastic-connector (\w+)", line)
        if match:
            rows[match.group(1)] = line
    return rows


def _subcommands() -> set[str]:
    return {
        name
        for action in _parser()._actions
        if isinstance(action, argparse._SubParsersAction)
        for name in action.choices
    }


def test_every_command_is_in_the_readme_table() -> None:
    assert set(_commands_table()) == _subcommands()


def test_map_now_is_documented_in_help_and_readme(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["map", "--help"])
    assert exited.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--now ISO_TIME" in help_text
    assert "@timestamp is the time of mapping, so the output differs from run to run" in help_text
    assert "for reproducible output" in help_text
    row = _commands_table()["map"]
    assert "--now" in row
    assert "reproducible" in row


@pytest.mark.parametrize(
    "command", ["check", "setup", "reconcile", "map", "sightings", "config", "status"]
)
def test_one_shot_commands_offer_verbose(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert "--verbose" in capsys.readouterr().out
