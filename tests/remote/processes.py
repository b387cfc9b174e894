"""Real `tradebot remote run` (and `tradebot run`) processes for the tests."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.remote.conftest import cli_env, save_output


def start(
    cwd: Path, *args: str, env: dict[str, str] | None = None, name: str = "remote"
) -> subprocess.Popen[bytes]:
    """`python -m tradebot ARGS` in the background; stdout and stderr go to files in `cwd`."""
    out = (cwd / f"{name}.out").open("ab")
    err = (cwd / f"{name}.err").open("ab")
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "tradebot", *args],
            cwd=cwd,
            env=cli_env(env),
            stdout=out,
            stderr=err,
        )
    finally:
        out.close()
        err.close()


def start_remote(
    cwd: Path, env: dict[str, str] | None = None, name: str = "remote"
) -> subprocess.Popen[bytes]:
    proc = start(cwd, "remote", "run", env=env, name=name)
    wait(lambda: bool(journal(cwd, "remote_start")) or proc.poll() is not None, 30, "remote_start")
    assert proc.poll() is None, (cwd / f"{name}.err").read_text()
    return proc


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
    return proc.wait(30)


def wait(what: Callable[[], bool], timeout: float, why: str) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if what():
            return time.monotonic() - started
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {why}")


def journal(cwd: Path, name: str | None = None, logs: str = "logs") -> list[dict[str, Any]]:
    path = cwd / logs / "journal" / "events.jsonl"
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a line being written right now
    return [r for r in records if name is None or r["event"] == name]


def text_of(cwd: Path, name: str = "remote") -> str:
    out = (cwd / f"{name}.out").read_text() if (cwd / f"{name}.out").exists() else ""
    err = (cwd / f"{name}.err").read_text() if (cwd / f"{name}.err").exists() else ""
    save_output(cwd, [name], out, err)
    return out + err
