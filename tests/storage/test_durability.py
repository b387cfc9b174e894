"""`not_durable()`: a backtest's throw-away journals skip fsync; everything else never does."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tradebot.storage import JsonlFile, not_durable, read_json_state, write_json_state


def test_writes_inside_not_durable_skip_fsync_and_still_land(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    journal = JsonlFile(tmp_path / "j.jsonl")
    with not_durable():
        journal.append({"v": 1, "n": 1})
        write_json_state(tmp_path / "s.json", {"v": 1, "x": 1})
    assert calls == []
    assert journal.read().records == [{"v": 1, "n": 1}]
    assert read_json_state(tmp_path / "s.json") == {"v": 1, "x": 1}
    journal.append({"v": 1, "n": 2})  # outside the block: durable again
    write_json_state(tmp_path / "s.json", {"v": 1, "x": 2})
    assert len(calls) >= 2
