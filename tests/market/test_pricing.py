"""Option pricing of the simulated market."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradebot.market import pricing


@given(
    spot=st.floats(50, 1000),
    moneyness=st.floats(0.8, 1.2),
    days=st.floats(0.1, 60),
    vol=st.floats(0.05, 1.0),
)
def test_put_call_parity(spot: float, moneyness: float, days: float, vol: float) -> None:
    strike = spot * moneyness
    t = days / 365
    call = pricing.black_scholes(spot, strike, t, vol, "C")
    put = pricing.black_scholes(spot, strike, t, vol, "P")
    parity = spot - strike * math.exp(-pricing.RATE * t)
    # The call is floored at intrinsic (an American call on a non-payer is worth no less).
    if call > max(0.0, spot - strike) + 1e-9:
        assert call - put == pytest.approx(parity, abs=1e-6 * spot)


def test_expired_option_is_worth_its_intrinsic_value() -> None:
    assert pricing.black_scholes(600, 590, 0, 0.2, "C") == 10
    assert pricing.black_scholes(600, 590, -1, 0.2, "P") == 0
    assert pricing.black_scholes(600, 610, 0, 0.2, "P") == 10


def test_quotes_sit_on_the_tick_around_the_value_and_are_at_least_a_tick_wide() -> None:
    tick = Decimal("0.05")
    bid, ask = pricing.bid_ask(1.234, tick, 0.03)
    assert bid % tick == 0 and ask % tick == 0 and bid < Decimal("1.234") < ask
    assert pricing.bid_ask(10.0, Decimal("0.01"), 0.03) == (Decimal("9.85"), Decimal("10.15"))
    # A cheap option is a tick wide: a large share of its value (the liquidity guard refuses it).
    assert pricing.bid_ask(0.104, Decimal("0.01"), 0.03) == (Decimal("0.09"), Decimal("0.11"))


def test_worthless_option_has_no_bid() -> None:
    bid, ask = pricing.bid_ask(0.001, Decimal("0.01"), 0.03)
    assert bid == 0 and ask == Decimal("0.01")


def test_volume_peaks_at_the_money_and_grows_through_the_day() -> None:
    atm = pricing.option_volume(10_000, 600, 600, 0.5)
    otm = pricing.option_volume(10_000, 600, 630, 0.5)
    assert atm == 5000 and otm < atm
    assert pricing.option_volume(10_000, 600, 600, 1.0) == 10_000
