"""Signal speed: scalp + whale for 20 symbols on a full session of 1-minute bars ≤ 20 ms (issue 4).

Built once, outside the timed region — what the trading loop already holds when a tick starts:

* per symbol, today's 390 RTH 1-minute bars (2025-09-30, a DataFrame as the broker adapter hands
  it over), from a seeded random walk;
* per symbol, the 60-minute bars of the 20 sessions before today (`HourlyBars`, 140 bars,
  aggregated once a day: they cannot change during the session).

Timed, for each of the 20 symbols, everything a tick recomputes:

1. `scalp_signal` on today's bars: completed-bar cut, VWAP, EMA9, EMA21, RSI14, the rule;
2. `hourly_arrays` on today's bars: today's session-anchored 60-minute bars, re-aggregated
   (the array form of `hourly_bars`; the loop has no use for a DataFrame there);
3. `whale_signal` on the prior + today's 60-minute bars: the 20-session range, the average
   60-minute volume, the calendar check of those sessions, the rule.

`now` is the close, so every bar is complete and all 390 are used. The second benchmark lets the
loop also keep the 20-session `SessionRange` for the day (`whale_signal(prior=...)`), so step 3
only evaluates today's last completed bar. Both must meet the target.
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd
import pytest

from benchmarks.conftest import median_s
from tradebot.config import ScalpConfig, WhaleConfig
from tradebot.core.indicators import HourlyBars, SessionRange, hourly_arrays, prior_sessions_range
from tradebot.core.sessions import session_open_close, sessions_between
from tradebot.core.strategies import Signal, scalp_signal, whale_signal

SIGNALS_TARGET_S = 0.020
SYMBOLS = 20
TODAY = date(2025, 9, 30)
SESSIONS = sessions_between(date(2025, 9, 2), TODAY)  # 20 prior sessions + today
NOW = datetime.fromisoformat("2025-09-30T20:00:00+00:00")  # 16:00 New York, the close
SCALP = ScalpConfig()
WHALE = WhaleConfig()


def minute_bars(seed: int) -> pd.DataFrame:
    """21 sessions × 390 one-minute bars of a seeded random walk (UTC index, bar start)."""
    rng = np.random.default_rng(seed)
    frames = []
    price = 100.0 + seed
    for day in SESSIONS:
        opened, closed = session_open_close(day)
        index = pd.date_range(opened, closed, freq="1min", inclusive="left")
        closes = price + np.cumsum(rng.normal(0.0, 0.05, len(index)))
        opens = np.concatenate(([price], closes[:-1]))
        spread = np.abs(rng.normal(0.0, 0.03, len(index)))
        frames.append(
            pd.DataFrame(
                {
                    "open": opens,
                    "high": np.maximum(opens, closes) + spread,
                    "low": np.minimum(opens, closes) - spread,
                    "close": closes,
                    "volume": rng.integers(5_000, 50_000, len(index)).astype(np.float64),
                },
                index=index,
            )
        )
        price = float(closes[-1])
    return pd.concat(frames)


Universe = list[tuple[pd.DataFrame, HourlyBars, SessionRange]]


@pytest.fixture(scope="module")
def universe() -> Universe:
    """Per symbol: today's minute bars, the prior sessions' hourly bars, their range."""
    out = []
    for seed in range(SYMBOLS):
        bars = minute_bars(seed)
        today = bars[bars.index >= pd.Timestamp(SESSIONS[-1].isoformat(), tz="UTC")]
        prior_hourly = hourly_arrays(bars[bars.index < today.index[0]])
        prior = prior_sessions_range(
            prior_hourly.high,
            prior_hourly.low,
            prior_hourly.volume,
            prior_hourly.session,
            TODAY,
            WHALE.range_days,
        )
        assert len(today) == 390 and prior is not None and prior.sessions == 20
        out.append((today, prior_hourly, prior))
    return out


def one_tick(universe: Universe) -> list[Signal]:
    signals = []
    for today, _, prior in universe:
        signals.append(scalp_signal(today, SCALP, now=NOW))
        hourly = hourly_arrays(today)
        signals.append(whale_signal(hourly, WHALE, now=NOW, session=TODAY, prior=prior))
    return signals


def one_tick_uncached(universe: Universe) -> list[Signal]:
    signals = []
    for today, prior_hourly, _ in universe:
        signals.append(scalp_signal(today, SCALP, now=NOW))
        hourly = HourlyBars.concat([prior_hourly, hourly_arrays(today)])
        signals.append(whale_signal(hourly, WHALE, now=NOW, session=TODAY))
    return signals


def test_signals_for_20_symbols(benchmark, universe) -> None:  # type: ignore[no-untyped-def]
    signals = one_tick_uncached(universe)  # warm-up: calendar built, imports done
    assert len(signals) == 2 * SYMBOLS
    # Every whale signal really evaluated the 15:30 bar against a full 20-session range.
    assert all("need 60-minute" not in s.reason and "no completed" not in s.reason for s in signals)
    assert all(s.bar is not None for s in signals)
    benchmark.pedantic(one_tick_uncached, args=(universe,), rounds=30, warmup_rounds=3)
    assert median_s(benchmark) <= SIGNALS_TARGET_S


def test_signals_for_20_symbols_with_the_daily_range_kept(benchmark, universe) -> None:  # type: ignore[no-untyped-def]
    assert one_tick(universe) == one_tick_uncached(universe)  # the kept range changes nothing
    benchmark.pedantic(one_tick, args=(universe,), rounds=30, warmup_rounds=3)
    assert median_s(benchmark) <= SIGNALS_TARGET_S
