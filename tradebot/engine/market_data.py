"""Bars per symbol for the signals, fetched from the broker and kept for the session.

The whale range (the `range_days` sessions before today) cannot change during a session, so it
is computed once per session; today's bars are fetched each tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import pandas as pd  # type: ignore[import-untyped]

from tradebot.brokers.base import Broker
from tradebot.config import WhaleConfig
from tradebot.core.indicators import HourlyBars, SessionRange, hourly_arrays, prior_sessions_range
from tradebot.core.sessions import previous_sessions, session_open_close


@dataclass
class SymbolBars:
    session: date
    prior: SessionRange | None
    today: pd.DataFrame
    hourly: HourlyBars

    @property
    def last_close(self) -> float | None:
        return None if self.today.empty else float(self.today["close"].iat[-1])


class MarketData:
    def __init__(self, broker: Broker, calendar: str, whale: WhaleConfig) -> None:
        self.broker = broker
        self.calendar = calendar
        self.whale = whale
        self._prior: dict[str, tuple[date, SessionRange | None]] = {}

    async def refresh(self, symbol: str, now: datetime, session: date) -> SymbolBars:
        opens, _ = session_open_close(session, self.calendar)
        cached = self._prior.get(symbol)
        if cached is None or cached[0] != session:
            self._prior[symbol] = (session, await self._prior_range(symbol, session, opens))
        today = await self.broker.bars(symbol, opens, now)
        return SymbolBars(
            session, self._prior[symbol][1], today, hourly_arrays(today, self.calendar)
        )

    def known_prior(self, symbol: str, session: date) -> tuple[bool, SessionRange | None]:
        """(known, range): the whale range of `session` if this session's first refresh has
        computed it already (a backtest uses it to know when a whale signal is impossible)."""
        cached = self._prior.get(symbol)
        if cached is None or cached[0] != session:
            return False, None
        return True, cached[1]

    async def _prior_range(
        self, symbol: str, session: date, opens: datetime
    ) -> SessionRange | None:
        if not self.whale.enabled:
            return None
        days = previous_sessions(session, self.whale.range_days, self.calendar)
        if len(days) < self.whale.range_days:
            return None
        start, _ = session_open_close(days[0], self.calendar)
        frame = await self.broker.bars(symbol, start, opens)
        if frame.empty:
            return None
        hourly = hourly_arrays(frame, self.calendar)
        return prior_sessions_range(
            hourly.high, hourly.low, hourly.volume, hourly.session, session, self.whale.range_days
        )
