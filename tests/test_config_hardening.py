"""Config leniency and odd config paths (issue 7): strict types, bounds, clear exit 3."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.cli.conftest import invoke
from tradebot.config import load_config
from tradebot.errors import ConfigError


def _problems(path: Path) -> tuple[str, tuple[str, ...]]:
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return err.value.message, err.value.details


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("[trading]\ninterval_s = true\n", "trading.interval_s: must be a whole number"),
        ("[trading]\ninterval_s = 180.5\n", "trading.interval_s: must be a whole number"),
        ('[trading]\ninterval_s = "180"\n', "trading.interval_s: must be a whole number"),
        (
            '[strategies.scalp]\nenabled = "yes"\n',
            "strategies.scalp.enabled: must be true or false",
        ),
        ("[strategies.whale]\nenabled = 1\n", "strategies.whale.enabled: must be true or false"),
        ('[trading]\nsymbols = ["SPY", "QQQ", "SPY"]\n', "trading.symbols: Value error, lists SPY"),
        ('[broker]\nhost = ""\n', "broker.host: must not be empty"),
        ('[broker]\nhost = "bad host"\n', "broker.host: String should match pattern"),
        ("[trading]\ninterval_s = 1000000000\n", "trading.interval_s: Input should be less"),
        ("[risk]\npaper_equity = 1e-20\n", "risk.paper_equity: Input should be greater"),
        ("[risk]\npaper_equity = 1e400\n", "risk.paper_equity: Input should be less"),
        ("[risk]\npaper_equity = nan\n", "risk.paper_equity: must be a finite number"),
        ("[risk]\npaper_equity = inf\n", "risk.paper_equity: must be a finite number"),
        ('[risk]\npaper_equity = "10000"\n', "risk.paper_equity: must be a number"),
        ("[phase.proof]\nmin_trades = 10000000\n", "phase.proof.min_trades: Input should be less"),
        ("[broker]\nclient_id = 99999999999\n", "broker.client_id: Input should be less"),
        ('[paths]\nstate_dir = ""\n', "paths.state_dir: must not be empty"),
        ("[phase.trial]\ncounted_modes = []\n", "phase.trial.counted_modes: List should have"),
    ],
)
def test_lenient_or_absurd_values_are_refused_naming_the_key(
    write_config, body: str, expected: str
) -> None:  # type: ignore[no-untyped-def]
    message, details = _problems(write_config(body))
    assert message.endswith(
        "config.toml: 1 problem(s) in the configuration; fix them and run `tradebot config check`"
    )
    assert len(details) == 1 and details[0].startswith(expected.replace("Value error, ", "")), (
        details
    )


def test_an_environment_value_names_the_variable_not_the_file(
    write_config, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    path = write_config("[trading]\ninterval_s = 60\n")
    monkeypatch.setenv("TRADEBOT_STRATEGIES__SCALP__ENABLED", "yes")
    message, details = _problems(path)
    assert "1 problem(s) in TRADEBOT_* environment variables" in message
    assert "config.toml" not in message
    assert details == (
        "strategies.scalp.enabled: 'yes' is not true or false "
        "(from environment variable TRADEBOT_STRATEGIES__SCALP__ENABLED)",
    )
    monkeypatch.setenv("TRADEBOT_STRATEGIES__SCALP__ENABLED", "false")
    monkeypatch.setenv("TRADEBOT_TRADING__SYMBOLS", '["SPY", "SPY"]')
    message, details = _problems(path)
    assert "(from environment variable TRADEBOT_TRADING__SYMBOLS)" in details[0]
    monkeypatch.setenv("TRADEBOT_TRADING__SYMBOLS", '["SPY"]')
    settings = load_config(path).settings
    assert settings.strategies.scalp.enabled is False and settings.trading.interval_s == 60


@pytest.mark.parametrize(("value", "ok"), [("true", True), ("1", True), ("0", False), ("on", None)])
def test_environment_booleans(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str, ok: bool | None
) -> None:
    monkeypatch.setenv("TRADEBOT_STRATEGIES__WHALE__ENABLED", value)
    if ok is None:
        with pytest.raises(ConfigError):
            load_config(tmp_path / "absent.toml")
    else:
        assert load_config(tmp_path / "absent.toml").settings.strategies.whale.enabled is ok


def _make(kind: str, tmp_path: Path) -> Path:
    path = tmp_path / "cfg.toml"
    if kind == "dangling symlink":
        path.symlink_to(tmp_path / "gone.toml")
    elif kind == "symlink loop":
        path.symlink_to(tmp_path / "other.toml")
        (tmp_path / "other.toml").symlink_to(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "FIFO":
        os.mkfifo(path)
    elif kind == "file in the path":
        (tmp_path / "afile").write_text("x")
        path = tmp_path / "afile" / "config.toml"
    return path


KINDS = {
    "dangling symlink": "which does not exist",
    "symlink loop": "is a symlink loop",
    "directory": "is a directory, not a file",
    "FIFO": "is not a regular file",
    "file in the path": "a directory in its path is a file",
}


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("how", ["--config", "TRADEBOT_CONFIG"])
def test_a_config_path_that_cannot_be_the_config_exits_3_with_the_reason(
    kind: str, how: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _make(kind, tmp_path)
    if how == "--config":
        result = invoke(["--config", str(path), "config", "check"])
    else:
        monkeypatch.setenv("TRADEBOT_CONFIG", str(path))
        result = invoke(["config", "check"])
    assert result.exit_code == 3, result.stderr
    assert KINDS[kind] in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file: permissions cannot be tested")
def test_an_unreadable_config_exits_3(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[trading]\n")
    path.chmod(0)
    result = invoke(["--config", str(path), "config", "check"])
    assert result.exit_code == 3 and "cannot read the config file" in result.stderr


@pytest.mark.parametrize("key", ["state_dir", "logs_dir"])
def test_a_state_or_logs_dir_that_is_a_file_is_a_config_error(
    write_config, tmp_path: Path, key: str
) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "taken").write_text("a file")
    write_config(f'[paths]\n{key} = "taken/sub"\n')
    for command in (["config", "check"], ["risk", "check"], ["phase", "status"]):
        result = invoke(command)
        assert result.exit_code == 3, (command, result.stderr)
        assert f"paths.{key}:" in result.stderr and "is a file" in result.stderr
    assert (tmp_path / "taken").read_text() == "a file"
