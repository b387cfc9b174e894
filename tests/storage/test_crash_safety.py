"""Crash and concurrency tests with real processes killed by SIGKILL."""

from __future__ import annotations

import hashlib
import itertools
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from tradebot.storage import JsonlFile, read_json_state

WRITER = Path(__file__).with_name("writer_process.py")
ROOT = Path(__file__).resolve().parents[2]


def _spawn(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen(
        [sys.executable, str(WRITER), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def _wait_for_first_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline()


def test_sigkill_mid_append_loses_nothing_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "trades.jsonl"
    rng = random.Random(1234)
    next_seq = 0
    acknowledged_total = 0
    torn_rounds = 0
    for _round in range(25):
        proc = _spawn("jsonl", str(path), "w", str(next_seq))
        assert _wait_for_first_line(proc)  # the writer is running and has appended once
        time.sleep(rng.uniform(0.0, 0.08))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        acked = 1 + len(out.splitlines())  # the first line was read above
        acknowledged_total = next_seq + acked

        contents = JsonlFile(path).read()
        seqs = [r["seq"] for r in contents.records]
        torn_rounds += contents.torn_tail
        # Every complete line reads back, in order, with no gap and no duplicate ...
        assert seqs == list(range(len(seqs)))
        # ... and every append that returned before the kill is there.
        assert len(seqs) >= acknowledged_total
        # At most the one in-flight record beyond the acknowledged ones.
        assert len(seqs) <= acknowledged_total + 1
        for r in contents.records:
            assert r["pad"] == ("x" * 400_000 if r["seq"] % 3 == 2 else "y" * (r["seq"] % 50))
        next_seq = len(seqs)
    print(f"rounds with a torn tail: {torn_rounds}/25")


def test_concurrent_appenders_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    writers = [_spawn("jsonl", str(path), tag) for tag in ("a", "b")]
    for proc in writers:
        assert _wait_for_first_line(proc)
    deadline = time.monotonic() + 1.5
    contents = JsonlFile(path).read()
    while time.monotonic() < deadline and len(contents.records) < 60:
        time.sleep(0.05)
        contents = JsonlFile(path).read()
    for proc in writers:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    contents = JsonlFile(path).read()
    by_tag: dict[str, list[int]] = {"a": [], "b": []}
    for record in contents.records:
        by_tag[record["tag"]].append(record["seq"])
    # Both wrote, each writer's lines are whole and in order.
    assert by_tag["a"] and by_tag["b"]
    for seqs in by_tag.values():
        assert seqs == list(range(len(seqs)))
    # Interleaving of whole lines happened (both wrote while the other was writing).
    tags = [r["tag"] for r in contents.records]
    assert any(x != y for x, y in itertools.pairwise(tags))


def test_sigkill_mid_state_write_never_leaves_half_a_file(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    rng = random.Random(99)
    seen = set()
    for _round in range(20):
        proc = _spawn("state", str(path))
        while not path.exists():
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.1))
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        state = read_json_state(path)
        assert state is not None
        assert hashlib.sha256(state["body"].encode()).hexdigest() == state["sha256"]
        seen.add(state["i"] % 2)
    assert seen  # the checks above ran on real content
