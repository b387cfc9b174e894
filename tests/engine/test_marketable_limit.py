"""The price of a closing sell retried after a refused market order (engine/exits.py)."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from tradebot.engine.exits import marketable_limit

TICKS = st.sampled_from([Decimal("0.01"), Decimal("0.05"), Decimal("0.10")])
BIDS = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(500), places=2)


@given(bid=BIDS, tick=TICKS)
def test_a_marketable_limit_meets_the_bid_on_the_tick(bid: Decimal, tick: Decimal) -> None:
    price = marketable_limit(bid, tick)
    assert price % tick == 0 and price >= tick
    assert price <= max(bid, tick)  # at or under the bid: it sells at the bid now


def test_without_a_bid_it_is_one_tick() -> None:
    assert marketable_limit(None, Decimal("0.05")) == Decimal("0.05")
    assert marketable_limit(Decimal(0), Decimal("0.01")) == Decimal("0.01")
    assert marketable_limit(Decimal("3.40"), Decimal("0.05")) == Decimal("3.05")
