"""Append-only JSONL files that survive crashes and concurrent writers.

Guarantees:

* every append is one whole line written under an exclusive `flock` on the file, then flushed and
  fsynced before `append` returns (a new file also fsyncs its directory);
* two processes appending at once never interleave lines;
* a reader takes a shared lock, so it never sees a line being written;
* a torn last line (crash or power loss mid-write) is skipped with a warning, and the next append
  moves it aside to `<name>.torn` before writing, so it can never become a corrupt middle line;
* a last line that is a complete JSON object missing only its newline is a complete record (an
  editor may strip the newline): it is read, and the next append terminates it first;
* any other unreadable line raises `CorruptRecordError` naming file and line: callers fail safe;
  so does a path that is not a regular file (a directory, a FIFO) or that cannot be read;
* a failed append (disk full, I/O error) is cut back to the size before it and raises
  `StorageError` saying what happened and what to do: no partial line is left behind;
* new files are created 0600 and new directories 0700.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gc
import logging
import os
import re
import stat
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradebot.errors import CorruptRecordError, StorageError, storage_error
from tradebot.storage.atomic import (
    fsync_directory,
    make_private_dirs,
    not_a_regular_file,
    open_regular,
    sync,
    unreadable_file,
)
from tradebot.storage.atomic import read_all as _read_all
from tradebot.storage.atomic import write_all as _write_all
from tradebot.storage.records import dumps_record, loads_record
from tradebot.storage.watch import touched

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JsonlContents:
    """What a read found: the records (with their 1-based line numbers) and any torn tail."""

    records: list[dict[str, Any]]
    line_numbers: list[int]
    torn_tail: bool = False
    warnings: list[str] = field(default_factory=list)


CHUNK_LINES = 1000  # decode this many lines per call: fast, and keeps the working set in cache


def _split_tail(data: bytes) -> tuple[bytes, bytes]:
    """(complete lines, torn tail): what follows the last newline is an unfinished line, unless
    it is a whole JSON object missing only its newline (then it is a complete last line)."""
    end = data.rfind(b"\n") + 1
    if end < len(data) and is_complete_record(data[end:]):
        return data + b"\n", b""
    return data[:end], data[end:]


def is_complete_record(line: bytes) -> bool:
    """Whether `line` (no newline) is one whole JSON object: nothing can be missing from it.

    A proper prefix of a JSON object is never itself a JSON object, so this cannot mistake a
    torn write for a complete one.
    """
    if not line.strip():
        return False
    try:
        return type(loads_record(line)) is dict
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False


def _torn_tail_warning(path: Path, body: bytes, tail: bytes) -> str | None:
    if not tail.strip():
        return None
    line_no = body.count(b"\n") + 1
    message = (
        f"{path}:{line_no}: ignoring a torn last line ({len(tail)} bytes, "
        "no newline): the writer stopped mid-line"
    )
    log.warning(message)
    return message


def _parse(path: Path, data: bytes) -> JsonlContents:
    body, tail = _split_tail(data)
    records: list[dict[str, Any]] = []
    numbers: list[int] = []
    with gc_paused():
        for chunk, chunk_numbers in _iter_chunks(path, body):
            records.extend(chunk)
            numbers.extend(chunk_numbers)
    warning = _torn_tail_warning(path, body, tail)
    return JsonlContents(records, numbers, warning is not None, [warning] if warning else [])


def _iter_chunks(path: Path, body: bytes) -> Iterator[tuple[list[dict[str, Any]], list[int]]]:
    """Complete lines as (records, 1-based line numbers), CHUNK_LINES at a time.

    The text is cut into chunks where lines end, without splitting it into lines first: a clean
    chunk is decoded in one call straight from its slice of the file (see `_parse_text_chunk`).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        lines = body.split(b"\n")[:-1]  # slow path, so the bad line can be named
        for start in range(0, len(lines), CHUNK_LINES):
            yield _parse_line_by_line(path, lines[start : start + CHUNK_LINES], start)
        return
    size, pos, offset = len(text), 0, 0
    find = text.find
    while pos < size:
        end = pos
        for _ in range(CHUNK_LINES):
            end = find("\n", end) + 1
            if end == 0 or end >= size:
                end = size
                break
        part = text[pos:end]
        count = part.count("\n")
        yield _parse_text_chunk(path, part, count, offset)
        offset += count
        pos = end


def _parse_text_chunk(
    path: Path, part: str, count: int, offset: int
) -> tuple[list[dict[str, Any]], list[int]]:
    """`count` newline-terminated lines as one slice of text; the bulk decode of `_parse_chunk`
    when every newline inside is "}\n{" (so every line starts with "{" and ends with "}"),
    else line by line."""
    if (
        part[:1] == "{"
        and part[-2:] == "}\n"
        and part.count("}\n{") == count - 1  # cheap insurance; the checks below suffice
        and not _SECOND_VALUE.search(part)
    ):
        try:
            records: Any = loads_record("[" + part[:-1].replace("\n", ",") + "]")
        except (ValueError, RecursionError):
            records = None
        if (
            isinstance(records, list)
            and len(records) == count
            and all(type(r) is dict for r in records)
        ):
            return records, list(range(offset + 1, offset + count + 1))
    return _parse_line_by_line(path, part.split("\n")[:-1], offset)


# A comma before an opening brace: the only way a line that starts with "{" and ends with "}"
# can hold a second top-level value. Lines containing it (even inside a string) are parsed one
# by one, which is slower but exact.
_SECOND_VALUE = re.compile(r",\s*\{")


def _parse_chunk(
    path: Path, lines: list[str] | list[bytes], offset: int
) -> tuple[list[dict[str, Any]], list[int]]:
    """One C-level decode for a clean chunk; each line must hold exactly one JSON object.

    The bulk result is used only when every line starts with "{" and ends with "}", no line has
    a comma before a "{", and there are as many objects as lines. Together these rule out one
    line holding two objects while another object spans two lines (the joined array would still
    count right). Anything else is parsed line by line, which names the offending line.
    """
    records: Any = None
    if lines and isinstance(lines[0], str):
        text_lines = lines
        if all(line[:1] == "{" and line[-1:] == "}" for line in text_lines):
            joined = "\n".join(text_lines)
            if not _SECOND_VALUE.search(joined):
                try:
                    records = loads_record("[" + joined.replace("\n", ",") + "]")
                except (ValueError, RecursionError):
                    records = None
    if (
        isinstance(records, list)
        and len(records) == len(lines)
        and all(type(r) is dict for r in records)
    ):
        return records, list(range(offset + 1, offset + len(lines) + 1))
    return _parse_line_by_line(path, lines, offset)


def _parse_line_by_line(
    path: Path, lines: Sequence[str | bytes], offset: int = 0
) -> tuple[list[dict[str, Any]], list[int]]:
    records: list[dict[str, Any]] = []
    numbers: list[int] = []
    for number, raw in enumerate(lines, start=offset + 1):
        if not raw.strip():
            continue
        try:
            obj = loads_record(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise CorruptRecordError(path, number, f"not valid JSON ({exc})") from None
        except RecursionError:
            raise CorruptRecordError(path, number, "JSON nested too deeply") from None
        if not isinstance(obj, dict):
            raise CorruptRecordError(path, number, "not a JSON object")
        records.append(obj)
        numbers.append(number)
    return records, numbers


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building many containers (it would rescan them repeatedly)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class JsonlFile:
    """One append-only JSONL file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def read(self) -> JsonlContents:
        """Read every complete record; a missing file is empty."""
        return _parse(self.path, self._read_bytes())

    def iter_chunks(self) -> Iterator[tuple[list[dict[str, Any]], list[int]]]:
        """Stream (records, line numbers) in chunks, for big files processed piece by piece.

        The file is read once under the shared lock; a torn last line is skipped with a
        warning, and a corrupt line raises CorruptRecordError when its chunk is reached.
        """
        body, tail = _split_tail(self._read_bytes())
        _torn_tail_warning(self.path, body, tail)
        yield from _iter_chunks(self.path, body)

    def _read_bytes(self) -> bytes:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            return b""
        except OSError as exc:
            raise unreadable_file(self.path, exc) from None
        try:
            mode = os.fstat(fd).st_mode
            if not stat.S_ISREG(mode):
                raise not_a_regular_file(self.path, mode)
            fcntl.flock(fd, fcntl.LOCK_SH)
            return _read_all(fd)
        except OSError as exc:
            raise unreadable_file(self.path, exc) from None
        finally:
            os.close(fd)

    def append(self, record: Mapping[str, Any]) -> None:
        """Append one record durably (returns after fsync)."""
        self.append_many([record])

    def append_many(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Append records as one write, durably."""
        with self.locked() as locked:
            locked.append_many(records)

    @contextmanager
    def locked(self) -> Iterator[LockedJsonl]:
        """Hold the exclusive lock: read, decide and append with no other writer in between.

        Creates the file (0600, directories 0700) if needed. A path that is not a regular file
        raises CorruptRecordError; one that cannot be created or opened, StorageError.
        """
        try:
            make_private_dirs(self.path.parent)
            fd, created = open_regular(self.path, os.O_RDWR | os.O_APPEND, follow_symlinks=True)
        except StorageError as exc:
            if exc.errno == errno.EEXIST:  # exists but is not a regular file
                raise not_a_regular_file(self.path, os.stat(self.path).st_mode) from None
            raise
        except IsADirectoryError:
            raise not_a_regular_file(self.path, stat.S_IFDIR) from None
        except OSError as exc:
            raise storage_error(self.path, exc, action="open for appending") from None
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

    def fileno(self) -> int:
        return self._fd

    def read(self) -> JsonlContents:
        os.lseek(self._fd, 0, os.SEEK_SET)
        return _parse(self.path, _read_all(self._fd))

    def append(self, record: Mapping[str, Any]) -> None:
        self.append_many([record])

    def append_many(self, records: Iterable[Mapping[str, Any]]) -> None:
        payload = "".join(dumps_record(r) + "\n" for r in records).encode("utf-8")
        if not payload:
            return
        touched(self.path, append=True)  # readers in this process look again (storage.watch)
        try:
            size = os.fstat(self._fd).st_size
        except OSError as exc:
            raise storage_error(self.path, exc, action="append to") from None
        try:
            prefix = self._prepare_tail(size)
            _write_all(self._fd, prefix + payload)
            sync(self._fd)
        except OSError as exc:
            # Cut back to where this append started: no partial line is left behind.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, size)
                sync(self._fd)
            raise storage_error(self.path, exc, action="append to") from None

    def _prepare_tail(self, size: int) -> bytes:
        """What to write before the records so they start on a line of their own.

        Nothing when the file ends with a newline; a newline when its last line is a complete
        record missing only the newline; otherwise the torn last line is moved aside.
        """
        if size == 0 or os.pread(self._fd, 1, size - 1) == b"\n":
            return b""
        # Find where the unfinished line starts.
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
        if is_complete_record(fragment):
            return b"\n"
        # Keep the torn line for forensics, then cut it off.
        torn_path = self.path.with_name(self.path.name + ".torn")
        tfd, _created = open_regular(torn_path, os.O_WRONLY | os.O_APPEND, follow_symlinks=False)
        try:
            _write_all(tfd, fragment + b"\n")
            sync(tfd)
        finally:
            os.close(tfd)
        os.ftruncate(self._fd, start)
        sync(self._fd)
        log.warning(
            "%s: moved a torn last line (%d bytes) to %s before appending",
            self.path,
            len(fragment),
            torn_path,
        )
        return b""
