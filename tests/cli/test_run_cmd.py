"""`tradebot run` from the command line: exit codes, messages, the run lock."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import invoke, run_process
from tradebot.config import load_config
from tradebot.engine.runner import run_lock

SIM = '[trading]\nmode = "paper"\nsymbols = ["SPY"]\n'


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["run", "--speed", "fast"], 2, "--speed 'fast' is not a number or 'max'"),
        (["run", "--speed", "0"], 2, "--speed must be a positive number"),
        (["run", "--start", "yesterday"], 2, "--start 'yesterday' is not an ISO date"),
        (["run", "--start", "2025-07-02", "--until", "2025-07-01"], 2, "--until must be after"),
        (["run", "--bars", "no-such-dir"], 3, "no such directory"),
    ],
)
def test_bad_options_are_usage_errors(
    write_config,
    args: list[str],
    code: int,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    write_config(SIM)
    result = invoke(args)
    assert result.exit_code == code
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not Path("logs/journal/orders.jsonl").exists()


def test_live_is_refused_in_experience_with_one_line(write_config) -> None:  # type: ignore[no-untyped-def]
    write_config('[broker]\nkind = "ibkr"\n[trading]\nmode = "live"\n')
    result = invoke(["run", "--once"])
    assert result.exit_code == 4
    assert "refused in the experience phase" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args", [["--start", "2025-07-01"], ["--speed", "10"], ["--bars", "."]], ids=str
)
def test_ibkr_refuses_a_simulated_clock(write_config, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    write_config('[broker]\nkind = "ibkr"\n[trading]\nmode = "paper"\n')
    result = invoke(["run", "--once", *args])
    assert result.exit_code == 2
    assert "with broker.kind = 'ibkr' time is the gateway's" in result.stderr


def test_ibkr_with_no_gateway_is_unreachable(write_config) -> None:  # type: ignore[no-untyped-def]
    write_config('[broker]\nkind = "ibkr"\nport = 9\ntimeout_s = 1\n[trading]\nmode = "paper"\n')
    result = invoke(["run", "--once"])
    assert result.exit_code == 5
    assert "cannot reach IB Gateway at 127.0.0.1:9" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_once_outside_the_session_does_no_tick(write_config) -> None:  # type: ignore[no-untyped-def]
    write_config(SIM)
    result = invoke(["run", "--once", "--start", "2025-07-04T10:00"])  # a holiday
    assert result.exit_code == 0, result.stderr
    assert "0 tick(s)" in result.stdout


def test_once_in_the_window_runs_one_tick(write_config) -> None:  # type: ignore[no-untyped-def]
    write_config(SIM)
    result = invoke(["run", "--once", "--start", "2025-07-01T11:00"])
    assert result.exit_code == 0, result.stderr
    assert "run ended at 2025-07-01 11:00 EDT (once): 1 tick(s)" in result.stdout
    # The loop leaves the calendar's copy for the commands that must start fast.
    assert Path("logs/state/cache/calendar-XNYS.json").is_file()


def test_a_second_loop_on_the_same_logs_is_refused(tmp_path: Path, write_config) -> None:  # type: ignore[no-untyped-def]
    loaded = load_config(write_config(SIM))
    with run_lock(loaded.state_dir):  # this process is "the first loop"
        done = run_process(["run", "--once", "--start", "2025-07-01T11:00"], cwd=tmp_path)
    assert done.returncode == 4
    assert "another tradebot run (pid" in done.stderr and "is already using" in done.stderr


def test_a_session_replay_prints_what_happened(write_config) -> None:  # type: ignore[no-untyped-def]
    write_config(SIM)
    result = invoke(["run", "--start", "2025-07-01", "--until", "2025-07-01T12:00"])
    assert result.exit_code == 0, result.stderr
    assert "run ended at 2025-07-01 12:00 EDT (until)" in result.stdout
    assert Path("logs/journal/events.jsonl").exists()
