"""Price ladders (core/ticks.py): IB's market rules, interactivebrokers.github.io/tws-api/
minimum_increment.html — the increment of the band whose low edge is the highest at or below
the price; US penny-program options $0.01 below $3 and $0.05 from $3, SPY/QQQ/IWM $0.01 at
every price, other options $0.05 below $3 and $0.10 from $3."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tradebot.core.sizing import bracket_prices
from tradebot.core.ticks import NON_PENNY, PENNY_ALL, PENNY_PROGRAM, TickLadder

D = Decimal
LADDERS = st.sampled_from([PENNY_ALL, PENNY_PROGRAM, NON_PENNY, TickLadder.flat(D("0.05"))])
PRICES = st.decimals(min_value=D("0.01"), max_value=D(80), places=4)


def test_the_increment_depends_on_the_price() -> None:
    assert PENNY_PROGRAM.increment(D("3.40")) == D("0.05")
    assert PENNY_PROGRAM.increment(D("3.00")) == D("0.05")
    assert PENNY_PROGRAM.increment(D("2.99")) == D("0.01")
    assert PENNY_ALL.increment(D("3.40")) == D("0.01")
    assert NON_PENNY.increment(D("3.40")) == D("0.10")
    assert PENNY_PROGRAM.contains(D("3.40")) and not PENNY_PROGRAM.contains(D("3.42"))
    assert PENNY_ALL.contains(D("3.42")) and PENNY_PROGRAM.contains(D("2.97"))
    assert not NON_PENNY.contains(D("2.97")) and not PENNY_ALL.contains(D(0))


def test_rounding_across_an_edge_lands_on_the_coarser_band() -> None:
    assert PENNY_PROGRAM.round(D("2.999")) == D("3.00")
    assert PENNY_PROGRAM.up(D("3.01")) == D("3.05")
    assert PENNY_PROGRAM.down(D("3.04")) == D("3.00")
    assert NON_PENNY.round(D("2.98")) == D("3.00")
    assert NON_PENNY.next_above(D("2.95")) == D("3.00")
    assert NON_PENNY.next_above(D("3.00")) == D("3.10")
    assert TickLadder.of([(0.0, 0.01), (3.0, 0.05)]) == PENNY_PROGRAM  # from ib_async's floats


@given(ladder=LADDERS, price=PRICES)
def test_rounded_prices_are_on_the_ladder_and_bracket_the_price(
    ladder: TickLadder, price: Decimal
) -> None:
    down, up, near = ladder.down(price), ladder.up(price), ladder.round(price)
    assert ladder.contains(up)
    for p in (down, near):  # 0 when the price is under half of the lowest increment
        assert p == 0 or ladder.contains(p)
    assert down <= price <= up
    assert ladder.next_above(price) > price and ladder.contains(ladder.next_above(price))


@given(ladder=LADDERS, premium=st.decimals(min_value=D("0.2"), max_value=D(40), places=2))
def test_bracket_prices_are_all_on_the_ladder(ladder: TickLadder, premium: Decimal) -> None:
    try:
        prices = bracket_prices(premium, ladder, D(100), D(50))
    except ValueError:
        return  # no stop fits: no trade
    for p in (prices.entry, prices.take_profit, prices.stop_loss):
        assert ladder.contains(p), (p, ladder.describe())
    assert prices.stop_loss < prices.entry < prices.take_profit


def test_a_penny_program_option_at_3_40_is_priced_on_nickels() -> None:
    aapl = bracket_prices(D("3.42"), PENNY_PROGRAM, D(100), D(50))
    assert (aapl.entry, aapl.take_profit, aapl.stop_loss) == (D("3.40"), D("6.80"), D("1.70"))
    spy = bracket_prices(D("3.42"), PENNY_ALL, D(100), D(50))
    assert (spy.entry, spy.take_profit, spy.stop_loss) == (D("3.42"), D("6.84"), D("1.71"))


def test_a_bad_ladder_is_refused() -> None:
    with pytest.raises(ValueError):
        TickLadder(((D(1), D("0.01")),))
    with pytest.raises(ValueError):
        TickLadder(((D(0), D(0)),))
