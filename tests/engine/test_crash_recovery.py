"""kill -9 at the worst moments, then restart: nothing lost, nothing doubled (real processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from tests.engine.harness import (
    config,
    entry_intents,
    events,
    orders,
    run,
    set_phase,
    sim_state,
    trades,
    ts,
)
from tradebot.config import LoadedConfig
from tradebot.core.orders import OrderEvent, entries_in_session

pytestmark = pytest.mark.slow
DAY = date(2025, 7, 1)


def _start(cwd: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    with (cwd / "run.err").open("wb") as err:  # a file, not a pipe nobody reads
        return subprocess.Popen(
            [sys.executable, "-m", "tradebot", "run", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )


def _kill_when(
    proc: subprocess.Popen[bytes], ready: Callable[[], bool], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if ready():
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
                return
            if proc.poll() is not None:
                pytest.fail("the loop ended before the moment to kill it (see run.err)")
            time.sleep(0.005)
        pytest.fail("the moment to kill the loop never came")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _resume_time(loaded: LoadedConfig) -> str:
    """Just after everything the killed process wrote (journal and simulated account)."""
    latest = max(ts(r) for r in orders(loaded) + events(loaded))
    account = loaded.state_dir / "sim-broker.json"
    if account.exists():
        last = json.loads(account.read_text())["processed_until"]
        latest = max(latest, datetime.fromisoformat(last.replace("Z", "+00:00")))
    return (latest + timedelta(minutes=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_kill_right_after_the_entry_intent_never_gives_a_second_entry(tmp_path: Path) -> None:
    loaded = config(tmp_path, '[phase.proof]\ncounted_modes = ["sim"]\n')
    set_phase(loaded, "proof", datetime(2025, 6, 30, 20, 0, tzinfo=UTC))
    proc = _start(tmp_path, "--start", "2025-07-01T09:29", "--speed", "300")
    _kill_when(proc, lambda: bool(entry_intents(loaded)))
    killed_ref = entry_intents(loaded)[0]["order_ref"]

    summary, _ = run(loaded, _resume_time(loaded), "2025-07-02")
    assert summary.reconcile[0].startswith("reconciled:")
    journal = orders(loaded)
    assert entries_in_session([OrderEvent.from_record(r) for r in journal], DAY) == 1
    broker_refs = (
        [o["order_ref"] for o in sim_state(loaded)["orders"]]
        if (loaded.state_dir / "sim-broker.json").exists()
        else []
    )
    assert len(broker_refs) == len(set(broker_refs))  # no order sent twice
    statuses = [
        r["status"] for r in journal if r["order_ref"] == killed_ref and r["event"] == "status"
    ]
    if killed_ref not in broker_refs:
        assert "abandoned" in statuses  # never re-sent after the restart
    filled = {r["order_ref"] for r in journal if r["event"] == "fill" and r["role"] == "entry"}
    assert len(filled) <= 1


def test_oco_legs_survive_a_kill_and_still_close_the_position(tmp_path: Path) -> None:
    loaded = config(
        tmp_path,
        "refuse_brackets = true\n[risk]\ntake_profit_pct = 40\nstop_loss_pct = 30\n",
        base=_SIM_LAST,
    )
    legs_file = loaded.state_dir / "oco-legs.json"

    def guarded_and_open() -> bool:
        if not legs_file.exists():
            return False
        try:
            armed = set(json.loads(legs_file.read_text())["legs"])
        except ValueError:
            return False
        journal = orders(loaded)
        filled = {r["order_ref"] for r in journal if r["event"] == "fill" and r["role"] == "entry"}
        fired = {r["order_ref"].split(".")[0] for r in journal if ".o" in r["order_ref"]}
        return bool((armed & filled) - fired)

    proc = _start(tmp_path, "--start", "2025-07-01T09:29", "--speed", "300")
    _kill_when(proc, guarded_and_open)
    armed = set(json.loads(legs_file.read_text())["legs"])
    journal = orders(loaded)
    filled = {r["order_ref"] for r in journal if r["event"] == "fill" and r["role"] == "entry"}
    guarded = sorted(
        (armed & filled) - {r["order_ref"].split(".")[0] for r in journal if ".o" in r["order_ref"]}
    )
    assert guarded, "the kill came while a filled entry was guarded only by emulated legs"
    assert not [o for o in sim_state(loaded)["orders"] if o["parent_id"]]  # no native legs

    run(loaded, _resume_time(loaded), "2025-07-02")
    closed = {t.trade_id: t for t in trades(loaded)}
    ref = guarded[0]
    assert closed[ref].exit_reason in ("take_profit", "stop_loss")
    emulated = {
        r["order_ref"]
        for r in orders(loaded)
        if r["event"] == "intent" and r.get("parent_ref") == ref and r["emulated"]
    }
    closing = [r for r in orders(loaded) if r["event"] == "fill" and r["role"] != "entry"]
    assert [r for r in closing if r["order_ref"].startswith(ref + ".")]
    assert all(r["order_ref"] in emulated for r in closing if r["order_ref"].startswith(ref + "."))
    assert ref not in json.loads(legs_file.read_text())["legs"]
    fired_after = [e for e in events(loaded) if e["event"] == "oco_fired" and ref in e["message"]]
    assert fired_after


_SIM_LAST = """
[trading]
mode = "paper"
symbols = ["SPY", "QQQ", "IWM"]

[broker.sim]
seed = 7
"""


class _Crash(BaseException):
    """The process dies here (nothing in the loop may survive it)."""


def test_an_intent_journaled_but_never_sent_is_abandoned_and_still_counts(tmp_path: Path) -> None:
    """Deterministic: the process dies between the entry's journal line and the broker call."""
    from tests.review.helpers import prepare, run_loop, sim

    loaded = config(tmp_path, '[phase.proof]\ncounted_modes = ["sim"]\n')
    set_phase(loaded, "proof", datetime(2025, 6, 30, 20, 0, tzinfo=UTC))
    ctx, until = prepare(loaded, "2025-07-01", "2025-07-02")

    async def dies(bracket):  # type: ignore[no-untyped-def]
        raise _Crash

    sim(ctx).place_bracket = dies  # type: ignore[method-assign]
    with pytest.raises(_Crash):
        run_loop(ctx, until)
    intent = entry_intents(loaded)
    assert len(intent) == 1 and not sim_state(loaded)["orders"]  # journaled, never sent

    resume = (ts(intent[0]) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    run(loaded, resume, "2025-07-02")
    statuses = [r["status"] for r in orders(loaded) if r["event"] == "status"]
    assert "abandoned" in statuses
    events_ = [OrderEvent.from_record(r) for r in orders(loaded)]
    assert entries_in_session(events_, DAY) == 1  # it still uses up proof's one entry
    assert len(entry_intents(loaded)) == 1  # and no second entry was made that session
    assert not sim_state(loaded)["orders"]  # never re-sent
