"""Logging: rich on a terminal, plain lines otherwise, and a rotating `tradebot.log`.

The log file is opened lazily (on the first record), so read-only commands that log nothing leave
no file behind. Secrets never reach a log: nothing in tradebot formats a password or a notify URL.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from pathlib import Path

LOG_FILE_NAME = "tradebot.log"
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(message)s"


class _LazyRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Creates the logs directory only when there is something to write."""

    def _open(self):  # type: ignore[no-untyped-def]
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


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
        console.setFormatter(logging.Formatter("%(message)s"))
    else:
        console = logging.StreamHandler(sys.stderr)
        console.setFormatter(logging.Formatter(PLAIN_FORMAT))
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
        file_handler.setFormatter(logging.Formatter(FILE_FORMAT))
        file_handler.setLevel(logging.DEBUG if debug else logging.INFO)
        root.addHandler(file_handler)
