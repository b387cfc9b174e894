"""Orders at IB: native brackets, single orders, cancels, and what IB did with them.

* Every order carries our `orderRef`, an explicit `tif`, the account, and a price on the
  contract's tick (checked against the minTick IB gave when the contract was qualified).
* Order ids come from `OrderIds` (max of IB's next id and our persisted high-water mark), are
  reserved on disk before sending, and IB's request-id counter is moved past them so a
  market-data request can never be mistaken for one of our orders.
* A native bracket is parent LMT (transmit=False), take-profit LMT (transmit=False,
  parentId), stop STP (transmit=True, parentId), sent back to back. When IB refuses it, the
  loop falls back to OCO emulation (`BracketRefused`) — but only once nothing of it can still
  trade: a parent that IB accepted while refusing a leg is cancelled first, and if it filled
  before the cancel, the bracket is reported as placed (the fills are adopted, never doubled).
* `orders()` and `executions()` are the tracker's view (our reading of IB's messages),
  `positions()` IB's position list.

Why one module: sending, cancelling and reading back our orders share one tracker, one id
reservation and one connection, and the safety arguments (a refused bracket's parent cancelled
before the fallback, a held order finished only once IB no longer lists it) each span a send and
what IB answers to it.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from decimal import Decimal

from tradebot.brokers.base import (
    BracketRefused,
    BracketSpec,
    BrokerError,
    BrokerOrder,
    BrokerPosition,
    Execution,
    Holding,
    OrderRejected,
    OrderSpec,
    PlacedOrder,
    PositionsUnknown,
)
from tradebot.brokers.ibkr import mapping
from tradebot.brokers.ibkr.connection import POSITIONS, IbConnection
from tradebot.brokers.ibkr.ids import OrderIds
from tradebot.brokers.ibkr.tracker import IbOrder, OrderTracker
from tradebot.core.instruments import OptionContract
from tradebot.core.market_time import market_clock

log = logging.getLogger("tradebot.ibkr")

EXECUTIONS_REFRESH = timedelta(minutes=5)
# An order IB holds Inactive this long is cancelled (the loop cancels a held closing sell or stop
# at once). A cancel of an Inactive order may bring no status back (ib_insync#363): the order is
# finished for tradebot only once IB's open orders, asked after the cancel, no longer list it —
# never on a timer (a held order may still fill: a locate found, ib_insync#363), and asked again
# this often while IB still lists it or does not answer.
HELD_WATCH = timedelta(minutes=2)
HELD_RECHECK = timedelta(seconds=10)
FORGET_AFTER = timedelta(days=10)  # finished orders and executions older than this are dropped
ACK_POLL_S = 0.005


class IbOrders:
    def __init__(self, conn: IbConnection, tracker: OrderTracker, ids: OrderIds) -> None:
        self.conn = conn
        self.tracker = tracker
        self.ids = ids
        self._executions_at: datetime | None = None
        self._executions_generation = -1
        self._positions: list[BrokerPosition] = []
        self._holdings: list[Holding] = []
        self._noted: set[int] = set()
        self._held_check: asyncio.Task[None] | None = None
        self._held_checked_at: datetime | None = None

    # -- sending -------------------------------------------------------------------------------
    def _check(self, spec: OrderSpec) -> None:
        c = spec.contract
        if c.con_id <= 0:
            raise OrderRejected(f"{spec.order_ref}: {c.label} was never qualified at IB (no conId)")
        if spec.qty <= 0:
            raise OrderRejected(f"{spec.order_ref}: quantity {spec.qty} is not positive")
        if not spec.tif:
            raise OrderRejected(f"{spec.order_ref}: no time in force")
        grid = self.conn.ladders.get(c.con_id) or c.grid
        for name, price in (("limit", spec.limit), ("stop", spec.stop)):
            if price is None:
                continue
            if not grid.contains(price):
                raise OrderRejected(
                    f"{spec.order_ref}: {name} price {price} is not on {c.label}'s price "
                    f"increments ({grid.describe()})",
                    code=110,
                )

    def _reserve(self, refs: list[str]) -> list[int]:
        ib = self.conn.require()
        server_next = max(self.conn.server_next_id, ib.client.getReqId())
        ids = self.ids.reserve(len(refs), server_next, refs)
        ib.client.updateReqId(ids[-1] + 1)  # type: ignore[no-untyped-call]
        return ids

    def _send(self, spec: OrderSpec, order_id: int, *, parent_id: int, transmit: bool) -> IbOrder:
        ib = self.conn.require()
        account = self.conn.account
        record = self.tracker.sent(
            spec, order_id, parent_id=parent_id, account=account, now=self.conn.now()
        )
        order = mapping.ib_order(
            spec, order_id, parent_id=parent_id, transmit=transmit, account=account
        )
        try:
            ib.placeOrder(mapping.ib_option(spec.contract), order)
        except ConnectionError as exc:
            raise BrokerError(
                f"{spec.order_ref}: not sent, the connection to IB Gateway is down ({exc})"
            ) from None
        return record

    async def place_bracket(self, bracket: BracketSpec) -> list[PlacedOrder]:
        specs = (bracket.entry, bracket.take_profit, bracket.stop_loss)
        for spec in specs:
            self._check(spec)
        parent_id, tp_id, sl_id = self._reserve([s.order_ref for s in specs])
        records = [
            self._send(bracket.entry, parent_id, parent_id=0, transmit=False),
            self._send(bracket.take_profit, tp_id, parent_id=parent_id, transmit=False),
            self._send(bracket.stop_loss, sl_id, parent_id=parent_id, transmit=True),
        ]
        await self._acknowledged(records)
        parent = records[0]
        refused = [r for r in records if r.rejected is not None]
        if refused:
            code, text = refused[0].rejected or (0, "")
            what = "the entry" if parent in refused else "a leg"
            if parent not in refused and parent.working:
                await self._cancel_and_wait(parent)
            if parent.filled > 0:
                log.error(
                    "%s: IB refused %s of the bracket (%d %s) but the entry filled %d before "
                    "it could be cancelled; the position has no working legs",
                    parent.order_ref,
                    what,
                    code,
                    text,
                    parent.filled,
                )
                # The loop guards a position without a stop when it reconciles: now, not at
                # the next reconnection.
                self.conn.reconcile_soon(f"{parent.order_ref} filled without its bracket legs")
                return [self._placed(r) for r in records]
            if parent.working:
                self.conn.reconcile_soon(f"{parent.order_ref}'s cancel is not confirmed")
                raise BrokerError(
                    f"{parent.order_ref}: IB refused {what} of the bracket ({code} {text}) and "
                    "did not confirm the entry's cancel in time; the next reconciliation adopts "
                    "whatever it becomes"
                )
            for record in records:
                self.tracker.retire(record)  # the loop may send the entry alone, same orderRef
            raise BracketRefused(
                f"IB refused {what} of bracket {parent.order_ref}: {code} {text}", code=code
            )
        return [self._placed(r) for r in records]

    async def place_order(self, order: OrderSpec) -> PlacedOrder:
        self._check(order)
        [order_id] = self._reserve([order.order_ref])
        record = self._send(order, order_id, parent_id=0, transmit=True)
        await self._acknowledged([record])
        if record.rejected is not None:
            code, text = record.rejected
            raise OrderRejected(f"IB refused {order.order_ref}: {code} {text}", code=code)
        return self._placed(record)

    async def _acknowledged(self, records: list[IbOrder]) -> None:
        """Wait until IB has acknowledged (or refused) each order, up to broker.timeout_s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.conn.settings.timeout_s + self.conn.throttle_delay()
        while any(r.status == "pending" and r.rejected is None for r in records):
            if loop.time() > deadline:
                waiting = ", ".join(r.order_ref for r in records if r.status == "pending")
                raise BrokerError(
                    f"IB Gateway did not acknowledge {waiting} within "
                    f"{self.conn.settings.timeout_s:g} s; the next reconciliation adopts what IB "
                    "has (nothing is sent again)"
                )
            if not self.conn.is_connected():
                raise BrokerError(
                    "the connection to IB Gateway dropped while orders were being sent; the "
                    "next reconciliation adopts what IB has (nothing is sent again)"
                )
            await asyncio.sleep(ACK_POLL_S)

    async def _cancel_and_wait(self, record: IbOrder) -> None:
        self._cancel_id(record)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.conn.settings.timeout_s
        while record.working and loop.time() < deadline and self.conn.is_connected():
            await asyncio.sleep(ACK_POLL_S)

    def _cancel_id(self, record: IbOrder) -> None:
        ib = self.conn.require()
        try:
            ib.client.cancelOrder(record.order_id, "")  # type: ignore[no-untyped-call]
        except ConnectionError as exc:
            raise BrokerError(f"{record.order_ref}: cancel not sent ({exc})") from None

    @staticmethod
    def _placed(record: IbOrder) -> PlacedOrder:
        return PlacedOrder(record.order_ref, record.order_id, record.perm_id, record.status)

    # -- cancelling ----------------------------------------------------------------------------
    async def cancel(
        self, order_ref: str, *, order_id: int = 0, contract: OptionContract | None = None
    ) -> None:
        """Ask IB to cancel; the order is believed cancelled only when IB's status says so.

        An order IB has not listed since a restart (its open orders unanswered) is cancelled by
        the order id it was sent with (`order_id` from the journal, else the id file): IB
        answers a cancel by id with the order's status (Cancelled), or error 10147 when it has
        no such open order (QuantConnect/Lean.Brokerages.InteractiveBrokers#248); either
        settles it. Without an id nothing can be sent, and the caller's alerts say so."""
        record = self.tracker.by_order_ref(order_ref)
        if record is None:
            order_id = order_id or self.ids.id_of(order_ref)
            if order_id <= 0:
                log.warning("cancel of %s not sent: IB has not listed it, no order id", order_ref)
                return
            record = self.tracker.track_unlisted(order_ref, order_id, contract, self.conn.now())
        if record.final:
            return
        if record.client_id != self.conn.settings.client_id:
            raise BrokerError(
                f"{order_ref} belongs to client id {record.client_id} at IB; cancel it there "
                "(or in TWS): this client cannot"
            )
        if not self.conn.is_connected():
            # Not sent; the order stays working until IB says otherwise, and the caller asks
            # again once it sees it still working after the reconnection.
            log.warning("cancel of %s not sent: not connected to IB Gateway", order_ref)
            return
        try:
            self._cancel_id(record)
        except BrokerError as exc:
            log.warning("cancel of %s not sent: %s", order_ref, exc)
            return
        if record.status == "held":
            # IB may never confirm this cancel (ib_insync#363): its open orders say.
            record.held_cancel_at = record.held_cancel_at or self.conn.now()
            await self.confirm_held_cancels()

    async def confirm_held_cancels(self) -> None:
        """Orders IB held Inactive that tradebot asked IB to cancel: each one IB's open orders
        (asked now, after the cancel) no longer list is finished — it can no longer fill, and a
        replacement can never double it. One IB still lists, or an unanswered request, leaves
        them held."""
        asked = [
            o
            for o in self.tracker.all_orders()
            if o.status == "held"
            and o.held_cancel_at is not None
            and o.client_id == self.conn.settings.client_id
        ]
        if not asked or not self.conn.is_connected():
            return
        self._held_checked_at = self.conn.now()
        # Two answers in a row, each asked after the cancel and one at a time, must both leave
        # the order out: an answer that reached ib_async late (after its own request timed
        # out) resolves the next request instead, and could predate the order.
        gone = list(asked)
        for _ in range(2):
            try:
                listed = await self.conn.call(
                    "the open orders (confirming a held order's cancel)", self.conn.open_orders
                )
            except BrokerError as exc:
                log.warning("held orders' cancel not confirmed yet: %s", exc)
                return
            perm_ids = {t.order.permId for t in listed if t.order.permId}
            ids = {(t.order.clientId, t.order.orderId) for t in listed}
            gone = [
                o
                for o in gone
                if not ((o.perm_id and o.perm_id in perm_ids) or (o.client_id, o.order_id) in ids)
            ]
            if not gone:
                return
        now = self.conn.now()
        for o in gone:
            if o.status != "held":
                continue  # IB said more meanwhile (Cancelled, Submitted, Filled)
            log.warning(
                "%s (order id %d): IB held it Inactive, and its open orders no longer list it "
                "after the cancel: finished",
                o.order_ref, o.order_id,
            )  # fmt: skip
            self.tracker.give_up(
                o,
                "IB held it Inactive; cancelled, and IB no longer lists it (it never worked)",
                now,
            )

    # -- what IB did ---------------------------------------------------------------------------
    def _watch_held(self) -> None:
        """Orders IB holds Inactive (not working, not finished): cancelled once they have been
        held for HELD_WATCH; those cancelled are finished once IB no longer lists them
        (`confirm_held_cancels`, in the background every HELD_RECHECK)."""
        if not self.conn.is_connected():
            return
        now = self.conn.now()
        waiting = False
        for o in self.tracker.all_orders():
            if o.status != "held" or o.held_since is None:
                continue
            if o.client_id != self.conn.settings.client_id:
                continue
            if o.held_cancel_at is None and now - o.held_since >= HELD_WATCH:
                log.warning(
                    "%s (order id %d) has been Inactive at IB since %s: cancelled",
                    o.order_ref, o.order_id, market_clock(o.held_since, seconds=True),
                )  # fmt: skip
                try:
                    self._cancel_id(o)
                except BrokerError as exc:
                    log.warning("cancel of held %s not sent: %s", o.order_ref, exc)
                    continue
                o.held_cancel_at = now
            waiting = waiting or o.held_cancel_at is not None
        last = self._held_checked_at
        due = last is None or now - last >= HELD_RECHECK or now < last
        running = self._held_check is not None and not self._held_check.done()
        if waiting and due and not running:
            self._held_checked_at = now
            self._held_check = asyncio.create_task(self.confirm_held_cancels())

    async def orders(self, since: datetime | None = None) -> list[BrokerOrder]:
        """What IB told us about our orders (served while reconnecting too: the loop only reads
        it then, and everything learnt meanwhile arrives with the reconnection's resync).
        What the Gateway left unanswered at connect is asked again in the background."""
        self.conn.retry_missing_soon()
        self._watch_held()
        out = []
        for o in self.tracker.orders(since):
            if o.unlisted:
                if o.final and o.contract is not None:
                    out.append(_unlisted_view(o, o.contract))  # IB settled our cancel by id
                continue
            if o.contract is None or o.order_type not in ("LMT", "STP", "MKT"):
                if o.working and o.perm_id not in self._noted:
                    self._noted.add(o.perm_id)  # once: the loop asks every minute
                    log.warning(
                        "working order %s at IB (%s %s %s, orderRef %r) is not an option order "
                        "tradebot reads; left alone",
                        o.perm_id,
                        o.action,
                        o.qty,
                        o.label,
                        o.order_ref,
                    )
                continue
            out.append(
                BrokerOrder(
                    order_ref=o.order_ref,
                    order_id=o.order_id,
                    perm_id=o.perm_id,
                    parent_id=o.parent_id,
                    contract=o.contract,
                    action="BUY" if o.action == "BUY" else "SELL",
                    qty=o.qty,
                    order_type=o.order_type,  # type: ignore[arg-type]
                    limit=o.limit,
                    stop=o.stop,
                    tif=o.tif,
                    status=o.status,
                    filled=o.filled,
                    avg_fill_price=o.avg_fill_price,
                    reason=o.reason,
                    finished_at=o.finished_at,
                )
            )
        return out

    async def executions(self, since: datetime) -> list[Execution]:
        now = self.conn.now()
        stale = self._executions_at is None or now - self._executions_at >= EXECUTIONS_REFRESH
        unanswered = "the executions" in self.conn.missing  # asked again by retry_missing
        if (
            self.conn.is_connected()
            and not unanswered
            and (stale or self._executions_generation != self.conn.generation)
        ):
            # Live execution reports keep the tracker current; asking again now and then (and
            # after every reconnect) is insurance against a message lost in between, so a
            # failure here is logged and what is known is served.
            try:
                await self.conn.call("the executions", lambda ib: ib.reqExecutionsAsync())
            except BrokerError as exc:
                log.warning("executions not refreshed: %s", exc)
                # Asked again after EXECUTIONS_REFRESH, not at every step.
                self._executions_at = now
                self._executions_generation = self.conn.generation
            else:
                self._executions_at = now
                self._executions_generation = self.conn.generation
                self.conn.answered("the executions")
        self.tracker.forget_before(now - FORGET_AFTER)
        out = []
        for x in self.tracker.executions(since):
            r = x.report
            if r.contract is None:
                continue
            out.append(
                Execution(
                    exec_id=r.exec_id,
                    order_ref=r.order_ref,
                    order_id=r.order_id,
                    perm_id=r.perm_id,
                    contract=r.contract,
                    side=r.side,
                    qty=r.qty,
                    price=r.price,
                    time=r.time,
                    commission=Decimal(0) if r.kind == "expiry" else x.commission,
                    kind=r.kind,
                )
            )
        return out

    def _positions_answered(self) -> None:
        """IB's position list is only IB's word once it has answered reqPositions (position
        messages, then positionEnd); before that, ib_async's empty list means nothing."""
        missing = self.conn.missing.get(POSITIONS)
        if missing is not None:
            raise PositionsUnknown(
                f"IB has not answered its positions ({missing}); asked again every minute"
            )

    async def holdings(self) -> list[Holding]:
        """Every position IB reports for the account, options and anything else (the last
        ones reported while the connection is being restored)."""
        self._positions_answered()
        if not self.conn.is_connected() or self.conn.ib is None:
            return list(self._holdings)
        out = []
        for p in self.conn.ib.positions(self.conn.account):
            qty = mapping.whole(p.position)
            if qty == 0:
                continue
            c = p.contract
            option = mapping.option_from_ib(c, self.conn.ticks.get(c.conId or 0))
            out.append(
                Holding(
                    symbol=c.symbol,
                    sec_type=c.secType,
                    label=mapping.label_of(c),
                    con_id=c.conId or 0,
                    qty=qty,
                    option=option,
                )
            )
        self._holdings = out
        return out

    async def positions(self) -> list[BrokerPosition]:
        """IB's positions (the last ones IB reported while the connection is being restored)."""
        self._positions_answered()
        if not self.conn.is_connected() or self.conn.ib is None:
            return list(self._positions)
        ib = self.conn.ib
        out = []
        for p in ib.positions(self.conn.account):
            tick = self.conn.ticks.get(p.contract.conId or 0)
            option = mapping.option_from_ib(p.contract, tick)
            qty = mapping.whole(p.position)
            if option is None or qty == 0:
                continue
            avg = mapping.dec(p.avgCost) or Decimal(0)
            out.append(BrokerPosition(option, qty, avg / option.multiplier))
        self._positions = out
        return out


def _unlisted_view(o: IbOrder, contract: OptionContract) -> BrokerOrder:
    """An order IB never described since the restart, settled by its answer to our cancel:
    only its ids and final status are IB's word (the book knows the rest)."""
    return BrokerOrder(
        order_ref=o.order_ref, order_id=o.order_id, perm_id=o.perm_id, parent_id=0,
        contract=contract, action="SELL", qty=o.qty, order_type="LMT", limit=None,
        stop=None, tif="", status=o.status, filled=o.filled, avg_fill_price=o.avg_fill_price,
        reason=o.reason, finished_at=o.finished_at,
    )  # fmt: skip
