"""The synthetic market: deterministic, on real sessions, shaped so both strategies fire."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd

from tradebot.config import ScalpConfig, WhaleConfig
from tradebot.core.indicators import hourly_arrays, prior_sessions_range
from tradebot.core.sessions import check_bars, sessions_between
from tradebot.core.strategies import scalp_signal, whale_signal
from tradebot.market.synthetic import SyntheticBars, daily_walk


def test_same_seed_same_bars_other_seed_other_bars() -> None:
    day = date(2025, 7, 1)
    a = SyntheticBars(7).session_bars("SPY", day)
    b = SyntheticBars(7).session_bars("SPY", day)
    c = SyntheticBars(8).session_bars("SPY", day)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["close"].to_numpy(), c["close"].to_numpy())


def test_sessions_come_from_the_exchange_calendar() -> None:
    bars = SyntheticBars(1)
    assert len(bars.session_bars("SPY", date(2025, 7, 1))) == 390
    early = bars.session_bars("SPY", date(2025, 7, 3))  # 13:00 early close
    assert len(early) == 210
    assert early.index[-1] == pd.Timestamp("2025-07-03 16:59", tz="UTC")  # 12:59 New York
    assert bars.session_bars("SPY", date(2025, 7, 4)).empty  # Independence Day
    assert bars.session_bars("SPY", date(2025, 7, 5)).empty  # Saturday


def test_bars_follow_the_bar_frame_contract() -> None:
    frame = SyntheticBars(3).session_bars("QQQ", date(2025, 3, 10))
    check_bars(frame)
    o, h, lo, c = (frame[k].to_numpy() for k in ("open", "high", "low", "close"))
    assert (h >= np.maximum(o, c)).all() and (lo <= np.minimum(o, c)).all()
    assert (frame["volume"] > 0).all()
    assert frame.index[0] == pd.Timestamp("2025-03-10 13:30", tz="UTC")  # 09:30 EDT
    # Each bar opens at the previous close: one continuous path through the day.
    assert np.array_equal(o[1:], c[:-1])


def test_volume_is_u_shaped() -> None:
    vols = []
    for day in sessions_between(date(2025, 6, 2), date(2025, 6, 13)):
        vols.append(SyntheticBars(5).session_bars("SPY", day)["volume"].to_numpy())
    v = np.mean(vols, axis=0)
    edges = (v[:30].mean() + v[-30:].mean()) / 2
    assert edges > 2 * v[150:240].mean()


def test_next_day_opens_near_the_previous_close() -> None:
    bars = SyntheticBars(2)
    close = bars.session_bars("SPY", date(2025, 7, 1))["close"].iat[-1]
    opening = bars.session_bars("SPY", date(2025, 7, 2))["open"].iat[0]
    assert abs(opening / close - 1) < 0.02


def test_both_strategies_fire_on_the_synthetic_market() -> None:
    bars = SyntheticBars(11)
    days = sessions_between(date(2025, 1, 2), date(2025, 6, 30))
    scalp_seen: set[str] = set()
    for day in days[-15:]:
        frame = bars.session_bars("SPY", day)
        for minute in range(35, 380, 20):
            now = frame.index[minute].to_pydatetime() + timedelta(minutes=1)
            scalp_seen.add(scalp_signal(frame, ScalpConfig(), now=now).signal)
    assert {"BUY", "SELL"} <= scalp_seen

    whale_seen: set[str] = set()
    cfg = WhaleConfig()
    history = pd.concat([bars.session_bars("SPY", d) for d in days])
    hourly = hourly_arrays(history)
    for day in days[25:]:
        prior = prior_sessions_range(
            hourly.high, hourly.low, hourly.volume, hourly.session, day, cfg.range_days
        )
        for hour in (15, 16, 17, 18, 19):  # UTC: the 10:30 … 14:30 New York bar ends
            now = datetime(day.year, day.month, day.day, hour, 31, tzinfo=UTC)
            whale_seen.add(whale_signal(hourly, cfg, now=now, session=day, prior=prior).signal)
    assert whale_seen & {"BUY_CALL", "BUY_PUT"}


def test_a_session_does_not_move_as_the_calendar_grows() -> None:
    """The exchange calendar ends a year after today, so the number of sessions the daily walk
    covers grows every day; a session's close must not depend on it (it did: the drift series
    was drawn after the shock series from one generator, so every close moved each day)."""
    short = daily_walk(1, "TSLA", 6000)
    longer = daily_walk(1, "TSLA", 6400)
    assert np.array_equal(short, longer[:6000])
    assert not np.array_equal(daily_walk(2, "TSLA", 6000), short)
