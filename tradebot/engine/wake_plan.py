"""When the loop may sleep through a wake that would provably do nothing (issue 19).

The loop's schedule (`schedule.SessionPlan`) has a tick every `interval_s`, a sync every minute
while an order or position is open, the flatten, the open and the close. Most of those wakes
change nothing. The `WakePlanner` leaves out exactly those, in `tradebot run` and in a backtest
alike (the same loop, the same code), so the loop wakes only when something can happen:

* **A tick in which no symbol can signal** is passed over, when nothing is open, nothing was
  written since the last tick ran and the loop ran that tick just now. "Can signal" comes from
  the core's own vectorised indicator functions over the session's bars (`SessionSignals`),
  conservatively: a tick is idle only if the scalp rule fails by a clear margin (1e-9 relative
  on prices, 1e-6 RSI points; the loop's closed-form last values differ from the vectorised
  series by ~1e-12) and no completed 60-minute bar closes outside the whale range. A passed-over
  tick counts as run (`RunSummary.ticks_idle`) and is never run late.
* **A sync that would adopt nothing** is passed over, when the wake before it wrote nothing (no
  journal grew), no emulated OCO leg is armed (their quotes move with time), the loop is not
  halted or failing, and no order waits on a time-out (an unfilled entry's expiry, a failed send's
  grace): the next sync is the first of the minute-by-minute chain that comes after the broker's
  next possible change — the first point at which a working order can fill, by the venue's
  vectorised search — or after an entry's expiry. A wake that writes nothing, on the same inputs,
  is followed by wakes that write nothing until one of those inputs changes: that is the proof.

Both need a broker that knows its market ahead (`brokers.base.Foresight`: the simulated one).
With IBKR nothing is left out: its bars and fills are not known before they happen.
Every decision is still made at a wake, on what is known then; the journals of a run with and
without the planner are the same (tests/backtest, tests/engine).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]

from tradebot.brokers.base import Foresight
from tradebot.core.indicators import ema, hourly_arrays, rsi, session_vwap
from tradebot.core.sessions import SESSION_COLUMN, utc_ns
from tradebot.storage.watch import journal_appends

if TYPE_CHECKING:
    from tradebot.config import ScalpConfig, WhaleConfig
    from tradebot.engine.loop import TradingLoop
    from tradebot.engine.schedule import SessionPlan

MINUTE_NS = 60_000_000_000
PRICE_MARGIN = 1e-9  # relative
RSI_MARGIN = 1e-6  # RSI points
NEVER = datetime.max.replace(tzinfo=UTC)
TINY = timedelta(microseconds=1)
SESSION_SIGNALS_KEPT = 4  # per symbol


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


class WakePlanner:
    """Decides, after each wake, which of the loop's next scheduled wakes can be left out."""

    def __init__(self, loop: TradingLoop) -> None:
        self.loop = loop
        ctx = loop.ctx
        s = ctx.settings
        self.scalp, self.whale = s.strategies.scalp, s.strategies.whale
        self.calendar = s.schedule.calendar
        self.symbols = tuple(s.trading.symbols)
        broker = ctx.broker
        self.foresight: Foresight | None = broker if isinstance(broker, Foresight) else None
        self._signals: dict[tuple[str, date], SessionSignals] = {}
        self._before: tuple[int, ...] | None = None
        self._after: tuple[int, ...] = ()
        self._after_tick = False
        self.quiet = False  # the last wake (and what followed it) wrote nothing
        self.tick_quiet = False  # ... and it ran a tick
        # Ticks passed over: grid ticks in [from, until) are idle (counted at the next wake).
        self.passed_from: datetime | None = None
        self.passed_until: datetime | None = None

    # -- around each wake ----------------------------------------------------------------------
    def before_wake(self) -> None:
        self._before = self._fingerprint()

    def after_wake(self, now: datetime) -> None:
        """Right after a wake: the journals as it left them."""
        self._after = self._fingerprint()
        self._after_tick = self.loop.last_tick == now

    def begin_plan(self) -> None:
        """Before planning the next wake (after anything that acts between wakes, such as a
        backtest's simulated operator): was the last wake, and what followed it, silent?"""
        current = self._fingerprint()
        self.quiet = self._before is not None and current == self._before
        self.tick_quiet = self._after_tick and current == self._after
        self._before = None

    def _fingerprint(self) -> tuple[int, ...]:
        """What this process has written to its journals (orders, trades, events, the phase
        files), and the trades the loop has taken: no syscall."""
        return (journal_appends(), len(self.loop.summary.trades))

    def take_passed(self, now: datetime, plan: SessionPlan) -> tuple[int, datetime | None]:
        """At a wake: (how many ticks were passed over since the last plan, the moment before
        which every tick is done), counting those up to `now`; the plan is then forgotten (what
        comes next is planned again after this wake)."""
        start, until = self.passed_from, self.passed_until
        self.passed_from = self.passed_until = None
        if start is None or until is None:
            return 0, None
        end = min(until, now + TINY)
        counted_end = min(end, plan.window_close)
        if counted_end <= start:
            return 0, end
        return max(0, -(-(counted_end - start) // plan.interval)), end

    # -- the next tick -------------------------------------------------------------------------
    def next_tick(self, now: datetime, plan: SessionPlan, when: datetime) -> datetime | None:
        """The tick to wake for instead of `when` (the next scheduled one), or None when every
        tick before the next other wake is idle (they are then marked passed over)."""
        loop = self.loop
        if (
            self.foresight is None
            or not self.tick_quiet
            or loop.last_tick != now
            or not plan.window_open <= now < when < plan.window_close
            or loop.ctx.book.has_activity()
            or loop.oco.armed()
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
        landing = tick if tick is not None and tick < bound else bound
        if landing <= when:
            return when
        self.passed_from, self.passed_until = when, landing
        return landing if landing < bound else None

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
            assert self.foresight is not None
            if len(self._signals) >= SESSION_SIGNALS_KEPT * len(self.symbols):
                self._signals.clear()
            bars = self.foresight.session_bars(symbol, session)
            signals = SessionSignals(bars, self.scalp, self.whale, self.calendar)
            self._signals[key] = signals
        return signals

    # -- the next sync -------------------------------------------------------------------------
    def next_sync(self, now: datetime, scheduled: datetime) -> datetime | None:
        """The sync to wake for instead of `scheduled` (a minute after this wake), or None
        when no sync is needed before the close."""
        loop = self.loop
        if (
            self.foresight is None
            or not self.quiet
            or loop.oco.armed()
            or loop.halted_now()
            or loop.failing()
        ):
            return scheduled
        book = loop.ctx.book
        if book.journal_error is not None or any(
            o.status in ("intent", "unknown", "pending") for o in book.live.values()
        ):
            return scheduled
        news = self.foresight.unchanged_until(now)
        if news is None or news <= now:
            return scheduled
        step = scheduled - now  # the chain: this wake + k minutes
        # A change at T is seen by a sync after T; an entry expiring at D is cancelled by the
        # first wake at or after D.
        first = now + step * ((news - now) // step + 1) if news < NEVER else None
        timeout = timedelta(seconds=loop.ctx.settings.trading.interval_s)
        for entry in book.working_entries():
            if entry.filled_qty == 0:
                deadline = entry.intent_ts + timeout
                at = now + step * max(1, -(-(deadline - now) // step))
                first = at if first is None else min(first, at)
        return first
