"""Journals as the trading loop reads them: parsed once, then only their appended tails.

`CachedTradeJournal` and `CachedOrderJournal` are drop-in replacements for `TradeJournal` and
`OrderJournal` (same reads, same errors for a bad line), used by `PhaseLadder(cached=True)` so the
ladder, the risk report and the engine share one in-memory view per file. A file that was
replaced or shortened (repaired by hand) is read again from the start.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from tradebot.books.order_journal import OrderJournal
from tradebot.books.trade_journal import TradeJournal, TradeJournalContents, parse_trade
from tradebot.core.metrics import TradeSeries
from tradebot.core.orders import OrderEvent
from tradebot.core.trades import ClosedTrade
from tradebot.errors import CorruptRecordError
from tradebot.storage.jsonl import LockedJsonl
from tradebot.storage.tail import JsonlTail


class CachedTradeJournal(TradeJournal):
    def __init__(self, logs_dir: Path) -> None:
        super().__init__(logs_dir)
        self.tail = JsonlTail(self.path)
        self._trades: list[ClosedTrade] = []
        self._first_line: dict[str, int] = {}
        self._series: TradeSeries | None = None
        self._resets = 0

    def _refresh(self) -> None:
        self.tail.refresh()
        self._parse_new()

    def _parse_new(self) -> None:
        records = self.tail.records
        if self.tail.resets != self._resets:  # the file was replaced or repaired: start again
            self._trades, self._first_line, self._series = [], {}, None
            self._resets = self.tail.resets
        start = len(self._trades)
        if start == len(records):
            return
        parsed = []
        ids = dict(self._first_line)
        for record, line in zip(records[start:], self.tail.line_numbers[start:], strict=True):
            parsed.append(parse_trade(self.path, record, line, ids))
        self._trades.extend(parsed)
        self._first_line = ids
        self._series = None

    def read(self) -> TradeJournalContents:
        self._refresh()
        return TradeJournalContents(list(self._trades), list(self.tail.warnings))

    def series(self) -> tuple[TradeSeries, list[str]]:
        self._refresh()
        if self._series is None:
            self._series = TradeSeries.of(self._trades)
        return self._series, list(self.tail.warnings)

    def has_trade(self, trade_id: str) -> bool:
        self._refresh()
        return trade_id in self._first_line

    def append(self, trade: ClosedTrade) -> None:
        """Append unless the trade is already in the journal (never count a trade twice)."""
        with self.file.locked() as locked:
            self.tail.refresh_locked(locked)
            self._parse_new()
            if trade.trade_id in self._first_line:
                return
            locked.append(trade.model_dump(mode="json"))


class CachedOrderJournal(OrderJournal):
    def __init__(self, logs_dir: Path) -> None:
        super().__init__(logs_dir)
        self.tail = JsonlTail(self.path)
        self._events: list[OrderEvent] = []
        self._by_session: dict[date, list[OrderEvent]] = {}
        self._resets = 0

    def _parse_new(self) -> None:
        records = self.tail.records
        if self.tail.resets != self._resets:  # the file was replaced or repaired: start again
            self._events, self._by_session = [], {}
            self._resets = self.tail.resets
        start = len(self._events)
        for record, line in zip(records[start:], self.tail.line_numbers[start:], strict=True):
            try:
                event = OrderEvent.from_record(record)
            except (ValueError, TypeError) as exc:
                raise CorruptRecordError(
                    self.path, line, f"not a valid order event ({exc})"
                ) from None
            self._events.append(event)
            self._by_session.setdefault(event.session, []).append(event)

    def read_events(self) -> list[OrderEvent]:
        self.tail.refresh()
        self._parse_new()
        return self._events

    def records(self) -> list[dict[str, Any]]:
        """Every record as stored (the engine rebuilds its order book from these)."""
        self.read_events()
        return self.tail.records

    def session_events(self, session: date) -> list[OrderEvent]:
        self.read_events()
        return list(self._by_session.get(session, []))

    def locked_session_events(self, locked: LockedJsonl, session: date) -> list[OrderEvent]:
        self.tail.refresh_locked(locked)
        self._parse_new()
        return list(self._by_session.get(session, []))
