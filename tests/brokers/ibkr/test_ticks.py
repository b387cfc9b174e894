"""Prices on IB's real tick ladder through the adapter (market rules, cached), at 157 and 178.

`ContractDetails.minTick` is only the smallest increment on any exchange
(interactivebrokers.github.io/tws-api/minimum_increment.html): AAPL's options report 0.01
but trade in nickels from $3, and IB refuses 3.42 with error 110. The simulator keeps that
habit; the adapter reads `marketRuleIds` and `reqMarketRule`.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from tests.brokers.ibkr.conftest import Rig, rig
from tradebot.brokers.base import BracketSpec, OrderRejected, OrderSpec
from tradebot.core.instruments import OptionContract
from tradebot.core.sizing import bracket_prices

D = Decimal


@pytest.mark.parametrize("version", [157, 178])
def test_aapl_at_3_40_is_priced_on_nickels_spy_on_pennies_and_ib_accepts_both(
    tmp_path: Path, version: int
) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        expiry = date(2025, 7, 3)
        aapl_strike = r.sim.market.chain("AAPL", expiry).strikes[40]
        spy_strike = r.sim.market.chain("SPY", expiry).strikes[40]
        aapl, spy = await r.broker.qualify(
            [
                OptionContract("AAPL", expiry, aapl_strike, "C"),
                OptionContract("SPY", expiry, spy_strike, "C"),
            ]
        )
        assert aapl is not None and spy is not None
        assert aapl.tick == D("0.01")  # IB's minTick: the smallest increment anywhere
        assert aapl.grid.increment(D("3.40")) == D("0.05")
        assert spy.grid.increment(D("3.40")) == D("0.01")
        rules = dict(r.broker.conn.rules)
        await r.broker.qualify([OptionContract("AAPL", expiry, aapl_strike, "P")])
        assert r.broker.conn.rules == rules  # each market rule is asked once
        for contract, entry in ((aapl, D("3.40")), (spy, D("3.42"))):
            prices = bracket_prices(D("3.42"), contract.grid, D(100), D(50))
            assert prices.entry == entry
            ref = f"{contract.symbol}-250701-s9"
            specs = [
                OrderSpec(ref, contract, "BUY", 1, "LMT", "DAY", limit=D("0.50")),
                OrderSpec(f"{ref}.tp", contract, "SELL", 1, "LMT", "GTC", limit=prices.take_profit),
                OrderSpec(f"{ref}.sl", contract, "SELL", 1, "STP", "GTC", stop=prices.stop_loss),
            ]
            placed = await r.broker.place_bracket(BracketSpec(*specs))
            assert [p.status for p in placed] == ["submitted", "presubmitted", "presubmitted"]
        refused = [o for o in r.venue_orders() if o.status == "Inactive"]
        assert refused == []  # no error 110
        # The adapter itself never sends a price off the ladder.
        with pytest.raises(OrderRejected, match=r"not on .* price increments"):
            await r.broker.place_order(
                OrderSpec("AAPL-250701-x", aapl, "SELL", 1, "LMT", "DAY", limit=D("3.42"))
            )

    rig(body, tmp_path, version=version, symbols=("QQQ",))
