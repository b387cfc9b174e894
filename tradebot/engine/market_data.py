"""Bars per symbol for the signals, fetched from the broker and kept for the session.

The whale range (the `range_days` sessions before today) cannot change during a session, so it
is computed once per session. Today's bars: from a broker that knows its market ahead (the
simulated one, `brokers.base.Foresight`) the whole session is read once, as arrays and 60-minute
bars, and each tick only counts the bars completed by then (nothing later is ever looked at: the
signals read the completed bars only); from IBKR they are fetched at each tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]

from tradebot.brokers.base import Broker, Foresight
from tradebot.config import ScalpConfig, WhaleConfig
from tradebot.core.indicators import HourlyBars, SessionRange, hourly_arrays, prior_sessions_range
from tradebot.core.sessions import check_bars, previous_sessions, session_open_close, utc_ns
from tradebot.core.strategies import Signal, scalp_signal, scalp_signal_arrays

MINUTE = timedelta(minutes=1)
HOURLY_KEPT = 512  # (symbol, session) 60-minute bars kept for the whale range


@dataclass(frozen=True)
class SessionBars:
    """A whole session's bars as the signals read them (known ahead: a simulated market)."""

    frame: pd.DataFrame
    times: npt.NDArray[np.int64]
    high: npt.NDArray[np.float64]
    low: npt.NDArray[np.float64]
    close: npt.NDArray[np.float64]
    volume: npt.NDArray[np.float64]
    hourly: HourlyBars

    def completed(self, now: datetime) -> int:
        """How many bars are complete at `now` (start + 1 minute ≤ now)."""
        cutoff = pd.Timestamp(now - MINUTE).value
        return int(np.searchsorted(self.times, cutoff, side="right"))


@dataclass
class SymbolBars:
    session: date
    prior: SessionRange | None
    hourly: HourlyBars
    now: datetime
    frame: pd.DataFrame | None = None  # today's completed bars (fetched from the broker)
    known: SessionBars | None = None  # or the whole session, of which `count` are complete
    count: int = 0

    @property
    def today(self) -> pd.DataFrame:
        if self.frame is None:
            assert self.known is not None
            self.frame = self.known.frame.iloc[: self.count]
        return self.frame

    @property
    def last_close(self) -> float | None:
        if self.known is not None:
            return None if self.count == 0 else float(self.known.close[self.count - 1])
        return None if self.today.empty else float(self.today["close"].iat[-1])

    def scalp(self, cfg: ScalpConfig) -> Signal:
        """The scalp rule on the bars completed by `now`."""
        known = self.known
        if known is None:
            return scalp_signal(self.today, cfg, now=self.now)
        return scalp_signal_arrays(
            known.times, known.high, known.low, known.close, known.volume, cfg, now=self.now
        )


class MarketData:
    def __init__(self, broker: Broker, calendar: str, whale: WhaleConfig) -> None:
        self.broker = broker
        self.calendar = calendar
        self.whale = whale
        self._prior: dict[str, tuple[date, SessionRange | None]] = {}
        self._known: dict[str, tuple[date, SessionBars]] = {}
        self._hourly: dict[tuple[str, date], HourlyBars] = {}
        self.foresight = broker if isinstance(broker, Foresight) else None

    async def refresh(self, symbol: str, now: datetime, session: date) -> SymbolBars:
        opens, _ = session_open_close(session, self.calendar)
        cached = self._prior.get(symbol)
        if cached is None or cached[0] != session:
            self._prior[symbol] = (session, await self._prior_range(symbol, session, opens))
        prior = self._prior[symbol][1]
        if self.foresight is not None:
            known = self._session(symbol, session)
            # 60-minute bars of the whole session: those completed by `now` are exactly the
            # ones built from today's completed minutes (a bar ends before its minutes do not).
            return SymbolBars(session, prior, known.hourly, now, known=known,
                              count=known.completed(now))  # fmt: skip
        today = await self.broker.bars(symbol, opens, now)
        return SymbolBars(session, prior, hourly_arrays(today, self.calendar), now, frame=today)

    def _session(self, symbol: str, session: date) -> SessionBars:
        cached = self._known.get(symbol)
        if cached is not None and cached[0] == session:
            return cached[1]
        assert self.foresight is not None
        frame = self.foresight.session_bars(symbol, session)
        check_bars(frame)
        high, low, close, volume = (
            frame[c].to_numpy(dtype=np.float64) for c in ("high", "low", "close", "volume")
        )
        hourly = hourly_arrays(frame, self.calendar)
        known = SessionBars(frame, utc_ns(frame.index), high, low, close, volume, hourly)
        self._known[symbol] = (session, known)
        return known

    def _hourly_of(self, symbol: str, day: date) -> HourlyBars:
        key = (symbol, day)
        hourly = self._hourly.get(key)
        if hourly is None:
            assert self.foresight is not None
            if len(self._hourly) >= HOURLY_KEPT:
                self._hourly.clear()
            hourly = hourly_arrays(self.foresight.session_bars(symbol, day), self.calendar)
            self._hourly[key] = hourly
        return hourly

    def known_prior(self, symbol: str, session: date) -> tuple[bool, SessionRange | None]:
        """(known, range): the whale range of `session` if this session's first refresh has
        computed it already (the wake planner uses it to know when a whale signal is
        impossible)."""
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
        if self.foresight is not None:
            # The same 60-minute bars, built per session once and kept for the sessions after
            # (a bar never spans two sessions).
            parts = [self._hourly_of(symbol, day) for day in days]
            parts = [p for p in parts if len(p)]
            if not parts:
                return None
            hourly = HourlyBars.concat(parts) if len(parts) > 1 else parts[0]
        else:
            start, _ = session_open_close(days[0], self.calendar)
            frame = await self.broker.bars(symbol, start, opens)
            if frame.empty:
                return None
            hourly = hourly_arrays(frame, self.calendar)
        return prior_sessions_range(
            hourly.high, hourly.low, hourly.volume, hourly.session, session, self.whale.range_days
        )
