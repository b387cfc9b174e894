"""Which ticks the backtest may leave out, because the loop would provably do nothing in them.

A tick of `tradebot run` reads the equity, runs the ladder's tick and the guards, then each
symbol's signals. When no order or position is open, nothing has happened since the previous
tick (no fill, no trade, no phase change) and no symbol can signal, the tick writes nothing and
changes nothing that a later decision reads: its equity, ladder and guard verdicts are the
previous tick's. `IdleTickSkipper` lets the clock jump over such ticks to the next tick where a
signal is possible (or to the next wake the loop asked for), so the loop wakes exactly where
`tradebot run` would minus those empty ticks — and every decision is still made by the loop.

"A signal is possible" is decided once per session and symbol, vectorised, with the core's own
indicator functions (`ema`, `rsi`, `session_vwap`, `hourly_arrays`) on the session's bars: at each
tick, the indicators of the last completed bar. The test is conservative: a tick counts as
possible unless the scalp rule fails by a clear margin on both sides (prices by more than 1e-9
relative, RSI by more than 1e-6 points — far above the rounding difference between the
vectorised series and the loop's closed-form last values) and no completed 60-minute bar of the
session closes outside the whale range. A wrongly "possible" tick only costs time; a wrongly
"impossible" one would change the journals, which the tests compare with `tradebot run`'s.

The first tick of every session always runs (the session's first look and whale range), and no
tick is skipped right after a wake that was not a tick, or while anything is open.
"""

from __future__ import annotations

import os
from datetime import date, datetime
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]

from tradebot.core.indicators import ema, hourly_arrays, rsi, session_vwap
from tradebot.core.sessions import SESSION_COLUMN, utc_ns

if TYPE_CHECKING:
    from tradebot.config import ScalpConfig, WhaleConfig
    from tradebot.engine.loop import TradingLoop
    from tradebot.market.model import MarketModel

MINUTE_NS = 60_000_000_000
PRICE_MARGIN = 1e-9  # relative
RSI_MARGIN = 1e-6  # RSI points


class SessionSignals:
    """For one session and symbol: whether a signal is possible at a given moment."""

    def __init__(
        self,
        bars: pd.DataFrame,
        scalp: ScalpConfig,
        whale: WhaleConfig,
        calendar: str,
    ) -> None:
        self.starts = utc_ns(bars.index) if len(bars) else np.zeros(0, dtype=np.int64)
        self.scalp_possible = _scalp_possible(bars, scalp)
        self.whale_enabled = whale.enabled
        self.hour_ends = np.zeros(0, dtype=np.int64)
        self.hour_close = np.zeros(0)
        if whale.enabled and len(bars):
            hourly = hourly_arrays(bars, calendar)
            self.hour_ends, self.hour_close = hourly.end_ns, hourly.close

    def possible(self, t_ns: int, whale_range: tuple[float, float] | None) -> bool:
        """Could the scalp or whale rule signal on the bars completed by `t_ns`?"""
        completed = int(np.searchsorted(self.starts, t_ns - MINUTE_NS, side="right"))
        if completed and self.scalp_possible[completed - 1]:
            return True
        if self.whale_enabled and whale_range is not None:
            done = int(np.searchsorted(self.hour_ends, t_ns, side="right"))
            if done:
                high, low = whale_range
                close = float(self.hour_close[done - 1])
                margin = abs(close) * PRICE_MARGIN
                if close > high - margin or close < low + margin:
                    return True
        return False


def _scalp_possible(bars: pd.DataFrame, cfg: ScalpConfig) -> npt.NDArray[np.bool_]:
    """Per bar: could `scalp_signal` say BUY or SELL with this bar as the last completed one?"""
    n = len(bars)
    if not cfg.enabled or n == 0:
        return np.zeros(n, dtype=bool)
    close = bars["close"].to_numpy(dtype=np.float64)
    high = bars["high"].to_numpy(dtype=np.float64)
    low = bars["low"].to_numpy(dtype=np.float64)
    volume = bars["volume"].to_numpy(dtype=np.float64)
    labels = (
        bars[SESSION_COLUMN].to_numpy().astype("datetime64[D]")
        if SESSION_COLUMN in bars.columns
        else np.zeros(n, dtype="datetime64[D]")
    )
    vwap = session_vwap(high, low, close, volume, labels)
    fast, slow = ema(close, cfg.ema_fast), ema(close, cfg.ema_slow)
    strength = rsi(close, cfg.rsi_period)
    margin = np.abs(close) * PRICE_MARGIN
    buy_lo, buy_hi = (float(x) for x in cfg.rsi_buy)
    sell_lo, sell_hi = (float(x) for x in cfg.rsi_sell)
    with np.errstate(invalid="ignore"):
        buy = (
            (close > vwap - margin)
            & (fast > slow - margin)
            & (strength >= buy_lo - RSI_MARGIN)
            & (strength <= buy_hi + RSI_MARGIN)
        )
        sell = (
            (close < vwap + margin)
            & (fast < slow + margin)
            & (strength >= sell_lo - RSI_MARGIN)
            & (strength <= sell_hi + RSI_MARGIN)
        )
        # Undefined values (no volume yet, a market that never moved) are "possible": the
        # loop decides those ticks itself.
        unknown = np.isnan(vwap) | np.isnan(fast) | np.isnan(slow) | np.isnan(strength)
    count = np.arange(1, n + 1)
    enough = (count >= cfg.min_bars) & (count >= max(cfg.ema_slow, cfg.rsi_period + 1))
    out: npt.NDArray[np.bool_] = enough & (buy | sell | unknown)
    return out


class IdleTickSkipper:
    """The `BacktestClock`'s skipper: jumps over ticks in which the loop would do nothing."""

    def __init__(self, loop: TradingLoop, market: MarketModel, symbols: tuple[str, ...]) -> None:
        self.loop = loop
        self.market = market
        self.symbols = symbols
        s = loop.ctx.settings
        self.scalp, self.whale = s.strategies.scalp, s.strategies.whale
        self.calendar = s.schedule.calendar
        self.skipped = 0
        self._signals: dict[tuple[str, date], SessionSignals] = {}
        self._paths = [
            loop.ctx.loaded.logs_dir / "journal" / "orders.jsonl",
            loop.ctx.loaded.logs_dir / "journal" / "trades.jsonl",
            loop.ctx.loaded.logs_dir / "phase" / "phase-history.jsonl",
        ]
        self._after_tick: tuple[datetime, tuple[int, ...]] | None = None

    def after_wake(self, now: datetime) -> None:
        """First hook after each wake: remember the files as the tick left them."""
        if self.loop.last_tick == now:
            self._after_tick = (now, self._fingerprint())

    def target(self, now: datetime, when: datetime) -> datetime:
        loop, plan = self.loop, self.loop.plan
        if (
            plan is None
            or self._after_tick is None
            or self._after_tick[0] != now
            or loop.last_tick != now
            or not plan.window_open <= now < when < plan.window_close
            or plan.tick_at_or_after(when) != when
            or loop.ctx.book.has_activity()
            or loop.oco.armed()
            or self._fingerprint() != self._after_tick[1]
        ):
            return when
        bound = min(plan.closes, loop.until or plan.closes)
        if now < plan.flatten_at:
            bound = min(bound, plan.flatten_at)
        tick: datetime | None = when
        while tick is not None and tick < bound:
            if self._possible(plan.session, tick):
                break
            tick = plan.tick_at_or_after(tick + plan.interval)
        if tick is not None and tick < bound:
            landing = tick
        else:
            # Nothing possible before the next other wake; land there, unless the loop would
            # then run the last skipped tick late (within one interval of it): land on it.
            landing = bound
            latest = plan.tick_at_or_before(bound)
            if latest is not None and latest >= when and bound - latest < plan.interval:
                landing = latest
        if landing <= when:
            return when
        # The ticks left out: the grid times in [when, landing) inside the entry window (the
        # landing may be a wake after the window has closed, e.g. the close).
        end = min(landing, plan.window_close)
        self.skipped += max(0, -(-(end - when) // plan.interval))
        return landing

    def _possible(self, session: date, tick: datetime) -> bool:
        t_ns = int(tick.timestamp() * 1_000_000) * 1000
        for symbol in self.symbols:
            signals = self._session_signals(symbol, session)
            whale_range = None
            if self.whale.enabled:
                known, prior = self.loop.market_data.known_prior(symbol, session)
                if not known:
                    return True
                whale_range = None if prior is None else (prior.high, prior.low)
            if signals.possible(t_ns, whale_range):
                return True
        return False

    def _session_signals(self, symbol: str, session: date) -> SessionSignals:
        key = (symbol, session)
        signals = self._signals.get(key)
        if signals is None:
            if len(self._signals) > 4 * len(self.symbols):
                self._signals.clear()
            bars = self.market.session_bars(symbol, session)
            signals = SessionSignals(bars, self.scalp, self.whale, self.calendar)
            self._signals[key] = signals
        return signals

    def _fingerprint(self) -> tuple[int, ...]:
        sizes = []
        for path in self._paths:
            try:
                sizes.append(os.stat(path).st_size)
            except FileNotFoundError:
                sizes.append(-1)
        return (*sizes, len(self.loop.summary.trades))
