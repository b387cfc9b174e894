"""Atomic state files."""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest

from tradebot.errors import CorruptRecordError
from tradebot.storage import read_json_state, state_lock, write_atomic, write_json_state


def test_round_trip_and_permissions(tmp_path: Path) -> None:
    path = tmp_path / "state" / "halt.json"
    write_json_state(path, {"v": 1, "equity": Decimal("10000.50")})
    assert read_json_state(path) == {"v": 1, "equity": "10000.50"}
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert [p.name for p in path.parent.iterdir()] == ["halt.json"]  # no temp file left


def test_replace_keeps_whole_new_content(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    write_atomic(path, b"old")
    write_atomic(path, b"new content")
    assert path.read_bytes() == b"new content"


def test_missing_state_is_none(tmp_path: Path) -> None:
    assert read_json_state(tmp_path / "absent.json") is None


def test_corrupt_state_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_text("{half")
    with pytest.raises(CorruptRecordError, match=r"s\.json: not valid JSON"):
        read_json_state(path)


def test_state_lock_is_reentrant_across_files(tmp_path: Path) -> None:
    with state_lock(tmp_path / "a.json"), state_lock(tmp_path / "b.json"):
        write_json_state(tmp_path / "a.json", {"v": 1})
    assert (tmp_path / "a.json.lock").exists()
