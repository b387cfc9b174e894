"""The venue's fill search (issue 19): minutes in which no working order can fill are passed
over, found with one vectorised pass over the session; the fills are exactly those of pricing
every point of every minute."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebot.core.instruments import OptionContract
from tradebot.market import make_market
from tradebot.market.exchange import SimExchange, SimOrder
from tradebot.market.model import MarketModel

DAY = date(2025, 7, 1)
OPEN = datetime(2025, 7, 1, 13, 30, tzinfo=UTC)


class _NoSearch(MarketModel):
    """The same market without vectorised prices: every point is priced one by one."""

    def option_price_bounds(self, *args: object, **kwargs: object) -> None:
        return None


def _contract(market: MarketModel, symbol: str, moneyness: float, right: str) -> OptionContract:
    spot = market.last_price(symbol, OPEN + timedelta(minutes=5))
    assert spot is not None
    strike = min(market.strikes(symbol, DAY), key=lambda k: abs(float(k) - spot * moneyness))
    expiry = market.expiries(DAY, symbol)[1]
    contract = market.option(symbol, expiry, strike, right, DAY)  # type: ignore[arg-type]
    assert contract is not None
    return contract


def _replay(market: MarketModel, plan: list[tuple[int, str, str, float, float, int]]) -> list[str]:
    """Submit brackets at the planned minutes, advance minute by minute to the close; every
    fill and status as text."""
    ex = SimExchange(market, cash=Decimal(100_000))
    start = OPEN + timedelta(minutes=1)
    ex.advance(start)
    out: list[str] = []
    order_id = 1
    by_minute: dict[int, list[tuple[str, str, float, float, int]]] = {}
    for minute, symbol, right, moneyness, width, hold in plan:
        by_minute.setdefault(minute, []).append((symbol, right, moneyness, width, hold))
    for minute in range(2, 390):
        now = OPEN + timedelta(minutes=minute, seconds=7)
        events = ex.advance(now)
        for symbol, right, moneyness, width, _hold in by_minute.get(minute, []):
            contract = _contract(market, symbol, moneyness, right)
            quote = ex.quote(contract, now)
            if quote is None or quote.bid <= 0:
                continue
            tick = contract.tick
            entry = quote.ask
            tp = ((entry * Decimal(1 + width)) / tick).quantize(Decimal(1)) * tick
            sl = max(tick, ((entry * Decimal(1 - width / 2)) / tick).quantize(Decimal(1)) * tick)
            parent = SimOrder(order_id, contract, "BUY", 1, "LMT", limit=entry - tick)
            legs = [
                SimOrder(order_id + 1, contract, "SELL", 1, "LMT", limit=tp, parent_id=order_id),
                SimOrder(order_id + 2, contract, "SELL", 1, "STP", stop=sl, parent_id=order_id),
            ]
            order_id += 3
            for order in (parent, *legs):
                order.tif = "GTC"
                events += ex.submit(order, now)
        for e in events:
            out.append(repr(e))
    out.append(repr(ex.advance(OPEN + timedelta(hours=7))))
    return out


orders = st.lists(
    st.tuples(
        st.integers(2, 380),
        st.sampled_from(["SPY", "TSLA", "IWM"]),
        st.sampled_from(["C", "P"]),
        st.floats(0.97, 1.03),
        st.floats(0.05, 0.6),
        st.integers(0, 1),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(1, 50), plan=orders)
def test_the_search_changes_no_fill(
    seed: int, plan: list[tuple[int, str, str, float, float, int]]
) -> None:
    fast = make_market(seed=seed)
    slow = _NoSearch(fast.source, fast.calendar)
    assert _replay(fast, plan) == _replay(slow, plan)


def test_the_search_passes_over_minutes_and_keeps_the_fill_minute() -> None:
    """A take-profit far above the market: every minute is passed over; one the market reaches
    is a candidate, and the bounds hold the exact bid at every point."""
    market = make_market(seed=3)
    ex = SimExchange(market, cash=Decimal(100_000))
    contract = _contract(market, "SPY", 1.0, "C")
    now = OPEN + timedelta(minutes=10)
    ex.advance(now)
    quote = ex.quote(contract, now)
    assert quote is not None
    ex.submit(SimOrder(1, contract, "BUY", 1, "LMT", limit=quote.ask + contract.tick), now)
    far = SimOrder(2, contract, "SELL", 1, "LMT", limit=quote.ask * 50)
    ex.submit(far, now)
    assert len(ex.fill_candidates(DAY)) == 0  # type: ignore[arg-type]
    starts, _, _, lo, _ = market.session_minute_bars("SPY", DAY)
    t_ns = starts + 20_000_000_000
    bounds = market.option_price_bounds(contract, DAY, t_ns, lo)
    assert bounds is not None
    for i in range(0, len(t_ns), 13):
        t = datetime.fromtimestamp(int(t_ns[i]) // 1_000_000_000, UTC) + timedelta(seconds=0)
        bid, ask = market.option_bid_ask(contract, float(lo[i]), t)
        assert float(bid) <= max(0.0, bounds[0][i]) + 1e-9  # the bid is rounded down
        assert float(ask) >= bounds[2][i] - 1e-9  # the ask up
    assert np.all(bounds[1] <= bounds[0]) and np.all(bounds[2] <= bounds[3])
