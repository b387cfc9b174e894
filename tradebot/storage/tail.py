"""Follow an append-only JSONL file: each refresh parses only the lines appended since the last.

The trading loop reads its journals every tick; re-parsing them whole would make a tick slower
as history grows. A `JsonlTail` keeps the records it has read and the byte offset it stopped at.
A refresh reads from there; a file that was replaced (another inode) or shrank (repaired by
hand) is read again from the start. Only complete lines (ending in a newline) are consumed: a
line still being written is picked up by a later refresh. Reads take the same shared lock as
`JsonlFile.read`, or use the caller's exclusive lock (`refresh_locked`).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from tradebot.storage.jsonl import CHUNK_LINES, LockedJsonl, _parse_chunk, gc_paused


class JsonlTail:
    """The records of one JSONL file, kept up to date by reading only what was appended."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.records: list[dict[str, Any]] = []
        self.line_numbers: list[int] = []
        self.version = 0  # bumped whenever records change
        self._offset = 0
        self._lines = 0
        self._inode: tuple[int, int] | None = None

    def refresh(self) -> list[dict[str, Any]]:
        """Read what was appended; returns the new records (all of them after a reset)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            if self.records or self._offset:
                self._reset()
                self.version += 1
            return []
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            return self._read(fd)
        finally:
            os.close(fd)

    def refresh_locked(self, locked: LockedJsonl) -> list[dict[str, Any]]:
        """Like `refresh`, through a file this process holds exclusively (no writer can race)."""
        return self._read(locked.fileno())

    def _reset(self) -> None:
        self.records, self.line_numbers = [], []
        self._offset = self._lines = 0
        self._inode = None

    def _read(self, fd: int) -> list[dict[str, Any]]:
        st = os.fstat(fd)
        inode = (st.st_dev, st.st_ino)
        if inode != self._inode or st.st_size < self._offset:
            self._reset()
            self._inode = inode
            self.version += 1
        if st.st_size == self._offset:
            return []
        data = os.pread(fd, st.st_size - self._offset, self._offset)
        end = data.rfind(b"\n") + 1
        if end == 0:
            return []
        body = data[:end]
        lines: list[str] | list[bytes]
        try:
            lines = body.decode("utf-8").split("\n")[:-1]
        except UnicodeDecodeError:
            lines = body.split(b"\n")[:-1]  # parsed line by line, so the bad line is named
        new: list[dict[str, Any]] = []
        new_numbers: list[int] = []
        with gc_paused():
            for start in range(0, len(lines), CHUNK_LINES):
                chunk = lines[start : start + CHUNK_LINES]
                records, numbers = _parse_chunk(self.path, chunk, self._lines + start)
                new.extend(records)
                new_numbers.extend(numbers)
        # Only now that every line parsed does the offset move: a corrupt line is reported
        # again on the next refresh instead of being skipped.
        self.records.extend(new)
        self.line_numbers.extend(new_numbers)
        self._lines += len(lines)
        self._offset += end
        if new:
            self.version += 1
        return new
