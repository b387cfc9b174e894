"""Logging: rich on a terminal, plain lines otherwise, and a rotating `tradebot.log`.

The log file is opened lazily (on the first record), so read-only commands that log nothing leave
no file behind. Secrets never reach a log: nothing in tradebot formats a password or a notify URL.

Times are New York time with the zone, ISO dates (`2025-07-01 11:03:20 EDT`), on the terminal and
in the file. While a loop runs on another clock (a simulated replay, the gateway simulator's), a
line carries that clock's time — the moment the loop acted on — and the file adds this machine's
time next to it (`use_clock`).

ib_async's own log lines go to the file only: every failure it logs, tradebot reports once in
its own words.

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
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tradebot.core.market_time import market_clock, market_datetime
from tradebot.core.validation import escape_control

LOG_FILE_NAME = "tradebot.log"
FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(process)d] %(message)s"
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(message)s"


_loop_clock: Callable[[], datetime] | None = None


def use_clock(now: Callable[[], datetime] | None) -> None:
    """Stamp log lines with this clock's time (a loop on a simulated or the gateway's clock);
    None: this machine's time again."""
    global _loop_clock
    _loop_clock = now


def shown_time(record: logging.LogRecord, *, wall_too: bool = False) -> str:
    """The time a person reads on a log line: the loop's clock when it has its own (with this
    machine's next to it when `wall_too`), else this machine's; New York time with its zone."""
    wall = datetime.fromtimestamp(record.created, UTC)
    clock = _loop_clock
    if clock is None:
        return market_datetime(wall, seconds=True)
    moment = market_datetime(clock(), seconds=True)
    return f"{moment} (here {market_clock(wall, seconds=True)})" if wall_too else moment


class SafeFormatter(logging.Formatter):
    """Formats the message with its control characters escaped (tracebacks are left as is),
    and the time as `shown_time` (`wall_too`: this machine's time next to a loop's own)."""

    def __init__(self, fmt: str, *, wall_too: bool = False) -> None:
        super().__init__(fmt)
        self.wall_too = wall_too

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return shown_time(record, wall_too=self.wall_too)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escape_control(record.message)
        return super().formatMessage(record)


class _LazyRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """Creates the logs directory (0700) and the file (0600) only when there is something to
    write; gives up on the file with one warning when it cannot be written."""

    broken = False
    closed_for_good = False

    def close(self) -> None:
        # Closed by `configure_logging` (or at exit): a later record (one relayed from
        # ib_async's logger, say) must not reopen the file behind our back.
        self.closed_for_good = True
        super().close()

    def _open(self) -> io.TextIOWrapper:
        from tradebot.storage.atomic import make_private_dirs, open_regular

        path = Path(self.baseFilename)
        make_private_dirs(path.parent)
        fd, _created = open_regular(path, os.O_WRONLY | os.O_APPEND, follow_symlinks=False)
        stream = open(fd, self.mode, encoding=self.encoding, errors=self.errors)  # noqa: SIM115
        assert isinstance(stream, io.TextIOWrapper)
        return stream

    def emit(self, record: logging.LogRecord) -> None:
        if not self.broken and not self.closed_for_good:
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
        console = _rich_handler(debug)
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
        file_handler.setFormatter(SafeFormatter(FILE_FORMAT, wall_too=True))
        file_handler.setLevel(logging.DEBUG if debug else logging.INFO)
        root.addHandler(file_handler)
    _route_ib_async(file_handler if logs_dir is not None else None)


class _OursOnly(logging.NullHandler):
    """Marks the handlers `configure_logging` put on ib_async's logger (replaced next time)."""


def _route_ib_async(file_handler: logging.Handler | None) -> None:
    """ib_async logs a failed connection (and more) itself, before tradebot says it in its own
    words: its lines go to the file only, never twice on the terminal."""
    ib_log = logging.getLogger("ib_async")
    for handler in list(ib_log.handlers):
        if isinstance(handler, _OursOnly) or getattr(handler, "_tradebot_file", False):
            ib_log.removeHandler(handler)
    ib_log.propagate = False
    if ib_log.level == logging.NOTSET:
        ib_log.setLevel(logging.INFO)
    if file_handler is None:
        ib_log.addHandler(_OursOnly())
        return
    relay = _FileRelay(file_handler)
    ib_log.addHandler(relay)


class _FileRelay(logging.Handler):
    """Passes ib_async's records to tradebot's log file (warnings and worse)."""

    _tradebot_file = True

    def __init__(self, target: logging.Handler) -> None:
        super().__init__(logging.WARNING)
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        self.target.handle(record)


def _rich_handler(debug: bool) -> logging.Handler:
    from rich.logging import RichHandler
    from rich.text import Text

    class MarketTimeRichHandler(RichHandler):
        """Rich's handler with the time column in market time (or the loop's clock)."""

        _shown = ""

        def __init__(self) -> None:
            super().__init__(
                show_path=False, rich_tracebacks=debug, log_time_format=self._time_text
            )

        def _time_text(self, _local: datetime) -> Text:
            return Text(self._shown)

        def render(self, *, record: logging.LogRecord, **kwargs: Any) -> Any:
            self._shown = shown_time(record)
            return super().render(record=record, **kwargs)

    return MarketTimeRichHandler()
