"""`tradebot config check | show`."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from tests.cli.conftest import invoke
from tradebot.cli import app


def test_check_ok_with_defaults() -> None:
    result = invoke(["config", "check"])
    assert result.exit_code == 0
    assert "config OK" in result.stdout
    assert "built-in defaults" in result.stdout
    assert result.stderr == ""


def test_check_bad_config_exits_3_with_one_line_per_problem(write_config) -> None:
    write_config("[risk]\nmax_daily_los_pct = 3\n[broker]\nport = 0\n")
    result = invoke(["config", "check"])
    assert result.exit_code == 3
    assert result.stdout == ""
    lines = [ln.strip() for ln in result.stderr.strip().splitlines()]
    assert lines[0].startswith("error: config.toml: 2 problem(s)")
    assert "risk.max_daily_los_pct: unknown key (did you mean 'max_daily_loss_pct'?)" in lines
    assert any(line.startswith("broker.port: ") for line in lines)
    assert "Traceback" not in result.stderr


def test_check_bad_toml_exits_3(write_config) -> None:
    write_config("[risk\n")
    result = invoke(["config", "check"])
    assert result.exit_code == 3
    assert "line 1" in result.stderr


def test_check_json(write_config) -> None:
    write_config('[trading]\nsymbols = ["IWM"]\n')
    result = invoke(["config", "check", "--json"])
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["valid"] is True
    assert doc["symbols"] == ["IWM"]


def test_show_masks_secrets_in_text_and_json(write_config, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "tgram://999:VERY-SECRET-TOKEN/42"
    write_config("")
    monkeypatch.setenv("TRADEBOT_MONITORING__NOTIFY_URLS", json.dumps([secret]))
    from tradebot.core.override_password import hash_password

    stored = hash_password("a good password")
    monkeypatch.setenv("TRADEBOT_PHASE__OVERRIDE_PASSWORD_HASH", stored)
    for args in (["config", "show"], ["config", "show", "--json"]):
        result = invoke(args)
        assert result.exit_code == 0
        assert "VERY-SECRET-TOKEN" not in result.stdout + result.stderr
        assert stored not in result.stdout + result.stderr
        assert stored.split("$")[-1] not in result.stdout + result.stderr
        assert "**********" in result.stdout


def test_show_reflects_env_override(write_config, monkeypatch: pytest.MonkeyPatch) -> None:
    write_config("[risk]\nmax_daily_loss_pct = 4\n")
    monkeypatch.setenv("TRADEBOT_RISK__MAX_DAILY_LOSS_PCT", "2.5")
    doc = json.loads(invoke(["config", "show", "--json"]).stdout)
    assert doc["risk"]["max_daily_loss_pct"] == "2.5"
    text = invoke(["config", "show"]).stdout
    assert "max_daily_loss_pct = 2.5" in text


def test_explicit_missing_config_warns_but_uses_defaults() -> None:
    result = invoke(["--config", "nope.toml", "journal"])
    assert result.exit_code == 0
    assert "nope.toml not found" in result.stderr


def test_config_check_of_a_missing_named_file_exits_3() -> None:
    """A check of a file that is not there must fail: "config OK" would mislead."""
    for args, env in ((["--config", "nope.toml"], None), ([], {"TRADEBOT_CONFIG": "nope.toml"})):
        result = CliRunner().invoke(app, [*args, "config", "check"], env=env)
        assert result.exit_code == 3, result.stdout
        assert "nope.toml does not exist: nothing to check" in result.stderr
        assert "config OK" not in result.stdout
        assert len(result.stderr.strip().splitlines()) == 1
