"""Signals (spec §4): scalp on today's 1-minute bars, whale on 60-minute bars, and the choice
between them. Pure functions of bars, configuration and an explicit `now`.

Completed bars. A bar is labelled by its start; it is complete once its whole span has passed:
a 1-minute bar when ``start + 1 min ≤ now``, a 60-minute bar when its ``end`` column (start +
60 min, or the session close for the last bar) ``≤ now``. Bars that are not complete yet — the
minute still printing, the hour in progress — are ignored, so a signal never rests on a bar whose
close can still change.

Confidence (0 for HOLD; for an entry between 0.5 and 1, monotone in the signal's strength):

* scalp: ``0.5 + 0.5 × d``, with d the depth of the RSI inside its band measured from the neutral
  side: BUY ``d = (RSI − buy_low) / (buy_high − buy_low)``; SELL
  ``d = (sell_high − RSI) / (sell_high − sell_low)`` (d = 1 for a zero-width band). Momentum that
  is stronger while still inside the band gives more confidence.
* whale: ``0.5 + 0.25 × min(1, breakout / (10 % of the range width)) + 0.25 × min(1, volume /
  (volume_multiple × average) − 1)``. A close 10 % of the range beyond the edge, on twice the
  required volume, is full confidence.

Debounce (`whale_debounce`): after a whale signal on session S0, whale signals for that symbol
are suppressed while fewer than `debounce_days` sessions have elapsed: with 3, on S0 (the rest of
it), S1 and S2; allowed again on S3. 0 disables the debounce.

Why one module: the two signals and the choice between them share the completed-bar rule and the
confidence scale; apart, they could drift on what 'complete' means.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Literal

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]

from tradebot.core.indicators import (
    HourlyBars,
    SessionRange,
    ema_last,
    prior_sessions_range,
    rsi_last,
)
from tradebot.core.sessions import (
    DEFAULT_CALENDAR,
    SESSION_COLUMN,
    check_bars,
    previous_session_days,
    utc_datetime,
    utc_ns,
)
from tradebot.core.settings import ScalpSettings, WhaleSettings
from tradebot.core.trades import Right

StrategyName = Literal["scalp", "whale"]
ScalpSignalName = Literal["BUY", "SELL", "HOLD"]
WhaleSignalName = Literal["BUY_CALL", "BUY_PUT", "HOLD"]
SignalName = Literal["BUY", "SELL", "BUY_CALL", "BUY_PUT", "HOLD"]

_ALLOWED: dict[str, frozenset[str]] = {
    "scalp": frozenset({"BUY", "SELL", "HOLD"}),
    "whale": frozenset({"BUY_CALL", "BUY_PUT", "HOLD"}),
}
ONE_MINUTE = timedelta(minutes=1)


@dataclass(frozen=True)
class Signal:
    """A strategy's verdict on the last completed bar.

    `reason` is a sentence with the numbers; `bar` is the start (UTC) of the evaluated bar, None
    when no bar could be evaluated.
    """

    strategy: StrategyName
    signal: SignalName
    confidence: float
    reason: str
    bar: datetime | None = None

    def __post_init__(self) -> None:
        if self.signal not in _ALLOWED[self.strategy]:
            raise ValueError(f"{self.strategy} cannot signal {self.signal}")
        if not 0.0 <= self.confidence <= 1.0:
            raise ValueError(f"confidence {self.confidence} is outside [0, 1]")
        if self.signal == "HOLD" and self.confidence != 0.0:
            raise ValueError("a HOLD carries no confidence")

    @property
    def is_entry(self) -> bool:
        """True for anything but HOLD."""
        return self.signal != "HOLD"


def _hold(strategy: StrategyName, reason: str, bar: datetime | None = None) -> Signal:
    return Signal(strategy, "HOLD", 0.0, reason, bar)


def _num(value: Decimal) -> str:
    """A config number as written: 50, 50.5."""
    return f"{value.normalize():f}"


def _band(band: tuple[Decimal, Decimal]) -> str:
    return f"[{_num(band[0])}, {_num(band[1])}]"


def _rel(a: float, b: float) -> str:
    return ">" if a > b else "<" if a < b else "="


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return moment.astimezone(UTC)


# --------------------------------------------------------------------------------------- scalp


def scalp_signal(bars: pd.DataFrame, cfg: ScalpSettings, *, now: datetime) -> Signal:
    """BUY / SELL / HOLD from today's RTH 1-minute bars, evaluated on the last completed bar.

    `bars`: one session's RTH bars (see `tradebot.core.sessions`); VWAP is anchored at its first
    bar. BUY when close > VWAP, EMA(fast) > EMA(slow) and RSI in `rsi_buy` (inclusive); SELL when
    close < VWAP, EMA(fast) < EMA(slow) and RSI in `rsi_sell`; else HOLD.
    """
    if not cfg.enabled:
        return _hold("scalp", "scalp strategy is disabled in the configuration")
    check_bars(bars)
    if SESSION_COLUMN in bars.columns and len(bars) > 1:
        sessions = bars[SESSION_COLUMN]
        if sessions.iat[0] != sessions.iat[-1]:
            raise ValueError("scalp_signal needs one session's bars (VWAP resets each session)")
    high, low, close, volume = (
        bars[c].to_numpy(dtype=np.float64) for c in ("high", "low", "close", "volume")
    )
    return scalp_signal_arrays(utc_ns(bars.index), high, low, close, volume, cfg, now=now)


def scalp_signal_arrays(
    times: npt.NDArray[np.int64],
    high: npt.NDArray[np.float64],
    low: npt.NDArray[np.float64],
    close: npt.NDArray[np.float64],
    volume: npt.NDArray[np.float64],
    cfg: ScalpSettings,
    *,
    now: datetime,
) -> Signal:
    """`scalp_signal` on one session's bars given as arrays (bar starts in UTC ns, time
    ordered; bars after `now` may be included: only those completed by `now` count). The loop
    keeps a session's arrays and calls this at each tick without building a frame."""
    if not cfg.enabled:
        return _hold("scalp", "scalp strategy is disabled in the configuration")
    cutoff = pd.Timestamp(_utc(now) - ONE_MINUTE).value
    count = int(np.searchsorted(times, cutoff, side="right"))
    if count < cfg.min_bars:
        return _hold(
            "scalp", f"only {count} completed 1-minute bars today; the scalp needs {cfg.min_bars}"
        )
    need = max(cfg.ema_slow, cfg.rsi_period + 1)
    if count < need:
        return _hold(
            "scalp",
            f"only {count} completed 1-minute bars today; EMA{cfg.ema_slow} and "
            f"RSI{cfg.rsi_period} need {need}",
        )
    high, low, close, volume = high[:count], low[:count], close[:count], volume[:count]
    bar = utc_datetime(int(times[count - 1]))
    total_volume = float(volume.sum())
    if total_volume <= 0:
        return _hold("scalp", "no volume traded yet today, so VWAP is undefined", bar)
    # Only the last completed bar is evaluated, so only the indicators' last values are
    # computed: the session VWAP at that bar and the closed-form last EMA/RSI values.
    vwap = float(np.dot((high + low + close) / 3.0, volume) / total_volume)
    return scalp_decision(
        close=float(close[-1]),
        vwap=vwap,
        ema_fast=ema_last(close, cfg.ema_fast),
        ema_slow=ema_last(close, cfg.ema_slow),
        rsi_value=rsi_last(close, cfg.rsi_period),
        cfg=cfg,
        bar=bar,
    )


def scalp_decision(
    *,
    close: float,
    vwap: float,
    ema_fast: float,
    ema_slow: float,
    rsi_value: float,
    cfg: ScalpSettings,
    bar: datetime | None = None,
) -> Signal:
    """The scalp rule applied to indicator values of one bar (see `scalp_signal`)."""
    fast, slow = f"EMA{cfg.ema_fast}", f"EMA{cfg.ema_slow}"
    if np.isnan(rsi_value):
        return _hold("scalp", f"RSI{cfg.rsi_period} is undefined (no price change at all)", bar)
    buy_lo, buy_hi = (float(x) for x in cfg.rsi_buy)
    sell_lo, sell_hi = (float(x) for x in cfg.rsi_sell)
    in_buy = buy_lo <= rsi_value <= buy_hi
    in_sell = sell_lo <= rsi_value <= sell_hi
    price = f"close {close:.2f} {_rel(close, vwap)} VWAP {vwap:.2f}"
    trend = f"{fast} {ema_fast:.2f} {_rel(ema_fast, ema_slow)} {slow} {ema_slow:.2f}"
    if close > vwap and ema_fast > ema_slow and in_buy:
        depth = (rsi_value - buy_lo) / (buy_hi - buy_lo) if buy_hi > buy_lo else 1.0
        reason = f"BUY: {price}, {trend}, RSI {rsi_value:.1f} in {_band(cfg.rsi_buy)}"
        return Signal("scalp", "BUY", 0.5 + 0.5 * depth, reason, bar)
    if close < vwap and ema_fast < ema_slow and in_sell:
        depth = (sell_hi - rsi_value) / (sell_hi - sell_lo) if sell_hi > sell_lo else 1.0
        reason = f"SELL: {price}, {trend}, RSI {rsi_value:.1f} in {_band(cfg.rsi_sell)}"
        return Signal("scalp", "SELL", 0.5 + 0.5 * depth, reason, bar)
    buy_missing = [
        text
        for ok, text in (
            (close > vwap, "close > VWAP"),
            (ema_fast > ema_slow, f"{fast} > {slow}"),
            (in_buy, f"RSI in {_band(cfg.rsi_buy)}"),
        )
        if not ok
    ]
    sell_missing = [
        text
        for ok, text in (
            (close < vwap, "close < VWAP"),
            (ema_fast < ema_slow, f"{fast} < {slow}"),
            (in_sell, f"RSI in {_band(cfg.rsi_sell)}"),
        )
        if not ok
    ]
    reason = (
        f"HOLD: {price}, {trend}, RSI {rsi_value:.1f}; BUY also needs "
        f"{', '.join(buy_missing)}; SELL also needs {', '.join(sell_missing)}"
    )
    return _hold("scalp", reason, bar)


# --------------------------------------------------------------------------------------- whale


def whale_signal(
    hourly: pd.DataFrame | HourlyBars,
    cfg: WhaleSettings,
    *,
    now: datetime,
    session: date,
    calendar: str = DEFAULT_CALENDAR,
    prior: SessionRange | None = None,
) -> Signal:
    """BUY_CALL / BUY_PUT / HOLD on the last completed 60-minute bar of `session`.

    `hourly`: session-anchored bars from `hourly_bars` (or `hourly_arrays`), time-ordered. The
    range and the average 60-minute volume come from exactly the calendar's `range_days`
    sessions before `session` — never the current session — so a day missing from the data is a
    HOLD, not a silently longer window. They are computed from `hourly` unless `prior` is given:
    the loop computes it once per session with `prior_sessions_range` (it cannot change during
    the day), and `hourly` then only needs today's bars. The debounce is applied separately
    (`whale_debounce`).
    """
    if not cfg.enabled:
        return _hold("whale", "whale strategy is disabled in the configuration")
    bars = hourly if isinstance(hourly, HourlyBars) else HourlyBars.from_frame(hourly)
    if len(bars) > 1 and (np.diff(bars.end_ns) <= 0).any():
        raise ValueError("hourly bars must be in time order, one bar per span")
    done = int(np.searchsorted(bars.end_ns, pd.Timestamp(_utc(now)).value, side="right"))
    if done == 0 or bars.session[done - 1] != np.datetime64(session, "D"):
        return _hold("whale", f"no completed 60-minute bar yet in session {session}")
    i = done - 1
    bar = utc_datetime(int(bars.start_ns[i]))
    if prior is None:
        prior = prior_sessions_range(
            bars.high[:i], bars.low[:i], bars.volume[:i], bars.session[:i], session, cfg.range_days
        )
    expected = previous_session_days(session, cfg.range_days, calendar)
    if (
        prior is None
        or len(expected) < cfg.range_days
        or prior.sessions != cfg.range_days
        or np.datetime64(prior.first_session, "D") != expected[0]
        or np.datetime64(prior.last_session, "D") != expected[-1]
    ):
        have = "none" if prior is None else f"{prior.first_session} … {prior.last_session}"
        want = f"{expected[0]} … {expected[-1]}" if len(expected) else "none"
        return _hold(
            "whale",
            f"need 60-minute bars for the {cfg.range_days} sessions before {session} ({want}); "
            f"the data has {have}",
            bar,
        )
    return whale_decision(
        float(bars.close[i]),
        float(bars.volume[i]),
        prior.high,
        prior.low,
        prior.avg_volume,
        cfg,
        bar,
    )


def whale_decision(
    close: float,
    volume: float,
    range_high: float,
    range_low: float,
    avg_volume: float,
    cfg: WhaleSettings,
    bar: datetime | None = None,
) -> Signal:
    """The whale rule for one completed 60-minute bar against the prior sessions' range."""
    if not avg_volume > 0:
        # No traded volume on record means no volume baseline: a breakout cannot be confirmed.
        return _hold("whale", f"no volume in the {cfg.range_days} prior sessions' data", bar)
    multiple = float(cfg.volume_multiple)
    needed = multiple * avg_volume
    days = cfg.range_days
    vol_text = (
        f"volume {volume:,.0f} {'≥' if volume >= needed else '<'} {_num(cfg.volume_multiple)} × "
        f"{days}-session average {avg_volume:,.0f} = {needed:,.0f}"
    )
    width = range_high - range_low
    if close > range_high or close < range_low:
        call = close > range_high
        edge = range_high if call else range_low
        side = (
            f"close {close:.2f} {'>' if call else '<'} {days}-session {'high' if call else 'low'}"
        )
        if volume < needed:
            return _hold("whale", f"HOLD: {side} {edge:.2f} but {vol_text}", bar)
        excess = abs(close - edge)
        size = min(1.0, excess / (0.1 * width)) if width > 0 else 1.0
        surplus = min(1.0, volume / needed - 1.0)
        confidence = min(1.0, 0.5 + 0.25 * size + 0.25 * surplus)
        name: WhaleSignalName = "BUY_CALL" if call else "BUY_PUT"
        return Signal("whale", name, confidence, f"{name}: {side} {edge:.2f}, {vol_text}", bar)
    reason = (
        f"HOLD: close {close:.2f} inside the {days}-session range "
        f"[{range_low:.2f}, {range_high:.2f}]; {vol_text}"
    )
    return _hold("whale", reason, bar)


@dataclass(frozen=True)
class DebounceCheck:
    """Whether whale signals for a symbol are suppressed now, and why."""

    suppressed: bool
    sessions_elapsed: int | None
    reason: str


def whale_debounce(
    last_signal_session: date | None,
    current_session: date,
    sessions: Sequence[date],
    debounce_days: int,
) -> DebounceCheck:
    """Suppressed while fewer than `debounce_days` sessions elapsed since the last whale signal.

    `sessions`: the exchange sessions (ascending) covering at least
    (`last_signal_session`, `current_session`]; the elapsed count is the number of them after
    the signal's session up to and including the current one (0 on the same session). A last
    signal dated after the current session (a clock or state problem) suppresses: fail safe.
    """
    if last_signal_session is None:
        return DebounceCheck(False, None, "no earlier whale signal for this symbol")
    if last_signal_session > current_session:
        return DebounceCheck(
            True,
            None,
            f"last whale signal is dated {last_signal_session}, after the current session "
            f"{current_session}; suppressed until the state is checked",
        )
    lo = bisect.bisect_right(sessions, last_signal_session)
    hi = bisect.bisect_right(sessions, current_session)
    elapsed = max(0, hi - lo)
    if elapsed < debounce_days:
        return DebounceCheck(
            True,
            elapsed,
            f"whale signal on {last_signal_session}: debounce of {debounce_days} sessions, "
            f"{elapsed} elapsed",
        )
    return DebounceCheck(
        False,
        elapsed,
        f"last whale signal on {last_signal_session}, {elapsed} sessions ago "
        f"(debounce {debounce_days})",
    )


def apply_debounce(signal: Signal, check: DebounceCheck) -> Signal:
    """`signal` unchanged, or HOLD naming the suppressed signal when the debounce is active."""
    if not signal.is_entry or not check.suppressed:
        return signal
    return replace(
        signal,
        signal="HOLD",
        confidence=0.0,
        reason=f"HOLD: {signal.signal} suppressed ({check.reason}); was: {signal.reason}",
    )


# ------------------------------------------------------------------------------ action selection


@dataclass(frozen=True)
class Action:
    """What to buy: a call or a put (`right`), or nothing (None), and which signal decided."""

    right: Right | None
    strategy: StrategyName | None
    confidence: float
    reason: str


def select_action(whale: Signal | None, scalp: Signal | None) -> Action:
    """A non-HOLD whale signal wins; else scalp BUY → call, SELL → put; else no action."""
    if whale is not None and whale.strategy != "whale":
        raise ValueError("the first argument must be a whale signal")
    if scalp is not None and scalp.strategy != "scalp":
        raise ValueError("the second argument must be a scalp signal")
    if whale is not None and whale.is_entry:
        right: Right = "C" if whale.signal == "BUY_CALL" else "P"
        return Action(right, "whale", whale.confidence, f"whale {whale.reason}")
    if scalp is not None and scalp.is_entry:
        right = "C" if scalp.signal == "BUY" else "P"
        return Action(right, "scalp", scalp.confidence, f"scalp {scalp.reason}")
    parts = [
        f"{name}: {sig.reason}" if sig is not None else f"{name}: not evaluated"
        for name, sig in (("whale", whale), ("scalp", scalp))
    ]
    return Action(None, None, 0.0, "no entry; " + "; ".join(parts))
