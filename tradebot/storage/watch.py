"""Files read once, and again only when they change: one `stat` decides.

The loop asks for the halt, the start-of-day equity, the phase history or the whale debounce
many times a minute; another process (`tradebot halt`, `phase advance`) may change them at any
moment, but almost never does. A `Watched` value remembers what it derived from its file with
the file's key — (device, inode, size, mtime_ns, ctime_ns) — and derives it again only when a
`stat` shows another key: an atomic replace makes a new inode, an append a new size, a `chmod`
a new ctime. A missing file has the key None (derived once too: "no halt").

Inside `one_stat_per_file()` (the loop wraps each wake in it) a file is stat'ed once, at its
first read: later reads in the same wake trust that stat unless this process wrote the file
since (every writer in `tradebot.storage` calls `touched`). Another process's change is seen at
the next wake; `fresh()` forces a stat (an entry's last re-check under the journal's lock).

Reading after the `stat` means the value is never older than the key it is stored under; a
change that races the read shows up as a new key at the next call, which reads again. A failed
derivation (a damaged file) is remembered with its key and raised again, so a damaged file is
not re-parsed at every call but is re-read the moment it is repaired.
"""

from __future__ import annotations

import contextvars
import itertools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")
FileKey = tuple[int, int, int, int, int]

_EPOCH: contextvars.ContextVar[int | None] = contextvars.ContextVar("watch_epoch", default=None)
_EPOCHS = itertools.count(1)
_TOUCHED: dict[str, int] = {}  # per path: how many times this process wrote it
_WRITES = [0]  # appends to any journal by this process


@contextmanager
def one_stat_per_file() -> Iterator[None]:
    """Within this block each watched file is stat'ed at most once (unless written here)."""
    token = _EPOCH.set(next(_EPOCHS))
    try:
        yield
    finally:
        _EPOCH.reset(token)


@contextmanager
def fresh() -> Iterator[None]:
    """Within this block every read stats its file again (what changed a moment ago counts)."""
    token = _EPOCH.set(None)
    try:
        yield
    finally:
        _EPOCH.reset(token)


def touched(path: Path | str, *, append: bool = False) -> None:
    """This process wrote `path` (the storage writers call it)."""
    if len(_TOUCHED) >= 10_000:
        _TOUCHED.clear()  # every count restarts: the next read of each file stats it again
    key = str(path)
    _TOUCHED[key] = _TOUCHED.get(key, 0) + 1
    if append:
        _WRITES[0] += 1


def journal_appends() -> int:
    """How many journal appends this process has made (a wake that made none wrote nothing)."""
    return _WRITES[0]


def file_key(path: Path | str) -> FileKey | None:
    """The file's identity and version, or None when it does not exist."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class _Unknown:
    """A key that equals nothing: the file could not even be stat'ed (read it every time)."""


class Watched(Generic[T]):
    """`derive()` of one file, recomputed only when the file's key changes."""

    def __init__(self, path: Path | str, derive: Callable[[], T]) -> None:
        self.path = Path(path)
        self._derive = derive
        self._key: object = _Unknown()
        self._value: T | None = None
        self._error: Exception | None = None
        self._lock = threading.Lock()
        self._name = str(self.path)
        self._seen: tuple[int, int] | None = None  # (epoch, writes) of the last stat
        self.reads = 0  # how many times the file was actually read (tests count them)
        self.stats = 0  # how many times it was stat'ed
        self.version = 0  # bumped at every read: values derived from this one key on it

    def get(self) -> T:
        epoch = _EPOCH.get()
        seen = None if epoch is None else (epoch, _TOUCHED.get(self._name, 0))
        if seen is not None and seen == self._seen and not isinstance(self._key, _Unknown):
            if self._error is not None:
                raise self._error
            return self._value  # type: ignore[return-value]
        self.stats += 1
        try:
            key: object = file_key(self.path)
        except OSError:
            key = _Unknown()  # e.g. a directory we may not search: read (and report) each time
        self._seen = seen
        with self._lock:
            if key == self._key and not isinstance(key, _Unknown):
                if self._error is not None:
                    raise self._error
                return self._value  # type: ignore[return-value]
            self.reads += 1
            self.version += 1
            try:
                value = self._derive()
            except Exception as exc:
                self._key, self._value, self._error = key, None, exc
                raise
            self._key, self._value, self._error = key, value, None
            return value

    def forget(self) -> None:
        """Read the file again at the next `get` (after this process wrote it)."""
        with self._lock:
            self._key = _Unknown()


__all__ = [
    "FileKey",
    "Watched",
    "file_key",
    "fresh",
    "journal_appends",
    "one_stat_per_file",
    "touched",
]
