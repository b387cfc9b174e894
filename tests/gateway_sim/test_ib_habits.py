"""The simulator keeps IB's awkward habits, each seen through the real ib_async client.

Each test names its source: IB's API documentation, or the ib_async / ib_insync / other
adapters' issue where the habit was observed against a real Gateway.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from ib_async import LimitOrder, Option, Stock

from tests.gateway_sim.conftest import Errors, connect, near_money_call, scenario, until
from tradebot.gateway_sim import GatewaySim
from tradebot.gateway_sim.book import ib_day_start


def _ask(sim: GatewaySim, option: Option) -> Decimal:
    quote = sim.exchange.quote(sim.universe.by_con_id[option.conId], sim.clock.now())
    assert quote is not None
    return quote.ask


async def _buy(sim: GatewaySim, ib: object, above: float) -> Option:
    option = await near_money_call(ib, sim, above=above)  # type: ignore[arg-type]
    trade = ib.placeOrder(  # type: ignore[attr-defined]
        option, LimitOrder("BUY", 1, float(_ask(sim, option)), orderRef=f"buy{above}")
    )
    await until(lambda: trade.isDone())
    return option


def test_executions_and_completed_orders_are_those_of_the_ib_day_only(version: int) -> None:
    """reqExecutions returns executions "since midnight" (IB API docs, quoted in
    erdewit/ib_insync#483); reqCompletedOrders the current day's (wboayue/rust-ibapi#299). A
    fill of yesterday is visible today only as a position."""

    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        chain = sim.market.chain("SPY", sim.clock.now().date())
        later = next(e for e in chain.expiries if e > sim.clock.now().date() + timedelta(days=3))
        spot = sim.market.last_price("SPY", sim.clock.now())
        assert spot is not None
        strike = min(chain.strikes, key=lambda k: abs(float(k) - spot))
        option = Option("SPY", f"{later:%Y%m%d}", float(strike), "C", "SMART")
        await ib.qualifyContractsAsync(option)
        trade = ib.placeOrder(option, LimitOrder("BUY", 1, float(_ask(sim, option))))
        await until(lambda: trade.isDone())
        assert len(await ib.reqExecutionsAsync()) == 1
        assert len(await ib.reqCompletedOrdersAsync(False)) == 1
        ib.disconnect()
        # The next morning, 09:00 New York.
        sim.set_time(datetime(2025, 7, 2, 13, 0, tzinfo=UTC))
        ib = await connect(sim)
        assert await ib.reqExecutionsAsync() == []
        assert await ib.reqCompletedOrdersAsync(False) == []
        assert [p.contract.conId for p in ib.positions()] == [option.conId]
        ib.disconnect()

    scenario(version, body)


def test_ib_day_starts_at_midnight_new_york() -> None:
    assert ib_day_start(datetime(2025, 7, 2, 3, 59, tzinfo=UTC)) == datetime(
        2025, 7, 1, 4, 0, tzinfo=UTC
    )
    assert ib_day_start(datetime(2025, 12, 2, 5, 0, tzinfo=UTC)) == datetime(
        2025, 12, 2, 5, 0, tzinfo=UTC
    )


def test_at_expiry_an_option_in_the_money_becomes_shares_and_one_out_of_it_vanishes(
    version: int,
) -> None:
    """OCC's exercise by exception: a long option $0.01 or more in the money is exercised into
    100 shares a contract; IB may also liquidate it before (IBKR Knowledge Base, "Expiration &
    Corporate Action Related Liquidations", ibkr.info/article/1767). No execution is reported
    for either; the positions change (QuantConnect/Lean#5880: "at option expiration positions
    were not set to zero" until it read them from positions)."""

    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        itm = await _buy(sim, ib, above=-0.01)
        otm = await _buy(sim, ib, above=0.02)
        contract = sim.universe.by_con_id[itm.conId]
        close = sim.market.expiry_close(contract.expiry)  # type: ignore[union-attr]
        before = len(await ib.reqExecutionsAsync())
        sim.set_time(close + timedelta(minutes=1))
        await until(lambda: {p.contract.secType for p in ib.positions() if p.position} == {"STK"})
        [shares] = [p for p in ib.positions() if p.position]
        assert shares.contract.symbol == "SPY" and shares.position == 100
        assert shares.avgCost == float(contract.strike)  # type: ignore[union-attr]
        assert len(await ib.reqExecutionsAsync()) == before  # nothing new to explain it
        kinds = {(e.contract.con_id, e.kind) for e in sim.exchange.eae}
        assert kinds == {(itm.conId, "Exercise"), (otm.conId, "Expiration")}
        ib.disconnect()

    scenario(version, body)


def test_a_gateway_can_drop_order_refs_from_its_reports(version: int) -> None:
    """orderRef is not always echoed back (orders modified in TWS, some Gateway builds): the
    client must also know its orders by permId and order id (ib_async's own wrapper matches
    executions by permId first, wrapper.py execDetails)."""

    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        option = await near_money_call(ib, sim, above=-0.02)  # in the money: 0.05 rests
        trade = ib.placeOrder(option, LimitOrder("BUY", 1, 0.05, orderRef="mine", tif="GTC"))
        await until(lambda: trade.orderStatus.status == "Submitted")
        sim.faults.drop_order_refs()
        ib.disconnect()
        ib = await connect(sim)
        [listed] = list(ib.openTrades())
        assert listed.order.orderRef == "" and listed.order.permId == trade.order.permId
        ib.disconnect()

    scenario(version, body)


def test_ib_liquidates_a_position_with_its_own_order(version: int) -> None:
    """IB may sell expiring or under-margined positions itself (ibkr.info/article/1767): an
    order no API client placed, whose execution carries the liquidation flag. The client that
    held the position sees it only in its positions (and the master client, 0, the order)."""

    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim, client_id=17)
        master = await connect(sim, client_id=0)
        option = await near_money_call(ib, sim, above=-0.01)  # in the money: it has a bid
        trade = ib.placeOrder(option, LimitOrder("BUY", 1, float(_ask(sim, option))))
        await until(lambda: trade.isDone() and len(ib.positions()) == 1)
        assert sim.faults.liquidate("SPY") >= 1
        await until(lambda: not [p for p in ib.positions() if p.position])
        await until(lambda: len(master.fills()) == 2)
        sold = [f for f in master.fills() if f.execution.side == "SLD"]
        assert sold and sold[0].execution.liquidation == 1 and sold[0].execution.orderRef == ""
        assert [f.execution.side for f in await ib.reqExecutionsAsync()] == ["BOT"]
        ib.disconnect()
        master.disconnect()

    scenario(version, body)


def test_minticks_are_the_smallest_increment_and_market_rules_the_real_ladder(
    version: int,
) -> None:
    """`minTick` is the smallest increment on any exchange; the increment at a price comes from
    the market rule (interactivebrokers.github.io/tws-api/minimum_increment.html). An AAPL
    option (penny program) reports minTick 0.01, trades in nickels from $3, and a limit of
    3.42 is refused with error 110; SPY's options trade in pennies at every price."""

    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        errors = Errors(ib)
        expiry = datetime(2025, 7, 3).date()
        chain = sim.market.chain("AAPL", expiry)
        aapl = Option(
            "AAPL", "20250703", float(chain.strikes[len(chain.strikes) // 2]), "C", "SMART"
        )
        [details] = await ib.reqContractDetailsAsync(aapl)
        assert details.minTick == 0.01
        rule = int(details.marketRuleIds.split(",")[0])
        assert details.marketRuleIds == ",".join([str(rule)] * 6)  # one per valid exchange
        ladder = await ib.reqMarketRuleAsync(rule)
        assert [(p.lowEdge, p.increment) for p in ladder] == [(0, 0.01), (3, 0.05)]
        aapl = details.contract
        assert aapl is not None
        refused = ib.placeOrder(aapl, LimitOrder("BUY", 1, 3.42, tif="DAY"))
        await until(lambda: 110 in errors.codes())
        assert not [o for o in sim.exchange.orders.values() if o.working]
        accepted = ib.placeOrder(aapl, LimitOrder("BUY", 1, 3.40, tif="DAY"))
        await until(lambda: accepted.orderStatus.status in ("Submitted", "Filled"))
        assert errors.about(accepted.order.orderId) == []
        spy = await near_money_call(ib, sim)
        [spy_details] = await ib.reqContractDetailsAsync(spy)
        spy_rule = int(spy_details.marketRuleIds.split(",")[0])
        assert [(p.lowEdge, p.increment) for p in await ib.reqMarketRuleAsync(spy_rule)] == [
            (0, 0.01)
        ]
        assert refused.order.orderId in [r for r, c, _ in errors.seen if c == 110]
        ib.disconnect()

    scenario(version, body)


def test_an_order_can_be_inactive_then_submitted(version: int) -> None:
    """IB's Inactive is not always final: a locate hold or a precaution reports the order
    Inactive, and it may still start working (nautilus_trader#3603, ib_insync#559)."""

    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        option = await near_money_call(ib, sim, above=-0.02)
        sim.faults.inactive_next()
        trade = ib.placeOrder(option, LimitOrder("BUY", 1, 0.05, tif="DAY"))
        await until(lambda: trade.orderStatus.status == "Inactive")
        assert not sim.exchange.working_orders()
        sim.faults.release_inactive()
        await until(lambda: trade.orderStatus.status == "Submitted")
        assert [s.status for s in trade.log][-2:] == ["Inactive", "Submitted"]
        ib.disconnect()

    scenario(version, body)


def test_a_parent_partly_filled_releases_its_legs_for_the_filled_quantity(version: int) -> None:
    """A bracket's attached orders follow the parent's fills: partly filled, the legs work for
    what has filled; the parent's remainder can be cancelled without them (IB's attached
    orders, as the TWS API's bracket documentation describes the parent/child link)."""

    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        option = await near_money_call(ib, sim, above=-0.02)
        parent = LimitOrder("BUY", 3, 0.05, tif="DAY", orderId=ib.client.getReqId(), transmit=False)
        tp = LimitOrder(
            "SELL",
            3,
            90.0,
            tif="GTC",
            orderId=ib.client.getReqId(),
            parentId=parent.orderId,
            transmit=False,
        )
        sl = LimitOrder(
            "SELL", 3, 0.01, tif="GTC", orderId=ib.client.getReqId(), parentId=parent.orderId
        )
        trades = [ib.placeOrder(option, o) for o in (parent, tp, sl)]
        await until(lambda: trades[0].orderStatus.status == "Submitted")
        assert sim.faults.fill_order(1, parent.orderId, qty=2)
        await until(lambda: trades[1].orderStatus.status == "Submitted")
        legs = [o for o in sim.exchange.orders.values() if o.parent_id]
        assert {o.qty for o in legs} == {2} and {o.status for o in legs} == {"Submitted"}
        ib.cancelOrder(parent)
        await until(lambda: trades[0].orderStatus.status == "Cancelled")
        assert trades[0].orderStatus.filled == 2
        assert all(o.working and o.qty == 2 for o in legs)  # the legs guard what filled
        ib.disconnect()

    scenario(version, body)


def test_a_read_only_api_refuses_every_order_with_321(version: int) -> None:
    """The Gateway's "Read-Only API" setting: every order, what-if included, gets error 321
    "The API interface is currently in Read-Only mode" (IbcAlpha/IBC#341); reading works."""

    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        errors = Errors(ib)
        option = await near_money_call(ib, sim)
        sim.faults.set_read_only_api()
        ib.placeOrder(option, LimitOrder("BUY", 1, 0.05, tif="DAY"))
        await until(lambda: 321 in errors.codes())
        assert "Read-Only" in errors.seen[-1][2]
        assert sim.exchange.orders == {}
        ib.disconnect()

    scenario(version, body)


def test_an_account_without_opra_gets_stock_quotes_but_354_for_options(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        errors = Errors(ib)
        sim.faults.option_data_permission("*", "none")
        option = await near_money_call(ib, sim)
        spy = Stock("SPY", "SMART", "USD")
        await ib.qualifyContractsAsync(spy)
        stock = ib.reqMktData(spy, "", False, False)
        quote = ib.reqMktData(option, "", False, False)
        await until(lambda: stock.bid > 0 and 354 in errors.codes())
        assert quote.bid != quote.bid or quote.bid <= 0  # nothing for the option
        ib.disconnect()

    scenario(version, body)


def test_an_oversell_is_refused_with_an_error_at_once(version: int) -> None:
    """A sell of more options than the account holds would open a short position: IB refuses
    it when it arrives (error 201 "YOUR ORDER IS NOT ACCEPTED…"), it is never left working to
    be cancelled later. A bracket's legs (children of a buy) are not oversells."""

    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        errors = Errors(ib)
        option = await near_money_call(ib, sim, above=-0.01)
        trade = ib.placeOrder(option, LimitOrder("SELL", 2, 0.05, tif="DAY"))
        await until(lambda: 201 in errors.about(trade.order.orderId))
        assert "NOT ACCEPTED" in errors.seen[-1][2]
        assert not sim.exchange.working_orders()
        ib.disconnect()

    scenario(version, body)


def test_pnl_subscriptions_stream_the_account_and_one_positions_pnl(version: int) -> None:
    """reqPnL and reqPnLSingle (TWS API docs, "P&L"): the account's daily, unrealized and
    realized P&L, and one position's, sent again as they change."""

    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        option = await near_money_call(ib, sim, above=-0.01)
        trade = ib.placeOrder(option, LimitOrder("BUY", 1, float(_ask(sim, option))))
        await until(lambda: trade.isDone())
        account = ib.wrapper.accounts[0]
        whole = ib.reqPnL(account)
        single = ib.reqPnLSingle(account, "", option.conId)
        await until(lambda: whole.unrealizedPnL == whole.unrealizedPnL and single.position == 1)
        assert whole.unrealizedPnL < 0  # bought at the ask, marked at the mid
        assert single.unrealizedPnL == whole.unrealizedPnL and single.value > 0
        before = single.value
        sim.advance(timedelta(minutes=30))
        await until(lambda: single.value != before)
        ib.cancelPnL(account)
        ib.cancelPnLSingle(account, "", option.conId)
        ib.disconnect()

    scenario(version, body)
