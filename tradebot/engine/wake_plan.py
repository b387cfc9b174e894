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
  halted or failing, and no order waits on a time-out (an entry's expiry, partly filled or not,
  a failed send's grace): the next sync is the first of the minute-by-minute chain that comes
  after the broker's next possible change — the first point at which a working order can fill,
  by the venue's vectorised search — or after an entry's expiry. A wake that writes nothing, on
  the same inputs, is followed by wakes that write nothing until one of those inputs changes:
  that is the proof.

Neither is passed over while a dry run holds a would-be position: its bracket is reviewed
against the quotes at each tick (and at each wake after the flatten), which no journal records.

Both need a broker that knows its market ahead (`brokers.base.Foresight`: the simulated one).
With IBKR nothing is left out: its bars and fills are not known before they happen.
Every decision is still made at a wake, on what is known then; the journals of a run with and
without the planner are the same (tests/backtest, tests/engine).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]

from tradebot.brokers.base import Foresight
from tradebot.core.indicators import ema, hourly_arrays, rsi, session_vwap
from tradebot.core.sessions import SESSION_COLUMN, utc_ns
from tradebot.engine.order_book import FULL_SYNC_EVERY
from tradebot.storage.watch import journal_appends

if TYPE_CHECKING:
    from decimal import Decimal

    from tradebot.books.risk_report import RiskReport
    from tradebot.config import ScalpConfig, WhaleConfig
    from tradebot.engine.context import EngineContext
    from tradebot.engine.market_data import MarketData
    from tradebot.engine.oco import OcoWatcher
    from tradebot.engine.schedule import SessionPlan


class PlannedLoop(Protocol):
    """What the planner reads of the loop (`engine.loop.TradingLoop`), which owns it."""

    ctx: EngineContext
    last_tick: datetime | None
    until: datetime | None
    next_sync: datetime | None
    oco: OcoWatcher
    market_data: MarketData

    @property
    def summary(self) -> Any: ...
    def scheduled_wake(
        self, now: datetime, plan: SessionPlan, sync: datetime | None
    ) -> datetime: ...
    def halted_now(self) -> bool: ...
    def failing(self) -> bool: ...
    def would_be_open(self) -> bool: ...
    def last_risk(self) -> RiskReport | None: ...
    def last_cash(self) -> Decimal | None: ...
    def last_risk_could_open(self) -> bool: ...


MINUTE_NS = 60_000_000_000
PRICE_MARGIN = 1e-9  # relative
RSI_MARGIN = 1e-6  # RSI points
NEVER = datetime.max.replace(tzinfo=UTC)
SYNC_EVERY = timedelta(seconds=60)  # the loop's (engine.loop.SYNC_EVERY)
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
        return self.scalp_possible_at(t_ns) or self.whale_possible(t_ns, whale_range)

    def scalp_possible_at(self, t_ns: int) -> bool:
        completed = int(np.searchsorted(self.starts, t_ns - MINUTE_NS, side="right"))
        return bool(completed and self.scalp_possible[completed - 1])

    def whale_possible(self, t_ns: int, whale_range: tuple[float, float] | None) -> bool:
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
    """Decides, after each wake, which of the loop's next scheduled wakes can be left out.

    It walks the schedule forward as the loop would (ticks on the grid, a sync a minute after
    each wake while something is open, the flatten, the close), treating each wake it can prove
    idle as done, and stops at the first one it cannot: the loop sleeps until then. The chain of
    syncs continues from the wakes left out, exactly as if they had happened.
    """

    def __init__(self, loop: PlannedLoop) -> None:
        self.loop = loop
        ctx = loop.ctx
        s = ctx.settings
        self.scalp, self.whale = s.strategies.scalp, s.strategies.whale
        self.calendar = s.schedule.calendar
        self.symbols = tuple(s.trading.symbols)
        self.max_loss_pct = s.risk.max_daily_loss_pct
        broker = ctx.broker
        self.foresight: Foresight | None = broker if isinstance(broker, Foresight) else None
        self._signals: dict[tuple[str, date], SessionSignals] = {}
        self._before: tuple[int, ...] | None = None
        self._at_tick: tuple[int, ...] | None = None
        self._tick_sync_quiet = False  # the last tick's wake wrote nothing before its tick
        self._after_tick: tuple[int, ...] | None = None  # the journals after the last tick's wake
        self.quiet = False  # the last wake, and what followed it, wrote nothing before any tick
        # Ticks passed over: grid ticks in [from, until) are idle (counted at the next wake).
        self.passed_from: datetime | None = None
        self.passed_until: datetime | None = None

    # -- around each wake ----------------------------------------------------------------------
    def before_wake(self) -> None:
        self._before = self._fingerprint()
        self._at_tick = None

    def tick_starts(self) -> None:
        """The wake is about to run a tick (what it wrote so far was the sync's part)."""
        self._at_tick = self._fingerprint()

    def after_wake(self, now: datetime) -> None:
        """Right after a wake: the journals as it left them."""
        if self.loop.last_tick == now:
            self._after_tick = self._fingerprint()
            self._tick_sync_quiet = self._at_tick is not None and self._at_tick == self._before

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

    # -- the plan ------------------------------------------------------------------------------
    def next_wake(self, now: datetime, plan: SessionPlan) -> datetime:
        """The first wake of the schedule after `now` that is not provably idle."""
        loop = self.loop
        current = self._fingerprint()
        before = self._before
        self._before = None
        # The sync part of the wake just ended (all of it when it ran no tick) wrote nothing.
        self.quiet = before is not None and (self._at_tick or current) == before
        sync: datetime | None = loop.next_sync
        at = loop.scheduled_wake(now, plan, sync)
        if self.foresight is None or not self._may_pass_any(now, plan):
            return at
        activity = loop.ctx.book.has_activity()
        news = self.foresight.unchanged_until(now) if activity else NEVER
        tick_quiet = (
            self._after_tick == current
            and loop.last_tick is not None
            and loop.last_tick >= plan.opens
        )
        first_passed: datetime | None = None
        t = now
        for _ in range(100_000):  # a session has at most a few thousand scheduled wakes
            tick = plan.tick_at_or_after(t + TINY)
            is_tick = tick == at
            is_sync = activity and sync == at
            if at in (plan.flatten_at, plan.closes) or (loop.until and at >= loop.until):
                break
            if not (is_tick or is_sync):
                break
            if (is_sync or activity) and not self._sync_idle(at, news):
                break
            idle_tick = is_tick and tick_quiet and self._tick_idle(at, plan, activity, news)
            if is_tick and not idle_tick:
                break
            if idle_tick and first_passed is None:
                first_passed = at
            if is_sync and at - now >= FULL_SYNC_EVERY:
                # A sync at least every quarter of an hour while something is open: the loop
                # wakes for it, the tick it may coincide with stays passed over.
                if first_passed is not None:
                    self.passed_from, self.passed_until = first_passed, at + TINY
                return at
            t, sync = at, at + SYNC_EVERY
            at = loop.scheduled_wake(t, plan, sync)
        if first_passed is not None:
            self.passed_from, self.passed_until = first_passed, at
        return at

    def _may_pass_any(self, now: datetime, plan: SessionPlan) -> bool:
        loop = self.loop
        book = loop.ctx.book
        return (
            plan.in_session(now)
            and not loop.oco.armed()
            and not loop.halted_now()
            and not loop.failing()
            # A dry run's would-be positions are `not_sent` (no activity for the book), yet each
            # tick reviews their bracket against the quotes: no wake is idle while one is open.
            and not loop.would_be_open()
            and book.journal_error is None
            and not book.waiting
            and not any(o.status in ("intent", "unknown", "pending") for o in book.live.values())
        )

    def _sync_idle(self, at: datetime, news: datetime | None) -> bool:
        """A wake at `at` adopts nothing and cancels nothing: the last wake's sync part wrote
        nothing, the broker cannot change before `at`, and no entry expires by then."""
        if not self.quiet or news is None or news < at:
            return False
        return not self._entry_expired_by(at)

    def _entry_expired_by(self, at: datetime) -> bool:
        """A working entry reaches its time-out by `at`: `exits.cancel_stale_entries` cancels it,
        or the unfilled rest of a partly filled one, at each wake from then (again when the
        broker did not take the cancel, which journals nothing) until the broker says it is
        gone."""
        timeout = timedelta(seconds=self.loop.ctx.settings.trading.interval_s)
        return any(e.intent_ts + timeout <= at for e in self.loop.ctx.book.working_entries())

    def _tick_idle(
        self, tick: datetime, plan: SessionPlan, activity: bool, news: datetime | None
    ) -> bool:
        """A tick at `tick` would write nothing: no symbol can enter, and (something being
        open) the account's guards cannot change their verdict."""
        loop = self.loop
        if not activity:
            return not self._possible(plan.session, tick, held=frozenset())
        book = loop.ctx.book
        if (
            not self._tick_sync_quiet
            or tick >= plan.flatten_at
            or news is None
            or news < tick
            # An unfilled entry may be cancelled by the tick's account stops; any entry at its
            # time-out by the wake's stale-entry cancel.
            or any(e.filled_qty == 0 for e in book.working_entries())
            or self._entry_expired_by(tick)
            or not self._account_silent(plan.session)
        ):
            return False
        held = frozenset(
            s for s in self.symbols if book.holds(s, "scalp") is not None
        ) if loop.last_risk_could_open() else frozenset()  # fmt: skip
        return not self._possible(plan.session, tick, held=held)

    def _account_silent(self, session: date) -> bool:
        """The tick's equity-dependent verdicts cannot change: the daily loss cannot reach its
        limit even with every open option worth nothing (equity ≥ cash), and the next phase
        cannot become eligible by the equity alone (its other criteria are unmet, or the notice
        was sent)."""
        loop = self.loop
        risk, cash = loop.last_risk(), loop.last_cash()
        if risk is None or cash is None or risk.equity is None:
            return False
        start = risk.equity.start_of_day
        if start is None or start <= 0 or risk.daily_loss.session != session:
            return False
        if (start - cash) / start * 100 >= self.max_loss_pct:
            return False
        ev = risk.phase
        if ev is None:
            return False
        if ev.next_phase is None or any(not c.met for c in ev.criteria if c.name != "max_drawdown"):
            return True
        key = f"eligible:{ev.phase}:{ev.since.isoformat() if ev.since else 'start'}"
        return loop.ctx.state.notice_sent(key)

    def _possible(self, session: date, tick: datetime, *, held: frozenset[str]) -> bool:
        """Could some symbol enter at `tick`? A scalp signal on a symbol whose scalp position is
        held (and entries allowed) enters nothing."""
        t_ns = int(tick.timestamp() * 1_000_000) * 1000
        for symbol in self.symbols:
            signals = self._session_signals(symbol, session)
            whale_range = None
            if self.whale.enabled:
                known, prior = self.loop.market_data.known_prior(symbol, session)
                if not known:
                    return True
                whale_range = None if prior is None else (prior.high, prior.low)
            if signals.whale_possible(t_ns, whale_range):
                return True
            if symbol not in held and signals.scalp_possible_at(t_ns):
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
