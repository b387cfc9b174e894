"""storage/watch.py: a watched file is read again when its key changes, and when its key is too
young to tell (git's "racily clean" rule).

A kernel stamps files with a coarse clock (one tick, 1–10 ms), and an atomic replace may be
given the inode number the old file just freed: two replaces in one tick can leave the same
(dev, ino, size, mtime, ctime) as the version read before (a filesystem hands freed inode
numbers out again; only the stamps' granularity keeps the keys apart). A key whose mtime is
within `RACY_NS` of the moment it was stat'ed is therefore not trusted. Git documents the same
rule for its index: https://git-scm.com/docs/racy-git
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tradebot.storage import read_json_state, watch, write_json_state
from tradebot.storage.watch import RACY_NS, FileKey, Watched, racy


class _Clock:
    def __init__(self, ns: int) -> None:
        self.ns = ns

    def time_ns(self) -> int:
        return self.ns


def _coarse(monkeypatch: pytest.MonkeyPatch, key: FileKey, now_ns: int) -> None:
    """A filesystem that gives every version the same key (coarse stamps, a reused inode), read
    at `now_ns` by the wall clock."""
    monkeypatch.setattr(watch, "file_key", lambda path: key)
    monkeypatch.setattr(watch, "time", _Clock(now_ns))


def test_a_version_written_in_the_tick_it_was_read_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "halt.json"
    stamp = 1_750_000_000_000_000_000
    _coarse(monkeypatch, (1, 42, 30, stamp, stamp), stamp + 4_000_000)  # read 4 ms after it
    write_json_state(path, {"v": 1, "n": "a"})
    watched = Watched(path, lambda: read_json_state(path))
    assert watched.get()["n"] == "a"
    write_json_state(path, {"v": 1, "n": "b"})  # same size, same tick: the same key
    assert watched.get()["n"] == "b"
    assert watched.reads == 2


def test_a_key_old_enough_is_trusted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the key is older than two ticks when stat'ed, the same key means the same file: it
    is read once (a write after that read is stamped at least a tick later)."""
    path = tmp_path / "halt.json"
    stamp = 1_750_000_000_000_000_000
    write_json_state(path, {"v": 1, "n": "a"})
    _coarse(monkeypatch, (1, 42, 30, stamp, stamp), stamp + 4_000_000)
    watched = Watched(path, lambda: read_json_state(path))
    watched.get()
    watched.get()
    assert watched.reads == 2  # young: read at each call
    watch.time.ns = stamp + RACY_NS  # type: ignore[attr-defined]
    watched.get()
    assert watched.reads == 3  # stat'ed two ticks after its mtime: this read is trusted
    for _ in range(3):
        watched.get()
    assert watched.reads == 3


def test_real_files_stamped_now_and_long_ago(tmp_path: Path) -> None:
    """The rule on a real file: a file stamped ahead of the clock (as young as can be) is read at
    every call; stamped a minute ago, once."""
    path = tmp_path / "state.json"
    write_json_state(path, {"v": 1, "n": "a"})
    watched = Watched(path, lambda: read_json_state(path))
    ahead = time.time_ns() + 60_000_000_000
    os.utime(path, ns=(ahead, ahead))
    for _ in range(3):
        watched.get()
    assert watched.reads == 3
    before = time.time_ns() - 60_000_000_000
    os.utime(path, ns=(before, before))
    for _ in range(3):
        watched.get()
    assert watched.reads == 4


def test_the_rule() -> None:
    key: FileKey = (1, 2, 3, 10_000_000_000, 10_000_000_000)
    assert racy(key, 10_000_000_000)
    assert racy(key, 10_000_000_000 + RACY_NS - 1)
    assert not racy(key, 10_000_000_000 + RACY_NS)
    assert racy(key, 9_000_000_000)  # stamped ahead of the clock
    assert not racy(None, 10_000_000_000)  # a missing file has no version to confuse
