"""Logging: rich on a terminal, plain lines otherwise, and a rotating `tradebot.log`.

The log file is opened lazily (on the first record), so read-only commands that log nothing leave
no file behind. Secrets never reach a log: nothing in tradebot formats a password or a notify URL.

Every message is written with its control characters escaped (`SafeFormatter`), so a newline or
an ANSI escape in `--operator`, `--reason` or file data can neither forge a log line nor drive the
terminal. The log file is 0600 in a 0700 directory; if it cannot be written, one warning line
says so and logging carries on to the terminal only (never a traceback per record).
"""

from __future__ import annotations

import contextlib
import io
import logging
import logging.handlers
import os
import sys
from pathlib import Path

from tradebot.core.validation import escape_control

LOG_FILE_NAME = "tradebot.log"
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(message)s"


class SafeFormatter(logging.Formatter):
    """Formats the message with its control characters escaped (tracebacks are left as is)."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_control(record.message)
        return super().formatMessage(record)


class _LazyRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Creates the logs directory (0700) and the file (0600) only when there is something to
    write; gives up on the file with one warning when it cannot be written."""

    broken = False

    def _open(self) -> io.TextIOWrapper:
        from tradebot.storage.atomic import make_private_dirs, open_regular

        path = Path(self.baseFilename)
        make_private_dirs(path.parent)
        fd, _created = open_regular(path, os.O_WRONLY | os.O_APPEND, follow_symlinks=False)
        stream = open(fd, self.mode, encoding=self.encoding, errors=self.errors)  # noqa: SIM115
        assert isinstance(stream, io.TextIOWrapper)
        return stream

    def emit(self, record: logging.LogRecord) -> None:
        if not self.broken:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        """The first failure: one warning on stderr, then the file is no longer tried."""
        if self.broken:
            return
        self.broken = True
        error = sys.exc_info()[1]
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.write(
                f"warning: cannot write the log file {self.baseFilename} ({reason}); logging to "
                "the terminal only. Fix paths.logs_dir or its permissions to keep a log\n"
            )
            sys.stderr.flush()
        with contextlib.suppress(OSError, ValueError):
            self.close()


def configure_logging(
    logs_dir: Path | None,
    *,
    debug: bool = False,
    console_level: int = logging.WARNING,
    max_bytes: int = 5_000_000,
    backups: int = 5,
) -> None:
    """Configure the `tradebot` logger; safe to call more than once (handlers are replaced)."""
    root = logging.getLogger("tradebot")
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.propagate = False

    console: logging.Handler
    if sys.stderr.isatty():
        from rich.logging import RichHandler

        console = RichHandler(show_path=False, rich_tracebacks=debug)
        console.setFormatter(SafeFormatter("%(message)s"))
    else:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(SafeFormatter(PLAIN_FORMAT))
    console.setLevel(logging.DEBUG if debug else console_level)
    root.addHandler(console)

    if logs_dir is not None:
        file_handler = _LazyRotatingFileHandler(
            Path(logs_dir) / LOG_FILE_NAME,
            maxBytes=max_bytes,
            backupCount=backups,
            encoding="utf-8",
            delay=True,
        )
        file_handler.setFormatter(SafeFormatter(FILE_FORMAT))
        file_handler.setLevel(logging.DEBUG if debug else logging.INFO)
        root.addHandler(file_handler)
