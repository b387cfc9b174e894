"""Scalp, whale, debounce and action selection (spec §4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest
import talib

from tests.core.data_loaders import NEW_YORK, minute_frame, pratik_spy
from tradebot.config import ScalpConfig, WhaleConfig
from tradebot.core.indicators import HourlyBars, hourly_bars, prior_sessions_range
from tradebot.core.sessions import rth_bars, session_open_close, sessions_between
from tradebot.core.strategies import (
    Signal,
    apply_debounce,
    scalp_decision,
    scalp_signal,
    select_action,
    whale_debounce,
    whale_decision,
    whale_signal,
)

SCALP = ScalpConfig()
WHALE = WhaleConfig()
OPEN = pd.Timestamp("2025-07-02 09:30", tz=NEW_YORK)


def ny(text: str) -> datetime:
    return pd.Timestamp(text, tz=NEW_YORK).to_pydatetime()


# ------------------------------------------------------------------------------- scalp scenarios


def zigzag(n: int, up: float, down: float, start: float = 100.0) -> np.ndarray:
    """n closes alternating +up / −down."""
    steps = np.where(np.arange(n - 1) % 2 == 0, up, -down)
    return start + np.concatenate(([0.0], np.cumsum(steps)))


def base_closes() -> np.ndarray:
    return zigzag(60, 0.30, 0.20)  # steady climb: RSI ≈ 62, EMA9 above EMA21


def hot_closes() -> np.ndarray:
    return zigzag(60, 0.30, 0.05)  # same climb with tiny pullbacks: RSI ≈ 87, above the band


def rolled_over_closes() -> np.ndarray:
    # Climb, one 2.75 drop, then 11 bars of +0.25/0: EMA9 falls below EMA21, RSI back to ≈ 52.6.
    closes = list(zigzag(48, 0.30, 0.20))
    closes.append(closes[-1] - 2.75)
    for i in range(11):
        closes.append(closes[-1] + (0.25 if i % 2 == 0 else 0.0))
    return np.array(closes)


@dataclass(frozen=True)
class Facts:
    above_vwap: bool
    below_vwap: bool
    ema_up: bool
    ema_down: bool
    rsi: float


def facts(bars: pd.DataFrame) -> Facts:
    """The three scalp conditions computed independently (TA-Lib, plain VWAP)."""
    close = bars["close"].to_numpy()
    tp = (bars["high"] + bars["low"] + bars["close"]) / 3
    vwap = float((tp * bars["volume"]).sum() / bars["volume"].sum())
    fast, slow = talib.EMA(close, 9)[-1], talib.EMA(close, 21)[-1]
    return Facts(
        close[-1] > vwap, close[-1] < vwap, fast > slow, fast < slow, talib.RSI(close, 14)[-1]
    )


def scenario(closes: np.ndarray, *, vwap_above: bool | None = None) -> pd.DataFrame:
    """Bars with these closes; `vwap_above` drags VWAP above/below the last close via the
    early bars' highs/lows only (closes, hence EMA and RSI, are untouched)."""
    bars = minute_frame(OPEN, closes)
    if vwap_above is True:
        bars.iloc[:40, bars.columns.get_loc("high")] += 30.0
    elif vwap_above is False:
        bars.iloc[:40, bars.columns.get_loc("low")] -= 30.0
    return bars


def mirror(bars: pd.DataFrame, level: float = 200.0) -> pd.DataFrame:
    """Price mirror: RSI → 100 − RSI, EMA order and VWAP side flip."""
    out = bars.copy()
    out["open"], out["close"] = level - bars["open"], level - bars["close"]
    out["high"], out["low"] = level - bars["low"], level - bars["high"]
    return out


AFTER = ny("2025-07-02 10:30")  # all 60 bars (09:30–10:29) complete


def test_buy_when_all_three_conditions_hold() -> None:
    bars = scenario(base_closes())
    f = facts(bars)
    assert f.above_vwap and f.ema_up and 50 <= f.rsi <= 70
    sig = scalp_signal(bars, SCALP, now=AFTER)
    assert sig.signal == "BUY"
    assert sig.bar == datetime(2025, 7, 2, 14, 29, tzinfo=UTC)
    close = bars["close"].to_numpy()
    tp = (bars["high"] + bars["low"] + bars["close"]) / 3
    vwap = (tp * bars["volume"]).sum() / bars["volume"].sum()
    assert sig.reason == (
        f"BUY: close {close[-1]:.2f} > VWAP {vwap:.2f}, EMA9 {talib.EMA(close, 9)[-1]:.2f} > "
        f"EMA21 {talib.EMA(close, 21)[-1]:.2f}, RSI {f.rsi:.1f} in [50, 70]"
    )
    assert 0.5 < sig.confidence < 1.0


@pytest.mark.parametrize(
    ("name", "bars"),
    [
        ("close not above VWAP", scenario(base_closes(), vwap_above=True)),
        ("EMA9 not above EMA21", scenario(rolled_over_closes(), vwap_above=False)),
        ("RSI above the buy band", scenario(hot_closes())),
    ],
)
def test_each_buy_condition_alone_flips_buy_to_hold(name: str, bars: pd.DataFrame) -> None:
    f = facts(bars)
    held = [f.above_vwap, f.ema_up, 50 <= f.rsi <= 70]
    assert held.count(False) == 1, f"{name}: exactly one condition must fail, got {held}"
    sig = scalp_signal(bars, SCALP, now=AFTER)
    assert sig.signal == "HOLD", sig.reason
    assert sig.confidence == 0.0
    assert "BUY also needs" in sig.reason


def test_sell_when_all_three_conditions_hold() -> None:
    bars = mirror(scenario(base_closes()))
    f = facts(bars)
    assert f.below_vwap and f.ema_down and 30 <= f.rsi <= 50
    sig = scalp_signal(bars, SCALP, now=AFTER)
    assert sig.signal == "SELL"
    assert f"RSI {f.rsi:.1f} in [30, 50]" in sig.reason


@pytest.mark.parametrize(
    ("name", "bars"),
    [
        ("close not below VWAP", mirror(scenario(base_closes(), vwap_above=True))),
        ("EMA9 not below EMA21", mirror(scenario(rolled_over_closes(), vwap_above=False))),
        ("RSI below the sell band", mirror(scenario(hot_closes()))),
    ],
)
def test_each_sell_condition_alone_flips_sell_to_hold(name: str, bars: pd.DataFrame) -> None:
    f = facts(bars)
    held = [f.below_vwap, f.ema_down, 30 <= f.rsi <= 50]
    assert held.count(False) == 1, f"{name}: exactly one condition must fail, got {held}"
    sig = scalp_signal(bars, SCALP, now=AFTER)
    assert sig.signal == "HOLD", sig.reason
    assert "SELL also needs" in sig.reason


def test_fewer_than_min_bars_is_hold() -> None:
    bars = scenario(base_closes())
    sig = scalp_signal(bars.iloc[:29], SCALP, now=AFTER)
    assert sig.signal == "HOLD"
    assert sig.reason == "only 29 completed 1-minute bars today; the scalp needs 30"
    # 30 bars but the 30th (09:59) still printing at 09:59:30: only 29 are complete.
    sig = scalp_signal(bars.iloc[:30], SCALP, now=ny("2025-07-02 09:59:30"))
    assert sig.signal == "HOLD" and "only 29" in sig.reason
    assert scalp_signal(bars.iloc[:30], SCALP, now=ny("2025-07-02 10:00")).signal == "BUY"
    longer = ScalpConfig(min_bars=10)
    sig = scalp_signal(bars.iloc[:15], longer, now=AFTER)
    assert sig.signal == "HOLD" and "EMA21 and RSI14 need 21" in sig.reason


def test_the_bar_still_printing_is_ignored() -> None:
    closes = base_closes()
    crash = np.concatenate((closes, [closes[-1] - 20.0]))  # 61st bar, 10:30, crashes
    bars = scenario(crash)
    during = scalp_signal(bars, SCALP, now=ny("2025-07-02 10:30:45"))
    assert during.signal == "BUY"  # evaluated on 10:29, the last completed bar
    assert during.bar == datetime(2025, 7, 2, 14, 29, tzinfo=UTC)
    after = scalp_signal(bars, SCALP, now=ny("2025-07-02 10:31"))
    assert after.signal == "HOLD" and after.bar == datetime(2025, 7, 2, 14, 30, tzinfo=UTC)


def test_scalp_refuses_bars_of_two_sessions_and_naive_now() -> None:
    two_days = pd.concat(
        [
            minute_frame(OPEN, base_closes()),
            minute_frame(pd.Timestamp("2025-07-03 09:30", tz=NEW_YORK), base_closes()),
        ]
    )
    with pytest.raises(ValueError, match="one session"):
        scalp_signal(rth_bars(two_days), SCALP, now=ny("2025-07-03 12:00"))
    with pytest.raises(ValueError, match="timezone-aware"):
        scalp_signal(minute_frame(OPEN, base_closes()), SCALP, now=datetime(2025, 7, 2, 11))


def test_scalp_confidence_grows_with_rsi_depth_and_bands_are_inclusive() -> None:
    def buy(r: float) -> Signal:
        return scalp_decision(
            close=10.0, vwap=9.0, ema_fast=2.0, ema_slow=1.0, rsi_value=r, cfg=SCALP
        )

    assert buy(50.0).signal == "BUY" and buy(70.0).signal == "BUY"
    assert buy(49.99).signal == "HOLD" and buy(70.01).signal == "HOLD"
    values = [buy(r).confidence for r in (50, 55, 60, 65, 70)]
    assert values == sorted(values) and values[0] == 0.5 and values[-1] == 1.0
    sell = [
        scalp_decision(
            close=9.0, vwap=10.0, ema_fast=1.0, ema_slow=2.0, rsi_value=r, cfg=SCALP
        ).confidence
        for r in (50, 45, 40, 35, 30)
    ]
    assert sell == sorted(sell) and sell[0] == 0.5 and sell[-1] == 1.0
    nan = scalp_decision(
        close=10.0, vwap=9.0, ema_fast=2.0, ema_slow=1.0, rsi_value=float("nan"), cfg=SCALP
    )
    assert nan.signal == "HOLD" and "undefined" in nan.reason


@pytest.mark.shared_data
def test_scalp_on_real_spy_at_ten() -> None:
    # 2025-07-01 is the file's first session, so today's bars are the whole RSI history and
    # data.md's pinned 10:00 values apply: close 617.29, VWAP 616.987055, RSI14 58.044345.
    bars = rth_bars(pratik_spy())
    today = bars[bars["session"] == pd.Timestamp("2025-07-01")]
    closes = today["close"].to_numpy()[:31]
    ema9, ema21 = talib.EMA(closes, 9)[-1], talib.EMA(closes, 21)[-1]
    sig = scalp_signal(today, SCALP, now=ny("2025-07-01 10:01"))
    assert sig.signal == "BUY"
    assert sig.reason == (
        f"BUY: close 617.29 > VWAP 616.99, EMA9 {ema9:.2f} > EMA21 {ema21:.2f}, "
        "RSI 58.0 in [50, 70]"
    )
    assert sig.confidence == pytest.approx(0.5 + 0.5 * (58.044345 - 50) / 20, abs=1e-6)


# ------------------------------------------------------------------------------------- whale


CURRENT = date(2025, 7, 31)
PRIOR = sessions_between(date(2025, 7, 2), date(2025, 7, 30))  # 20 sessions (07-04 holiday)


def session_minutes(day: date, volume: float = 1000.0) -> pd.DataFrame:
    """A whole session of quiet 1-minute bars between 99 and 101."""
    open_utc, close_utc = session_open_close(day)
    count = int((close_utc - open_utc).total_seconds() // 60)
    closes = 100.0 + 0.5 * np.sin(np.arange(count) / 7.0)
    bars = minute_frame(pd.Timestamp(open_utc), closes)
    bars["high"] = np.minimum(bars["high"], 101.0)
    bars["low"] = np.maximum(bars["low"], 99.0)
    bars.loc[bars.index[10], "high"] = 101.0  # the range edges, touched once a day
    bars.loc[bars.index[20], "low"] = 99.0
    bars["volume"] = volume
    return bars


def market(first_hour: np.ndarray, volume: float, *, skip: date | None = None) -> pd.DataFrame:
    """Hourly bars: 07-01 … 07-30 quiet (1,000 shares a minute), then `first_hour` on 07-31."""
    days = [d for d in sessions_between(date(2025, 7, 1), date(2025, 7, 30)) if d != skip]
    today = session_minutes(CURRENT, volume=volume).iloc[:60]
    today["close"] = first_hour
    today["high"] = np.maximum(today["high"], first_hour)
    today["low"] = np.minimum(today["low"], first_hour)
    return hourly_bars(pd.concat([*(session_minutes(d) for d in days), today]))


# The 20 prior sessions: 19 × 390 + 210 (07-03) minutes at 1,000 shares, in 19 × 7 + 4 bars.
AVG_HOURLY = (19 * 390 + 210) * 1000.0 / (19 * 7 + 4)  # 55,620.44
UP = np.linspace(100.0, 102.0, 60)  # closes at 102.00 > 101.00 high
DOWN = np.linspace(100.0, 98.0, 60)  # closes at 98.00 < 99.00 low
HOUR_DONE = ny("2025-07-31 10:30")


def test_whale_breakout_with_enough_volume_is_buy_call() -> None:
    # 1,400 a minute × 60 = 84,000 ≥ 1.5 × 55,620.44 = 83,430.66
    sig = whale_signal(market(UP, 1400.0), WHALE, now=HOUR_DONE, session=CURRENT)
    assert sig.signal == "BUY_CALL", sig.reason
    assert sig.reason == (
        "BUY_CALL: close 102.00 > 20-session high 101.00, volume 84,000 ≥ 1.5 × 20-session "
        "average 55,620 = 83,431"
    )
    assert sig.bar == datetime(2025, 7, 31, 13, 30, tzinfo=UTC)
    # breakout 1.00 on a 2.00 range (≥ 10 %: 0.25) + volume 84,000/83,431 − 1 = 0.0068 (× 0.25)
    assert sig.confidence == pytest.approx(0.75 + 0.25 * (84_000 / (1.5 * AVG_HOURLY) - 1))


def test_whale_breakout_without_enough_volume_is_hold() -> None:
    # 1,390 × 60 = 83,400 < 83,431
    sig = whale_signal(market(UP, 1390.0), WHALE, now=HOUR_DONE, session=CURRENT)
    assert sig.signal == "HOLD"
    assert "close 102.00 > 20-session high 101.00 but volume 83,400 < 1.5 ×" in sig.reason


def test_whale_breakdown_is_buy_put_and_inside_range_is_hold() -> None:
    sig = whale_signal(market(DOWN, 3000.0), WHALE, now=HOUR_DONE, session=CURRENT)
    assert sig.signal == "BUY_PUT"
    assert sig.reason.startswith("BUY_PUT: close 98.00 < 20-session low 99.00")
    # 1.00 beyond a 2.00-wide range and 180,000 ≥ 2 × 83,431 needed: full confidence.
    assert sig.confidence == 1.0
    inside = whale_signal(market(np.full(60, 100.5), 5000.0), WHALE, now=HOUR_DONE, session=CURRENT)
    assert inside.signal == "HOLD"
    assert "inside the 20-session range [99.00, 101.00]" in inside.reason


def test_whale_decision_needs_a_volume_baseline() -> None:
    sig = whale_decision(102.0, 5_000.0, 101.0, 99.0, 0.0, WHALE)
    assert sig.signal == "HOLD" and "no volume" in sig.reason
    # A flat prior range (width 0) still gives a valid confidence.
    flat = whale_decision(100.5, 10_000.0, 100.0, 100.0, 1_000.0, WHALE)
    assert flat.signal == "BUY_CALL" and flat.confidence == 1.0


def test_whale_waits_for_a_completed_bar_of_the_current_session() -> None:
    hourly = market(UP, 2000.0)
    early = whale_signal(hourly, WHALE, now=ny("2025-07-31 10:29:59"), session=CURRENT)
    assert early.signal == "HOLD"
    assert early.reason == "no completed 60-minute bar yet in session 2025-07-31"


def test_whale_range_comes_from_prior_sessions_only() -> None:
    hourly = market(UP, 2000.0)
    today = hourly["session"] == pd.Timestamp(CURRENT)
    hourly.loc[today, "high"] = 150.0  # today's own high cannot lift the range
    assert whale_signal(hourly, WHALE, now=HOUR_DONE, session=CURRENT).signal == "BUY_CALL"


def test_whale_missing_session_is_hold_not_a_longer_window() -> None:
    hourly = market(UP, 2000.0, skip=date(2025, 7, 15))
    sig = whale_signal(hourly, WHALE, now=HOUR_DONE, session=CURRENT)
    assert sig.signal == "HOLD"
    assert sig.reason == (
        "need 60-minute bars for the 20 sessions before 2025-07-31 (2025-07-02 … 2025-07-30); "
        "the data has 2025-07-01 … 2025-07-30"
    )


def test_whale_with_a_precomputed_prior_range() -> None:
    hourly = market(UP, 1400.0)
    before = hourly[hourly["session"] < pd.Timestamp(CURRENT)]
    today = hourly[hourly["session"] == pd.Timestamp(CURRENT)]
    prior = prior_sessions_range(
        before["high"], before["low"], before["volume"], before["session"], CURRENT, 20
    )
    assert prior is not None and prior.first_session == PRIOR[0]
    assert prior.avg_volume == pytest.approx(AVG_HOURLY)
    full = whale_signal(hourly, WHALE, now=HOUR_DONE, session=CURRENT)
    fast = whale_signal(today, WHALE, now=HOUR_DONE, session=CURRENT, prior=prior)
    arrays = whale_signal(HourlyBars.from_frame(today), WHALE, now=HOUR_DONE, session=CURRENT)
    assert fast == full and full.signal == "BUY_CALL"
    assert arrays.signal == "HOLD" and "the data has none" in arrays.reason  # no prior bars
    stale = prior_sessions_range(
        before["high"], before["low"], before["volume"], before["session"], PRIOR[-1], 20
    )
    assert stale is not None
    sig = whale_signal(today, WHALE, now=HOUR_DONE, session=CURRENT, prior=stale)
    assert sig.signal == "HOLD" and "need 60-minute bars" in sig.reason


@pytest.mark.shared_data
def test_whale_on_real_spy_2025_07_30() -> None:
    hourly = hourly_bars(pratik_spy())
    sig = whale_signal(hourly, WHALE, now=ny("2025-07-30 16:00"), session=date(2025, 7, 30))
    # The 15:30 half bar closes at 634.49 inside [615.52, 638.67]: the real RTH low, not the
    # 581.8076 after-close print a naive filter would use.
    assert sig.signal == "HOLD"
    assert "close 634.49 inside the 20-session range [615.52, 638.67]" in sig.reason
    # Too little history on 07-29 (19 sessions in the file before it).
    short = whale_signal(hourly, WHALE, now=ny("2025-07-29 16:00"), session=date(2025, 7, 29))
    assert short.signal == "HOLD" and "need 60-minute bars" in short.reason


# ---------------------------------------------------------------------------------- debounce


SESSIONS = sessions_between(date(2025, 7, 1), date(2025, 7, 10))


def test_debounce_lasts_three_sessions_counting_the_signal_session() -> None:
    assert [whale_debounce(date(2025, 7, 1), day, SESSIONS, 3).suppressed for day in SESSIONS] == [
        True,
        True,
        True,
        False,
        False,
        False,
        False,
    ]  # 07-01, 02, 03 | 07, 08, 09, 10
    # Across the 07-04 holiday and the weekend: sessions, not calendar days.
    assert [
        whale_debounce(date(2025, 7, 3), day, SESSIONS, 3).suppressed for day in SESSIONS[2:]
    ] == [True, True, True, False, False]  # 07-03, 07, 08 | 09, 10
    check = whale_debounce(date(2025, 7, 3), date(2025, 7, 8), SESSIONS, 3)
    assert check.sessions_elapsed == 2
    assert check.reason == "whale signal on 2025-07-03: debounce of 3 sessions, 2 elapsed"


def test_debounce_edges() -> None:
    assert not whale_debounce(None, date(2025, 7, 2), SESSIONS, 3).suppressed
    assert not whale_debounce(date(2025, 7, 2), date(2025, 7, 2), SESSIONS, 0).suppressed
    assert whale_debounce(date(2025, 7, 2), date(2025, 7, 2), SESSIONS, 1).suppressed
    future = whale_debounce(date(2025, 7, 9), date(2025, 7, 2), SESSIONS, 3)
    assert future.suppressed and "after the current session" in future.reason


def test_apply_debounce_turns_an_entry_into_hold() -> None:
    call = Signal("whale", "BUY_CALL", 0.8, "BUY_CALL: close 102.00 > 20-session high 101.00")
    check = whale_debounce(date(2025, 7, 1), date(2025, 7, 2), SESSIONS, 3)
    held = apply_debounce(call, check)
    assert held.signal == "HOLD" and held.confidence == 0.0
    assert held.reason.startswith("HOLD: BUY_CALL suppressed (whale signal on 2025-07-01")
    free = whale_debounce(date(2025, 7, 1), date(2025, 7, 7), SESSIONS, 3)
    assert apply_debounce(call, free) is call


# ---------------------------------------------------------------------------- action selection


def test_select_action() -> None:
    buy = Signal("scalp", "BUY", 0.6, "BUY: …")
    sell = Signal("scalp", "SELL", 0.7, "SELL: …")
    scalp_hold = Signal("scalp", "HOLD", 0.0, "HOLD: …")
    put = Signal("whale", "BUY_PUT", 0.9, "BUY_PUT: …")
    whale_hold = Signal("whale", "HOLD", 0.0, "HOLD: inside")
    assert select_action(put, buy).right == "P"  # whale wins over scalp
    assert select_action(put, buy).strategy == "whale"
    assert (select_action(whale_hold, buy).right, select_action(whale_hold, buy).strategy) == (
        "C",
        "scalp",
    )
    assert select_action(whale_hold, sell).right == "P"
    assert select_action(None, sell).right == "P"
    nothing = select_action(whale_hold, scalp_hold)
    assert nothing.right is None and nothing.strategy is None
    assert nothing.reason == "no entry; whale: HOLD: inside; scalp: HOLD: …"
    with pytest.raises(ValueError, match="whale signal"):
        select_action(buy, buy)


def test_signal_validation() -> None:
    with pytest.raises(ValueError, match="cannot signal"):
        Signal("scalp", "BUY_CALL", 0.5, "x")
    with pytest.raises(ValueError, match="outside"):
        Signal("scalp", "BUY", 1.5, "x")
    with pytest.raises(ValueError, match="HOLD"):
        Signal("whale", "HOLD", 0.3, "x")
