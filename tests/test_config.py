"""Config: TOML + env overrides, unknown keys, bad values, bad syntax, defaults, secrets."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tradebot.config import load_config, resolve_config_path
from tradebot.errors import ConfigError, ExitCode


def test_missing_file_gives_safe_defaults(tmp_path: Path) -> None:
    loaded = load_config(tmp_path / "absent.toml")
    assert not loaded.file_found
    s = loaded.settings
    assert s.broker.kind == "sim"
    assert s.trading.mode == "dry_run"
    assert s.risk.max_daily_loss_pct == Decimal(5)
    assert s.phase.initial == "experience"
    assert s.phase.experience.live_allowed is False
    assert s.phase.proof.max_entries_per_session == 1
    assert s.phase.trial.max_drawdown_pct == Decimal(5)


def test_toml_values_and_nested_env_override(write_config, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_config(
        "[risk]\nmax_daily_loss_pct = 4.5\nmax_risk_pct = 0.1\n"
        '[broker]\nhost = "10.0.0.2"\nport = 4001\n'
    )
    monkeypatch.setenv("TRADEBOT_RISK__MAX_DAILY_LOSS_PCT", "3")
    monkeypatch.setenv("TRADEBOT_PHASE__PROOF__POSITION_CAP_USD", "150")
    loaded = load_config(path)
    s = loaded.settings
    assert s.risk.max_daily_loss_pct == Decimal(3)  # env wins over the file
    assert s.risk.max_risk_pct == Decimal("0.1")  # exact: TOML floats are read as Decimal
    assert s.broker.host == "10.0.0.2"  # other keys of the section still come from the file
    assert s.broker.port == 4001
    assert s.broker.client_id == 17  # and untouched keys from the defaults
    assert s.phase.proof.position_cap_usd == Decimal(150)
    assert s.phase.proof.max_entries_per_session == 1  # per-phase defaults survive a partial table
    assert "risk.max_daily_loss_pct" in loaded.env_keys


def test_partial_phase_table_keeps_that_phases_defaults(write_config) -> None:
    s = load_config(write_config("[phase.experience]\nmin_trades = 5\n")).settings
    assert s.phase.experience.min_trades == 5
    assert s.phase.experience.counted_modes == ["paper"]
    assert s.phase.experience.position_cap_usd == Decimal(100)
    assert s.phase.experience.live_allowed is False


def test_unknown_key_is_rejected_with_suggestion(write_config) -> None:
    path = write_config("[risk]\nmax_daily_los_pct = 3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.exit_code == ExitCode.BAD_CONFIG
    assert err.value.details == (
        "risk.max_daily_los_pct: unknown key (did you mean 'max_daily_loss_pct'?)",
    )


def test_unknown_section_is_rejected(write_config) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write_config("[rsk]\nx = 1\n"))
    assert err.value.details[0].startswith("rsk: unknown key (did you mean 'risk'?)")


def test_wrong_type_names_the_key(write_config) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write_config('[broker]\nport = "four"\n[trading]\ninterval_s = -1\n'))
    details = err.value.details
    assert len(details) == 2
    assert details[0].startswith("broker.port: ")
    assert details[1].startswith("trading.interval_s: ")


def test_every_problem_is_one_line(write_config) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write_config('[risk]\nstop_loss_pct = 0\n[options]\nprice = "bid"\n'))
    assert all("\n" not in line for line in err.value.details)
    assert {line.split(":")[0] for line in err.value.details} == {
        "risk.stop_loss_pct",
        "options.price",
    }


def test_bad_toml_syntax_names_the_line(write_config) -> None:
    path = write_config("[risk]\nmax_risk_pct = 1\nstop_loss_pct = = 50\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "line 3" in err.value.message
    assert err.value.exit_code == ExitCode.BAD_CONFIG


def test_cross_field_rules(write_config) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write_config('[trading]\nmode = "live"\n'))
    assert "broker.kind = 'ibkr'" in err.value.details[0]
    with pytest.raises(ConfigError) as err:
        load_config(write_config("[strategies.scalp]\nema_fast = 30\nema_slow = 21\n"))
    assert err.value.details[0].startswith("strategies.scalp: ema_fast must be smaller")


def test_unknown_env_variable_is_rejected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRADEBOT_RISKK__MAX_RISK_PCT", "2")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "none.toml")
    assert err.value.exit_code == ExitCode.BAD_CONFIG
    assert err.value.details[0].startswith("TRADEBOT_RISKK__MAX_RISK_PCT: no setting 'riskk'")
    assert "did you mean 'risk'" in err.value.details[0]


def test_unknown_nested_env_key_is_rejected(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRADEBOT_RISK__MAX_RISK_PC", "2")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "none.toml")
    assert err.value.details == (
        "TRADEBOT_RISK__MAX_RISK_PC: no setting 'max_risk_pc' in risk (did you mean "
        "'max_risk_pct'?); unset the variable or fix its name",
    )


def test_env_names_are_case_insensitive_and_nested(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("tradebot_strategies__scalp__rsi_buy", "[55, 75]")
    monkeypatch.setenv("TRADEBOT_STRATEGIES__WHALE__ENABLED", "false")
    s = load_config(tmp_path / "none.toml").settings
    assert s.strategies.scalp.rsi_buy == (Decimal(55), Decimal(75))
    assert s.strategies.whale.enabled is False
    assert s.strategies.scalp.ema_fast == 9


def test_env_cannot_replace_a_table_with_a_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRADEBOT_RISK__MAX_RISK_PCT__X", "1")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "none.toml")
    assert "'risk.max_risk_pct' is not a table" in err.value.details[0]


def test_bad_env_value_names_the_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRADEBOT_BROKER__PORT", "x")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "none.toml")
    assert "from environment variable TRADEBOT_BROKER__PORT" in err.value.details[0]


def test_env_list_must_be_json(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TRADEBOT_TRADING__SYMBOLS", "SPY,QQQ")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "none.toml")
    assert err.value.details[0].startswith("TRADEBOT_TRADING__SYMBOLS: the value is not valid JSON")
    monkeypatch.setenv("TRADEBOT_TRADING__SYMBOLS", '["IWM"]')
    assert load_config(tmp_path / "none.toml").settings.trading.symbols == ["IWM"]


def test_secret_never_in_error_or_repr(monkeypatch: pytest.MonkeyPatch, write_config) -> None:
    secret = "tgram://123456:SECRET-TOKEN-XYZ/999"
    monkeypatch.setenv("TRADEBOT_MONITORING__NOTIFY_URLS", f'["{secret}"]')
    loaded = load_config(write_config(""))
    assert secret not in repr(loaded.settings)
    assert secret not in loaded.settings.model_dump_json()
    assert loaded.settings.monitoring.notify_urls[0].get_secret_value() == secret
    # A bad secret value must not be echoed in the error either.
    with pytest.raises(ConfigError) as err:
        load_config(write_config('[phase]\noverride_password_hash = ["SECRET-ABC"]\n'))
    text = err.value.message + "\n".join(err.value.details)
    assert "SECRET-ABC" not in text
    assert "SECRET-TOKEN-XYZ" not in text


def test_paths_are_relative_to_the_config_file(tmp_path: Path) -> None:
    sub = tmp_path / "etc"
    sub.mkdir()
    path = sub / "bot.toml"
    path.write_text('[paths]\nlogs_dir = "data/logs"\nstate_dir = "/var/tb/state"\n')
    loaded = load_config(path)
    assert loaded.logs_dir == sub / "data" / "logs"
    assert loaded.state_dir == Path("/var/tb/state")


def test_config_path_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_config_path(None) == Path("config.toml")
    monkeypatch.setenv("TRADEBOT_CONFIG", "/etc/tradebot.toml")
    assert resolve_config_path(None) == Path("/etc/tradebot.toml")
    assert resolve_config_path(Path("x.toml")) == Path("x.toml")


def test_shipped_example_config_is_valid_and_safe() -> None:
    example = Path(__file__).resolve().parent.parent / "config.toml"
    s = load_config(example).settings
    # Paper on the built-in simulated broker: its simulated account is the practice wallet,
    # and nothing can reach a real account (a real broker needs broker.kind = "ibkr").
    assert s.broker.kind == "sim"
    assert s.trading.mode == "paper"


def test_override_hash_must_be_a_scrypt_hash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TRADEBOT_PHASE__OVERRIDE_PASSWORD_HASH", "my-plain-password")
    with pytest.raises(ConfigError) as err:
        load_config(tmp_path / "none.toml")
    text = err.value.message + "\n".join(err.value.details)
    assert "phase.override_password_hash: not a hash written by" in text
    assert "my-plain-password" not in text


def test_experience_can_never_allow_live(write_config) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(write_config("[phase.experience]\nlive_allowed = true\n"))
    assert err.value.details[0].startswith(
        "phase.experience.live_allowed: experience is paper only"
    )
