"""What every part of the loop shares: configuration, broker, clock, journals, the ladder."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from tradebot.books.journal_cache import CachedOrderJournal, CachedTradeJournal
from tradebot.books.ladder import PhaseLadder
from tradebot.books.risk_report import account_modes
from tradebot.books.state_store import StateStore
from tradebot.brokers.base import Broker
from tradebot.config import LoadedConfig, Settings
from tradebot.engine.clock import Clock
from tradebot.engine.events import EventLog
from tradebot.engine.order_book import OrderBook

Notify = Callable[[str, str], None]


@dataclass
class SignalNote:
    """The last signal seen for a symbol, for the live view and `tradebot status`."""

    at: datetime
    signal: str
    strategy: str | None
    reason: str


@dataclass
class EngineContext:
    loaded: LoadedConfig
    broker: Broker
    clock: Clock
    ladder: PhaseLadder
    book: OrderBook
    events: EventLog
    state: StateStore
    notify: Notify
    last_signal: dict[str, SignalNote] = field(default_factory=dict)
    # Underlyings whose broker position differs from the journal's: no entry on them until
    # the difference is gone or explained (engine/positions.py), symbol → why.
    blocked_symbols: dict[str, str] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        return self.loaded.settings

    @property
    def trading_mode(self) -> str:
        """dry_run | paper | live: what the loop does with an order."""
        return self.settings.trading.mode

    @property
    def trade_mode(self) -> str:
        """sim | paper | live: the `mode` of the trades this account produces (spec §7)."""
        return next(iter(account_modes(self.loaded)))

    @property
    def record_mode(self) -> str:
        """The `mode` stamped on order records: dry_run intents are never sent."""
        return "dry_run" if self.trading_mode == "dry_run" else self.trade_mode


def build_context(
    loaded: LoadedConfig, broker: Broker, clock: Clock, notify: Notify
) -> EngineContext:
    ladder = PhaseLadder(loaded, notify=notify, cached=True, lean=True)
    assert isinstance(ladder.orders, CachedOrderJournal)
    assert isinstance(ladder.trades, CachedTradeJournal)
    events = EventLog(loaded.logs_dir)
    book = OrderBook(ladder.orders, ladder.trades, events)
    return EngineContext(
        loaded=loaded,
        broker=broker,
        clock=clock,
        ladder=ladder,
        book=book,
        events=events,
        state=StateStore(loaded.state_dir),
        notify=notify,
    )
