"""Indicators against independent oracles: TA-Lib for RSI/EMA, a plain groupby for VWAP, the
exchange's own per-bar VWAP, and values pinned in ../shared/reference/data.md."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest
import talib

from tests.core.data_loaders import (
    NEW_YORK,
    dawsh2_spy,
    minute_frame,
    pratik_spy,
    synthetic_minutes,
)
from tradebot.core.indicators import (
    HourlyBars,
    ema,
    ema_last,
    hourly_arrays,
    hourly_bars,
    prior_sessions_range,
    rsi,
    rsi_last,
    session_vwap,
)
from tradebot.core.sessions import rth_bars

PERIODS = (2, 9, 14, 20, 21)


def ny(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=NEW_YORK)


def reference_vwap(bars: pd.DataFrame) -> np.ndarray:
    """data.md's oracle: tp = (H+L+C)/3; cumulative tp·V / cumulative V per session."""
    tp = (bars["high"] + bars["low"] + bars["close"]) / 3
    pv = (tp * bars["volume"]).groupby(bars["session"]).cumsum()
    return (pv / bars["volume"].groupby(bars["session"]).cumsum()).to_numpy()


def assert_matches_talib(closes: np.ndarray) -> None:
    for n in PERIODS:
        ours, oracle = rsi(closes, n), talib.RSI(closes, n)
        assert np.array_equal(np.isnan(ours), np.isnan(oracle)), f"RSI{n} NaN layout"
        assert np.isnan(ours[:n]).all() and not np.isnan(ours[n:]).any()
        np.testing.assert_allclose(ours[n:], oracle[n:], rtol=0, atol=1e-9, err_msg=f"RSI{n}")
        ours, oracle = ema(closes, n), talib.EMA(closes, n)
        assert np.array_equal(np.isnan(ours), np.isnan(oracle)), f"EMA{n} NaN layout"
        assert np.isnan(ours[: n - 1]).all() and not np.isnan(ours[n - 1 :]).any()
        np.testing.assert_allclose(ours[n - 1 :], oracle[n - 1 :], rtol=0, atol=1e-9)


def test_rsi_and_ema_match_talib_on_the_synthetic_series() -> None:
    bars = synthetic_minutes()
    assert_matches_talib(bars["close"].to_numpy())
    assert_matches_talib(rth_bars(bars)["close"].to_numpy())


@pytest.mark.shared_data
def test_rsi_and_ema_match_talib_on_real_spy() -> None:
    closes = rth_bars(pratik_spy())["close"].to_numpy()
    assert len(closes) == 8010
    assert_matches_talib(closes)


def assert_last_values_match(closes: np.ndarray, lengths: list[int]) -> None:
    for k in lengths:
        for n in (9, 14, 21):
            head = closes[:k]
            assert ema_last(head, n) == pytest.approx(talib.EMA(head, n)[-1], abs=1e-9, nan_ok=True)
            assert rsi_last(head, n) == pytest.approx(talib.RSI(head, n)[-1], abs=1e-9, nan_ok=True)
            assert ema_last(head, n) == pytest.approx(ema(head, n)[-1], abs=1e-9, nan_ok=True)


def test_closed_form_last_values_match_the_series() -> None:
    closes = rth_bars(synthetic_minutes())["close"].to_numpy()
    assert_last_values_match(closes, [*range(1, 60), 390, len(closes)])
    assert np.isnan(ema_last(closes[:8], 9)) and not np.isnan(ema_last(closes[:9], 9))
    assert np.isnan(rsi_last(closes[:14], 14)) and not np.isnan(rsi_last(closes[:15], 14))
    assert np.isnan(rsi_last(np.full(30, 100.0), 14))


@pytest.mark.shared_data
def test_closed_form_last_values_on_real_spy() -> None:
    # Up to the whole file (19,953 bars, extended hours included): the geometric weights
    # underflow harmlessly past a few hundred bars.
    closes = pratik_spy()["close"].to_numpy()
    assert_last_values_match(closes, [15, 31, 390, 1000, 8190, len(closes)])


def test_short_flat_and_bad_input() -> None:
    assert np.isnan(rsi(np.arange(14.0), 14)).all()  # 14 values: first RSI14 is at index 14
    assert not np.isnan(rsi(np.arange(15.0), 14)[14])
    assert np.isnan(ema(np.arange(8.0), 9)).all()
    # No price change at all: TA-Lib prints 0, we say undefined (NaN) so no rule can fire.
    flat = np.full(30, 100.0)
    assert talib.RSI(flat, 14)[-1] == 0.0
    assert np.isnan(rsi(flat, 14)[14:]).all()
    assert rsi(np.arange(30.0), 14)[-1] == 100.0
    with pytest.raises(ValueError, match="NaN"):
        rsi(np.array([1.0, np.nan, 2.0] * 10), 14)
    with pytest.raises(ValueError, match="at least 1"):
        ema(np.arange(5.0), 0)


def test_vwap_equals_the_per_session_reference_on_synthetic_bars() -> None:
    bars = rth_bars(synthetic_minutes())
    ours = session_vwap(bars["high"], bars["low"], bars["close"], bars["volume"], bars["session"])
    np.testing.assert_allclose(ours, reference_vwap(bars), rtol=1e-12, atol=0)
    # It resets at each session open: the first bar's VWAP is its own typical price.
    first = bars.index.get_loc(pd.Timestamp("2025-07-03 13:30", tz="UTC"))
    row = bars.iloc[first]
    assert ours[first] == pytest.approx((row.high + row.low + row.close) / 3, abs=1e-12)


def test_vwap_is_undefined_until_volume_trades() -> None:
    bars = minute_frame(ny("2025-07-02 09:30"), np.array([10.0, 11.0, 12.0]))
    bars["volume"] = [0.0, 0.0, 5.0]
    out = session_vwap(bars["high"], bars["low"], bars["close"], bars["volume"], [1, 1, 1])
    assert np.isnan(out[:2]).all()
    assert out[2] == pytest.approx((12.01 + 10.99 + 12.0) / 3)  # the only bar with volume


@pytest.mark.shared_data
def test_pinned_values_from_data_md_before_the_early_close() -> None:
    # data.md pinned these with a NAIVE 09:30–16:00 filter, which also keeps the 2025-07-03
    # after-close bars. Before 07-03 13:00 both filters see the same bars, so they must agree.
    bars = rth_bars(pratik_spy())
    closes = bars["close"].to_numpy()
    vwap = session_vwap(bars["high"], bars["low"], bars["close"], bars["volume"], bars["session"])
    rsi14, ema20 = rsi(closes, 14), ema(closes, 20)
    local = bars.index.tz_convert(NEW_YORK)
    pinned = {
        "2025-07-01 09:30": (616.59, 616.528333, np.nan, np.nan),
        "2025-07-01 10:00": (617.29, 616.987055, 58.044345, 617.183213),
        "2025-07-01 15:59": (617.56, 617.438307, 37.329461, 617.935262),
    }
    for stamp, (close, v, r, e) in pinned.items():
        i = local.get_loc(ny(stamp))
        assert closes[i] == close
        assert vwap[i] == pytest.approx(v, abs=5e-7)
        assert rsi14[i] == pytest.approx(r, abs=5e-7, nan_ok=True)
        assert ema20[i] == pytest.approx(e, abs=5e-7, nan_ok=True)
    # VWAP is session-local, so the 07-30 close value is unaffected by the filter difference.
    assert vwap[local.get_loc(ny("2025-07-30 15:59"))] == pytest.approx(634.668398, abs=5e-7)


@pytest.mark.shared_data
def test_calendar_filter_changes_indicators_after_the_early_close() -> None:
    # Where our filter differs from data.md's naive one: the 07-03 after-close bars feed the
    # naive series, so RSI right after the holiday differs; Wilder smoothing forgets them by 07-30.
    raw = pratik_spy()
    naive = raw.between_time("09:30", "15:59")
    ours = rth_bars(raw)
    naive_rsi = pd.Series(talib.RSI(naive["close"].to_numpy(), 14), index=naive.index)
    our_rsi = pd.Series(rsi(ours["close"].to_numpy(), 14), index=ours.index.tz_convert(NEW_YORK))
    after_holiday = ny("2025-07-07 09:45")
    assert abs(naive_rsi[after_holiday] - our_rsi[after_holiday]) > 0.01
    late = ny("2025-07-30 15:59")
    assert our_rsi[late] == pytest.approx(73.090134, abs=5e-7)
    assert naive_rsi[late] == pytest.approx(our_rsi[late], abs=1e-6)


@pytest.mark.shared_data
def test_typical_price_vwap_tracks_the_exchange_vwap() -> None:
    # The file's per-bar `vwap` is the true traded VWAP of each minute, so
    # Σ(vwap·V)/ΣV per session is the exact session VWAP. (H+L+C)/3 is an approximation of each
    # bar's traded price: data.md measured up to $0.14 apart on the first bar, $0.002–0.003 at
    # the close. Bounds here: $0.15 anywhere, $0.02 after the first 30 minutes, $0.005 at the
    # close (measured: 0.141, 0.0106, 0.0017/0.0034).
    bars = rth_bars(dawsh2_spy())
    ours = session_vwap(bars["high"], bars["low"], bars["close"], bars["volume"], bars["session"])
    pv = (bars["vwap"] * bars["volume"]).groupby(bars["session"]).cumsum()
    exact = (pv / bars["volume"].groupby(bars["session"]).cumsum()).to_numpy()
    diff = np.abs(ours - exact)
    minute = bars.groupby("session").cumcount().to_numpy()
    assert diff.max() <= 0.15
    assert diff[minute >= 30].max() <= 0.02
    closes = np.flatnonzero(minute == 389)
    assert len(closes) == 2
    assert diff[closes].max() <= 0.005


def test_hourly_bars_are_session_anchored_with_a_short_early_close_bar() -> None:
    minutes = synthetic_minutes()
    hourly = hourly_bars(minutes)
    local = hourly.index.tz_convert(NEW_YORK)
    day2 = [t.strftime("%H:%M") for t in local[hourly["session"] == pd.Timestamp("2025-07-02")]]
    assert day2 == ["09:30", "10:30", "11:30", "12:30", "13:30", "14:30", "15:30"]
    early = hourly[hourly["session"] == pd.Timestamp("2025-07-03")]
    assert [t.strftime("%H:%M") for t in early.index.tz_convert(NEW_YORK)] == [
        "09:30",
        "10:30",
        "11:30",
        "12:30",
    ]
    last = early.iloc[-1]
    assert last["end"] == pd.Timestamp("2025-07-03 13:00", tz=NEW_YORK)
    assert hourly.iloc[6]["end"] == pd.Timestamp("2025-07-02 16:00", tz=NEW_YORK)
    # Aggregation equals a straightforward resample of the RTH minutes (data.md's convention).
    rth = rth_bars(minutes)
    local_rth = rth.set_index(rth.index.tz_convert(NEW_YORK))
    expected = (
        local_rth[["open", "high", "low", "close", "volume"]]
        .resample("60min", origin="start_day", offset="30min")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna()
        .rename_axis(None)
    )
    got = hourly.set_index(local)[["open", "high", "low", "close", "volume"]]
    pd.testing.assert_frame_equal(got, expected, check_freq=False, check_index_type=False)
    # The 13:58 after-close bad print (Low 431.00) never reaches an hourly bar.
    assert hourly["low"].min() > 480


def test_hourly_arrays_are_the_frame_without_pandas() -> None:
    minutes = synthetic_minutes()
    arrays = hourly_arrays(minutes)
    again = HourlyBars.from_frame(hourly_bars(minutes))
    for field in ("start_ns", "end_ns", "session", "open", "high", "low", "close", "volume"):
        assert np.array_equal(getattr(arrays, field), getattr(again, field)), field
    assert len(arrays) == 11
    day2, day3 = minutes.iloc[:435], minutes.iloc[435:]
    joined = HourlyBars.concat([hourly_arrays(day2), hourly_arrays(day3)])
    assert np.array_equal(joined.close, arrays.close)
    assert np.array_equal(joined.session, arrays.session)
    with pytest.raises(ValueError, match="lack end"):
        HourlyBars.from_frame(hourly_bars(minutes).drop(columns="end"))


def test_hourly_bar_of_an_hour_in_progress_has_its_full_end() -> None:
    minutes = minute_frame(ny("2025-07-02 09:30"), 100 + np.arange(75) * 0.01)
    hourly = hourly_bars(minutes)
    assert len(hourly) == 2
    assert hourly.iloc[1]["end"] == pd.Timestamp("2025-07-02 11:30", tz=NEW_YORK)
    assert hourly.iloc[1]["volume"] == 15 * 1000.0


@pytest.mark.shared_data
def test_real_hourly_bars_and_last_bar_rsi() -> None:
    hourly = hourly_bars(pratik_spy())
    assert len(hourly) == 20 * 7 + 4
    first = hourly.index.tz_convert(NEW_YORK).to_series().groupby(hourly["session"].to_numpy())
    assert all(t.strftime("%H:%M") == "09:30" for t in first.min())
    # data.md: last-bar RSI14 on session-aligned hourly bars is 47.138 with the naive filter
    # (147 bars, the 07-03 after-close hours included); ours has 144 bars and 47.13852.
    assert rsi(hourly["close"].to_numpy(), 14)[-1] == pytest.approx(47.13852, abs=5e-6)


@pytest.mark.shared_data
def test_prior_20_sessions_range_has_no_bad_print_and_no_look_ahead() -> None:
    raw = pratik_spy()
    hourly = hourly_bars(raw)
    args = (hourly["high"], hourly["low"], hourly["volume"], hourly["session"])
    got = prior_sessions_range(*args, date(2025, 7, 30), 20)
    assert got is not None
    assert (got.first_session, got.last_session, got.sessions) == (
        date(2025, 7, 1),
        date(2025, 7, 29),
        20,
    )
    assert got.bars == 19 * 7 + 4
    # Independent check on the minute bars: RTH = 09:30–15:59 on normal days, 09:30–12:59 on
    # the 07-03 early close. The naive filter's "20-day low" is the 581.8076 bad print.
    naive = raw.between_time("09:30", "15:59")
    window = naive[(naive.index < ny("2025-07-30 00:00"))]
    assert window["low"].min() == pytest.approx(581.8076)
    real = window[~((window.index.date == date(2025, 7, 3)) & (window.index.hour >= 13))]
    assert got.low == pytest.approx(real["low"].min()) == pytest.approx(615.52)
    assert got.high == pytest.approx(real["high"].max()) == pytest.approx(638.67)
    assert got.avg_volume == pytest.approx(real["volume"].sum() / got.bars)
    # No look-ahead: whatever happens on 07-30 cannot move the range for 07-30.
    shocked = hourly.copy()
    today = shocked["session"] == pd.Timestamp("2025-07-30")
    shocked.loc[today, "high"] = 9_999.0
    shocked.loc[today, "low"] = 1.0
    again = prior_sessions_range(
        shocked["high"],
        shocked["low"],
        shocked["volume"],
        shocked["session"],
        date(2025, 7, 30),
        20,
    )
    assert again == got


def test_prior_range_on_synthetic_bars_and_too_few_sessions() -> None:
    hourly = hourly_bars(synthetic_minutes())
    args = (hourly["high"], hourly["low"], hourly["volume"], hourly["session"])
    both = prior_sessions_range(*args, date(2025, 7, 7), 2)
    assert both is not None and both.bars == 7 + 4
    assert both.low > 480  # the after-close bad print is not in it
    assert prior_sessions_range(*args, date(2025, 7, 7), 3) is None
    only_first = prior_sessions_range(*args, date(2025, 7, 3), 1)
    assert only_first is not None and only_first.last_session == date(2025, 7, 2)
