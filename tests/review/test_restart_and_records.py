"""A restart after a stop at a bad moment, and a damaged journal line: exits must go on."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.engine.harness import config
from tests.review.helpers import HOLD, positions, prepare, run_loop, sim
from tradebot.brokers.base import OrderSpec, PlacedOrder
from tradebot.engine.oco import OcoWatcher


class PowerCut(BaseException):
    """The process stops right here (kill -9, power loss): nothing after it runs — a
    BaseException, as no handler in the loop may survive it."""


def test_a_position_whose_legs_an_interrupted_flatten_cancelled_is_protected_after_restart(
    tmp_path: Path,
) -> None:
    loaded = config(tmp_path, HOLD)
    ctx, until = prepare(loaded, "2025-07-01", "2025-07-02")
    broker = sim(ctx)
    send = broker.place_order

    async def power_cut(order: OrderSpec) -> PlacedOrder:
        if ".x" in order.order_ref:  # the flatten's market sell, its legs already cancelled
            raise PowerCut(order.order_ref)
        return await send(order)

    broker.place_order = power_cut  # type: ignore[method-assign]
    with pytest.raises(PowerCut):
        run_loop(ctx, until)
    legs = {o.order_ref.split(".")[0] for o in broker.exchange.working_orders()}
    bare = [p.entry.ref for p in ctx.book.open_positions() if p.entry.ref not in legs]
    assert bare, "the scenario needs a position whose legs the flatten had cancelled"

    # Restarted in the evening; it runs into the next morning.
    ctx, until = prepare(loaded, "2025-07-01T16:30", "2025-07-02T11:00")
    run_loop(ctx, until)
    # Closed at the open, or guarded by a stop again: either is fine; a bare position is not.
    armed = OcoWatcher(ctx).legs()
    unprotected = [
        p.entry.ref
        for p in ctx.book.open_positions()
        if p.entry.ref not in armed and not any(e.role == "stop_loss" for e in p.working_exits)
    ]
    assert unprotected == []


def test_a_damaged_trades_journal_line_does_not_stop_the_flatten(tmp_path: Path) -> None:
    loaded = config(tmp_path, HOLD)
    ctx, until = prepare(loaded, "2025-07-01", "2025-07-01T12:00")
    run_loop(ctx, until)
    assert positions(ctx), "the scenario needs open positions at noon"
    journal = loaded.logs_dir / "journal" / "trades.jsonl"
    with journal.open("a", encoding="utf-8") as fh:
        fh.write('{"v": 1, "trade_id": "this line is damaged\n{"v": 1}\n')
    ctx, until = prepare(loaded, "2025-07-01T12:00", "2025-07-02")
    run_loop(ctx, until)
    assert positions(ctx) == {}  # the scalp flatten before the close still happened
