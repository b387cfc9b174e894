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
change that races the read shows up as a new key at the next call, which reads again — unless
the key cannot tell: a kernel stamps files with a coarse clock (a tick of 1–10 ms), so a write
in the same tick as the one read keeps mtime and ctime, and an atomic replace may be handed the
inode number the old file just freed (same size too: the same key). As git does with its
"racily clean" index entries, a key whose mtime is within `RACY_NS` of the moment it was
stat'ed is not trusted: the next call reads the file again, until its key is old enough (any
write after that read is stamped at least a tick later: a new key).

A failed derivation (a damaged file) is remembered with its key and raised again, so a damaged
file is not re-parsed at every call but is re-read the moment it is repaired.
"""

from __future__ import annotations

import contextvars
import itertools
import os
import threading
import time
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
# Two ticks of a coarse kernel clock (HZ=100: 10 ms), during which a second write may leave a
# file's key as it was: a key that young is read again at the next call.
RACY_NS = 20_000_000


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


def racy(key: FileKey | None, stat_ns: int) -> bool:
    """Whether a file was written so shortly before `stat_ns` (the wall clock just before its
    `stat`) that a later write may keep its key (a file stamped ahead of the clock is racy)."""
    return key is not None and stat_ns - key[3] < RACY_NS


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
        self._racy = False  # the key was too young to vouch for the value (read again)
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
        stat_ns = time.time_ns()
        try:
            key: object = file_key(self.path)
        except OSError:
            key = _Unknown()  # e.g. a directory we may not search: read (and report) each time
        self._seen = seen
        with self._lock:
            if key == self._key and not isinstance(key, _Unknown) and not self._racy:
                if self._error is not None:
                    raise self._error
                return self._value  # type: ignore[return-value]
            self.reads += 1
            self.version += 1
            young = isinstance(key, tuple) and racy(key, stat_ns)
            try:
                value = self._derive()
            except Exception as exc:
                self._key, self._value, self._error, self._racy = key, None, exc, young
                raise
            self._key, self._value, self._error, self._racy = key, value, None, young
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
    "racy",
    "touched",
]
