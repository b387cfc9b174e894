"""Every injected fault, observed through ib_async's own events and state."""

from __future__ import annotations

import asyncio
import json
import math
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from ib_async import LimitOrder

from tests.gateway_sim.conftest import (
    START,
    Errors,
    connect,
    near_money_call,
    scenario,
    spy_stock,
    until,
)
from tradebot.errors import CorruptRecordError
from tradebot.gateway_sim import GatewaySim, SimSettings


def test_dropped_socket_fires_disconnected_event(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim, client_id=2)
        dropped: list[bool] = []
        ib.disconnectedEvent += lambda: dropped.append(True)
        assert sim.faults.drop_connections() == 1
        await until(lambda: dropped)
        assert not ib.isConnected()
        again = await connect(sim, client_id=2)  # the id is free again at once
        again.disconnect()

    scenario(version, body)


def test_connectivity_lost_then_restored_with_data_lost(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        errors = Errors(ib)
        spy = await spy_stock(ib)
        ticker = ib.reqMktData(spy)
        await until(lambda: ticker.lastTimestamp == START)
        sim.faults.connectivity_lost()
        await until(lambda: 1100 in errors.codes())
        sim.advance(timedelta(minutes=2))
        await asyncio.sleep(0.05)
        assert ticker.lastTimestamp == START  # no market data while IB is unreachable
        sim.faults.connectivity_restored(data_lost=True)
        await until(lambda: 1101 in errors.codes())
        sim.advance(timedelta(minutes=1))
        await asyncio.sleep(0.05)
        assert ticker.lastTimestamp == START  # 1101: the subscription is gone
        ib.cancelMktData(spy)
        ticker = ib.reqMktData(spy)  # resubscribing brings data back
        await until(lambda: ticker.lastTimestamp == START + timedelta(minutes=3))
        ib.disconnect()

    scenario(version, body)


def test_connectivity_restored_with_data_maintained_resumes_streams(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        errors = Errors(ib)
        spy = await spy_stock(ib)
        ticker = ib.reqMktData(spy)
        await until(lambda: ticker.lastTimestamp == START)
        sim.faults.connectivity_lost()
        sim.advance(timedelta(minutes=2))
        sim.faults.connectivity_restored()
        await until(lambda: 1102 in errors.codes())
        sim.step()
        await until(lambda: ticker.lastTimestamp == START + timedelta(minutes=2))
        assert errors.codes()[:2] == [1100, 2103]
        ib.disconnect()

    scenario(version, body)


def test_pacing_violation_162_on_historical_data(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        errors = Errors(ib)
        spy = await spy_stock(ib)
        sim.faults.pace_historical()
        bars = await ib.reqHistoricalDataAsync(spy, "", "1 D", "1 min", "TRADES", True)
        assert list(bars) == []
        [(_, code, text)] = errors.seen
        assert code == 162 and "pacing violation" in text
        bars = await ib.reqHistoricalDataAsync(spy, "", "1 D", "1 min", "TRADES", True)
        assert len(bars) == 90
        ib.disconnect()

    scenario(version, body)


def test_no_market_data_permission_354(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        errors = Errors(ib)
        option = await near_money_call(ib, sim)
        sim.faults.market_data_permission("SPY", "none")
        [ticker] = await ib.reqTickersAsync(option)
        assert math.isnan(ticker.bid) and math.isnan(ticker.ask)
        assert errors.codes() == [354]
        ib.disconnect()

    scenario(version, body)


def test_delayed_only_permission_gives_10167_and_delayed_ticks(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        errors = Errors(ib)
        spy = await spy_stock(ib)
        sim.faults.market_data_permission("*", "delayed")
        [ticker] = await ib.reqTickersAsync(spy)  # asks for live data (type 1)
        assert errors.codes() == [10167]
        assert ticker.marketDataType == 3
        assert ticker.delayedLastTimestamp == START - timedelta(minutes=15)
        assert ticker.bid > 0
        ib.disconnect()

    scenario(version, body)


def test_informational_10349_makes_ib_async_cancel_a_live_order(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        errors = Errors(ib)
        option = await near_money_call(ib, sim)
        sim.faults.notice_next_order()  # 10349 "Order TIF was set to DAY based on order preset"
        trade = ib.placeOrder(option, LimitOrder("BUY", 1, 0.05))
        await until(lambda: 10349 in errors.codes())
        assert trade.orderStatus.status == "Cancelled"  # ib_async 2.1's local phantom cancel
        venue = sim.book.order(1, trade.order.orderId)
        assert venue is not None and venue.working  # still live at the "broker"
        [alive] = await ib.reqOpenOrdersAsync()  # what a reconciliation would find
        assert alive.order.permId == trade.order.permId
        ib.disconnect()

    scenario(version, body)


def test_cancel_racing_a_fill_gets_10148(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        errors = Errors(ib)
        option = await near_money_call(ib, sim)
        trade = ib.placeOrder(option, LimitOrder("BUY", 1, 0.05, tif="GTC"))
        await until(lambda: trade.orderStatus.status == "Submitted")
        sim.faults.fill_before_next_cancel()
        ib.cancelOrder(trade.order)
        await until(lambda: 10148 in errors.codes())
        await until(lambda: trade.orderStatus.status == "Filled")
        assert [f.execution.price for f in trade.fills] == [0.05]
        ib.disconnect()

    scenario(version, body)


def test_fill_while_disconnected_is_seen_after_reconnect(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim, client_id=9)
        option = await near_money_call(ib, sim)
        trade = ib.placeOrder(option, LimitOrder("BUY", 1, 0.05, tif="GTC", orderRef="E1"))
        await until(lambda: trade.orderStatus.status == "Submitted")
        order_id, perm_id = trade.order.orderId, trade.order.permId
        assert sim.faults.fill_while_disconnected(9, order_id)
        await until(lambda: not ib.isConnected())
        assert trade.orderStatus.status == "Submitted"  # the orphaned Trade never learns
        ib = await connect(sim, client_id=9)
        [fill] = ib.fills()  # from the start-up reqExecutions
        assert (fill.execution.orderId, fill.execution.permId) == (order_id, perm_id)
        assert fill.execution.orderRef == "E1" and fill.commissionReport.commission == 1.0
        [position] = ib.positions()
        assert position.contract.conId == option.conId and position.position == 1
        assert ib.openTrades() == []
        [done] = [t for t in ib.trades() if t.order.permId == perm_id]  # completed orders
        assert done.orderStatus.status == "Filled"
        ib.disconnect()

    scenario(version, body)


def test_an_order_lost_with_its_socket_never_reaches_the_gateway(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim, client_id=9)
        option = await near_money_call(ib, sim)
        sim.faults.lose_next_order()
        trade = ib.placeOrder(option, LimitOrder("BUY", 1, 0.05, tif="GTC", orderRef="L1"))
        await until(lambda: not ib.isConnected())
        assert trade.orderStatus.status == "PendingSubmit"  # never acknowledged
        assert sim.exchange.orders == {} and sim.book.held == {}
        ib = await connect(sim, client_id=9)  # IB has no trace of it
        assert ib.openTrades() == [] and ib.trades() == [] and ib.fills() == []
        again = ib.placeOrder(option, LimitOrder("BUY", 1, 0.05, tif="GTC", orderRef="L2"))
        await until(lambda: again.orderStatus.status == "Submitted")  # used up: normal again
        ib.disconnect()

    scenario(version, body)


def test_an_unset_commission_is_reported_as_ibs_unset_double(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim, client_id=9)
        option = await near_money_call(ib, sim)
        trade = ib.placeOrder(option, LimitOrder("BUY", 1, 0.05, tif="GTC"))
        await until(lambda: trade.orderStatus.status == "Submitted")
        sim.faults.unset_next_commission()
        assert sim.fill_order(9, trade.order.orderId)
        await until(lambda: trade.fills and trade.fills[0].commissionReport.execId)
        assert trade.fills[0].commissionReport.commission == sys.float_info.max
        ib.disconnect()
        ib = await connect(sim, client_id=9)  # the executions asked again say the same
        [fill] = ib.fills()
        assert fill.commissionReport.commission == sys.float_info.max
        ib.disconnect()

    scenario(version, body)


def test_next_valid_id_rolled_back_after_reconnect(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        option = await near_money_call(ib, sim)
        trade = ib.placeOrder(option, LimitOrder("BUY", 1, 0.05))
        await until(lambda: trade.orderStatus.status == "Submitted")
        ib.cancelOrder(trade.order)
        await until(lambda: trade.isDone())
        ib.disconnect()
        first_id = trade.order.orderId
        assert sim.book.next_valid_id(1) == first_id + 1
        sim.faults.roll_back_next_valid_id(to=1)  # as after a gateway restart
        ib = await connect(sim)
        errors = Errors(ib)
        await ib.qualifyContractsAsync(option)
        clash = ib.placeOrder(option, LimitOrder("BUY", 1, 0.05))  # ids restart from 1
        assert clash.order.orderId == first_id
        await until(lambda: 103 in errors.codes())  # IB: "Duplicate order id"
        assert clash.orderStatus.status == "Cancelled"
        ib.disconnect()
        again = await connect(sim)  # the rollback was used up: the next connect is normal
        assert again.client.getReqId() > first_id
        again.disconnect()

    scenario(version, body)


def test_stale_ticker_stops_moving(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        spy = await spy_stock(ib)
        ticker = ib.reqMktData(spy)
        await until(lambda: ticker.lastTimestamp == START)
        sim.faults.stale_quotes("SPY", since=sim.clock.now())
        updates: list[object] = []
        ticker.updateEvent += updates.append
        sim.advance(timedelta(minutes=5))
        await asyncio.sleep(0.05)
        assert updates == [] and ticker.lastTimestamp == START
        [snap] = await ib.reqTickersAsync(spy)
        assert snap.lastTimestamp == START  # five minutes old by the simulated clock
        sim.faults.fresh_quotes()
        sim.step()
        await until(lambda: ticker.lastTimestamp == START + timedelta(minutes=5))
        ib.disconnect()

    scenario(version, body)


def test_informational_error_about_any_live_order(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        errors = Errors(ib)
        option = await near_money_call(ib, sim)
        trade = ib.placeOrder(option, LimitOrder("BUY", 1, 0.05))
        await until(lambda: trade.orderStatus.status == "Submitted")
        assert sim.faults.order_error(1, trade.order.orderId, 399, "Order message: warning")
        await until(lambda: 399 in errors.codes())
        assert not sim.faults.order_error(42, 1, 399, "nobody")  # no such client connected
        ib.disconnect()

    scenario(version, body)


def test_refused_brackets_reject_children_with_201(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        errors = Errors(ib)
        option = await near_money_call(ib, sim)
        sim.faults.refuse_brackets()
        trades = [ib.placeOrder(option, o) for o in ib.bracketOrder("BUY", 1, 0.05, 9.0, 0.01)]
        await until(lambda: trades[1].isDone() and trades[2].isDone())
        assert errors.codes() == [201, 201]
        assert trades[0].orderStatus.status == "Submitted"
        sim.faults.clear()
        assert not sim.exchange.refuse_brackets
        ib.disconnect()

    scenario(version, body)


def test_state_file_resumes_the_account_after_a_restart(tmp_path: Path, version: int) -> None:
    state = tmp_path / "sim.json"
    ids: dict[str, int] = {}

    async def first(sim: GatewaySim) -> None:
        ib = await connect(sim)
        option = await near_money_call(ib, sim)
        quote = sim.exchange.quote(sim.universe.by_con_id[option.conId], START)
        assert quote is not None
        bought = ib.placeOrder(option, LimitOrder("BUY", 1, float(quote.ask), tif="GTC"))
        resting = ib.placeOrder(option, LimitOrder("SELL", 1, 50.0, tif="GTC"))
        await until(lambda: bought.isDone() and resting.orderStatus.status == "Submitted")
        ids.update(con_id=option.conId, resting=resting.order.permId)
        ib.disconnect()

    scenario(version, first, state_file=state)
    assert state.exists()

    async def second(sim: GatewaySim) -> None:
        ib = await connect(sim)
        [position] = ib.positions()
        assert position.contract.conId == ids["con_id"] and position.position == 1
        [working] = ib.openTrades()
        assert working.order.permId == ids["resting"]
        assert ib.client.getReqId() > working.order.orderId
        assert len(ib.fills()) == 1
        ib.disconnect()

    scenario(version, second, start=START + timedelta(minutes=10), state_file=state)


def test_a_saved_clock_without_a_timezone_is_a_named_error(tmp_path: Path) -> None:
    """A saved clock without a timezone was a TypeError (exit 1) once compared with --start."""
    state = tmp_path / "sim.json"

    async def first(sim: GatewaySim) -> None:
        ib = await connect(sim)
        ib.disconnect()

    scenario(178, first, state_file=state)
    saved = json.loads(state.read_text())
    saved["clock"] = "2025-07-01T15:00:00"
    state.write_text(json.dumps(saved))
    before = state.read_bytes()
    with pytest.raises(CorruptRecordError) as caught:
        GatewaySim(SimSettings(port=0, version=178, state_file=state))
    assert "clock has no timezone" in caught.value.message and str(state) in str(caught.value)
    assert state.read_bytes() == before
