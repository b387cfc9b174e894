"""broker.clock = "gateway": the loop follows the gateway simulator's clock — its start in the
past, its speed, its jumps — so a rehearsal at `--speed 10` trades, and `clock +28m` is acted on
at the loop's next wake.

The gateway reports its time in whole seconds (reqCurrentTime, IB API "Current Time": seconds
since the epoch), so the pace is measured from readings, never taken from one.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.brokers.ibkr.conftest import ThreadedSim, config_text
from tests.gateway_sim.conftest import until
from tradebot.brokers.ibkr.clock import GatewayClock
from tradebot.config import load_config
from tradebot.engine.loop import TradingLoop
from tradebot.engine.runner import RunOptions, make_context

T0 = datetime(2025, 7, 1, 15, 0, tzinfo=UTC)  # 11:00 New York
TRADEBOT = [sys.executable, "-m", "tradebot"]
START = "2025-07-01T14:59:30Z"  # half a simulated minute before 11:00 New York


class Wall:
    def __init__(self) -> None:
        self.now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def pass_(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def test_the_pace_is_measured_from_two_readings() -> None:
    wall = Wall()
    clock = GatewayClock(wall)
    clock.follow(T0)
    assert clock.now() == T0
    wall.pass_(5)  # the gateway runs ×10: 50 s later for it
    clock.follow(T0 + timedelta(seconds=50))
    assert clock.speed == pytest.approx(10)
    wall.pass_(1.8)
    assert clock.now() == T0 + timedelta(seconds=68)
    wall.pass_(3)  # a reading that fits the pace (rounded down to the second) keeps it
    clock.follow(T0 + timedelta(seconds=97))
    assert clock.speed == pytest.approx(97 / 9.8, rel=0.01)


def test_a_jump_is_followed_and_the_pace_kept() -> None:
    wall = Wall()
    clock = GatewayClock(wall)
    clock.follow(T0)
    wall.pass_(2)
    clock.follow(T0 + timedelta(seconds=20))
    assert clock.speed == pytest.approx(10)
    wall.pass_(2)
    clock.follow(T0 + timedelta(seconds=40 + 28 * 60))  # `clock +28m`
    assert clock.now() == T0 + timedelta(seconds=40 + 28 * 60)
    assert clock.speed == pytest.approx(10)
    wall.pass_(1)
    assert clock.now() == T0 + timedelta(seconds=50 + 28 * 60)


def test_a_new_speed_is_measured_at_the_next_reading() -> None:
    wall = Wall()
    clock = GatewayClock(wall)
    clock.follow(T0)
    wall.pass_(2)
    clock.follow(T0 + timedelta(seconds=2))  # ×1
    wall.pass_(2)
    clock.follow(T0 + timedelta(seconds=122))  # `clock speed 60` just after the last reading
    wall.pass_(2)
    clock.follow(T0 + timedelta(seconds=242))
    assert clock.speed == pytest.approx(60)


def test_a_frozen_gateway_holds_and_time_never_runs_backward() -> None:
    wall = Wall()
    clock = GatewayClock(wall)
    assert clock.now() == wall.now  # before any reading: this machine's clock
    clock.follow(T0)
    assert clock.now() == T0  # the first reading replaces it
    wall.pass_(30)
    assert clock.now() == T0 + timedelta(seconds=30)  # ×1 until measured
    clock.follow(T0)  # frozen (`--speed 0`): held, never backward
    assert clock.now() == T0 + timedelta(seconds=30)
    assert clock.speed == 0
    wall.pass_(60)
    assert clock.now() == T0 + timedelta(seconds=30)
    clock.follow(T0 + timedelta(minutes=5))  # `clock +5m`
    assert clock.now() == T0 + timedelta(minutes=5)


def test_sleep_reads_the_gateway_between_slices() -> None:
    """A sleep toward a wake 10 minutes ahead on a frozen gateway ends as soon as a reading says
    the gateway jumped past it: at the first reading after the jump, not when the frozen clock
    would get there (never). Decided by the readings, not by how long the machine took."""
    readings: list[datetime] = []
    gateway = [T0]
    jumped = asyncio.Event()

    async def main() -> int:
        clock = GatewayClock(slice_s=0.01)

        async def source() -> None:
            readings.append(gateway[0])
            clock.follow(gateway[0])
            if len(readings) == 5:  # the sleep is under way (three slices read): `clock +28m`
                gateway[0] = T0 + timedelta(minutes=28)
                jumped.set()

        clock.source = source
        await clock.sync()
        await clock.sync()  # frozen: pace 0 after a second reading
        await asyncio.wait_for(clock.sleep_until(T0 + timedelta(minutes=10)), 30)  # hang guard
        assert jumped.is_set()
        assert clock.now() >= T0 + timedelta(minutes=28)
        return len(readings)

    count = asyncio.run(main())
    # Slept on the frozen clock, reading it each slice; woke at the first reading after the jump.
    assert count == 6
    assert readings[:5] == [T0] * 5 and readings[5] == T0 + timedelta(minutes=28)


def test_a_clock_jump_is_noticed_at_the_next_wake(tmp_path: Path) -> None:
    """The real loop on the gateway's clock against the simulator (frozen at 11:00): after
    `clock +28m` the loop's very next wake runs at 11:28 (the gateway frozen, no other wake
    could come)."""
    sim = ThreadedSim(start=T0, speed=0)
    try:
        path = tmp_path / "config.toml"
        path.write_text(config_text(sim.port, broker='clock = "gateway"'), encoding="utf-8")
        loaded = load_config(path)
        wakes: list[tuple[datetime, float]] = []

        async def main() -> None:
            clock = GatewayClock(slice_s=0.05)
            ctx = make_context(loaded, RunOptions(), clock, lambda event, message: None)
            await ctx.broker.connect()
            stop = asyncio.Event()
            loop = TradingLoop(ctx, stop=stop)
            wake = loop.wake

            async def recorded(now: datetime, *, force_tick: bool = False) -> None:
                wakes.append((now, time.monotonic()))
                await wake(now, force_tick=force_tick)

            loop.wake = recorded  # type: ignore[method-assign]
            task = asyncio.ensure_future(loop.run())

            def asleep() -> bool:
                """The loop has woken once and is now sleeping toward its next step (11:01):
                between wakes, with its next wake set."""
                return bool(wakes) and loop.stuck_for(0.0) is None and loop._next_wake is not None

            # Conditions, not delays; the long limits only stop a hang.
            await until(asleep, timeout=20)
            count = len(wakes)
            assert loop._next_wake is not None and loop._next_wake < T0 + timedelta(minutes=28)
            sim.call(sim.sim.clock.advance, timedelta(minutes=28))
            # The gateway is frozen: without noticing the jump the loop would sleep forever.
            await until(lambda: len(wakes) > count, timeout=20)
            stop.set()
            await asyncio.wait_for(task, 10)
            moment, _ = wakes[count]
            assert moment >= T0 + timedelta(minutes=28)

        asyncio.run(asyncio.wait_for(main(), 30))
        # The first wake at the gateway's time (give or take the first reading), not this
        # machine's.
        assert abs((wakes[0][0] - T0).total_seconds()) < 2
    finally:
        sim.stop()


def _wait_for(path: Path, pattern: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            text = path.read_text(encoding="utf-8", errors="replace")
            if re.search(pattern, text):
                return text
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} did not appear in {path} within {timeout} s")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}


def test_run_against_gateway_sim_at_speed_10_enters_trades(tmp_path: Path) -> None:
    """Real processes, as in the README's rehearsal: `tradebot gateway sim --speed 10` started
    half a simulated minute before 11:00, then `tradebot run` with broker.clock = "gateway". The
    loop's quotes are as of the gateway's clock, so entries go through (before the clock
    followed the speed, every quote was "dated 1138 s in the future")."""
    sim_out = tmp_path / "sim.out"
    with open(sim_out, "w", encoding="utf-8") as out:
        sim = subprocess.Popen(
            [*TRADEBOT, "gateway", "sim", "--port", "0", "--speed", "10", "--start", START],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=tmp_path,
            env=_env(),
        )
    run: subprocess.Popen[str] | None = None
    try:
        banner = _wait_for(sim_out, r"127\.0\.0\.1:(\d+)", 20)
        match = re.search(r"127\.0\.0\.1:(\d+)", banner)
        assert match
        port = int(match[1])
        (tmp_path / "config.toml").write_text(
            config_text(port, broker='clock = "gateway"'), encoding="utf-8"
        )
        run = subprocess.Popen(
            [*TRADEBOT, "run"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env=_env(),
        )
        orders = tmp_path / "logs" / "journal" / "orders.jsonl"
        _wait_for(orders, r'"event":"submitted"', 40)
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=30)
        assert run.returncode == 0, stderr
        assert "in the future" not in stderr
        records = [json.loads(line) for line in orders.read_text().splitlines()]
        entries = [r for r in records if r["event"] == "intent" and r["role"] == "entry"]
        assert entries and all(r["mode"] == "paper" for r in entries)
        # The entries were decided at the gateway's time (11:00 New York, give or take),
        # never at this machine's.
        times = [datetime.fromisoformat(r["ts"].replace("Z", "+00:00")) for r in entries]
        assert all(T0 - timedelta(minutes=1) <= t <= T0 + timedelta(minutes=10) for t in times)
        events = (tmp_path / "logs" / "journal" / "events.jsonl").read_text()
        refused = [
            json.loads(line)
            for line in events.splitlines()
            if '"entry_refused"' in line and "quote" in line
        ]
        assert refused == []
    finally:
        if run is not None and run.poll() is None:
            run.kill()
        sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(timeout=15)
        except subprocess.TimeoutExpired:
            sim.kill()
