"""What a new operator met in the first week, each now as it should be: one story per screen,
one log line per event in market (or simulated) time, a global `--logs DIR`, `run --symbols`,
flags without `<bool>`, the messages that said the wrong thing."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.brokers.ibkr.conftest import START, SimTime, config_text
from tests.cli.conftest import invoke, run_process
from tradebot.cli import app
from tradebot.config import load_config
from tradebot.engine.runner import RunOptions, make_context
from tradebot.gateway_sim import GatewaySim, SimClock, SimSettings

SIM = '[trading]\nmode = "paper"\nsymbols = ["SPY", "QQQ"]\n[broker.sim]\nseed = 7\n'


def _events(logs: Path) -> list[dict[str, Any]]:
    path = logs / "journal" / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# -- logs ---------------------------------------------------------------------------------------
def test_a_simulated_run_logs_one_line_per_event_in_simulated_time(write_config) -> None:  # type: ignore[no-untyped-def]
    write_config(SIM)
    result = invoke(["run", "--start", "2025-07-01"])
    assert result.exit_code == 0, result.stderr
    lines = result.stderr.splitlines()
    # Simulated time, New York, ISO date: never this machine's date or US date order.
    assert lines and all(re.match(r"2025-07-0[12] \d\d:\d\d:\d\d EDT ", line) for line in lines)
    text = "\n".join(lines)
    assert "[entry]" not in text and "[exit]" not in text and "[summary]" not in text
    assert "reconciled: reconciled:" not in text
    sent = int(re.search(r"(\d+) entries sent", " ".join(result.stdout.split()))[1])  # type: ignore[index]
    assert text.count("bracket sent:") == sent > 0
    assert text.count("session 2025-07-01 closed") == 1
    closed = re.findall(r"trade closed: .*, P&L ([+-]\d+\.\d\d) \(", text)
    assert closed and all(re.fullmatch(r"[+-]\d+\.\d\d", p) for p in closed)  # not 90.000000
    # The file has this machine's time next to the simulated one.
    log = Path("logs/tradebot.log").read_text(encoding="utf-8")
    assert re.search(
        r"^2025-07-01 \d\d:\d\d:\d\d EDT \(here \d\d:\d\d:\d\d E[SD]T\) INFO", log, re.M
    )


def test_ib_async_lines_never_reach_the_terminal(tmp_path: Path) -> None:
    """A gateway that is not there: one line of ours on the terminal (ib_async's own two lines
    used to be printed first); ib_async's go to tradebot.log."""
    (tmp_path / "config.toml").write_text(
        '[broker]\nkind = "ibkr"\nport = 9\ntimeout_s = 1\n[trading]\nmode = "paper"\n'
    )
    done = run_process(["run", "--once"], cwd=tmp_path)
    assert done.returncode == 5
    assert done.stderr.count("\n") == 1 and "cannot reach IB Gateway" in done.stderr
    assert "API connection failed" not in done.stderr
    assert "API connection failed" in (tmp_path / "logs" / "tradebot.log").read_text()


# -- status, halt, resume -----------------------------------------------------------------------
def test_status_tells_one_story_with_the_simulated_clock_and_halt_uses_it(tmp_path: Path) -> None:
    """A rehearsal at ×600 seen from another terminal: `status` shows the loop's simulated clock
    (and not a stale summary line above the phase), and `halt` stamps the halt with that
    clock, so the loop never sees a halt "dated in the future"."""
    (tmp_path / "config.toml").write_text(SIM + "[monitoring]\nheartbeat_s = 1\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    loop = subprocess.Popen(
        [sys.executable, "-m", "tradebot", "run", "--start", "2025-07-01", "--speed", "600"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        report: dict[str, Any] = {}
        while time.monotonic() < deadline:
            done = run_process(["status", "--json"], cwd=tmp_path)
            if done.returncode == 0:
                report = json.loads(done.stdout)
                if report["running"] and report["clock_note"]:
                    break
            time.sleep(0.3)
        assert report.get("clock_note") == "simulated, ×600"
        shown = run_process(["status"], cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert re.search(
            r"its clock\s+2025-07-01 \d\d:\d\d:\d\d EDT \(simulated, ×600\)", shown.stdout
        )
        assert "phase unknown" not in shown.stdout and "position(s)" not in shown.stdout
        assert "(session 2025-07-01)" in shown.stdout
        halted = run_process(["halt", "--reason", "rehearsal"], cwd=tmp_path)
        assert halted.returncode == 0, halted.stderr
        assert re.search(r"halted since 2025-07-01 \d\d:\d\d EDT by", halted.stdout)
        assert halted.stderr == ""  # no WARNING line under the command's own
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if any(e["event"] == "halt_noticed" for e in _events(tmp_path / "logs")):
                break
            time.sleep(0.2)
        resumed = run_process(["resume"], cwd=tmp_path)
        assert resumed.returncode == 0 and resumed.stderr == ""
    finally:
        loop.send_signal(signal.SIGTERM)
        _, stderr = loop.communicate(timeout=30)
    assert loop.returncode == 0, stderr
    events = _events(tmp_path / "logs")
    assert any(e["event"] == "halt_noticed" for e in events)
    assert "future_dated_record" not in json.dumps(events)
    assert "is the system clock right" not in stderr


def test_resume_when_not_halted_changes_nothing(write_config) -> None:  # type: ignore[no-untyped-def]
    write_config(SIM)
    result = invoke(["resume"])
    assert result.exit_code == 0 and "was not halted; nothing to lift" in result.stdout
    assert result.stderr == ""
    assert not Path("logs/journal/events.jsonl").exists()  # no "resume" recorded
    assert not Path("logs/state/halt.json").exists()


# -- --logs, --start, --symbols -----------------------------------------------------------------
def test_the_readme_run_sequence_needs_and_names_logs(write_config) -> None:  # type: ignore[no-untyped-def]
    """`run` in real time, then a replay of an earlier day: the simulated account says how to
    start afresh (`--logs DIR`), and that works."""
    write_config(SIM)
    assert invoke(["run", "--once"]).exit_code == 0  # real time: the account is used "now"
    replay = invoke(["run", "--start", "2025-07-01", "--until", "2025-07-01T10:00"])
    assert replay.exit_code == 2
    assert "`tradebot --logs DIR run ...`" in replay.stderr
    fresh = invoke(["--logs", "rehearsal", "run", "--start", "2025-07-01", "--until",
                    "2025-07-01T10:00"])  # fmt: skip
    assert fresh.exit_code == 0, fresh.stderr
    assert Path("rehearsal/state/sim-broker.json").exists()
    assert Path("rehearsal/journal/events.jsonl").exists()
    assert "run ended at 2025-07-01 10:00 EDT" in fresh.stdout
    # Every command reads the same folder with the same option.
    status = invoke(["--logs", "rehearsal", "status", "--json"])
    assert json.loads(status.stdout)["clock"] == "2025-07-01T14:00:00Z"


def test_a_file_in_place_of_logs_is_a_usage_error(write_config) -> None:  # type: ignore[no-untyped-def]
    write_config(SIM)
    Path("afile").write_text("x")
    result = invoke(["--logs", "afile", "journal"])
    assert result.exit_code == 2
    assert "--logs" in result.stderr and "afile" in result.stderr


def test_start_date_begins_just_before_the_open(write_config) -> None:  # type: ignore[no-untyped-def]
    write_config(SIM)
    result = invoke(["run", "--start", "2025-07-01", "--until", "2025-07-01T09:40"])
    assert result.exit_code == 0, result.stderr
    [start] = [e for e in _events(Path("logs")) if e["event"] == "start"]
    assert start["ts"] == "2025-07-01T13:29:00Z"  # 09:29 New York
    holiday = invoke(["run", "--start", "2025-07-04"])
    assert holiday.exit_code == 2
    assert "no session that day; the next one is 2025-07-07 (Monday)" in holiday.stderr


def test_run_symbols_trades_only_those(write_config) -> None:  # type: ignore[no-untyped-def]
    write_config(SIM)
    result = invoke(["run", "--symbols", "qqq", "--start", "2025-07-01", "--until",
                     "2025-07-01T12:00"])  # fmt: skip
    assert result.exit_code == 0, result.stderr
    orders = Path("logs/journal/orders.jsonl").read_text().splitlines()
    symbols = {json.loads(line)["order_ref"].split("-")[0] for line in orders}
    assert symbols == {"QQQ"}
    [start] = [e for e in _events(Path("logs")) if e["event"] == "start"]
    assert "symbols QQQ" in start["message"]
    for bad, message in (("SPY,SPY", "twice"), ("", "empty"), ("S P Y", "not a symbol")):
        refused = invoke(["run", "--symbols", bad, "--once"])
        assert refused.exit_code == 2 and message in refused.stderr


# -- small ones ---------------------------------------------------------------------------------
def _commands() -> list[list[str]]:
    return [
        [],
        ["run"], ["status"], ["halt"], ["resume"], ["journal"], ["backtest"],
        ["phase", "status"], ["phase", "advance"], ["phase", "set-password"], ["phase", "export"],
        ["risk", "check"], ["notify", "test"], ["config", "check"], ["config", "show"],
        ["gateway", "test"], ["gateway", "sim"], ["remote", "run"], ["remote", "check"],
    ]  # fmt: skip


@pytest.mark.parametrize("command", _commands(), ids=" ".join)
def test_help_shows_no_type_after_a_flag(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0
    assert "<bool>" not in result.stdout
    assert "--help" in result.stdout


def test_run_help_names_both_brokers() -> None:
    result = CliRunner().invoke(app, ["run", "--help"], env={"COLUMNS": "200"})
    assert "(simulated broker)" not in result.stdout
    assert "Interactive Brokers" in result.stdout


def test_set_password_with_one_stdin_line_says_it_needs_two(write_config) -> None:  # type: ignore[no-untyped-def]
    write_config(SIM)
    first = invoke(["phase", "set-password", "--password-stdin"], input="first-secret\n")
    assert first.exit_code == 0, first.stderr
    result = invoke(["phase", "set-password", "--password-stdin"], input="first-secret\n")
    assert result.exit_code == 2
    assert "stdin needs two lines: the current password, then the new one" in result.stderr
    assert "nothing to read" not in result.stderr


def test_a_dropped_connection_is_journaled_as_an_event(tmp_path: Path) -> None:
    """docs/ibkr.md's `drop`: the disconnect and the reconnection are in events.jsonl, not only
    in tradebot.log."""

    async def main() -> None:
        sim = GatewaySim(SimSettings(port=0), clock=SimClock(START, speed=0))
        await sim.start()
        try:
            path = tmp_path / "config.toml"
            path.write_text(config_text(sim.port), encoding="utf-8")
            loaded = load_config(path)
            ctx = make_context(loaded, RunOptions(), SimTime(sim), lambda e, m: None)
            await ctx.broker.connect()
            sim.faults.drop_connections()
            for _ in range(250):  # the first reconnection is tried after 1 s
                kinds = {e["event"] for e in _events(loaded.logs_dir)}
                if {"disconnect", "reconnect"} <= kinds:
                    break
                await asyncio.sleep(0.02)
            await ctx.broker.disconnect()
        finally:
            await sim.stop()

    asyncio.run(asyncio.wait_for(main(), 30))
    events = _events(tmp_path / "logs")
    kinds = [e["event"] for e in events]
    assert "disconnect" in kinds and "reconnect" in kinds
    [lost] = [e for e in events if e["event"] == "disconnect"]
    assert "lost the connection to IB Gateway" in lost["message"]
    assert datetime.fromisoformat(lost["ts"].replace("Z", "+00:00")) - START < timedelta(minutes=1)
    assert lost["ts"].endswith("Z")
