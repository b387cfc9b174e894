"""State and files created safely; hostile state is a named refusal (issue 18, item 5).

* `run` and `backtest` under umask 000: every directory they create is 0700 and every file
  0600, as the README promises (the audit found `logs/`, `logs/state/` and a backtest's `state/`
  made with a plain mkdir: 0777).
* Odd or hostile state is exit 4 naming the file and the key, never exit 1, and the file is
  left exactly as it was (never "repaired" by a rewrite).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.engine.harness import config, sim_state
from tests.review.helpers import prepare, run_loop, trading

pytestmark = pytest.mark.slow


def _tradebot(cwd: Path, *args: str, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    return subprocess.run(
        [sys.executable, "-m", "tradebot", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
        preexec_fn=None if umask is None else (lambda: os.umask(umask)),
    )  # fmt: skip


def _modes(root: Path) -> dict[str, str]:
    """Every directory and file under `root` (itself included) that is not 0700 / 0600."""
    wrong: dict[str, str] = {}
    for here, dirs, files in os.walk(root):
        for name in [here, *(os.path.join(here, d) for d in dirs)]:
            mode = stat.S_IMODE(os.lstat(name).st_mode)
            if mode != 0o700:
                wrong[name] = oct(mode)
        for f in files:
            path = os.path.join(here, f)
            mode = stat.S_IMODE(os.lstat(path).st_mode)
            if mode != 0o600:
                wrong[path] = oct(mode)
    return wrong


SIM = '[broker.sim]\nseed = 7\n[trading]\nmode = "paper"\nsymbols = ["SPY"]\n'


def test_run_creates_private_directories_and_files_under_umask_000(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(SIM, encoding="utf-8")
    done = _tradebot(tmp_path, "run", "--start", "2025-07-01", "--until", "2025-07-01T11:00",
                     umask=0)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "logs" / "state" / "sim-broker.json").exists()
    assert (tmp_path / "logs" / "journal" / "orders.jsonl").exists()
    assert _modes(tmp_path / "logs") == {}


def test_backtest_creates_private_directories_and_files_under_umask_000(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(SIM, encoding="utf-8")
    done = _tradebot(tmp_path, "backtest", "--synthetic", "--sessions", "1", "--from",
                     "2025-07-01", "--out", "bt/out", umask=0)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "bt" / "out" / "state").is_dir()
    assert _modes(tmp_path / "bt") == {}


# -- hostile state: exit 4 naming the file and the key, the file unchanged ----------------------
def _heartbeat(value: object) -> Callable[[Path], None]:
    def change(state: Path) -> None:
        path = state / "heartbeat.json"
        record = json.loads(path.read_text())
        if value is _MISSING:
            record.pop("beat")
        else:
            record["beat"] = value
        path.write_text(json.dumps(record))

    return change


def _sim_account(key: str, value: object, *, raw: str | None = None) -> Callable[[Path], None]:
    def change(state: Path) -> None:
        path = state / "sim-broker.json"
        record = json.loads(path.read_text())
        if key == "orders[0].status":
            record["orders"][0]["status"] = value
        elif key == "orders[0].qty":
            record["orders"][0]["qty"] = value
        else:
            record[key] = value
        text = json.dumps(record)
        if raw is not None:  # a number JSON cannot hold as a float: written by hand
            text = text.replace('"@RAW@"', raw)
        path.write_text(text)

    return change


def _a_directory(name: str) -> Callable[[Path], None]:
    def change(state: Path) -> None:
        target = state / name if not name.startswith("journal/") else state.parent / name
        if target.exists():
            target.unlink()
        target.mkdir()
        (target / "keep").write_text("x")

    return change


def _fill_qty(value: object) -> Callable[[Path], None]:
    def change(state: Path) -> None:
        path = state.parent / "journal" / "orders.jsonl"
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            record = json.loads(line)
            if record["event"] == "fill":
                record["qty"] = value
                lines[i] = json.dumps(record)
                break
        path.write_text("\n".join(lines) + "\n")

    return change


_MISSING = object()

CASES: dict[str, tuple[Callable[[Path], None], str, str]] = {
    # case: (change, the file named, the key named)
    "heartbeat beat missing": (_heartbeat(_MISSING), "heartbeat.json", "beat"),
    "heartbeat beat garbage": (_heartbeat("yesterday"), "heartbeat.json", "beat"),
    "heartbeat beat naive": (_heartbeat("2025-07-01T10:00:00"), "heartbeat.json", "beat"),
    "heartbeat beat numeric": (_heartbeat(1751364000), "heartbeat.json", "beat"),
    "heartbeat a directory": (_a_directory("heartbeat.json"), "heartbeat.json", "directory"),
    "sim cash NaN": (_sim_account("cash", "NaN"), "sim-broker.json", "cash"),
    "sim cash Infinity": (_sim_account("cash", "Infinity"), "sim-broker.json", "cash"),
    "sim cash 1e400": (_sim_account("cash", "@RAW@", raw="1e400"), "sim-broker.json", "cash"),
    "sim order status unknown": (
        _sim_account("orders[0].status", "Teleported"), "sim-broker.json", "status"),
    "sim order qty -5": (_sim_account("orders[0].qty", -5), "sim-broker.json", "qty"),
    "orders fill qty lots": (_fill_qty("lots"), "orders.jsonl", "qty"),
    "orders.jsonl a directory": (_a_directory("journal/orders.jsonl"), "orders.jsonl", "directory"),
    "run.lock a directory": (_a_directory("run.lock"), "run.lock", "directory"),
}  # fmt: skip


@pytest.fixture(scope="module")
def used_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Logs of a morning with orders, fills and a heartbeat (made once, copied per case)."""
    root = tmp_path_factory.mktemp("used")
    loaded = config(root, base=trading("interval_s = 60", symbols='"SPY"'))
    ctx, until = prepare(loaded, "2025-07-01T09:29", "2025-07-01T10:30")
    run_loop(ctx, until)
    assert sim_state(loaded)["orders"]
    return root


def _snapshot(root: Path, name: str) -> dict[str, bytes]:
    """The named file's bytes (a directory's: its entries')."""
    found = list((root / "logs").rglob(name))
    assert len(found) == 1, found
    path = found[0]
    if path.is_dir():
        return {str(p.relative_to(root)): p.read_bytes() for p in path.iterdir()}
    return {str(path.relative_to(root)): path.read_bytes()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_state_is_exit_4_naming_file_and_key_and_the_file_is_unchanged(
    used_logs: Path, tmp_path: Path, case: str
) -> None:
    import shutil

    shutil.copytree(used_logs, tmp_path / "w")
    root = tmp_path / "w"
    change, file_named, key_named = CASES[case]
    change(root / "logs" / "state")
    before = _snapshot(root, file_named)
    command = ["status"] if case.startswith("heartbeat") else [
        "run", "--once", "--start", "2025-07-01T10:31"]  # fmt: skip
    done = _tradebot(root, *command)
    assert done.returncode == 4, (done.returncode, done.stderr)
    last = done.stderr.strip().splitlines()[-1]
    assert file_named in last and key_named in last, last
    assert "Traceback" not in done.stderr
    assert _snapshot(root, file_named) == before  # never rewritten
