"""Journals as the trading loop reads them: parsed once, then only their appended tails.

`CachedTradeJournal` and `CachedOrderJournal` are drop-in replacements for `TradeJournal` and
`OrderJournal` (same reads, same errors for a bad line), used by `PhaseLadder(cached=True)` so the
ladder, the risk report and the engine share one in-memory view per file. A file that was
replaced or shortened (repaired by hand) is read again from the start.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
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

# (new records, their line numbers, the file was reset)
Listener = Callable[[list[dict[str, Any]], list[int], bool], None]


class CachedTradeJournal(TradeJournal):
    def __init__(self, logs_dir: Path) -> None:
        super().__init__(logs_dir)
        self.tail = JsonlTail(self.path, keep=False)  # raw records are dropped once parsed
        self._trades: list[ClosedTrade] = []
        self._first_line: dict[str, int] = {}
        self._series: TradeSeries | None = None
        self._resets = 0
        self._pending: tuple[list[dict[str, Any]], list[int]] = ([], [])
        self._own: dict[str, ClosedTrade] = {}  # appended by this process, not read back yet

    def _refresh(self) -> None:
        new = self.tail.refresh()
        self._parse_new(new, self.tail.new_line_numbers)

    def _parse_new(self, new: list[dict[str, Any]], numbers: list[int]) -> None:
        if self.tail.resets != self._resets:  # the file was replaced or repaired: start again
            self._trades, self._first_line, self._series = [], {}, None
            self._resets = self.tail.resets
            self._pending = ([], [])
        records, lines = self._pending[0] + new, self._pending[1] + numbers
        if not records:
            return
        parsed = []
        ids = dict(self._first_line)
        for record, line in zip(records, lines, strict=True):
            key = record.get("trade_id") if isinstance(record, dict) else None
            own = self._own.pop(str(key), None)
            # A trade this process has just appended is kept as it is (its record read back is
            # exactly its dump), not validated into a second copy.
            known = own if own is not None and own.model_dump(mode="json") == record else None
            try:
                parsed.append(parse_trade(self.path, record, line, ids, known=known))
            except CorruptRecordError:
                self._pending = (records, lines)  # reported again at every read until repaired
                raise
        self._pending = ([], [])
        self._trades.extend(parsed)
        self._first_line = ids
        if self._series is not None:  # appended to, not rebuilt (TradeSeries.extended)
            self._series = self._series.extended(parsed)

    def read(self) -> TradeJournalContents:
        self._refresh()
        return TradeJournalContents(list(self._trades), list(self.tail.warnings))

    def series(self) -> tuple[TradeSeries, list[str]]:
        self._refresh()
        if self._series is None:
            self._series = TradeSeries.of(self._trades)
        return self._series, list(self.tail.warnings)

    def has_trade(self, trade_id: str, *, refresh: bool = True) -> bool:
        """Is `trade_id` in the journal? `refresh=False`: as of the last read (a caller asking
        for many ids at once refreshes once first)."""
        if refresh:
            self._refresh()
        return trade_id in self._first_line

    def append(self, trade: ClosedTrade) -> None:
        """Append unless the trade is already in the journal (never count a trade twice)."""
        with self.file.locked() as locked:
            new = self.tail.refresh_locked(locked)
            self._parse_new(new, self.tail.new_line_numbers)
            if trade.trade_id in self._first_line:
                return
            locked.append(trade.model_dump(mode="json"))
            self._own[trade.trade_id] = trade


class CachedOrderJournal(OrderJournal):
    """`lean=True` (the trading loop): raw records are handed to the subscribers (the order
    book) and dropped, and only the last `KEEP_DAYS` days of sessions' events are kept — all the
    ladder asks of it is the current session's entries."""

    KEEP_DAYS = 7

    def __init__(self, logs_dir: Path, *, lean: bool = False) -> None:
        super().__init__(logs_dir)
        self.lean = lean
        self.tail = JsonlTail(self.path, keep=not lean)
        self._events: list[OrderEvent] = []
        self._by_session: dict[date, list[OrderEvent]] = {}
        self._resets = 0
        self._pending: tuple[list[dict[str, Any]], list[int]] = ([], [])
        self._listeners: list[Listener] = []

    def subscribe(self, listener: Listener) -> None:
        """Hand every record to `listener` as it is read (those already read first, when the
        journal keeps them)."""
        self._listeners.append(listener)
        if self.tail.records:
            listener(list(self.tail.records), list(self.tail.line_numbers), True)

    def refresh(self) -> None:
        """Read what was appended (and hand it to the subscribers); under our own lock
        (`hold`) through it: a second flock would wait on it."""
        held = self._held
        new = self.tail.refresh() if held is None else self.tail.refresh_locked(held)
        self._parse_new(new, self.tail.new_line_numbers)

    def _parse_new(self, new: list[dict[str, Any]], numbers: list[int]) -> None:
        reset = self.tail.resets != self._resets
        if reset:  # the file was replaced or repaired: start again
            self._events, self._by_session = [], {}
            self._resets = self.tail.resets
            self._pending = ([], [])
        records, lines = self._pending[0] + new, self._pending[1] + numbers
        parsed = []
        for record, line in zip(records, lines, strict=True):
            try:
                parsed.append(OrderEvent.from_record(record))
            except (ValueError, TypeError) as exc:
                self._pending = (records, lines)  # reported again at every read until repaired
                raise CorruptRecordError(
                    self.path, line, f"not a valid order event ({exc})"
                ) from None
        self._pending = ([], [])
        for event in parsed:
            if not self.lean:
                self._events.append(event)
            self._by_session.setdefault(event.session, []).append(event)
        if self.lean and parsed:
            horizon = max(self._by_session) - timedelta(days=self.KEEP_DAYS)
            for day in [d for d in self._by_session if d < horizon]:
                del self._by_session[day]
        if records or reset:
            for listener in self._listeners:
                listener(records, lines, reset)

    def read_events(self) -> list[OrderEvent]:
        self.refresh()
        if self.lean:  # only the kept sessions
            return [e for day in sorted(self._by_session) for e in self._by_session[day]]
        return self._events

    def records(self) -> list[dict[str, Any]]:
        """Every record as stored (not kept by a lean journal: subscribe instead)."""
        if self.lean:
            raise RuntimeError("a lean order journal does not keep its records; subscribe")
        self.refresh()
        return self.tail.records

    def session_events(self, session: date) -> list[OrderEvent]:
        self.refresh()
        return list(self._by_session.get(session, []))

    def locked_session_events(self, locked: LockedJsonl, session: date) -> list[OrderEvent]:
        new = self.tail.refresh_locked(locked)
        self._parse_new(new, self.tail.new_line_numbers)
        return list(self._by_session.get(session, []))
