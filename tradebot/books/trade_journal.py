"""`journal/trades.jsonl`: closed round trips, read and written through the durable JSONL store."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from tradebot.core.metrics import TradeSeries
from tradebot.core.trades import ClosedTrade
from tradebot.errors import CorruptRecordError
from tradebot.storage import JsonlFile

TRADES_FILE = Path("journal") / "trades.jsonl"


@dataclass(frozen=True)
class TradeJournalContents:
    trades: list[ClosedTrade]
    warnings: list[str] = field(default_factory=list)


def describe_validation_error(exc: ValidationError) -> str:
    """One short sentence naming each bad field (values are not echoed)."""
    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        where = ".".join(str(p) for p in err["loc"]) or "record"
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


def duplicate_error(
    path: Path, field: str, value: str, first: int, again: int
) -> CorruptRecordError:
    """The error for an id that must be unique in a file and is not."""
    shown = value if len(value) <= 40 else value[:40] + "..."
    return CorruptRecordError(
        path,
        again,
        f"{field} {shown!r} repeats line {first} (lines {first} and {again}: the same record "
        "twice, e.g. a file concatenated with itself)",
        action=f"keep one of lines {first} and {again} (keep a backup), then run the command again",
    )


def parse_trade(
    path: Path,
    record: Any,
    line: int,
    first_line: dict[str, int],
    *,
    known: ClosedTrade | None = None,
) -> ClosedTrade:
    """Line `line` of the trade journal at `path` as a trade, its id noted in `first_line`. A
    record that is not a trade, or a `trade_id` already seen (a journal concatenated with
    itself would count every trade twice toward the phase criteria), is a CorruptRecordError
    naming the file and the line(s) — the same one from every reader. `known`: the trade this
    record is the exact dump of (this process wrote it), taken as it is."""
    if known is not None:
        trade = known
    else:
        try:
            trade = ClosedTrade.model_validate(record)
        except ValidationError as exc:
            raise CorruptRecordError(
                path, line, f"not a valid trade record ({describe_validation_error(exc)})"
            ) from None
    seen = first_line.setdefault(trade.trade_id, line)
    if seen != line:
        raise duplicate_error(path, "trade_id", trade.trade_id, seen, line)
    return trade


class TradeJournal:
    """The closed-trade journal under `logs_dir`."""

    def __init__(self, logs_dir: Path) -> None:
        self.file = JsonlFile(Path(logs_dir) / TRADES_FILE)

    @property
    def path(self) -> Path:
        return self.file.path

    def read(self) -> TradeJournalContents:
        """Every closed trade; a bad line raises CorruptRecordError naming file and line.

        A `trade_id` that appears twice is an error naming both lines (a journal concatenated
        with itself would otherwise count every trade twice toward the phase criteria).
        """
        contents = self.file.read()
        trades = []
        first_line: dict[str, int] = {}
        for record, line in zip(contents.records, contents.line_numbers, strict=True):
            trades.append(parse_trade(self.path, record, line, first_line))
        return TradeJournalContents(trades, contents.warnings)

    def series(self) -> tuple[TradeSeries, list[str]]:
        """Every closed trade as a `TradeSeries` (for metrics), with the read's warnings."""
        contents = self.read()
        return TradeSeries.of(contents.trades), contents.warnings

    def append(self, trade: ClosedTrade) -> None:
        """Record a closed trade durably."""
        self.file.append(trade.model_dump(mode="json"))
