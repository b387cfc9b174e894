"""Append-only JSONL files that survive crashes and concurrent writers.

Guarantees:

* every append is one whole line written under an exclusive `flock` on the file, then flushed and
  fsynced before `append` returns (a new file also fsyncs its directory);
* two processes appending at once never interleave lines;
* a reader takes a shared lock, so it never sees a line being written;
* a torn last line (crash or power loss mid-write) is skipped with a warning, and the next append
  moves it aside to `<name>.torn` before writing, so it can never become a corrupt middle line;
* any other unreadable line raises `CorruptRecordError` naming file and line: callers fail safe.
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradebot.errors import CorruptRecordError
from tradebot.storage.atomic import fsync_directory
from tradebot.storage.records import dumps_record, loads_record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JsonlContents:
    """What a read found: the records (with their 1-based line numbers) and any torn tail."""

    records: list[dict[str, Any]]
    line_numbers: list[int]
    torn_tail: bool = False
    warnings: list[str] = field(default_factory=list)


def _parse(path: Path, data: bytes) -> JsonlContents:
    records: list[dict[str, Any]] = []
    line_numbers: list[int] = []
    warnings: list[str] = []
    lines = data.split(b"\n")
    # After the final newline split() leaves b""; anything else there is a torn (unfinished) line.
    tail = lines.pop()
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            obj = loads_record(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorruptRecordError(path, number, f"not valid JSON ({exc})") from None
        if not isinstance(obj, dict):
            raise CorruptRecordError(path, number, "not a JSON object")
        records.append(obj)
        line_numbers.append(number)
    torn = bool(tail.strip())
    if torn:
        message = (
            f"{path}:{len(lines) + 1}: ignoring a torn last line ({len(tail)} bytes, no newline): "
            "the writer stopped mid-line"
        )
        log.warning(message)
        warnings.append(message)
    return JsonlContents(records, line_numbers, torn, warnings)


class JsonlFile:
    """One append-only JSONL file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> JsonlContents:
        """Read every complete record; a missing file is empty."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return JsonlContents([], [])
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            data = _read_all(fd)
        finally:
            os.close(fd)
        return _parse(self.path, data)

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record durably (returns after fsync)."""
        self.append_many([record])

    def append_many(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append records as one write, durably."""
        with self.locked() as locked:
            locked.append_many(records)

    @contextmanager
    def locked(self) -> Iterator[LockedJsonl]:
        """Hold the exclusive lock: read, decide and append with no other writer in between."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        created = not self.path.exists()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if created:
                fsync_directory(self.path.parent)
            yield LockedJsonl(self.path, fd)
        finally:
            os.close(fd)  # closing releases the flock


class LockedJsonl:
    """A JSONL file while this process holds its exclusive lock."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd = fd

    def read(self) -> JsonlContents:
        os.lseek(self._fd, 0, os.SEEK_SET)
        return _parse(self.path, _read_all(self._fd))

    def append(self, record: Mapping[str, Any]) -> None:
        self.append_many([record])

    def append_many(self, records: Iterable[Mapping[str, Any]]) -> None:
        payload = "".join(dumps_record(r) + "\n" for r in records).encode("utf-8")
        if not payload:
            return
        self._set_aside_torn_tail()
        _write_all(self._fd, payload)
        os.fsync(self._fd)

    def _set_aside_torn_tail(self) -> None:
        size = os.fstat(self._fd).st_size
        if size == 0 or os.pread(self._fd, 1, size - 1) == b"\n":
            return
        # Find where the unfinished line starts, keep it for forensics, then cut it off.
        start = size
        chunk = 4096
        while start > 0:
            begin = max(0, start - chunk)
            block = os.pread(self._fd, start - begin, begin)
            cut = block.rfind(b"\n")
            if cut != -1:
                start = begin + cut + 1
                break
            start = begin
        fragment = os.pread(self._fd, size - start, start)
        torn_path = self.path.with_name(self.path.name + ".torn")
        tfd = os.open(torn_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            _write_all(tfd, fragment + b"\n")
            os.fsync(tfd)
        finally:
            os.close(tfd)
        os.ftruncate(self._fd, start)
        os.fsync(self._fd)
        log.warning(
            "%s: moved a torn last line (%d bytes) to %s before appending",
            self.path,
            len(fragment),
            torn_path,
        )


def _read_all(fd: int) -> bytes:
    parts: list[bytes] = []
    while True:
        block = os.read(fd, 1 << 20)
        if not block:
            return b"".join(parts)
        parts.append(block)


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        written = os.write(fd, view)
        view = view[written:]
