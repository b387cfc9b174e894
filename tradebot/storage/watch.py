"""Files read once, and again only when they change: one `stat` decides.

The loop asks for the halt, the start-of-day equity, the phase history or the whale debounce
many times a minute; another process (`tradebot halt`, `phase advance`) may change them at any
moment, but almost never does. A `Watched` value remembers what it derived from its file with
the file's key — (device, inode, size, mtime_ns, ctime_ns) — and derives it again only when a
`stat` shows another key: an atomic replace makes a new inode, an append a new size, a `chmod`
a new ctime. A missing file has the key None (derived once too: "no halt").

Reading after the `stat` means the value is never older than the key it is stored under; a
change that races the read shows up as a new key at the next call, which reads again. A failed
derivation (a damaged file) is remembered with its key and raised again, so a damaged file is
not re-parsed at every call but is re-read the moment it is repaired.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")
FileKey = tuple[int, int, int, int, int]


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
        self.reads = 0  # how many times the file was actually read (tests count them)

    def get(self) -> T:
        try:
            key: object = file_key(self.path)
        except OSError:
            key = _Unknown()  # e.g. a directory we may not search: read (and report) each time
        with self._lock:
            if key == self._key and not isinstance(key, _Unknown):
                if self._error is not None:
                    raise self._error
                return self._value  # type: ignore[return-value]
            self.reads += 1
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


__all__ = ["FileKey", "Watched", "file_key"]
