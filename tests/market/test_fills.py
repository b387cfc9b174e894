"""Fill rules: the touch for marketable orders, the limit for resting ones, stops at the bid."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from tradebot.market.fills import commission, fill_price, holder_path


@pytest.mark.parametrize(
    ("action", "kind", "limit", "stop", "bid", "ask", "resting", "expected"),
    [
        ("BUY", "MKT", None, None, "1.00", "1.05", False, "1.05"),  # buy at the ask
        ("SELL", "MKT", None, None, "1.00", "1.05", False, "1.00"),  # sell at the bid
        ("SELL", "MKT", None, None, "0", "0.05", False, None),  # no bid, no sale
        ("BUY", "LMT", "1.02", None, "1.00", "1.05", False, None),  # limit at mid rests
        ("BUY", "LMT", "1.02", None, "0.98", "1.01", True, "1.02"),  # resting: its limit
        ("BUY", "LMT", "1.10", None, "1.00", "1.05", False, "1.05"),  # marketable: the touch
        ("SELL", "LMT", "2.00", None, "1.99", "2.05", True, None),
        ("SELL", "LMT", "2.00", None, "2.01", "2.05", True, "2.00"),
        ("SELL", "LMT", "2.00", None, "2.10", "2.15", False, "2.10"),
        ("SELL", "STP", None, "0.50", "0.51", "0.55", True, None),
        ("SELL", "STP", None, "0.50", "0.45", "0.49", True, "0.45"),  # slips to the bid
        ("BUY", "STP", None, "1.00", "0.95", "1.01", True, "1.01"),
    ],
)
def test_fill_price(
    action: str,
    kind: str,
    limit: str | None,
    stop: str | None,
    bid: str,
    ask: str,
    resting: bool,
    expected: str | None,
) -> None:
    got = fill_price(
        action,  # type: ignore[arg-type]
        kind,  # type: ignore[arg-type]
        limit=None if limit is None else D(limit),
        stop=None if stop is None else D(stop),
        bid=D(bid),
        ask=D(ask),
        resting=resting,
    )
    assert got == (None if expected is None else D(expected))


def test_the_adverse_extreme_comes_first_for_the_holder() -> None:
    assert holder_path(10, 12, 9, 11, "C") == [10, 9, 12, 11]
    assert holder_path(10, 12, 9, 11, "P") == [10, 12, 9, 11]


def test_commission_has_a_minimum_per_order() -> None:
    assert commission(1, D("0.65"), D("1.00")) == D("1.00")
    assert commission(3, D("0.65"), D("1.00")) == D("1.95")
    assert commission(0, D("0.65"), D("1.00")) == 0
