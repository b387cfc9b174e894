"""Operator controls against a running loop (real processes): halt within a second, flatten,
resume, SIGTERM; `tradebot status` from another terminal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.cli.conftest import invoke, run_process
from tests.engine.harness import config, entry_intents, events, orders, run, sim_state, ts
from tradebot.config import LoadedConfig
from tradebot.engine.heartbeat import write_heartbeat
from tradebot.engine.runner import run_lock

pytestmark = pytest.mark.slow

# Positions stay open (take-profit far away, stop far below) so there is something to flatten.
HOLD = "[risk]\ntake_profit_pct = 900\nstop_loss_pct = 95\n[monitoring]\nheartbeat_s = 1\n"


def _start(cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    with (cwd / "run.err").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "tradebot", "run", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _wait(what: Callable[[], bool], timeout: float, why: str) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if what():
            return time.monotonic() - start
        time.sleep(0.01)
    pytest.fail(f"timed out waiting for {why}")


def _working_entries(loaded: LoadedConfig) -> list[dict[str, object]]:
    return [
        o
        for o in sim_state(loaded)["orders"]
        if o["status"] in ("Submitted", "PreSubmitted") and "." not in str(o["order_ref"])
    ]


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


def test_halt_flatten_reaches_the_loop_within_a_second_and_resume_lifts_it(
    tmp_path: Path,
) -> None:
    loaded = config(tmp_path, HOLD)
    proc = _start(tmp_path, "--start", "2025-07-01T09:34", "--speed", "300")
    try:
        _wait(lambda: (loaded.state_dir / "sim-broker.json").exists()
              and bool(sim_state(loaded)["positions"]), 60, "an open position")  # fmt: skip
        halted = subprocess.run(
            [sys.executable, "-m", "tradebot", "halt", "--flatten", "--reason", "test"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
            env={k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")},
        )  # fmt: skip
        assert halted.returncode == 0, halted.stderr
        assert "stops new entries within a second" in halted.stdout
        noticed = _wait(
            lambda: any(e["event"] == "halt_noticed" for e in events(loaded)), 5, "the notice"
        )
        assert noticed < 1.0
        _wait(
            lambda: not sim_state(loaded)["positions"] and not _working_entries(loaded),
            20,
            "no position and no working entry at the broker",
        )
        flattened = [r for r in orders(loaded) if r["event"] == "intent" and r["role"] == "exit"]
        assert flattened and all(r["exit_reason"] == "manual" for r in flattened)
        halt_at = max(ts(e) for e in events(loaded) if e["event"] == "halt_noticed")
        assert not [r for r in entry_intents(loaded) if ts(r) > halt_at]

        resumed = run_process(["resume", "--reason", "back"], cwd=tmp_path)
        assert resumed.returncode == 0 and "entries may start again" in resumed.stdout
        _wait(lambda: any(ts(r) > halt_at for r in entry_intents(loaded)), 60, "a new entry")
    finally:
        code = _stop(proc)
    assert code == 0, (tmp_path / "run.err").read_text()


def test_sigterm_leaves_brackets_working_and_a_restart_duplicates_nothing(
    tmp_path: Path,
) -> None:
    loaded = config(tmp_path, HOLD)
    proc = _start(tmp_path, "--start", "2025-07-01T09:34", "--speed", "300")
    try:
        _wait(
            lambda: (
                (loaded.state_dir / "sim-broker.json").exists()
                and any(
                    o["status"] == "Submitted" and o["parent_id"]
                    for o in sim_state(loaded)["orders"]
                )
            ),
            60,
            "working bracket legs",
        )
    finally:
        code = _stop(proc)
    assert code == 0, (tmp_path / "run.err").read_text()
    for name in ("orders.jsonl", "trades.jsonl", "events.jsonl"):
        path = loaded.logs_dir / "journal" / name
        if path.exists():  # every line whole and parseable
            assert all(json.loads(line) for line in path.read_text().splitlines())
    legs = [o for o in sim_state(loaded)["orders"] if o["parent_id"] and o["status"] == "Submitted"]
    assert legs  # left working at the broker
    stopped = [e for e in events(loaded) if e["event"] == "stop"]
    assert stopped and "(signal)" in stopped[-1]["message"]
    before = [o["order_ref"] for o in sim_state(loaded)["orders"]]
    last = json.loads((loaded.state_dir / "sim-broker.json").read_text())["processed_until"]
    resume_at = datetime.fromisoformat(last.replace("Z", "+00:00")) + timedelta(minutes=1)
    run(loaded, resume_at.strftime("%Y-%m-%dT%H:%M:%SZ"), "2025-07-01T13:00")
    after = [o["order_ref"] for o in sim_state(loaded)["orders"]]
    assert len(after) == len(set(after)) and set(before) <= set(after)


def test_status_json_contract_for_a_running_loop_stale_heartbeat_and_no_loop(
    tmp_path: Path,
) -> None:
    loaded = config(tmp_path, HOLD)
    result = invoke(["status", "--json"])
    none = json.loads(result.stdout)
    assert result.exit_code == 0 and none["state"] == "not running" and not none["running"]
    _contract(none)

    proc = _start(tmp_path, "--start", "2025-07-01T09:34", "--speed", "300")
    try:
        _wait(lambda: (loaded.state_dir / "heartbeat.json").exists(), 30, "a heartbeat")
        _wait(lambda: bool(entry_intents(loaded)), 60, "an entry")
        running = run_process(["status", "--json"], cwd=tmp_path)
        doc = json.loads(running.stdout)
        assert running.returncode == 0 and doc["state"] == "running" and doc["pid"] == proc.pid
        assert doc["heartbeat_age_s"] < 5 and doc["phase"] == "experience"
        _contract(doc)
    finally:
        assert _stop(proc) == 0

    # A loop holding the lock whose heartbeat is old: hung.
    old = json.loads((loaded.state_dir / "heartbeat.json").read_text())
    with run_lock(loaded.state_dir):
        beat = loaded.state_dir / "heartbeat.json"
        old["beat"] = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
        beat.write_text(json.dumps(old))
        stale = run_process(["status", "--json"], cwd=tmp_path)
    doc = json.loads(stale.stdout)
    assert stale.returncode == 4 and doc["state"] == "stale" and doc["stale"]
    assert "it may be hung" in doc["problems"][0]
    _contract(doc)


def _contract(doc: dict[str, object]) -> None:
    for key in (
        "v", "now", "state", "running", "pid", "started", "last_heartbeat", "heartbeat_age_s",
        "stale", "clock", "status", "phase", "phase_error", "halted", "halt", "today", "equity",
        "positions", "working_orders", "last_error", "problems",
    ):  # fmt: skip
        assert key in doc, key
    assert doc["v"] == 1 and isinstance(doc["positions"], list)
    assert doc["state"] in ("running", "stale", "died", "not running")


def test_halt_and_resume_without_a_loop(write_config) -> None:  # type: ignore[no-untyped-def]
    write_config("")
    halted = invoke(["halt", "--reason", "lunch"])
    assert halted.exit_code == 0 and "no loop is running now" in halted.stdout
    assert json.loads(Path("logs/state/halt.json").read_text())["halted"] is True
    again = invoke(["resume"])
    assert again.exit_code == 0 and "entries may start again" in again.stdout
    assert invoke(["resume"]).stdout.startswith("was not halted")
    too_long = invoke(["halt", "--reason", "x" * 501])
    assert too_long.exit_code == 2 and "--reason is 501 characters long" in too_long.stderr


def test_a_heartbeat_written_by_a_dead_loop_is_reported(tmp_path: Path) -> None:
    loaded = config(tmp_path)
    from tests.engine.harness import Recorder  # noqa: F401  (documents the harness in use)

    summary, ctx = run(loaded, "2025-07-01", "2025-07-01T11:00")
    from tradebot.engine.loop import TradingLoop

    write_heartbeat(loaded.state_dir, TradingLoop(ctx).status(), running=True)
    result = invoke(["status"])
    assert result.exit_code == 4 and "DIED" in result.stdout
    assert summary.ticks > 0
