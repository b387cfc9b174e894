"""The built-in simulated broker (`broker.kind = "sim"`): the `Broker` interface over the shared
simulated venue (`tradebot.market.exchange.SimExchange`) and market model.

It behaves like a broker, not like a test double: orders rest and fill against the market as the
clock moves (crossing the spread), brackets follow IB's semantics, commissions are charged,
options expire at the close of their expiry, and the account (cash, positions, working orders,
recent fills) is persisted under `paths.state_dir` with the atomic writer. A restarted `tradebot
run` therefore finds what happened while it was away — fills included — and reconciles against it
exactly as it would against IBKR.

Why one module: it is the `Broker` interface over the shared venue, one short method per interface
call plus the account's persistence; the venue's logic already lives in `market.exchange`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tradebot.brokers.base import (
    AccountSnapshot,
    BracketRefused,
    BracketSpec,
    BrokerError,
    BrokerOrder,
    BrokerPosition,
    Execution,
    Holding,
    OptionChainInfo,
    OrderRejected,
    OrderSpec,
    OrderStatus,
    PlacedOrder,
    Statement,
)
from tradebot.core.instruments import DataType, OptionContract, Quote
from tradebot.core.market_time import market_datetime
from tradebot.core.trades import session_of
from tradebot.errors import CorruptRecordError, TradebotError, UsageError
from tradebot.market.exchange import ErrorEvent, Event, SimExchange, SimOrder
from tradebot.market.model import MarketModel
from tradebot.storage import read_json_state, write_json_state
from tradebot.storage.records import dumps_record, loads_record

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

STATE_FILE = "sim-broker.json"
SAVE_EVERY = timedelta(minutes=15)
_STATUS: dict[str, OrderStatus] = {
    "PreSubmitted": "presubmitted",
    "Submitted": "submitted",
    "Filled": "filled",
    "Cancelled": "cancelled",
    "Inactive": "inactive",
}


class SimBroker:
    """A broker that fills against the simulated market and remembers its account."""

    kind = "sim"
    # It keeps every fill it made (its account is the record): the loop checks the journal's
    # fills against it and refuses one it does not have.
    account_is_truth = True

    def __init__(
        self,
        market: MarketModel,
        now: Callable[[], datetime],
        state_dir: Path,
        *,
        starting_cash: Decimal,
        per_contract: Decimal = Decimal("0.65"),
        minimum: Decimal = Decimal("1.00"),
        data_type: DataType = "live",
        quote_delay_s: int = 0,
        refuse_brackets: bool = False,
        persist: Callable[[Path, dict[str, object]], None] = write_json_state,
        save_as_it_goes: bool = True,
    ) -> None:
        """`save_as_it_goes=False`: the account is saved only when connecting and disconnecting
        (a backtest's throw-away account: nothing resumes it after a crash)."""
        self.market = market
        self.now = now
        self.path = Path(state_dir) / STATE_FILE
        self.exchange = SimExchange(
            market, cash=starting_cash, per_contract=per_contract, minimum=minimum
        )
        self.data_type: DataType = data_type
        self.quote_delay = timedelta(seconds=quote_delay_s)
        self.refuse_brackets = refuse_brackets
        self._persist = persist
        self._save_as_it_goes = save_as_it_goes
        self._connected = False
        self._saved_at: datetime | None = None
        self._reported = -1  # the venue's change counter at the last `orders` answer
        # The account as last written: what the broker did. A change whose save fails is
        # undone (the sim is a broker: what it did not record did not happen).
        self._persisted: dict[str, object] | None = None

    # -- connection ----------------------------------------------------------------------------
    async def connect(self) -> None:
        state = read_json_state(self.path)
        if state is not None:
            try:
                self.exchange.load_state(state)
            except (KeyError, TypeError, ValueError, AttributeError, ArithmeticError) as exc:
                # Named, exit 4, and the file is kept as it is (never overwritten).
                problem = str(exc) if type(exc) is ValueError else f"{type(exc).__name__}: {exc}"
                raise CorruptRecordError(
                    self.path, None, f"bad simulated account ({problem})"
                ) from None
            last = self.exchange.processed_until
            if last is not None and last > self.now() + timedelta(minutes=1):
                raise UsageError(
                    f"the simulated account in {self.path} was last used at "
                    f"{market_datetime(last)}, after the clock's start "
                    f"({market_datetime(self.now())}); start later (--start) or give this run "
                    "a fresh logs directory: `tradebot --logs DIR run ...`"
                )
            self._persisted = state
            log.info("simulated account resumed from %s", self.path)
        else:
            self.exchange.advance(self.now())
            self._save(force=True)
            log.info("new simulated account with %s cash at %s", self.exchange.cash, self.path)
        self._connected = True
        self._advance()

    async def disconnect(self) -> None:
        if self._connected:
            try:
                self._advance()
                self._save(force=True)
            except BrokerError as exc:  # nothing is lost: the account is as last written
                log.warning("%s", exc)
        self._connected = False

    def is_connected(self) -> bool:
        return self._connected

    @property
    def generation(self) -> int:
        return 1 if self._connected else 0

    def entries_paused(self, now: datetime) -> str | None:
        return None if self._connected else "the simulated broker is not connected"

    def order_lists_complete(self) -> bool:
        return True  # the simulated venue lists every order it has

    # -- account and market data ---------------------------------------------------------------
    async def account(self) -> AccountSnapshot:
        self._advance()
        now = self.now()
        marks = self.exchange.marks(now)
        return AccountSnapshot(
            net_liquidation=self.exchange.net_liquidation(now, marks).quantize(Decimal("0.01")),
            cash=self.exchange.cash,
            time=now,
            account=self.exchange.account,
            source="sim account (cash + positions at mid)",
            marks=marks,
        )

    async def bars(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        self._require(symbol)
        return self.market.bars_between(symbol, start, min(end, self.now()))

    async def option_chain(self, symbol: str) -> OptionChainInfo:
        self._require(symbol)
        return self.market.chain(symbol, session_of(self.now()))

    async def qualify(self, contracts: Sequence[OptionContract]) -> list[OptionContract | None]:
        today = session_of(self.now())
        return [self.market.option(c.symbol, c.expiry, c.strike, c.right, today) for c in contracts]

    async def quotes(self, contracts: Sequence[OptionContract]) -> list[Quote | None]:
        self._advance()
        as_of = self.now() - self.quote_delay
        return [self.exchange.quote(c, as_of, self.data_type) for c in contracts]

    # -- orders --------------------------------------------------------------------------------
    async def place_bracket(self, bracket: BracketSpec) -> list[PlacedOrder]:
        if self.refuse_brackets:
            raise BracketRefused(
                "the simulated broker refuses native brackets (broker.sim.refuse_brackets)",
                code=201,
            )
        now = self.now()
        self._advance()
        parent_id = self.exchange.next_order_id()
        orders = [
            self._order(spec, parent_id + offset, parent_id if offset else 0)
            for offset, spec in enumerate((bracket.entry, bracket.take_profit, bracket.stop_loss))
        ]
        # Like IB's transmit=False: the bracket goes live whole or not at all.
        for order in orders:
            problem = self.exchange.check(order, parent_pending=True)
            if problem is not None:
                raise BracketRefused(
                    f"bracket {bracket.entry.order_ref} refused: {problem[1]}", code=problem[0]
                )
        for order in orders:
            self._check(self.exchange.submit(order, now), order, bracket=True)
        self._save()
        return [self._placed(o) for o in orders]

    async def place_order(self, order: OrderSpec) -> PlacedOrder:
        now = self.now()
        self._advance()
        sim = self._order(order, self.exchange.next_order_id(), 0)
        events = self.exchange.submit(sim, now)
        self._save()
        self._check(events, sim, bracket=False)
        return self._placed(sim)

    async def cancel(
        self, order_ref: str, *, order_id: int = 0, contract: OptionContract | None = None
    ) -> None:
        self._advance()
        for order in self.exchange.working_orders():
            if order.order_ref == order_ref:
                self.exchange.cancel(order.order_id, self.now())
                self._save()
                return

    async def positions(self) -> list[BrokerPosition]:
        self._advance()
        return [
            BrokerPosition(p.contract, p.qty, p.avg_cost)
            for p in self.exchange.positions.values()
            if isinstance(p.contract, OptionContract)
        ]

    async def holdings(self) -> list[Holding]:
        self._advance()
        return [
            Holding(
                symbol=p.contract.symbol,
                sec_type="OPT" if isinstance(p.contract, OptionContract) else "STK",
                label=p.contract.label,
                con_id=p.contract.con_id,
                qty=p.qty,
                option=p.contract if isinstance(p.contract, OptionContract) else None,
            )
            for p in self.exchange.positions.values()
        ]

    async def statement(self, since: date) -> Statement | None:
        return None  # every fill of the simulated account stays in its executions

    async def orders(self, since: datetime | None = None) -> list[BrokerOrder]:
        self._advance()
        self._reported = self.exchange.version
        return [
            self._broker_order(o)
            for o in self.exchange.orders.values()
            if since is None or o.working or (o.finished_at is not None and o.finished_at >= since)
        ]

    async def executions(self, since: datetime) -> list[Execution]:
        self._advance()
        return [
            Execution(
                exec_id=f.exec_id,
                order_ref=f.order_ref,
                order_id=f.order_id,
                perm_id=f.perm_id,
                contract=f.contract,
                side=f.side,
                qty=f.qty,
                price=f.price,
                time=f.time,
                commission=f.commission,
                kind=f.kind,
            )
            for f in self.exchange.fills
            if f.time >= since and isinstance(f.contract, OptionContract)
        ]

    # -- what the loop may know ahead (brokers.base.Foresight) ----------------------------------
    def session_bars(self, symbol: str, session: date) -> pd.DataFrame:
        return self.market.session_bars(symbol, session)

    def unchanged_since_report(self) -> bool:
        self._advance()
        return self.exchange.version == self._reported

    def unchanged_until(self, now: datetime) -> datetime | None:
        """Until the first point of this session at which a working order might fill (the
        venue's vectorised search), or the close (DAY orders end, options expire)."""
        self._advance()
        ex = self.exchange
        if ex.version != self._reported:
            return now
        session = session_of(now)
        try:
            _, closes = self.market.session_minutes(session)
        except ValueError:
            return None
        if now >= closes:
            return None
        last = closes - timedelta(microseconds=1)  # the close is processed by a sync at it
        if not ex.working_orders():
            return last if ex.positions else datetime.max.replace(tzinfo=UTC)
        candidates = ex.fill_candidates(session)
        if candidates is None:
            return None
        at = int(now.timestamp() * 1_000_000) * 1000
        i = int(np.searchsorted(candidates, at, side="left"))
        if i == len(candidates):
            return last
        point = datetime.fromtimestamp(int(candidates[i]) // 1000 / 1e6, UTC)
        return min(max(point, now), last)

    # -- helpers -------------------------------------------------------------------------------
    def _require(self, symbol: str) -> None:
        if not self.market.supports(symbol):
            raise BrokerError(
                f"the simulated market has no data for {symbol} ({self.market.describe()})"
            )

    def _advance(self) -> None:
        # Time moves the market: fills, expiries and DAY cancels happen here. The state is saved
        # when something happened (in between, replaying the same minutes gives the same
        # result), and at least every SAVE_EVERY of simulated time, so that after a crash the
        # account still knows roughly how far it got (a clock set before that is refused).
        now = self.now()
        happened = self.exchange.advance(now)
        if happened or self._saved_at is None or now - self._saved_at >= SAVE_EVERY:
            self._save()

    def _save(self, *, force: bool = False) -> None:
        """Write the account. When that fails (disk full, I/O error), what changed since the
        last write is undone and BrokerError says so: no order, cancel or fill the account
        could not record is ever reported, so nothing the loop adopts can vanish later."""
        if not (force or self._save_as_it_goes):
            return
        state: dict[str, object] = {"v": 1, **self.exchange.to_state()}
        try:
            self._persist(self.path, state)
        except OSError as exc:
            self._undo()
            text = exc.message if isinstance(exc, TradebotError) else str(exc)
            raise BrokerError(
                f"the simulated broker could not record its account, so it did nothing: {text}"
            ) from exc
        self._persisted = state
        self._saved_at = self.exchange.processed_until

    def _undo(self) -> None:
        """Back to the account as last written."""
        if self._persisted is not None:
            # Through JSON, exactly as a restart would read it back.
            self.exchange.load_state(loads_record(dumps_record(self._persisted)))
            self._saved_at = self.exchange.processed_until

    @staticmethod
    def _order(spec: OrderSpec, order_id: int, parent_id: int) -> SimOrder:
        return SimOrder(
            order_id=order_id,
            contract=spec.contract,
            action=spec.action,
            qty=spec.qty,
            order_type=spec.order_type,
            limit=spec.limit,
            stop=spec.stop,
            tif=spec.tif,
            order_ref=spec.order_ref,
            parent_id=parent_id,
        )

    @staticmethod
    def _check(events: list[Event], order: SimOrder, *, bracket: bool) -> None:
        for e in events:
            if isinstance(e, ErrorEvent) and e.order_id == order.order_id and e.code != 202:
                error = BracketRefused if bracket else OrderRejected
                raise error(f"order {order.order_ref} rejected: {e.message}", code=e.code)

    @staticmethod
    def _placed(order: SimOrder) -> PlacedOrder:
        return PlacedOrder(order.order_ref, order.order_id, order.perm_id, _STATUS[order.status])

    @staticmethod
    def _broker_order(o: SimOrder) -> BrokerOrder:
        assert isinstance(o.contract, OptionContract)
        return BrokerOrder(
            order_ref=o.order_ref,
            order_id=o.order_id,
            perm_id=o.perm_id,
            parent_id=o.parent_id,
            contract=o.contract,
            action=o.action,
            qty=o.qty,
            order_type=o.order_type,
            limit=o.limit,
            stop=o.stop,
            tif=o.tif,
            status=_STATUS[o.status],
            filled=o.filled,
            avg_fill_price=o.avg_fill_price,
            reason=o.reason,
            finished_at=o.finished_at,
        )
