"""Everything the CLI prints goes through here: rich for people, one JSON document for scripts."""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from tradebot.errors import UsageError
from tradebot.storage.records import json_default


def stdout_console() -> Console:
    # Created per call so CliRunner's captured streams are honoured in tests.
    return Console(file=sys.stdout, highlight=False, soft_wrap=False)


def stderr_console() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def esc(value: object) -> str:
    """Text for rich markup strings: brackets in operator input or file data print literally."""
    return escape(str(value))


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
    for line in details:
        console.print(f"  {line}", markup=False, highlight=False)


def warning_line(message: str) -> None:
    stderr_console().print(f"[yellow]warning:[/] {esc(message)}", markup=True, highlight=False)


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """CSV with a header; Decimals as exact strings, times in UTC ISO-8601."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    plain = (str, int, bool)
    for row in rows:
        cells = [row.get(k) for k in columns]
        writer.writerow(
            [v if type(v) in plain else ("" if v is None else json_default(v)) for v in cells]
        )
    return buffer.getvalue()


def write_csv(target: str, text: str) -> Path | None:
    """Write CSV text to a file (atomically) or to stdout when `target` is '-'."""
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return None
    from tradebot.storage import write_atomic

    path = Path(target)
    try:
        write_atomic(path, text.encode("utf-8"), mode=0o644)
    except OSError as exc:
        raise UsageError(
            f"cannot write {target}: {exc.strerror or exc}; give a file path in a writable "
            "directory, or - for stdout"
        ) from None
    return path


def fmt_money(value: Decimal | None) -> str:
    if value is None:
        return "—"
    q = value.quantize(Decimal("0.01"))
    return f"-${-q:,}" if q < 0 else f"${q:,}"


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
