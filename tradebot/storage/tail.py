"""Follow an append-only JSONL file: each refresh parses only the lines appended since the last.

The trading loop reads its journals every tick; re-parsing them whole would make a tick slower
as history grows. A `JsonlTail` keeps the records it has read and the byte offset it stopped at.
A refresh reads from there. The file is read again from the start (and `resets` counts it) when
it is no longer the file that was read: another inode, shorter than the offset, or different
bytes where the first line and the last consumed line were (a file deleted and recreated can get
the same inode number back).

Lines follow the rules of `tradebot.storage.jsonl`: a last line that is a whole JSON object
missing only its newline is a record (the next append terminates it); anything else after the
last newline is a torn line, left unconsumed and reported in `warnings`. Reads take the same
shared lock as `JsonlFile.read`, or use the caller's exclusive lock (`refresh_locked`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
from pathlib import Path
from typing import Any

from tradebot.storage.atomic import not_a_regular_file
from tradebot.storage.jsonl import (
    CHUNK_LINES,
    LockedJsonl,
    _parse_chunk,
    gc_paused,
    is_complete_record,
)
from tradebot.storage.watch import FileKey, file_key

log = logging.getLogger(__name__)

FINGERPRINT = 64  # bytes compared at the start of the file and before the offset


class JsonlTail:
    """The records of one JSONL file, kept up to date by reading only what was appended."""

    def __init__(self, path: Path, *, keep: bool = True) -> None:
        """`keep=False`: the records are handed out by `refresh` (with their line numbers in
        `new_line_numbers`) and not kept: a reader that parses them keeps what it needs."""
        self.path = Path(path)
        self.keep = keep
        self.records: list[dict[str, Any]] = []
        self.line_numbers: list[int] = []
        self.new_line_numbers: list[int] = []  # of the records the last refresh returned
        self.warnings: list[str] = []  # a torn last line, while there is one
        self.version = 0  # bumped whenever records change
        self.resets = 0  # bumped whenever the file had to be read again from the start
        self._offset = 0
        self._lines = 0
        self._inode: tuple[int, int] | None = None
        self._head = b""
        self._tail = b""
        self._unterminated = False  # the last consumed line had no newline yet
        self._key: FileKey | None = None  # the file as the last read saw it
        self.opens = 0  # how many refreshes had to open the file (tests count them)

    def refresh(self) -> list[dict[str, Any]]:
        """Read what was appended; returns the new records (all of them after a reset).

        One `stat` first: a file whose (device, inode, size, mtime, ctime) is what the last
        read saw has nothing new, and is not opened."""
        try:
            key = file_key(self.path)
        except OSError:
            key = None
        if key is not None and key == self._key:
            self.new_line_numbers = []
            return []
        self.opens += 1
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            if self.records or self._offset:
                self._reset()
            self.warnings = []
            self.new_line_numbers = []
            return []
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):  # a directory opens read-only too: never read it
                raise not_a_regular_file(self.path, mode)
            fcntl.flock(fd, fcntl.LOCK_SH)
            return self._read(fd)
        finally:
            os.close(fd)

    def refresh_locked(self, locked: LockedJsonl) -> list[dict[str, Any]]:
        """Like `refresh`, through a file this process holds exclusively (no writer can race)."""
        return self._read(locked.fileno())

    def _reset(self) -> None:
        self._key = None
        self.records, self.line_numbers = [], []
        self._offset = self._lines = 0
        self._inode = None
        self._head = self._tail = b""
        self._unterminated = False
        self.version += 1
        self.resets += 1

    def _same_file(self, fd: int, st: os.stat_result) -> bool:
        if (st.st_dev, st.st_ino) != self._inode or st.st_size < self._offset:
            return False
        if self._offset == 0:
            return True
        head = os.pread(fd, len(self._head), 0)
        tail = os.pread(fd, len(self._tail), self._offset - len(self._tail))
        return head == self._head and tail == self._tail

    def _read(self, fd: int) -> list[dict[str, Any]]:
        st = os.fstat(fd)
        if self._inode is not None and not self._same_file(fd, st):
            self._reset()
        self._inode = (st.st_dev, st.st_ino)
        data = os.pread(fd, st.st_size - self._offset, self._offset) if st.st_size > 0 else b""
        skip = 0
        if self._unterminated and data[:1] == b"\n":
            skip = 1  # the newline an append added to terminate the line read before
        end = data.rfind(b"\n") + 1
        rest = data[max(end, skip) :]
        complete_rest = bool(rest) and is_complete_record(rest)
        self._torn(data, end, rest if rest and not complete_rest else b"")
        body = data[skip:end] + (rest + b"\n" if complete_rest else b"")
        consumed = len(data) if complete_rest else end
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        if not body:
            if consumed:
                self._advance(fd, consumed, unterminated=False)
            self._key = key
            self.new_line_numbers = []
            return []
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
        if self.keep:
            self.records.extend(new)
            self.line_numbers.extend(new_numbers)
        self.new_line_numbers = new_numbers
        self._lines += len(lines)
        self._advance(fd, consumed, unterminated=complete_rest)
        self._key = key
        if new:
            self.version += 1
        return new

    def _torn(self, data: bytes, end: int, torn: bytes) -> None:
        """Report a torn last line (once per distinct line, not at every refresh)."""
        if not torn.strip():
            self.warnings = []
            return
        line = self._lines + data[:end].count(b"\n") + 1
        message = (
            f"{self.path}:{line}: ignoring a torn last line ({len(torn)} bytes, no newline): "
            "the writer stopped mid-line"
        )
        if self.warnings != [message]:
            log.warning(message)
        self.warnings = [message]

    def _advance(self, fd: int, consumed: int, *, unterminated: bool) -> None:
        self._offset += consumed
        self._unterminated = unterminated
        self._head = os.pread(fd, min(FINGERPRINT, self._offset), 0)
        start = max(0, self._offset - FINGERPRINT)
        self._tail = os.pread(fd, self._offset - start, start)
