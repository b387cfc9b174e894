"""Everything the CLI prints goes through here: rich for people, one JSON document for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from tradebot.errors import UsageError
from tradebot.storage.records import csv_text as csv_text  # re-exported for the commands
from tradebot.storage.records import json_default


def stdout_console() -> Console:
    # Created per call so CliRunner's captured streams are honoured in tests.
    return Console(file=sys.stdout, highlight=False, soft_wrap=False)


def stderr_console() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def esc(value: object) -> str:
    """Text for rich markup strings: brackets in operator input or file data print literally,
    and control characters (a newline, an ANSI escape) are shown as escapes, never obeyed."""
    from tradebot.core.validation import escape_control

    return escape(escape_control(str(value)))


def print_json(document: Mapping[str, Any]) -> None:
    """Exactly one JSON document on stdout (Decimals as strings), nothing else."""
    sys.stdout.write(
        json.dumps(document, default=json_default, ensure_ascii=False, indent=2) + "\n"
    )
    sys.stdout.flush()


def error_line(message: str, details: Sequence[str] = ()) -> None:
    """An error for the operator on stderr: one sentence, then one line per detail."""
    console = stderr_console()
    console.print(f"[bold red]error:[/] {esc(message)}", markup=True, highlight=False)
    from tradebot.core.validation import escape_control

    for line in details:
        console.print(f"  {escape_control(line)}", markup=False, highlight=False)


def warning_line(message: str) -> None:
    stderr_console().print(f"[yellow]warning:[/] {esc(message)}", markup=True, highlight=False)


def write_csv(target: str, text: str) -> Path | None:
    """Write CSV text to a file or to stdout when `target` is '-'.

    A regular file (or a new one) is replaced atomically; an existing device, FIFO or symlink
    (`/dev/stdout`, `/dev/null`, a named pipe) is written through and never replaced. A target
    that cannot be a file is a usage error; a full or failing disk is a StorageError.
    """
    import errno
    import os

    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return None
    hint = "give a file path (in a writable directory), or - for stdout"
    if not target.strip():
        raise UsageError(f"--csv needs a file path; {hint}")
    if "\x00" in target:
        raise UsageError(f"--csv {target!r} contains a NUL character; {hint}")
    path = Path(target)
    try:
        is_dir = target.endswith("/") or path.is_dir()
    except OSError as exc:  # a name too long, a loop in the path, ...
        raise UsageError(f"cannot write {target[:80]}: {exc.strerror or exc}; {hint}") from None
    if is_dir:
        raise UsageError(f"cannot write {target}: it is a directory; {hint}")
    from tradebot.storage import write_atomic

    try:
        write_atomic(path, text.encode("utf-8"), mode=0o644, write_through_special=True)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EIO):
            raise  # a StorageError saying "disk full" / "I/O error" and what to do
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        raise UsageError(f"cannot write {target}: {reason}; {hint}") from None
    return path


MAX_OPERATOR = 64
MAX_REASON = 500


def check_text(value: str | None, option: str, limit: int) -> None:
    """A usage error when an operator-written option (--operator, --reason) is too long."""
    if value is not None and len(value) > limit:
        raise UsageError(f"{option} is {len(value)} characters long; keep it to {limit} at most")


def fmt_time(value: datetime | None, *, seconds: bool = False) -> str:
    """A time for a person: New York time with its zone (`2025-07-01 11:03 EDT`)."""
    if value is None:
        return "—"
    from tradebot.core.market_time import market_datetime

    return market_datetime(value, seconds=seconds)


def fmt_clock(value: datetime | None, *, seconds: bool = False) -> str:
    """A time of day for a person: `11:03 EDT`."""
    if value is None:
        return "—"
    from tradebot.core.market_time import market_clock

    return market_clock(value, seconds=seconds)


def parse_time(value: object) -> datetime | None:
    """A time from a JSON record (ISO text, `Z` for UTC), or None."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def fmt_money(value: Decimal | None) -> str:
    if value is None:
        return "—"
    q = value.quantize(Decimal("0.01"))
    return f"-${-q:,}" if q < 0 else f"${q:,}"


def fmt_price(value: Decimal | None) -> str:
    """An option price as quoted: `0.95`, `1.2` → `1.20` (at least two places, never more than
    it has)."""
    if value is None:
        return "—"
    text = f"{value.normalize():f}"
    whole, _, places = text.partition(".")
    return f"{whole}.{places.ljust(2, '0')}"


def fmt_pct(value: Decimal | None, places: int = 1) -> str:
    """A fraction (0..1) shown as a percentage."""
    if value is None:
        return "—"
    return f"{(value * 100).quantize(Decimal(1).scaleb(-places))} %"


def fmt_ratio(value: Decimal | None, places: int = 2) -> str:
    if value is None:
        return "—"
    if not value.is_finite():
        return "∞"
    return str(value.quantize(Decimal(1).scaleb(-places)))


def parse_day(value: str | None, option: str) -> date | None:
    """A YYYY-MM-DD option value, or a usage error naming the option."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option} {value!r} is not a date; write it as YYYY-MM-DD") from None
