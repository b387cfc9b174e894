"""Damaged files, odd input and interrupts: a clear refusal or error, never a guess or a trace."""

from __future__ import annotations

import json
import os
import pty
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.cli.conftest import invoke
from tradebot.books.risk_report import build_risk_report
from tradebot.books.state_store import StateStore
from tradebot.config import load_config
from tradebot.core.sizing import position_size

AT = datetime(2025, 7, 1, 15, 0, tzinfo=UTC)
IN_WINDOW = "2025-07-01T15:00:00Z"


def _rules(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [b["rule"] for b in json.loads(result.stdout)["blocking"]]


def test_corrupt_halt_file_blocks_with_a_reason(tmp_path: Path) -> None:
    state = tmp_path / "logs" / "state"
    state.mkdir(parents=True)
    (state / "halt.json").write_text("{not json")
    result = invoke(["risk", "check", "--at", IN_WINDOW, "--json"])
    assert result.exit_code == 4
    assert _rules(result) == ["state_unreadable", "halt"]
    message = json.loads(result.stdout)["blocking"][0]["message"]
    assert "halt.json" in message and "repair or remove the file" in message


def test_corrupt_daily_loss_file_blocks(tmp_path: Path) -> None:
    state = tmp_path / "logs" / "state"
    state.mkdir(parents=True)
    (state / "daily-loss.json").write_text('{"v": 1}\n')
    result = invoke(["risk", "check", "--at", IN_WINDOW, "--json"])
    assert result.exit_code == 4
    assert "state_unreadable" in _rules(result)


def test_corrupt_order_journal_blocks_and_status_says_it_once(tmp_path: Path) -> None:
    orders = tmp_path / "logs" / "journal" / "orders.jsonl"
    orders.parent.mkdir(parents=True)
    orders.write_text('{"v": 1, "event": "intent"}\n')
    result = invoke(["risk", "check", "--at", IN_WINDOW, "--json"])
    assert result.exit_code == 4
    assert _rules(result) == ["phase_unknown"]
    doc = json.loads(result.stdout)
    assert doc["equity"]["current"] == "10000"  # the simulated equity is still known
    status = invoke(["phase", "status"])
    assert status.exit_code == 4
    assert status.stderr.count("orders.jsonl:1") == 1
    assert "every new entry is refused" in status.stderr


def test_sim_equity_stays_known_when_the_history_is_corrupt(tmp_path: Path) -> None:
    history = tmp_path / "logs" / "phase" / "phase-history.jsonl"
    history.parent.mkdir(parents=True)
    history.write_text("garbage\n{}\n")
    doc = json.loads(invoke(["risk", "check", "--at", IN_WINDOW, "--json"]).stdout)
    assert [b["rule"] for b in doc["blocking"]] == ["phase_unknown"]


def test_corrupt_override_audit_leaves_status_usable(tmp_path: Path) -> None:
    audit = tmp_path / "logs" / "phase" / "phase-overrides.jsonl"
    audit.parent.mkdir(parents=True)
    audit.write_text("{oops\n{}\n")
    result = invoke(["phase", "status", "--json"])
    assert result.exit_code == 0
    assert any("override audit unreadable" in w for w in json.loads(result.stdout)["warnings"])


def test_unknown_calendar_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADEBOT_SCHEDULE__CALENDAR", "NYSEX")
    check = invoke(["config", "check"])
    assert check.exit_code == 3
    assert "schedule.calendar: unknown exchange calendar 'NYSEX'" in check.stderr
    assert invoke(["risk", "check"]).exit_code == 3


@pytest.mark.parametrize(
    "args",
    [["--premium", "1e-40"], ["--premium", "1e9"], ["--at", "9999-12-31T23:59:59-05:00"]],
)
def test_out_of_range_numbers_are_usage_errors(args: list[str]) -> None:
    result = invoke(["risk", "check", *args])
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr


def test_sizing_never_overflows_on_tiny_prices() -> None:
    from tradebot.config import RiskConfig

    size = position_size(Decimal(10000), Decimal("1e-30"), 100, RiskConfig(), Decimal(100))
    assert size.contracts == 10**9  # the cap allows as many: nothing raised, nothing negative


def test_csv_to_a_directory_is_a_usage_error_and_leaves_no_temp_file(tmp_path: Path) -> None:
    (tmp_path / "outdir").mkdir()
    result = invoke(["phase", "export", "--csv", "outdir"])
    assert result.exit_code == 2
    assert "cannot write outdir" in result.stderr
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
    assert invoke(["journal", "--csv", "outdir"]).exit_code == 2


def test_future_dated_broker_equity_is_unknown(write_config, tmp_path: Path) -> None:
    write_config('[broker]\nkind = "ibkr"\n')
    loaded = load_config(tmp_path / "config.toml")
    StateStore(loaded.state_dir).record_equity(
        Decimal(25000), "NetLiquidation", AT + timedelta(days=30)
    )
    report = build_risk_report(loaded, AT)
    assert "equity_unknown" in [b.rule for b in report.blocking]
    assert any("dated after now" in w for w in report.warnings)


def test_the_loop_records_start_of_day_equity_once(write_config, tmp_path: Path) -> None:
    write_config('[broker]\nkind = "ibkr"\n')
    loaded = load_config(tmp_path / "config.toml")
    first = build_risk_report(loaded, AT, equity=Decimal(25000), persist=True)
    assert "start_of_day_unknown" not in [b.rule for b in first.blocking]
    later = build_risk_report(loaded, AT + timedelta(hours=1), equity=Decimal(23000), persist=True)
    assert later.equity is not None and later.equity.start_of_day == Decimal(25000)
    assert [b.rule for b in later.blocking] == ["daily_loss"]  # 8 % down from the first look
    read_only = build_risk_report(
        load_config(tmp_path / "config.toml"), AT + timedelta(days=1), equity=Decimal(23000)
    )
    assert "start_of_day_unknown" in [
        b.rule for b in read_only.blocking
    ]  # risk check never records


def test_ctrl_c_at_the_password_prompt_exits_130(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    pid, fd = pty.fork()
    if pid == 0:
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-m", "tradebot", "phase", "set-password"], env)
    output = b""
    deadline = time.monotonic() + 20
    while b"New override password: " not in output and time.monotonic() < deadline:
        try:
            output += os.read(fd, 1024)
        except OSError:
            break
    os.write(fd, b"\x03")  # Ctrl-C
    try:
        while True:
            chunk = os.read(fd, 1024)
            if not chunk:
                break
            output += chunk
    except OSError:
        pass
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 130, output
    assert not (tmp_path / "logs" / "state" / "override-password.json").exists()
