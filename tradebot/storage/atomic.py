"""Small state files replaced atomically: a reader sees the old file or the new one, never half.

Write to a temporary file in the same directory, fsync it, rename it over the target, fsync the
directory. `state_lock` serialises read-modify-write cycles between processes.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tradebot.errors import CorruptRecordError
from tradebot.storage.records import dumps_record, loads_record


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace `path` with `data` atomically and durably."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    try:
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    fsync_directory(path.parent)


def write_json_state(path: Path, state: Mapping[str, Any]) -> None:
    """Atomically write one JSON object (Decimals as strings, times as UTC ISO)."""
    write_atomic(path, (dumps_record(state) + "\n").encode("utf-8"))


def read_json_state(path: Path) -> dict[str, Any] | None:
    """Read a JSON state file written by `write_json_state`; None when it does not exist."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return None
    try:
        obj = loads_record(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptRecordError(Path(path), None, f"not valid JSON ({exc})") from None
    if not isinstance(obj, dict):
        raise CorruptRecordError(Path(path), None, "not a JSON object")
    return obj


@contextmanager
def state_lock(path: Path) -> Iterator[None]:
    """Exclusive inter-process lock for a read-modify-write of the state file at `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
