"""The real trading loop on the IBKR adapter against the gateway simulator (in one event loop)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from tests.brokers.ibkr.conftest import CLIENT_ID, Rig, rig, until


def test_a_fill_becomes_a_journaled_trade_with_commission(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        await r.tick()
        ref = "SPY-250701-s1"
        assert r.statuses(ref)[-1] in ("submitted", "presubmitted")
        entry_id = r.client_order_id(ref)
        r.sim.faults.fill_order(CLIENT_ID, entry_id)  # the entry fills at its limit
        await until(lambda: r.broker.tracker.by_order_ref(ref).status == "filled")  # type: ignore[union-attr]
        r.sim.faults.fill_order(CLIENT_ID, r.client_order_id(f"{ref}.tp"))  # then the target
        await until(lambda: r.broker.tracker.by_order_ref(f"{ref}.tp").status == "filled")  # type: ignore[union-attr]
        await r.advance(timedelta(minutes=2))  # commissions are adopted with their fills
        await r.wake()
        [trade] = [t for t in r.journal("trades") if t["trade_id"] == ref]
        assert trade["exit_reason"] == "take_profit"
        assert Decimal(trade["commission"]) == Decimal("2.00")  # $1 minimum, entry and exit
        entry = Decimal(trade["entry_price"])
        assert Decimal(trade["exit_price"]) == entry * 2
        assert Decimal(trade["pnl"]) == entry * 100 - 2
        assert trade["mode"] == "paper"
        fills = [f for f in r.journal() if f["event"] == "fill"]
        assert {f["order_ref"] for f in fills} >= {ref, f"{ref}.tp"}
        assert all(Decimal(f["commission"]) == 1 for f in fills)

    rig(body, tmp_path, symbols=("SPY",))
