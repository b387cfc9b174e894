"""`IbkrBroker`: the loop's `Broker` interface over IB Gateway (see the package docstring)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from tradebot.brokers.base import (
    AccountSnapshot,
    BracketSpec,
    BrokerError,
    BrokerOrder,
    BrokerPosition,
    Execution,
    Holding,
    OptionChainInfo,
    OrderSpec,
    PlacedOrder,
    Statement,
)
from tradebot.brokers.ibkr import mapping
from tradebot.brokers.ibkr.connection import IbConnection, Notify
from tradebot.brokers.ibkr.ids import OrderIds
from tradebot.brokers.ibkr.market_data import IbMarketData
from tradebot.brokers.ibkr.orders import IbOrders
from tradebot.brokers.ibkr.settings import IbkrSettings
from tradebot.brokers.ibkr.tracker import OrderTracker
from tradebot.core.instruments import OptionContract, Quote

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]
    from ib_async import IB

log = logging.getLogger("tradebot.ibkr")

NET_LIQUIDATION = "NetLiquidation"
FLEX_EVERY = timedelta(minutes=10)
CASH = "TotalCashValue"


class IbkrBroker:
    """Interactive Brokers through ib_async, with tradebot's own reading of its messages."""

    kind = "ibkr"

    def __init__(
        self,
        settings: IbkrSettings,
        state_dir: Path,
        now: Callable[[], datetime],
        *,
        notify: Notify | None = None,
        on_gateway_time: Callable[[datetime], None] | None = None,
        wall: Callable[[], datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.tracker = OrderTracker(settings.client_id)
        self.ids = OrderIds(state_dir, settings.client_id)
        self.conn = IbConnection(
            settings,
            self.tracker,
            self.ids,
            now,
            notify=notify,
            on_gateway_time=on_gateway_time,
            wall=wall,
        )
        self.market = IbMarketData(self.conn, wall=wall)
        self.exec = IbOrders(self.conn, self.tracker, self.ids)
        self._account: AccountSnapshot | None = None
        self._flex: Statement | None = None
        self._flex_at: datetime | None = None

    # -- connection ----------------------------------------------------------------------------
    async def connect(self) -> None:
        await self.conn.connect()

    async def disconnect(self) -> None:
        await self.conn.close()

    def is_connected(self) -> bool:
        return self.conn.is_connected()

    @property
    def generation(self) -> int:
        return self.conn.generation

    def entries_paused(self, now: datetime) -> str | None:
        return self.conn.entries_paused(now)

    def order_lists_complete(self) -> bool:
        return self.conn.order_lists_complete()

    # -- account and market data ---------------------------------------------------------------
    async def account(self) -> AccountSnapshot:
        """Net liquidation now; while the connection is down (or IB is slow), the last reading
        with its own time, which the guards judge (older than 15 minutes is unknown)."""
        try:
            snapshot = await self._read_account()
        except BrokerError as exc:
            if self._account is None:
                raise
            log.warning("account not read (%s); using the reading of %s", exc, self._account.time)
            return self._account
        self._account = snapshot
        return snapshot

    async def _read_account(self) -> AccountSnapshot:
        await self.conn.refresh_clock()
        await self.conn.retry_missing()
        ib = self.conn.require()
        account = self.conn.account
        values = {(v.tag, v.currency): v.value for v in ib.accountValues(account)}
        if not any(tag == NET_LIQUIDATION for tag, _ in values):
            values = await self._account_summary(ib, account)
        net = _money(values, NET_LIQUIDATION)
        if net is None:
            raise BrokerError(f"IB reported no net liquidation value for {account}; equity unknown")
        cash = _money(values, CASH)
        return AccountSnapshot(
            net_liquidation=net.quantize(Decimal("0.01")),
            cash=(cash if cash is not None else Decimal(0)).quantize(Decimal("0.01")),
            time=self.conn.now(),
            account=account,
            source=f"IBKR {account} NetLiquidation",
        )

    async def _account_summary(self, ib: IB, account: str) -> dict[tuple[str, str], str]:
        """One account summary, then its subscription is cancelled: IB keeps at most two open
        per client (error 322), and ib_async's reqAccountSummaryAsync never cancels its own."""
        req_ids: list[int] = []

        def request(ib: IB) -> Awaitable[None]:
            req_id = ib.client.getReqId()
            future: Awaitable[None] = ib.wrapper.startReq(req_id)  # type: ignore[no-untyped-call]
            req_ids.append(req_id)
            tags = f"{NET_LIQUIDATION},{CASH}"
            ib.client.reqAccountSummary(req_id, "All", tags)  # type: ignore[no-untyped-call]
            return future

        try:
            await self.conn.call("the account summary", request)
        finally:
            for req_id in req_ids:
                if ib.isConnected():
                    ib.client.cancelAccountSummary(req_id)  # type: ignore[no-untyped-call]
        # The wrapper's table, never ib.accountSummary(): it would run its own loop.
        return {
            (v.tag, v.currency): v.value
            for v in ib.wrapper.acctSummary.values()
            if v.account == account
        }

    async def bars(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        return await self.market.bars(symbol, start, end)

    async def option_chain(self, symbol: str) -> OptionChainInfo:
        return await self.market.option_chain(symbol)

    async def qualify(self, contracts: Sequence[OptionContract]) -> list[OptionContract | None]:
        return await self.market.qualify(contracts)

    async def quotes(self, contracts: Sequence[OptionContract]) -> list[Quote | None]:
        if not self.conn.is_connected():
            return [None] * len(contracts)  # no quote: nothing is opened or fired on it
        try:
            return await self.market.quotes(contracts)
        except BrokerError as exc:  # the connection went down mid-request
            log.warning("no quotes: %s", exc)
            return [None] * len(contracts)

    # -- orders --------------------------------------------------------------------------------
    async def place_bracket(self, bracket: BracketSpec) -> list[PlacedOrder]:
        return await self.exec.place_bracket(bracket)

    async def place_order(self, order: OrderSpec) -> PlacedOrder:
        return await self.exec.place_order(order)

    async def cancel(
        self, order_ref: str, *, order_id: int = 0, contract: OptionContract | None = None
    ) -> None:
        await self.exec.cancel(order_ref, order_id=order_id, contract=contract)

    async def positions(self) -> list[BrokerPosition]:
        return await self.exec.positions()

    async def holdings(self) -> list[Holding]:
        return await self.exec.holdings()

    async def statement(self, since: date) -> Statement | None:
        """The Flex query's trades and expiry events (broker.flex_token / flex_query_id), read
        at most every FLEX_EVERY: IB prepares a statement in seconds and limits how often a
        token may ask. None when no Flex query is configured or IB did not deliver it."""
        flex = self.settings.flex
        if flex is None:
            return None
        now = self.conn.now()
        if self._flex_at is not None and now - self._flex_at < FLEX_EVERY:
            return self._flex
        self._flex_at = now
        from tradebot.brokers.ibkr import flex as flex_service

        source = f"IB Flex query {flex.query_id}"
        try:
            data = await asyncio.wait_for(
                asyncio.to_thread(flex_service.download, flex),
                flex.timeout_s * (flex_service.POLLS + 1) + flex_service.POLLS * 2,
            )
            self._flex = flex_service.parse(data, source, since)
        except TimeoutError:
            log.warning("%s: no statement within its time; tried again later", source)
        except BrokerError as exc:
            log.warning("%s: %s", source, exc)
        return self._flex

    async def orders(self, since: datetime | None = None) -> list[BrokerOrder]:
        return await self.exec.orders(since)

    async def executions(self, since: datetime) -> list[Execution]:
        return await self.exec.executions(since)


def _money(values: dict[tuple[str, str], str], tag: str) -> Decimal | None:
    for currency in ("USD", "BASE", ""):
        raw = values.get((tag, currency))
        if raw is not None:
            value = mapping.dec(raw, places=2)
            if value is not None:
                return value
    return None
