"""Operator text and file data are printed literally: brackets are not rich markup."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import invoke

NASTY = "[/] [bold]x[/bold] [urgent] ticket [#42]"


@pytest.mark.parametrize(
    "args",
    [
        ["phase", "advance", "--to", NASTY],
        ["journal", "--since", NASTY],
        ["risk", "check", "--premium", NASTY],
        ["risk", "check", "--at", NASTY],
        ["phase", "export", "--until", NASTY],
    ],
)
def test_bad_values_with_brackets_are_usage_errors(args: list[str]) -> None:
    result = invoke(args)
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    assert "[urgent] ticket [#42]" in result.stderr  # shown literally


def test_operator_and_reason_with_brackets_round_trip(tmp_path: Path) -> None:
    invoke(["phase", "set-password", "--password-stdin"], input="a long password\n")
    result = invoke(
        [
            "phase",
            "advance",
            "--force",
            "--to",
            "proof",
            "--password-stdin",
            "--operator",
            NASTY,
            "--reason",
            NASTY,
        ],
        input="a long password\n",
    )
    assert result.exit_code == 0, result.stderr
    assert f"by {NASTY})" in result.stdout.replace("\n", "")
    table = invoke(["phase", "export"])
    assert table.exit_code == 0
    assert "[#42]" in table.stdout  # printed literally (the narrow column wraps the rest)
    doc = json.loads(invoke(["phase", "export", "--json"]).stdout)
    assert doc["transitions"][0]["reason"] == NASTY


def test_halt_reason_with_brackets_in_risk_check(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from tradebot.books.halt import KillSwitch
    from tradebot.config import load_config

    loaded = load_config(tmp_path / "config.toml")
    KillSwitch(loaded.state_dir, loaded.logs_dir).halt(
        datetime(2025, 7, 1, 14, tzinfo=UTC), operator="ops", reason=NASTY
    )
    result = invoke(["risk", "check", "--at", "2025-07-01T15:00:00Z"])
    assert result.exit_code == 4
    assert "[urgent] ticket [#42]" in result.stdout
