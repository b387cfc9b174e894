"""The implied-volatility model of the simulated market (`tradebot.market.volatility`) and how
`MarketModel` feeds it: no look-ahead, the trading-time clock, floats and arrays alike."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.data_loaders import minute_frame
from tradebot.config import SimPricingConfig
from tradebot.core.instruments import OptionContract
from tradebot.market import pricing
from tradebot.market.calibration import FrameBars
from tradebot.market.model import MarketModel
from tradebot.market.volatility import (
    MIN_WEIGHT,
    MIN_YEARS,
    VOL_CAP,
    VOL_FLOOR,
    atm_vol,
    pricing_params,
    smile_vol,
    trading_years,
    variance_fraction,
)

NY = "America/New_York"
PARAMS = pricing_params()
DAY1, DAY2 = date(2025, 7, 1), date(2025, 7, 2)


def _bars(seed: int, days: tuple[date, ...] = (DAY1, DAY2)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frames = []
    price = 600.0
    for day in days:
        steps = rng.normal(0, 0.0006, 390)
        closes = price * np.exp(np.cumsum(steps))
        frames.append(minute_frame(pd.Timestamp(f"{day} 09:30", tz=NY), closes))
        price = float(closes[-1])
    return pd.concat(frames)


def _market(frame: pd.DataFrame) -> MarketModel:
    return MarketModel(FrameBars({"SPY": frame}))


BASE = _bars(7)
BASE_MARKET = _market(BASE)


@settings(max_examples=25, deadline=None)
@given(
    minute=st.integers(0, 2 * 390 - 1),
    second=st.integers(0, 59),
    noise=st.floats(0.5, 2.0),
)
def test_no_look_ahead_inputs_at_t_use_bars_up_to_t_only(
    minute: int, second: int, noise: float
) -> None:
    """Everything the option price at t depends on — the realized variance, the at-the-money
    vol, the value — is unchanged when every bar not completed by t is replaced by another."""
    frame = BASE
    t = (frame.index[minute] + pd.Timedelta(seconds=second)).to_pydatetime().astimezone(UTC)
    later = frame.index > pd.Timestamp(t) - pd.Timedelta(minutes=1)  # not completed by t
    changed = frame.copy()
    scale = np.linspace(noise, 1 / noise, int(later.sum()))
    for column in ("open", "high", "low", "close"):
        changed.loc[later, column] = frame.loc[later, column] * scale
    changed.loc[later, "high"] = changed.loc[later, ["open", "high", "low", "close"]].max(axis=1)
    changed.loc[later, "low"] = changed.loc[later, ["open", "high", "low", "close"]].min(axis=1)
    a, b = BASE_MARKET, _market(changed)
    assert a.realized("SPY", t) == b.realized("SPY", t)
    assert a.atm_volatility("SPY", t) == b.atm_volatility("SPY", t)
    contract = OptionContract("SPY", DAY2 + timedelta(days=1), Decimal(600), "C")
    assert a.option_value(contract, 600.0, t) == b.option_value(contract, 600.0, t)


def test_realized_variance_counts_completed_bars_and_earlier_sessions() -> None:
    frame = _bars(1)
    market = _market(frame)
    open2 = datetime(2025, 7, 2, 13, 30, tzinfo=UTC)
    closes = frame["close"].to_numpy()
    opens = frame["open"].to_numpy()
    day1 = np.log(closes[:390] / np.concatenate((opens[:1], closes[:389])))
    assert market.realized("SPY", open2).sum_sq == pytest.approx(float(np.sum(day1**2)))
    assert market.realized("SPY", open2).weight == pytest.approx(1.0)
    ten = open2 + timedelta(minutes=30, seconds=59)  # 30 bars completed
    day2 = np.log(closes[390:420] / np.concatenate((opens[390:391], closes[390:419])))
    seen = market.realized("SPY", ten)
    assert seen.sum_sq == pytest.approx(float(np.sum(day1**2) + np.sum(day2**2)))
    assert seen.weight == pytest.approx(1 + variance_fraction(30 / 390, PARAMS.open_close))


def test_the_assumed_vol_until_a_tenth_of_a_session_then_premium_times_realized() -> None:
    frame = _bars(2, (DAY1,))
    market = _market(frame)
    first = datetime(2025, 7, 1, 13, 31, tzinfo=UTC)
    assert market.atm_volatility("SPY", first) == 0.16  # SPY's assumed vol (profiles.py)
    late = datetime(2025, 7, 1, 19, 0, tzinfo=UTC)
    seen = market.realized("SPY", late)
    assert seen.weight >= MIN_WEIGHT
    expected = PARAMS.index_premium * math.sqrt(252 * seen.sum_sq / seen.weight)
    assert market.atm_volatility("SPY", late) == pytest.approx(expected)


def test_atm_vol_is_clamped_and_the_same_on_floats_and_arrays() -> None:
    assert atm_vol(1.0, 1.0, 0.2, 1.5) == VOL_CAP
    assert atm_vol(0.0, 1.0, 0.2, 1.5) == VOL_FLOOR
    assert atm_vol(1.0, MIN_WEIGHT / 2, 0.2, 1.5) == 0.2
    sums, weights = np.array([1.0, 0.0, 1e-4, 1.0]), np.array([1.0, 1.0, 1.0, 0.01])
    arrays = atm_vol(sums, weights, np.full(4, 0.2), np.full(4, 1.5))
    floats = [atm_vol(float(s), float(w), 0.2, 1.5) for s, w in zip(sums, weights, strict=True)]
    assert arrays.tolist() == pytest.approx(floats)


@given(x=st.floats(0, 1), k=st.floats(0, 50))
def test_variance_fraction_is_a_u_shaped_share_of_the_session(x: float, k: float) -> None:
    assert variance_fraction(0.0, k) == pytest.approx(0.0, abs=1e-12)
    assert variance_fraction(1.0, k) == pytest.approx(1.0)
    assert variance_fraction(x, k) + variance_fraction(1 - x, k) == pytest.approx(1.0)
    assert variance_fraction(min(1.0, x + 0.01), k) >= variance_fraction(x, k)
    assert variance_fraction(x, 0.0) == pytest.approx(x)
    if k > 0.01 and 0.05 < x < 0.5:  # the open carries more than its share
        assert variance_fraction(x, k) > x


def test_trading_time_to_expiry() -> None:
    market = _market(_bars(3))
    friday_close = datetime(2025, 7, 11, 20, 0, tzinfo=UTC)
    # Friday after the close → Monday's close: one session, the weekend adds nothing.
    assert market.years_to_expiry(friday_close, date(2025, 7, 14))[0] == pytest.approx(1 / 252)
    saturday = datetime(2025, 7, 12, 15, 0, tzinfo=UTC)
    assert market.clock_parts(saturday, date(2025, 7, 14)) == (0.0, pytest.approx(1.0))
    monday_open = datetime(2025, 7, 14, 13, 30, tzinfo=UTC)
    assert market.clock_parts(monday_open, date(2025, 7, 15)) == (1.0, pytest.approx(1.0))
    # The 2015-12-24 half day (09:30–13:00) counts 210 / 390 of a session.
    before = datetime(2015, 12, 23, 21, 0, tzinfo=UTC)
    assert market.clock_parts(before, date(2015, 12, 24))[1] == pytest.approx(210 / 390)
    # A 0DTE at 15:00 has what its last hour can move (more than 1/6.5 of a day: the close).
    three = datetime(2025, 7, 14, 19, 0, tzinfo=UTC)
    left, after = market.clock_parts(three, date(2025, 7, 14))
    assert after == 0 and 1 / 6.5 < left < 0.5
    assert trading_years(0.0, 0.0) == MIN_YEARS
    assert market.years_to_expiry(datetime(2025, 7, 14, 20, 0, tzinfo=UTC), date(2025, 7, 14)) == (
        0.0,
        0.0,
    )


@settings(max_examples=60)
@given(
    atm=st.floats(0.05, 1.0),
    m=st.floats(-0.2, 0.2),
    sessions=st.floats(0.01, 40),
    skew=st.floats(-0.5, 0.5),
    smile=st.floats(0, 0.3),
    term=st.floats(0, 1),
)
def test_smile_floats_and_arrays_agree_and_stay_within_bounds(
    atm: float, m: float, sessions: float, skew: float, smile: float, term: float
) -> None:
    years = sessions / 252
    one = smile_vol(atm, m, years, skew, smile, term)
    many = smile_vol(
        np.array([atm]), np.array([m]), np.array([years]), np.array([skew]), np.array([smile]), term
    )
    assert many[0] == pytest.approx(one, rel=1e-12)
    assert 0.5 * atm - 1e-12 <= one <= 4 * atm + 1e-12
    assert smile_vol(atm, 0.0, years, skew, smile, term) == pytest.approx(atm)


@settings(max_examples=80)
@given(
    spot=st.floats(20, 1000),
    moneyness=st.floats(0.8, 1.2),
    years=st.floats(1e-5, 0.3),
    vol=st.floats(0.03, 2.0),
    call=st.booleans(),
)
def test_black_scholes_on_arrays_is_the_scalar_formula(
    spot: float, moneyness: float, years: float, vol: float, call: bool
) -> None:
    strike = spot * moneyness
    scalar = pricing.black_scholes(spot, strike, years, vol, "C" if call else "P", rate_years=years)
    array = pricing.black_scholes_array(
        np.array([spot]),
        np.array([strike]),
        np.array([years]),
        np.array([vol]),
        np.array([call]),
        np.array([years]),
    )[0]
    assert array == pytest.approx(scalar, abs=2e-7 * spot)


def test_the_config_defaults_are_the_model_defaults() -> None:
    assert pricing_params(SimPricingConfig()) == PARAMS
    changed = pricing_params(SimPricingConfig(index_premium=Decimal("1.2")))
    assert changed.index_premium == 1.2 and changed.premium("SPY") == 1.2
    assert changed.premium("AAPL") == PARAMS.stock_premium


def test_the_example_config_documents_the_calibrated_defaults() -> None:
    """config.toml's `[broker.sim.pricing]` shows the values the model runs with."""
    import tomllib
    from pathlib import Path

    example = Path(__file__).resolve().parents[2] / "config.toml"
    text = example.read_text(encoding="utf-8")
    written = tomllib.loads(text, parse_float=Decimal)["broker"]["sim"]["pricing"]
    assert SimPricingConfig(**written) == SimPricingConfig()
    assert set(written) == set(SimPricingConfig.model_fields)
