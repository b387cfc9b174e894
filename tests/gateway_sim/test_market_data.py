"""ib_async against the simulator: connecting, contracts, the option chain, bars, tickers."""

from __future__ import annotations

import math
import shutil
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from ib_async import IB, Option, Stock

from tests.gateway_sim.conftest import (
    START,
    DecoderWatch,
    Errors,
    connect,
    near_money_call,
    scenario,
    spy_stock,
    until,
)
from tradebot.core.trades import EXCHANGE_TZ
from tradebot.gateway_sim import GatewaySim


async def _spy_option(ib: IB, sim: GatewaySim) -> tuple[Stock, Option]:
    return await spy_stock(ib), await near_money_call(ib, sim)


def test_connect_finishes_its_whole_sync_quickly(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        began = time.perf_counter()
        ib = await connect(sim, client_id=7, timeout=4, raiseSyncErrors=True)
        elapsed = time.perf_counter() - began
        assert elapsed < 1.0  # every start-up request was answered (no 4 s timeout)
        assert ib.isConnected() and ib.client.serverVersion() == version
        assert ib.managedAccounts() == ["DUSIM0001"]
        assert ib.client.getReqId() >= 1
        values = {v.tag: v.value for v in ib.accountValues() if v.currency in ("USD", "")}
        assert values["NetLiquidation"] == "10000.00" and values["AccountCode"] == "DUSIM0001"
        assert ib.positions() == [] and ib.openTrades() == [] and ib.fills() == []
        assert await ib.reqCurrentTimeAsync() == START  # the simulated clock, not the wall's
        ids: list[int] = []
        ib.wrapper.nextValidId = ids.append  # type: ignore[method-assign]
        ib.client.reqIds(1)
        await until(lambda: ids)
        assert ids == [sim.book.next_valid_id(7)]
        ib.disconnect()

    scenario(version, body)


def test_version_is_the_lower_of_client_and_simulator_maximum() -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        assert ib.client.serverVersion() == 170
        ib.disconnect()

    scenario(170, body)


def test_qualify_stock_option_and_a_bad_contract(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        errors = Errors(ib)
        spy, option = await _spy_option(ib, sim)
        assert spy.conId == 756733 and spy.primaryExchange == "ARCA"
        model = sim.market.option(
            "SPY",
            datetime.strptime(option.lastTradeDateOrContractMonth, "%Y%m%d").date(),
            Decimal(str(option.strike)),
            "C",
            START.date(),
        )
        assert model is not None
        assert option.conId == model.con_id and option.localSymbol == model.local_symbol
        assert option.multiplier == "100" and option.tradingClass == "SPY"
        unlisted = Option("SPY", option.lastTradeDateOrContractMonth, 1.5, "C", "SMART")
        unknown = Stock("NOPE", "SMART", "USD")
        assert await ib.qualifyContractsAsync(unlisted, unknown) == [None, None]
        assert errors.codes() == [200, 200]
        [details] = await ib.reqContractDetailsAsync(option)
        assert details.minTick == 0.01 and details.underConId == spy.conId
        assert details.realExpirationDate == option.lastTradeDateOrContractMonth
        assert details.tradingSessions()  # IB's hours string, parsed by ib_async
        ib.disconnect()

    scenario(version, body)


def test_option_chain_lists_the_model_expiries_and_strikes(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        spy = Stock("SPY", "SMART", "USD")
        await ib.qualifyContractsAsync(spy)
        chains = await ib.reqSecDefOptParamsAsync("SPY", "", "STK", spy.conId)
        [smart] = [c for c in chains if c.exchange == "SMART"]
        listing = sim.market.chain("SPY", START.date())
        assert smart.tradingClass == "SPY" and smart.multiplier == "100"
        assert smart.expirations == [f"{e:%Y%m%d}" for e in listing.expiries]
        assert smart.strikes == [float(k) for k in listing.strikes]
        ib.disconnect()

    scenario(version, body)


def test_one_minute_and_one_hour_bars_end_at_the_simulated_clock(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        spy = Stock("SPY", "SMART", "USD")
        await ib.qualifyContractsAsync(spy)
        minutes = await ib.reqHistoricalDataAsync(spy, "", "1 D", "1 min", "TRADES", True)
        assert len(minutes) == 90  # 09:30 to 10:59 New York: completed bars only
        first, last = minutes[0].date, minutes[-1].date
        assert isinstance(first, datetime) and isinstance(last, datetime)
        assert first.astimezone(EXCHANGE_TZ).strftime("%H:%M") == "09:30"
        assert last.astimezone(UTC) == START - timedelta(minutes=1)
        frame = sim.market.session_bars("SPY", START.date())
        assert minutes[0].close == round(float(frame["close"].iat[0]), 4)
        hours = await ib.reqHistoricalDataAsync(spy, "", "2 D", "1 hour", "TRADES", True)
        starts = [b.date.astimezone(EXCHANGE_TZ).strftime("%H:%M") for b in hours]  # type: ignore[union-attr]
        one_day = ["09:30", "10:30", "11:30", "12:30", "13:30", "14:30", "15:30"]
        assert starts == [*one_day, "09:30", "10:30"]  # yesterday's seven, today's two so far
        assert hours[-1].close == minutes[-1].close  # the current hour, as far as it got
        epoch = await ib.reqHistoricalDataAsync(spy, "", "1800 S", "1 min", "TRADES", True, 2)
        assert len(epoch) == 30 and epoch[-1].date == last
        ib.disconnect()

    scenario(version, body)


def test_live_and_delayed_snapshots(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        spy, option = await _spy_option(ib, sim)
        [live] = await ib.reqTickersAsync(option)
        contract = sim.universe.by_con_id[option.conId]
        model = sim.exchange.quote(contract, START)
        assert model is not None
        assert live.marketDataType == 1
        assert (live.bid, live.ask) == (float(model.bid), float(model.ask))
        assert live.volume == model.volume and live.lastTimestamp == START
        ib.reqMarketDataType(3)
        [delayed] = await ib.reqTickersAsync(spy)
        lagged = sim.exchange.quote(sim.market.stock("SPY"), START, "delayed")
        assert lagged is not None
        assert delayed.marketDataType == 3 and delayed.bid == float(lagged.bid)
        assert delayed.delayedLastTimestamp == START - timedelta(minutes=15)
        assert not math.isnan(delayed.close)
        ib.disconnect()

    scenario(version, body)


def test_streaming_ticker_follows_the_clock(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        spy = Stock("SPY", "SMART", "USD")
        await ib.qualifyContractsAsync(spy)
        ticker = ib.reqMktData(spy)
        await until(lambda: ticker.lastTimestamp == START)
        sim.advance(timedelta(minutes=3))
        await until(lambda: ticker.lastTimestamp == START + timedelta(minutes=3))
        quote = sim.exchange.quote(sim.market.stock("SPY"), sim.clock.now())
        assert quote is not None and ticker.bid == float(quote.bid)
        ib.cancelMktData(spy)
        await until(lambda: not any(s.streams for s in sim.sessions.values()))
        ib.disconnect()

    scenario(version, body)


def test_account_summary_and_updates_match_the_venue(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        summary = {v.tag: v for v in await ib.accountSummaryAsync()}
        assert summary["NetLiquidation"].value == "10000.00"
        assert summary["TotalCashValue"].currency == "USD"
        assert summary["AccountType"].value == "INDIVIDUAL"
        ib.disconnect()

    scenario(version, body)


def test_the_decoder_watch_catches_a_message_with_a_missing_field(
    monkeypatch: pytest.MonkeyPatch, no_decoder_errors: DecoderWatch
) -> None:
    """The guard the other tests rely on: a tickPrice one field short is caught."""
    from tradebot.gateway_sim import messages

    def short_tick(req_id: int, tick: int, price: object, size: int = 0) -> list[object]:
        return [1, 6, req_id, tick, price, size]  # attrMask missing

    monkeypatch.setattr(messages, "tick_price", short_tick)

    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        spy = Stock("SPY", "SMART", "USD")
        await ib.qualifyContractsAsync(spy)
        await ib.reqTickersAsync(spy)
        ib.disconnect()

    scenario(178, body)
    assert any("Error handling fields" in line for line in no_decoder_errors.bad)
    no_decoder_errors.bad.clear()


def test_a_conid_from_before_a_restart_still_resolves(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        _, option = await _spy_option(ib, sim)
        sim.universe.by_con_id.pop(option.conId)  # as if this server had never listed it
        again = Option(conId=option.conId, symbol="SPY", exchange="SMART")
        [details] = await ib.reqContractDetailsAsync(again)
        assert details.contract is not None and details.contract.localSymbol == option.localSymbol
        ib.disconnect()

    scenario(version, body)


def test_market_rule_and_what_if_order(version: int) -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        _, option = await _spy_option(ib, sim)
        [details] = await ib.reqContractDetailsAsync(option)
        [increment] = await ib.reqMarketRuleAsync(int(details.marketRuleIds.split(",")[0]))
        assert (increment.lowEdge, increment.increment) == (0, 0.01)
        from ib_async import LimitOrder

        state = await ib.whatIfOrderAsync(option, LimitOrder("BUY", 2, 1.25))
        assert float(state.initMarginChange) == 250.0 and state.commission == 1.30
        assert sim.exchange.orders == {}  # a what-if order is never placed
        ib.disconnect()

    scenario(version, body)


def test_bars_from_csv_files_serve_only_their_symbols(tmp_path: Path) -> None:
    folder = tmp_path / "bars"
    folder.mkdir()
    shutil.copy(
        Path(__file__).parent.parent / "data" / "synthetic_spy_1min.csv", folder / "SPY.csv"
    )

    async def body(sim: GatewaySim) -> None:
        assert sim.universe.symbols == ("SPY",) and "SPY" in sim.describe()
        ib = await connect(sim)
        spy, qqq = Stock("SPY", "SMART", "USD"), Stock("QQQ", "SMART", "USD")
        assert await ib.qualifyContractsAsync(spy, qqq) == [spy, None]
        bars = await ib.reqHistoricalDataAsync(spy, "", "1 D", "1 min", "TRADES", True)
        assert len(bars) == 90  # 09:30 … 10:59 on 2025-07-03 (pre-market rows are not RTH)
        assert bars[0].open == 498.63  # the file's 09:30 row
        ib.disconnect()

    scenario(178, body, start=datetime(2025, 7, 3, 15, 0, tzinfo=UTC), bars_dir=folder)
