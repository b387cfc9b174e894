"""Exit codes (spec §1) and the error types that map onto them.

Every error the operator can cause or fix is a `TradebotError`: the CLI prints its message as one
sentence on stderr and exits with its code, with no traceback unless `--debug`.
"""

from __future__ import annotations

from enum import IntEnum, unique
from pathlib import Path


@unique
class ExitCode(IntEnum):
    """Process exit codes, the same for every command."""

    OK = 0
    UNEXPECTED = 1
    USAGE = 2
    BAD_CONFIG = 3
    REFUSED = 4
    GATEWAY_UNREACHABLE = 5
    INTERRUPTED = 130


class TradebotError(Exception):
    """An expected failure with a message for the operator and an exit code."""

    exit_code: ExitCode = ExitCode.UNEXPECTED

    def __init__(self, message: str, *, details: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        # Extra lines printed after the message (one problem per line), e.g. every config error.
        self.details = details

    def __str__(self) -> str:
        return self.message


class ConfigError(TradebotError):
    """The configuration file or a TRADEBOT_* environment variable is invalid."""

    exit_code = ExitCode.BAD_CONFIG


class UsageError(TradebotError):
    """A command was called with options that make no sense together."""

    exit_code = ExitCode.USAGE


class RefusedError(TradebotError):
    """A risk or phase rule said no, a password was wrong, or overrides are locked."""

    exit_code = ExitCode.REFUSED


class GatewayUnreachableError(TradebotError):
    """The IB gateway could not be reached."""

    exit_code = ExitCode.GATEWAY_UNREACHABLE


class CorruptRecordError(TradebotError):
    """A line in the middle of a JSONL file (or a state file) cannot be read or trusted.

    A torn *last* line is not this error: it is the normal trace of a crash mid-write and is skipped
    with a warning. Anything else means the file was damaged or edited, and the bot fails safe:
    the command refuses to act on it (exit 4, like any other refusal), naming `file:line`.
    """

    exit_code = ExitCode.REFUSED

    def __init__(
        self, path: Path, line: int | None, problem: str, *, action: str | None = None
    ) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        what = "that line" if line is not None else "the file"
        todo = action or f"repair or remove {what} (keep a backup), then run the command again"
        super().__init__(f"{where}: {problem}; {todo}")
        self.path = path
        self.line = line
        self.problem = problem


class StorageError(TradebotError, OSError):
    """A durable write failed (disk full, I/O error, permission, not a regular file).

    Also an OSError (with `errno` set), so code that catches OSError keeps working. The message
    says what happened in plain words and what to do; nothing half-written is left behind.
    """

    exit_code = ExitCode.UNEXPECTED

    def __init__(self, message: str, *, path: Path, errno: int | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno


def storage_error(path: Path, exc: OSError, *, action: str = "write") -> StorageError:
    """A StorageError for an OSError raised while writing `path`, in the operator's words."""
    import errno as codes

    where = Path(path)
    if exc.errno in (codes.ENOSPC, codes.EDQUOT):
        text = (
            f"disk full: cannot {action} {where} (no space left on the device, or the disk quota "
            "is used up); free some space on that disk, then run the command again"
        )
    elif exc.errno == codes.EIO:
        text = (
            f"I/O error: cannot {action} {where}; the disk may be failing: check the system log "
            "(dmesg), copy the logs directory to safe storage, then run the command again"
        )
    elif exc.errno == codes.EROFS:
        text = (
            f"cannot {action} {where}: the file system is read-only; remount it read-write or "
            "point paths.logs_dir / paths.state_dir at a writable disk"
        )
    elif exc.errno in (codes.EACCES, codes.EPERM):
        text = (
            f"cannot {action} {where}: permission denied; run tradebot as the user that owns "
            f"{where.parent}, or fix its permissions"
        )
    elif exc.errno == codes.EFBIG:
        text = (
            f"cannot {action} {where}: the file is too large for the process's file-size limit "
            "or the file system; raise the limit (ulimit -f, LimitFSIZE= in the systemd unit) "
            "or move paths.logs_dir to a file system that allows larger files, then run the "
            "command again"
        )
    else:
        reason = exc.strerror or str(exc)
        text = f"cannot {action} {where} ({reason}); fix the cause, then run the command again"
    return StorageError(text, path=where, errno=exc.errno)
