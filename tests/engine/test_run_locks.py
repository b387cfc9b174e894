"""One loop per logs directory, state directory and broker account (issue 18, item 3).

The audit started a second `tradebot run` with the same logs directory but another `state_dir`:
it was not refused (the lock was `state/run.lock` only) and wrote four entries into the shared
`orders.jsonl`. Whatever two runs share — the journals, the state, the broker account — they
refuse each other, naming the pid of the first.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tradebot.config import load_config
from tradebot.engine.runner import run_lock
from tradebot.errors import RefusedError

pytestmark = pytest.mark.slow

SIM = """
[broker.sim]
seed = 7

[trading]
mode = "paper"
symbols = ["SPY"]
interval_s = 60

[paths]
logs_dir = "{logs}"
state_dir = "{state}"
"""


def _setup(where: Path, logs: Path, state: Path) -> Path:
    where.mkdir(parents=True, exist_ok=True)
    (where / "config.toml").write_text(SIM.format(logs=logs, state=state), encoding="utf-8")
    return where


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}


def _first_loop(cwd: Path) -> subprocess.Popen[bytes]:
    with (cwd / "run.err").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "tradebot", "run", "--start", "2025-07-01T09:29", "--speed",
             "60"],
            cwd=cwd, env=_env(), stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip


def _wait_running(state: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (state / "heartbeat.json").exists():
            return
        if proc.poll() is not None:
            pytest.fail("the first loop ended early")
        time.sleep(0.05)
    pytest.fail("the first loop never started")


def _lines(path: Path) -> int:
    return len(path.read_bytes().splitlines()) if path.exists() else 0


@pytest.mark.parametrize("shared", ["logs", "state"])
def test_two_runs_sharing_journals_or_state_refuse_each_other(tmp_path: Path, shared: str) -> None:
    logs_a, state_a = tmp_path / "logs", tmp_path / "a-state"
    logs_b, state_b = (logs_a, tmp_path / "b-state") if shared == "logs" else (
        tmp_path / "b-logs", state_a)  # fmt: skip
    first = _first_loop(_setup(tmp_path / "a", logs_a, state_a))
    try:
        _wait_running(state_a, first)
        journal = logs_a / "journal" / "orders.jsonl"
        before = _lines(journal), _lines(logs_b / "journal" / "events.jsonl")
        second = subprocess.run(
            [sys.executable, "-m", "tradebot", "run", "--once", "--start", "2025-07-01T11:00"],
            cwd=_setup(tmp_path / "b", logs_b, state_b), env=_env(), capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert second.returncode == 4, second.stderr
        assert f"pid {first.pid}" in second.stderr
        assert second.stderr.count("\n") == 1  # one sentence, no traceback
        if shared == "logs":
            # Nothing of the second run reached the shared journals.
            after = _lines(journal), _lines(logs_b / "journal" / "events.jsonl")
            assert after[0] >= before[0]
            starts = [
                line
                for line in (logs_b / "journal" / "events.jsonl").read_text().splitlines()
                if '"event":"start"' in line
            ]
            assert len(starts) == 1  # only the first run's
    finally:
        first.kill()
        first.wait(30)


def test_two_runs_on_one_ib_gateway_refuse_each_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two loops trading one IB account through one gateway would each manage the other's
    positions: the second is refused, whatever its logs and state directories."""
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    ibkr = '[broker]\nkind = "ibkr"\nport = 4002\naccount = "DU123"\n'
    a = tmp_path / "a"
    b = tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "config.toml").write_text(ibkr, encoding="utf-8")
    first, second = load_config(a / "config.toml"), load_config(b / "config.toml")
    with (
        run_lock(first.state_dir, loaded=first),
        pytest.raises(RefusedError, match=f"pid {os.getpid()}.*127.0.0.1:4002"),
        run_lock(second.state_dir, loaded=second),
    ):
        pass
    with run_lock(second.state_dir, loaded=second):  # released with the first
        pass
