"""Orders through ib_async: brackets, fills with commissions, cancels, rejects, client ids."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from ib_async import IB, ExecutionFilter, LimitOrder, Option, Stock

from tests.gateway_sim.conftest import (
    START,
    Errors,
    connect,
    near_money_call,
    scenario,
    until,
)
from tradebot.gateway_sim import GatewaySim
from tradebot.market.exchange import SimOrder


def _ask(sim: GatewaySim, option: Option) -> Decimal:
    quote = sim.exchange.quote(sim.universe.by_con_id[option.conId], sim.clock.now())
    assert quote is not None
    return quote.ask


def _venue(sim: GatewaySim, client_id: int, order_id: int) -> SimOrder:
    order = sim.book.order(client_id, order_id)
    assert order is not None
    return order


def test_bracket_parent_fill_commission_then_take_profit_cancels_the_stop(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        option = await near_money_call(ib, sim, above=0.005)
        ask = _ask(sim, option)
        bracket = ib.bracketOrder("BUY", 2, float(ask), float(ask * 2), float(ask / 2))
        for o in bracket:
            o.tif, o.orderRef = "GTC", "T1"
        reports: list[object] = []
        ib.commissionReportEvent += lambda trade, fill, report: reports.append(report)
        parent = ib.placeOrder(option, bracket.parent)
        take = ib.placeOrder(option, bracket.takeProfit)
        await asyncio.sleep(0.05)
        assert sim.exchange.orders == {}  # held: the group is not complete yet
        assert parent.orderStatus.status == take.orderStatus.status == "PendingSubmit"
        stop = ib.placeOrder(option, bracket.stopLoss)  # the last child transmits the group
        await until(lambda: parent.isDone() and len(reports) == 1)
        assert parent.orderStatus.status == "Filled"
        [fill] = parent.fills
        assert fill.execution.price == float(ask) and fill.execution.shares == 2
        assert fill.execution.side == "BOT" and fill.execution.orderRef == "T1"
        assert fill.commissionReport.commission == 1.30  # 2 × $0.65
        assert parent.log[-2].status == "Submitted"  # IB's order: Submitted, fill, Filled
        await until(lambda: take.orderStatus.status == stop.orderStatus.status == "Submitted")
        assert take.orderStatus.parentId == parent.order.orderId
        assert stop.order.permId == _venue(sim, 1, stop.order.orderId).perm_id
        [position] = ib.positions()
        assert position.position == 2 and position.avgCost == float(ask) * 100
        assert sim.faults.fill_order(1, take.order.orderId)  # the market trades through it
        await until(lambda: take.isDone() and stop.isDone() and len(reports) == 2)
        assert take.orderStatus.status == "Filled" and stop.orderStatus.status == "Cancelled"
        assert take.fills[0].execution.price == float(ask * 2)
        # realized on the closing fill: gross profit less that fill's commission
        assert reports[-1].realizedPNL == pytest.approx(float(ask) * 200 - 1.30)  # type: ignore[attr-defined]
        await until(lambda: ib.positions() == [])
        assert {f.execution.permId for f in ib.fills()} == {parent.order.permId, take.order.permId}
        ib.disconnect()

    scenario(version, body)


def test_children_wait_presubmitted_until_the_parent_fills(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        option = await near_money_call(ib, sim, above=0.005)
        low = float((_ask(sim, option) / 3).quantize(Decimal("0.01")))
        trades = [ib.placeOrder(option, o) for o in ib.bracketOrder("BUY", 1, low, 9.0, 0.01)]
        parent, take, stop = trades
        await until(lambda: stop.orderStatus.status == "PreSubmitted")
        assert parent.orderStatus.status == "Submitted"
        assert take.orderStatus.status == "PreSubmitted"
        ib.cancelOrder(parent.order)  # cancelling the parent cancels its children
        await until(lambda: all(t.orderStatus.status == "Cancelled" for t in trades))
        assert not sim.exchange.working_orders()
        ib.disconnect()

    scenario(version, body)


def test_cancel_a_resting_order_and_error_202(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        errors = Errors(ib)
        option = await near_money_call(ib, sim, above=0.005)
        trade = ib.placeOrder(option, LimitOrder("BUY", 1, 0.05, tif="DAY"))
        await until(lambda: trade.orderStatus.status == "Submitted")
        sim.advance(timedelta(minutes=5))  # rests: far under the market
        assert _venue(sim, 1, trade.order.orderId).working
        ib.cancelOrder(trade.order)
        await until(lambda: trade.orderStatus.status == "Cancelled")
        assert errors.about(trade.order.orderId) == [202]
        assert _venue(sim, 1, trade.order.orderId).status == "Cancelled"
        ib.disconnect()

    scenario(version, body)


def test_modify_changes_the_price_of_a_working_order(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        option = await near_money_call(ib, sim, above=0.005)
        trade = ib.placeOrder(option, LimitOrder("BUY", 1, 0.05, tif="GTC"))
        await until(lambda: trade.orderStatus.status == "Submitted")
        trade.order.lmtPrice = 0.07
        ib.placeOrder(option, trade.order)
        await until(lambda: _venue(sim, 1, trade.order.orderId).limit == Decimal("0.07"))
        assert trade.orderStatus.status == "Submitted"
        ib.disconnect()

    scenario(version, body)


def test_order_rejected_with_201(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        errors = Errors(ib)
        option = await near_money_call(ib, sim, above=0.005)
        sim.faults.reject_next_order("insufficient buying power")
        trade = ib.placeOrder(option, LimitOrder("BUY", 1, 0.05))
        await until(lambda: trade.orderStatus.status == "Cancelled")
        [(req_id, code, text)] = errors.seen
        assert (req_id, code) == (trade.order.orderId, 201)
        assert text == "Order rejected - reason: insufficient buying power"
        after = ib.placeOrder(option, LimitOrder("BUY", 1, 0.05))  # used up: next one works
        await until(lambda: after.orderStatus.status == "Submitted")
        ib.disconnect()

    scenario(version, body)


def test_market_order_on_a_stock_fills_at_the_ask(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        spy = Stock("SPY", "SMART", "USD")
        await ib.qualifyContractsAsync(spy)
        quote = sim.exchange.quote(sim.market.stock("SPY"), START)
        assert quote is not None
        trade = ib.placeOrder(spy, LimitOrder("BUY", 10, float(quote.ask + 1)))
        await until(trade.isDone)
        assert trade.orderStatus.avgFillPrice == float(quote.ask)
        await until(lambda: len(ib.positions()) == 1)
        ib.disconnect()

    scenario(version, body)


def test_a_client_id_in_use_is_refused_with_326(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        first = await connect(sim, client_id=3)
        second = IB()
        errors = Errors(second)
        with pytest.raises((TimeoutError, ConnectionError)):
            await second.connectAsync("127.0.0.1", sim.port, clientId=3, timeout=0.5)
        assert 326 in errors.codes()
        assert first.isConnected() and list(sim.sessions) == [3]
        other = await connect(sim, client_id=4)  # another id is fine
        assert sorted(sim.sessions) == [3, 4]
        first.disconnect()
        other.disconnect()

    scenario(version, body)


def test_client_zero_sees_every_clients_orders(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        worker = await connect(sim, client_id=5)
        option = await near_money_call(worker, sim, above=0.005)
        early = worker.placeOrder(option, LimitOrder("BUY", 1, 0.05, tif="GTC"))
        await until(lambda: early.orderStatus.status == "Submitted")
        master = await connect(sim, client_id=0)  # its start-up sync lists client 5's order
        assert [(t.order.clientId, t.order.orderId) for t in master.openTrades()] == [
            (5, early.order.orderId)
        ]
        late = worker.placeOrder(option, LimitOrder("BUY", 1, 0.06, tif="GTC"))
        await until(lambda: len(master.openTrades()) == 2)
        assert {t.order.permId for t in master.openTrades()} == {
            early.order.permId,
            late.order.permId,
        }
        bystander = await connect(sim, client_id=6)
        assert bystander.openTrades() == []  # other clients see only their own
        for ib in (worker, master, bystander):
            ib.disconnect()

    scenario(version, body)


def test_same_order_id_from_two_clients_are_two_orders(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        a, b = await connect(sim, client_id=1), await connect(sim, client_id=2)
        option = await near_money_call(a, sim, above=0.005)
        await b.qualifyContractsAsync(option)
        ta = a.placeOrder(option, LimitOrder("BUY", 1, 0.05, orderId=100))
        tb = b.placeOrder(option, LimitOrder("BUY", 1, 0.06, orderId=100))
        await until(lambda: ta.order.permId and tb.order.permId)
        assert ta.order.permId != tb.order.permId
        assert _venue(sim, 1, 100).limit == Decimal("0.05")
        assert _venue(sim, 2, 100).limit == Decimal("0.06")
        a.disconnect()
        b.disconnect()

    scenario(version, body)


def test_global_cancel_cancels_every_clients_orders(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        a, b = await connect(sim, client_id=1), await connect(sim, client_id=2)
        option = await near_money_call(a, sim, above=0.005)
        await b.qualifyContractsAsync(option)
        trades = [
            a.placeOrder(option, LimitOrder("BUY", 1, 0.05)),
            b.placeOrder(option, LimitOrder("BUY", 1, 0.05)),
        ]
        await until(lambda: all(t.orderStatus.status == "Submitted" for t in trades))
        a.reqGlobalCancel()
        await until(lambda: all(t.orderStatus.status == "Cancelled" for t in trades))
        a.disconnect()
        b.disconnect()

    scenario(version, body)


def test_executions_filter_by_symbol_and_side(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        option = await near_money_call(ib, sim, above=0.005)
        trade = ib.placeOrder(option, LimitOrder("BUY", 1, float(_ask(sim, option))))
        await until(trade.isDone)
        found = await ib.reqExecutionsAsync(ExecutionFilter(symbol="SPY", side="BUY"))
        assert [f.execution.permId for f in found] == [trade.order.permId]
        assert ib.fills()[0].commissionReport.commission == 1.0
        assert await ib.reqExecutionsAsync(ExecutionFilter(symbol="QQQ")) == []
        assert await ib.reqExecutionsAsync(ExecutionFilter(side="SELL")) == []
        later = (START + timedelta(minutes=1)).strftime("%Y%m%d-%H:%M:%S")
        assert await ib.reqExecutionsAsync(ExecutionFilter(time=later)) == []
        ib.disconnect()

    scenario(version, body)


def test_a_fill_pushes_positions_portfolio_and_account_values(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        option = await near_money_call(ib, sim, above=0.005)
        ask = _ask(sim, option)
        trade = ib.placeOrder(option, LimitOrder("BUY", 1, float(ask)))
        await until(lambda: trade.isDone() and len(ib.portfolio()) == 1)
        [item] = ib.portfolio()
        assert item.contract.conId == option.conId and item.position == 1
        assert item.averageCost == float(ask) * 100
        cash = {v.tag: v.value for v in ib.accountValues() if v.currency == "USD"}
        assert Decimal(cash["TotalCashValue"]) == Decimal(10000) - ask * 100 - 1
        ib.client.reqPositionsMulti(99, "DUSIM0001", "")  # decoded without a complaint
        ib.client.reqAllOpenOrders()
        await asyncio.sleep(0.05)
        ib.disconnect()

    scenario(version, body)


def test_a_held_parent_sent_again_with_transmit_goes_first(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        option = await near_money_call(ib, sim, above=0.005)
        parent = LimitOrder("BUY", 1, 0.05, transmit=False)
        parent_trade = ib.placeOrder(option, parent)
        child = LimitOrder("SELL", 1, 9.0, parentId=parent.orderId, transmit=False)
        child_trade = ib.placeOrder(option, child)
        await asyncio.sleep(0.05)
        assert sim.exchange.orders == {}
        parent.transmit = True
        ib.placeOrder(option, parent)  # sends the whole group, parent first
        await until(lambda: child_trade.orderStatus.status == "PreSubmitted")
        assert parent_trade.orderStatus.status == "Submitted"
        assert _venue(sim, 1, child.orderId).parent_id == _venue(sim, 1, parent.orderId).order_id
        ib.disconnect()

    scenario(version, body)


def test_a_rejected_parent_takes_its_children_down(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        errors = Errors(ib)
        option = await near_money_call(ib, sim)
        sim.faults.reject_next_order("no trading permission")
        trades = [ib.placeOrder(option, o) for o in ib.bracketOrder("BUY", 1, 0.05, 9.0, 0.01)]
        await until(lambda: all(t.isDone() for t in trades))
        assert errors.codes() == [201, 201, 201]
        assert "parent order" in errors.seen[1][2]
        assert not sim.exchange.working_orders()
        ib.disconnect()

    scenario(version, body)
