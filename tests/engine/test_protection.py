"""A position whose stop dies at the broker after the entry filled (a hand cancel in TWS, a late
reject) is protected by emulated legs at the loop's next step, and the emulated stop never sells
on top of a take-profit still working at the broker (found by the IBKR review)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.engine.harness import config, events, orders, ts
from tests.review.helpers import positions, prepare, run_loop, sim, trading

# The stop is near (reached within the session), the take-profit far away (never reached).
NEAR_STOP = "[risk]\ntake_profit_pct = 900\nstop_loss_pct = 3\n"


def _cut_the_first_live_stop(ctx: Any) -> dict[str, datetime]:
    """Cancel at the venue, behind the loop's back, the first stop leg that is live (its
    entry filled) — what an operator's cancel in TWS does."""
    broker = sim(ctx)
    orders_of = broker.orders
    cut: dict[str, datetime] = {}

    async def cutting(since: datetime | None = None) -> Any:
        if not cut:
            broker._advance()
            for o in list(broker.exchange.orders.values()):
                if o.order_ref.endswith(".sl") and o.status == "Submitted":
                    broker.exchange.cancel(o.order_id, broker.now())
                    cut[o.order_ref] = broker.now()
                    break
        return await orders_of(since)

    broker.orders = cutting  # type: ignore[method-assign]
    return cut


def test_a_stop_cancelled_at_the_broker_is_replaced_by_emulated_legs(tmp_path: Path) -> None:
    loaded = config(tmp_path, NEAR_STOP, base=trading("interval_s = 60", symbols='"SPY"'))
    ctx, until = prepare(loaded, "2025-07-01", "2025-07-02")
    cut = _cut_the_first_live_stop(ctx)
    run_loop(ctx, until)
    assert cut, "the scenario needs an entry whose stop went live"
    ((stop_ref, cut_at),) = cut.items()
    entry_ref = stop_ref.removesuffix(".sl")
    protected = [
        e
        for e in events(loaded)
        if e["event"] == "position_protected" and e.get("order_ref") == entry_ref
    ]
    assert protected, "the bare position was never protected"
    # At the loop's next step (it syncs at least every minute while a position is open).
    assert ts(protected[0]) - cut_at <= timedelta(seconds=61)
    assert positions(ctx) == {}  # closed by the close at the latest, never short


def test_the_emulated_stop_cancels_a_working_take_profit_before_it_sells(tmp_path: Path) -> None:
    loaded = config(tmp_path, NEAR_STOP, base=trading("interval_s = 60", symbols='"SPY"'))
    ctx, until = prepare(loaded, "2025-07-01", "2025-07-02")
    cut = _cut_the_first_live_stop(ctx)
    run_loop(ctx, until)
    assert cut
    entry_ref = next(iter(cut)).removesuffix(".sl")
    records = [r for r in orders(loaded) if str(r.get("order_ref", "")).split(".")[0] == entry_ref]
    first_emulated_stop = next(
        i
        for i, r in enumerate(records)
        if r["event"] == "intent" and r["order_ref"].startswith(f"{entry_ref}.osl")
    )
    tp_cancelled = next(
        i
        for i, r in enumerate(records)
        if r["order_ref"] == f"{entry_ref}.tp" and r.get("status") == "cancelled"
    )
    # The stop was reached (seeded market): the native take-profit's cancel was confirmed and
    # journaled before the emulated stop's sell was.
    assert tp_cancelled < first_emulated_stop
    sells = [r for r in records if r["event"] == "fill" and r["role"] != "entry"]
    assert sum(r["qty"] for r in sells) == 1  # sold once
    # Whatever closed the position, no sell of it is left working at the broker.
    broker = sim(ctx)
    left = [
        o.order_ref
        for o in broker.exchange.orders.values()
        if o.working and o.order_ref.split(".")[0] == entry_ref
    ]
    assert left == []
    assert positions(ctx) == {}
