"""Orders and fills against a broker that behaves like a real one now and then: a send that
times out, a request that fails once, a commission report that follows its fill."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from tests.engine.harness import config
from tests.review.helpers import HOLD, positions, prepare, run_loop, sim, trading
from tradebot.brokers.base import BrokerError, Execution, OrderSpec, PlacedOrder


def test_an_exit_whose_send_failed_is_retried_and_the_scalp_position_is_closed_by_the_close(
    tmp_path: Path,
) -> None:
    loaded = config(tmp_path, HOLD)
    ctx, until = prepare(loaded, "2025-07-01", "2025-07-02")
    broker = sim(ctx)
    send = broker.place_order
    failed: list[str] = []

    async def times_out_once(order: OrderSpec) -> PlacedOrder:
        if ".x" in order.order_ref and not failed:  # the first market exit of the flatten
            failed.append(order.order_ref)
            raise BrokerError("timed out waiting for the order acknowledgement")
        return await send(order)

    broker.place_order = times_out_once  # type: ignore[method-assign]
    run_loop(ctx, until)
    assert failed, "the scenario needs a flatten exit"
    # One failed send must not leave a scalp position overnight.
    assert positions(ctx) == {}


def test_one_failed_broker_request_mid_session_does_not_stop_the_loop(tmp_path: Path) -> None:
    loaded = config(tmp_path, HOLD)
    ctx, until = prepare(loaded, "2025-07-01", "2025-07-02")
    broker = sim(ctx)
    executions = broker.executions
    failed: list[bool] = []

    async def fails_once_at_noon(since):  # type: ignore[no-untyped-def]
        if broker.now().hour == 16 and not failed:  # 12:00 New York
            failed.append(True)
            raise BrokerError("request timed out (executions)")
        return await executions(since)

    broker.executions = fails_once_at_noon  # type: ignore[method-assign]
    summary = run_loop(ctx, until)
    assert failed
    assert summary.stopped_by == "until"
    assert positions(ctx) == {}  # the scalp positions were still flattened before the close


def _commission_reported_late(ctx, lag: timedelta) -> None:  # type: ignore[no-untyped-def]
    """Executions younger than `lag` come without their commission (as IB's commission report
    follows the execution); the order's status is already Filled."""
    broker = sim(ctx)
    executions = broker.executions

    async def lagging(since):  # type: ignore[no-untyped-def]
        now = broker.now()
        found: list[Execution] = await executions(since)
        return [replace(x, commission=None) if now - x.time < lag else x for x in found]

    broker.executions = lagging  # type: ignore[method-assign]


def test_a_filled_entry_whose_commission_is_not_reported_yet_still_occupies_its_symbol(
    tmp_path: Path,
) -> None:
    loaded = config(tmp_path, HOLD, base=trading("interval_s = 60"))
    ctx, until = prepare(loaded, "2025-07-01", "2025-07-01T12:00")
    _commission_reported_late(ctx, timedelta(seconds=45))
    run_loop(ctx, until)
    held = Counter((p.entry.symbol, p.entry.strategy) for p in ctx.book.open_positions())
    assert held, "the scenario needs open positions"
    assert max(held.values()) == 1, held  # at most one position per symbol and strategy


def test_a_flatten_never_sells_more_than_the_broker_holds(tmp_path: Path) -> None:
    loaded = config(tmp_path, HOLD)
    ctx, until = prepare(loaded, "2025-07-01", "2025-07-02")
    broker = sim(ctx)
    _commission_reported_late(ctx, timedelta(seconds=45))
    cancel, send = broker.cancel, broker.place_order
    raced: list[str] = []
    oversold: list[str] = []

    async def take_profit_fills_first(order_ref: str, **known: Any) -> None:
        # The take-profit trades just before the flatten's cancel reaches the broker.
        if order_ref.endswith(".tp") and not raced:
            order = next(o for o in broker.exchange.working_orders() if o.order_ref == order_ref)
            broker.exchange.force_fill(order.order_id, broker.now())
            raced.append(order_ref)
        await cancel(order_ref, **known)

    async def watched(order: OrderSpec) -> PlacedOrder:
        held = broker.exchange.positions.get(order.contract.con_id)
        have = 0 if held is None else held.qty
        if order.action == "SELL" and order.qty > have:
            oversold.append(f"{order.order_ref}: sells {order.qty}, the broker holds {have}")
        return await send(order)

    broker.cancel = take_profit_fills_first  # type: ignore[method-assign]
    broker.place_order = watched  # type: ignore[method-assign]
    run_loop(ctx, until)
    assert raced, "the scenario needs a flatten that cancels a take-profit"
    assert oversold == []
