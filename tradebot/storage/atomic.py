"""Small state files replaced atomically: a reader sees the old file or the new one, never half.

Write to a temporary file in the same directory, fsync it, rename it over the target, fsync the
directory. `state_lock` serialises read-modify-write cycles between processes.

Safety rules for every file tradebot creates:

* temporary files have unpredictable names and are created exclusively without following
  symlinks (`tempfile.mkstemp`: `O_CREAT | O_EXCL | O_NOFOLLOW`), so nobody can plant a symlink
  and have the writer overwrite another file;
* a temporary file is locked (`flock`) while its writer lives; one left behind by a killed writer
  is removed by the next write to the same target (only our own, unlocked, regular files);
* nothing is ever renamed over a target that is not a regular file (a device, a FIFO, a
  symlink): `write_through_special=True` writes through it, like a shell redirection, and
  otherwise the write is refused;
* directories tradebot creates are 0700 and files 0600 (exactly, whatever the umask).

Why one module: the safety rules of writing a file (unpredictable temporary names, locks, fsync,
rename, directory fsync, cleanup of a killed writer's leftovers) must be read together to be
trusted.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tradebot.errors import CorruptRecordError, StorageError, storage_error
from tradebot.storage.records import dumps_record, loads_record
from tradebot.storage.watch import touched

DIR_MODE = 0o700
FILE_MODE = 0o600
TEMP_SUFFIX = ".tmp"
MAX_STATE_BYTES = 16 * 1024 * 1024  # state files are a few KB; anything this big is not ours


_DURABLE = [True]


@contextmanager
def not_durable() -> Iterator[None]:
    """Within this block, writes skip fsync (still atomic and locked). Only for throw-away
    output that a crash may lose whole — a backtest's own journals — never for live state."""
    _DURABLE.append(False)
    try:
        yield
    finally:
        _DURABLE.pop()


def sync(fd: int) -> None:
    """fsync `fd` unless inside `not_durable()`."""
    if _DURABLE[-1]:
        os.fsync(fd)


def fsync_directory(directory: Path) -> None:
    """Make a rename or a new file in `directory` durable."""
    if not _DURABLE[-1]:
        return
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_dirs(directory: Path) -> None:
    """Create `directory` and its missing parents with mode 0700; existing ones are untouched.

    Raises NotADirectoryError when a component exists and is not a directory.
    """
    directory = Path(directory)
    missing: list[Path] = []
    current = directory
    while not current.is_dir():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for path in reversed(missing):
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:
            if path.is_dir():
                continue  # another process created it first
            raise NotADirectoryError(
                errno.ENOTDIR, "exists and is not a directory", str(path)
            ) from None
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
        try:
            os.fchmod(fd, DIR_MODE)  # exactly 0700, whatever the umask
        finally:
            os.close(fd)
        fsync_directory(path.parent)


def file_kind(mode: int) -> str:
    """A short name for what a stat mode is ("regular file", "symlink", "FIFO", ...)."""
    if stat.S_ISREG(mode):
        return "regular file"
    if stat.S_ISDIR(mode):
        return "directory"
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "special file"


def _temp_pattern(name: str) -> re.Pattern[str]:
    # mkstemp's 8 random characters; digits only for the pid-named files of earlier versions.
    return re.compile(re.escape(f".{name}.") + r"(?:[a-z0-9_]{8}|[0-9]+)" + re.escape(TEMP_SUFFIX))


def remove_stale_temp_files(path: Path) -> int:
    """Remove temporary files a killed writer of `path` left behind; returns how many.

    Only regular files owned by this user whose name is exactly one of our temporary names, and
    only when no live writer holds their lock. Never follows a symlink.
    """
    path = Path(path)
    pattern = _temp_pattern(path.name)
    removed = 0
    try:
        entries = [e.name for e in os.scandir(path.parent) if pattern.fullmatch(e.name)]
    except OSError:
        return 0
    for name in entries:
        candidate = path.parent / name
        try:
            fd = os.open(candidate, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue  # gone, a symlink, or not ours to open
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer is using it
            now = os.lstat(candidate)
            if (now.st_dev, now.st_ino) == (info.st_dev, info.st_ino):
                os.unlink(candidate)
                removed += 1
        except OSError:
            continue
        finally:
            os.close(fd)
    return removed


def _create_temp(path: Path) -> tuple[int, Path]:
    """An exclusively created, locked temporary file next to `path` (fd, path)."""
    for _attempt in range(5):
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # "in use": no stale-file cleanup removes it
            if os.fstat(fd).st_nlink > 0:
                return fd, Path(name)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(name)
            raise
        os.close(fd)  # a cleanup removed it between creation and lock: take another name
    raise OSError(errno.EAGAIN, "could not create a temporary file", str(path.parent))


def write_all(fd: int, data: bytes) -> None:
    """Write all of `data` to `fd` (os.write may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def write_atomic(
    path: Path, data: bytes, *, mode: int = FILE_MODE, write_through_special: bool = False
) -> None:
    """Replace `path` with `data` atomically and durably; the file gets exactly `mode`.

    A target that exists and is not a regular file is never replaced: with
    `write_through_special` it is opened and written like a shell redirection (a device, a FIFO,
    the file a symlink points to), otherwise StorageError. Errors are StorageError (an OSError)
    with a message in plain words; a failed write leaves the old file as it was.
    """
    path = Path(path)
    if not path.name or path.name in (".", ".."):
        raise StorageError(f"{path} is a directory, not a file", path=path, errno=errno.EISDIR)
    try:
        _write_atomic(path, data, mode, write_through_special)
    finally:
        touched(path)  # readers in this process stat it again (tradebot.storage.watch)


def _write_atomic(path: Path, data: bytes, mode: int, write_through_special: bool) -> None:
    try:
        existing = os.lstat(path)
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise storage_error(path, exc) from None
    if existing is not None and not stat.S_ISREG(existing.st_mode):
        kind = file_kind(existing.st_mode)
        if stat.S_ISDIR(existing.st_mode):
            raise StorageError(f"{path} is a directory, not a file", path=path, errno=errno.EISDIR)
        if not write_through_special:
            raise StorageError(
                f"{path} is a {kind}, not a regular file, and tradebot only replaces regular "
                "files; move it away, then run the command again",
                path=path,
                errno=errno.EEXIST,
            )
        _write_through(path, data)
        return
    try:
        make_private_dirs(path.parent)
        remove_stale_temp_files(path)
        fd, tmp = _create_temp(path)
    except OSError as exc:
        raise storage_error(path, exc) from None
    try:
        try:
            write_all(fd, data)
            os.fchmod(fd, mode)
            sync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise storage_error(path, exc) from None
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    try:
        fsync_directory(path.parent)
    except OSError as exc:
        raise storage_error(path, exc) from None


def _write_through(path: Path, data: bytes) -> None:
    """Write into an existing non-regular file (device, FIFO, symlink target), as `>` would."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC | os.O_CLOEXEC)
    except OSError as exc:
        raise storage_error(path, exc) from None
    try:
        write_all(fd, data)
        if stat.S_ISREG(os.fstat(fd).st_mode):
            sync(fd)
    except OSError as exc:
        raise storage_error(path, exc) from None
    finally:
        os.close(fd)


def write_json_state(path: Path, state: Mapping[str, Any]) -> None:
    """Atomically write one JSON object (Decimals as strings, times as UTC ISO)."""
    write_atomic(path, (dumps_record(state) + "\n").encode("utf-8"))


def read_json_state(path: Path) -> dict[str, Any] | None:
    """Read a JSON state file written by `write_json_state`; None when it does not exist.

    Anything else that cannot be read as one JSON object (not a regular file, unreadable, too
    big, not UTF-8, not JSON, nested too deeply) raises CorruptRecordError naming the file.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise unreadable_file(path, exc) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise not_a_regular_file(path, info.st_mode)
        if info.st_size > MAX_STATE_BYTES:
            raise CorruptRecordError(path, None, f"too large for a state file ({info.st_size} B)")
        data = read_all(fd)
    except OSError as exc:
        raise unreadable_file(path, exc) from None
    finally:
        os.close(fd)
    try:
        obj = loads_record(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CorruptRecordError(path, None, f"not valid JSON ({exc})") from None
    except RecursionError:
        raise CorruptRecordError(path, None, "JSON nested too deeply") from None
    if not isinstance(obj, dict):
        raise CorruptRecordError(path, None, "not a JSON object")
    return obj


def read_all(fd: int) -> bytes:
    """Everything from `fd` to its end."""
    parts: list[bytes] = []
    while True:
        block = os.read(fd, 1 << 20)
        if not block:
            return b"".join(parts)
        parts.append(block)


def unreadable_file(path: Path, exc: OSError) -> CorruptRecordError:
    """The error for a record or state file the OS will not let us read."""
    if exc.errno == errno.EISDIR:
        return not_a_regular_file(path, stat.S_IFDIR)
    reason = exc.strerror or str(exc)
    if exc.errno == errno.ELOOP:
        action = "symbolic links at or above this path form a loop: make it a real file"
    else:
        action = "fix its permissions or the disk (run tradebot as the user that owns it)"
    return CorruptRecordError(
        path, None, f"cannot be read ({reason})", action=f"{action}, then run the command again"
    )


def not_a_regular_file(path: Path, mode: int) -> CorruptRecordError:
    """The error for a record or state path that is a directory, a FIFO, a device, ..."""
    return CorruptRecordError(
        path,
        None,
        f"is a {file_kind(mode)}, not a regular file",
        action="move it away (tradebot recreates the file), then run the command again",
    )


@contextmanager
def state_lock(path: Path) -> Iterator[None]:
    """Exclusive inter-process lock for a read-modify-write of the state file at `path`."""
    path = Path(path)
    lock_path = path.with_name(path.name + ".lock")
    try:
        make_private_dirs(path.parent)
        fd, _created = open_regular(lock_path, os.O_RDWR, follow_symlinks=False)
    except OSError as exc:
        raise storage_error(lock_path, exc, action="create the lock file") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def open_regular(path: Path, flags: int, *, follow_symlinks: bool) -> tuple[int, bool]:
    """Open a regular file, creating it with mode 0600 (exactly) when absent: (fd, created).

    `flags` are the access flags (`os.O_RDWR | os.O_APPEND`, ...). A path that is not a regular
    file (a directory, a FIFO, a device; a symlink unless `follow_symlinks`) raises StorageError.
    """
    base = flags | os.O_CLOEXEC | os.O_NONBLOCK | (0 if follow_symlinks else os.O_NOFOLLOW)
    for _attempt in range(5):
        try:
            fd, created = os.open(path, base | os.O_CREAT | os.O_EXCL, FILE_MODE), True
        except FileExistsError:
            try:
                fd, created = os.open(path, base), False
            except FileNotFoundError:
                continue  # removed in between: try again
            except OSError as exc:
                if exc.errno == errno.ELOOP and not follow_symlinks:
                    raise StorageError(
                        f"{path} is a symlink, not a regular file; move it away, then run the "
                        "command again",
                        path=path,
                        errno=exc.errno,
                    ) from None
                raise
        break
    else:
        raise OSError(errno.EAGAIN, "the file keeps disappearing", str(path))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StorageError(
                f"{path} is a {file_kind(info.st_mode)}, not a regular file; move it away, then "
                "run the command again",
                path=path,
                errno=errno.EEXIST,
            )
        if created:
            os.fchmod(fd, FILE_MODE)  # exactly 0600, whatever the umask
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, created
