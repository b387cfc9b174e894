"""The order book a Gateway keeps on top of the venue: what is protocol-level about orders.

`SimExchange` (shared with the built-in simulated broker) is the venue and the account: it fills,
cancels, links brackets and settles. This book adds what IB Gateway does between an API client
and the venue:

* **per-client order ids.** Every client numbers its own orders; two clients may both place an
  order 5. The venue gets its own ids, and the book maps (client id, order id) ↔ venue id.
* **transmit=False.** Such an order is held here, not sent. When an order arrives with
  transmit=True, every held order of its group (its parent and the parent's other children) is
  sent first, in arrival order, then it: a bracket reaches the venue whole or not at all. Held
  orders die with the server, as in IB.
* **modifications.** A placeOrder with the id of a working order changes its price, quantity or
  time in force; the id of a finished order is a duplicate (error 103).
* **translation.** Venue events become notices for the server to send: an order's state
  (openOrder + orderStatus), an execution (execDetails + commissionReport with the realized
  P&L of a closing fill), an error for one client's order, an account change.

Why one module: the id mapping, the transmit=False groups and the messages of one order change
together at each request; split, one order's story would cross files.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from tradebot.core.instruments import OptionContract, StockContract
from tradebot.core.trades import session_of
from tradebot.gateway_sim.contracts import Contract, Universe, wire_contract
from tradebot.gateway_sim.faults import Faults
from tradebot.gateway_sim.messages import ExecView, OrderView
from tradebot.gateway_sim.requests import ExecutionFilter, PlaceOrderRequest
from tradebot.gateway_sim.timeparse import NEW_YORK, parse_ib_time
from tradebot.market.exchange import (
    ErrorEvent,
    Event,
    FillEvent,
    OrderType,
    OrderUpdate,
    PositionEvent,
    SimExchange,
    SimFill,
    SimOrder,
    multiplier_of,
)
from tradebot.market.fills import commission

ORDER_TYPES: dict[str, OrderType] = {"LMT": "LMT", "STP": "STP", "MKT": "MKT"}
TIFS = ("DAY", "GTC", "IOC")
UNKNOWN_PARENT = -1  # a venue id that never exists: the venue then refuses "parent unknown"


@dataclass(frozen=True)
class OrderNotice:
    view: OrderView
    only_owner: bool = False  # what-if answers go to the asking client only


@dataclass(frozen=True)
class FillNotice:
    view: ExecView
    commission: Decimal
    realized: Decimal | None


@dataclass(frozen=True)
class ErrorNotice:
    client_id: int
    order_id: int
    code: int
    text: str


@dataclass(frozen=True)
class AccountNotice:
    """Cash and positions changed (these contracts' positions in particular)."""

    con_ids: tuple[int, ...]


Notice = OrderNotice | FillNotice | ErrorNotice | AccountNotice


@dataclass
class HeldOrder:
    client_id: int
    request: PlaceOrderRequest
    contract: Contract


@dataclass(frozen=True)
class Extras:
    """Order attributes the venue does not keep but clients read back."""

    oca_type: int = 0
    outside_rth: bool = False


class OrderBook:
    def __init__(self, exchange: SimExchange, universe: Universe, faults: Faults) -> None:
        self.exchange = exchange
        self.universe = universe
        self.faults = faults
        self.venue_ids: dict[tuple[int, int], int] = {}
        self.owners: dict[int, tuple[int, int]] = {}
        self.held: dict[tuple[int, int], HeldOrder] = {}
        self.inactive: list[list[HeldOrder]] = []  # groups IB reports Inactive, not working yet
        self.extras: dict[int, Extras] = {}
        self.realized: dict[str, Decimal] = {}  # exec id → realized P&L of a closing fill
        self.highest_id: dict[int, int] = {}  # client id → highest order id it ever used
        self.next_venue_id = 1
        self.liquidations: set[int] = set()  # venue ids of IB's own liquidation orders
        self._snapshot: dict[int, tuple[int, Decimal]] = {}

    @property
    def account(self) -> str:
        return self.exchange.account

    # -- ids -------------------------------------------------------------------------------------
    def next_valid_id(self, client_id: int) -> int:
        return self.highest_id.get(client_id, 0) + 1

    def _saw_id(self, client_id: int, order_id: int) -> None:
        self.highest_id[client_id] = max(self.highest_id.get(client_id, 0), order_id)

    def order(self, client_id: int, order_id: int) -> SimOrder | None:
        venue = self.venue_ids.get((client_id, order_id))
        return None if venue is None else self.exchange.orders.get(venue)

    # -- placing -----------------------------------------------------------------------------
    def place(self, client_id: int, req: PlaceOrderRequest, now: datetime) -> list[Notice]:
        key = (client_id, req.order_id)
        if req.order_id <= 0:
            return [ErrorNotice(client_id, req.order_id, 103, "Duplicate order id")]
        self._saw_id(client_id, req.order_id)
        contract = self._contract(req, now)
        if req.what_if:
            return [self._what_if(client_id, req, contract, now)]
        existing = self.order(client_id, req.order_id)
        if existing is not None:
            if not existing.working:
                return [ErrorNotice(client_id, req.order_id, 103, "Duplicate order id")]
            return self._modify(existing, req, now)
        if key in self.held or not req.transmit:
            self.held[key] = HeldOrder(client_id, req, contract)
            if not req.transmit:
                return []
        return self._transmit(client_id, req, contract, now)

    def _contract(self, req: PlaceOrderRequest, now: datetime) -> Contract:
        found = self.universe.resolve(req.contract, session_of(now))
        if found is not None:
            return found
        # The venue answers an unknown contract (conId 0) with error 200.
        return StockContract(req.contract.symbol or "?", con_id=0)

    def _transmit(
        self, client_id: int, req: PlaceOrderRequest, contract: Contract, now: datetime
    ) -> list[Notice]:
        """Send the group of `req` to the venue: held parent, held siblings, then `req`."""
        group_parent = req.parent_id or req.order_id
        group = [
            h
            for (cid, oid), h in self.held.items()
            if cid == client_id
            and (oid == group_parent or h.request.parent_id == group_parent)
            and oid != req.order_id
        ]
        mine = self.held.pop((client_id, req.order_id), None)
        for h in group:
            del self.held[(client_id, h.request.order_id)]
        group.append(mine or HeldOrder(client_id, req, contract))
        # The parent first, then its children in the order they were placed.
        group.sort(key=lambda h: (h.request.parent_id != 0, h.request.order_id))
        if self.faults.take_inactive(client_id):
            # IB holds it Inactive for a while (a locate, a precaution), then works it.
            self.inactive.append(group)
            return [
                OrderNotice(
                    _request_view(h.client_id, h.request, h.contract, self.account, "Inactive"),
                    only_owner=True,
                )
                for h in group
            ]
        return self._submit_group(group, now)

    def release_inactive(self, now: datetime) -> list[Notice]:
        """The orders IB held Inactive start working (Submitted, or PreSubmitted children)."""
        groups, self.inactive = self.inactive, []
        notices: list[Notice] = []
        for group in groups:
            notices += self._submit_group(group, now)
        return notices

    def _submit_group(self, group: list[HeldOrder], now: datetime) -> list[Notice]:
        notices: list[Notice] = []
        refused: set[int] = set()
        for h in group:
            # A child of a parent the venue just refused goes down with it (IB rejects the
            # whole attached group), rather than waiting forever for a parent that never fills.
            orphan = h.request.parent_id in refused
            reason = f"parent order {h.request.parent_id} was rejected" if orphan else None
            notices += self._submit(h.client_id, h.request, h.contract, now, reject=reason)
            placed = self.order(h.client_id, h.request.order_id)
            if placed is not None and placed.status in ("Cancelled", "Inactive"):
                refused.add(h.request.order_id)
        return notices

    def _submit(
        self,
        client_id: int,
        req: PlaceOrderRequest,
        contract: Contract,
        now: datetime,
        reject: str | None = None,
    ) -> list[Notice]:
        venue_id = self.next_venue_id
        self.next_venue_id += 1
        self.venue_ids[(client_id, req.order_id)] = venue_id
        self.owners[venue_id] = (client_id, req.order_id)
        self.extras[venue_id] = Extras(req.oca_type, req.outside_rth)
        parent = 0
        if req.parent_id:
            parent = self.venue_ids.get((client_id, req.parent_id), UNKNOWN_PARENT)
        order = SimOrder(
            order_id=venue_id,
            contract=contract,
            action="BUY" if req.action == "BUY" else "SELL",
            qty=int(req.quantity),
            order_type=ORDER_TYPES.get(req.order_type, "LMT"),  # others are refused below
            limit=req.limit if req.order_type == "LMT" else None,
            stop=req.aux if req.order_type == "STP" else None,
            tif=req.tif,
            order_ref=req.order_ref,
            parent_id=parent,
            oca_group=req.oca_group,
            client_id=client_id,
            account=self.account,
        )
        reason = reject or self._refusal(client_id, req) or self._oversell(req, contract)
        self._take_snapshot()
        events = self.exchange.submit(order, now, reject=reason)
        notices = self._translate(events)
        if order.working:
            notice = self.faults.take_order_notice(client_id)
            if notice is not None:
                notices.append(ErrorNotice(client_id, req.order_id, notice.code, notice.text))
            if req.tif == "IOC":
                notices += self._cancel_venue(order, now, quiet_reason="IOC")
        return notices

    def _refusal(self, client_id: int, req: PlaceOrderRequest) -> str | None:
        """Why the Gateway refuses this order outright (201), or None."""
        injected = self.faults.take_reject(client_id)
        if injected:
            return injected
        if req.action not in ("BUY", "SELL"):
            return f"the action {req.action!r} is not BUY or SELL"
        if req.order_type not in ORDER_TYPES:
            return f"the simulator accepts LMT, STP and MKT orders, not {req.order_type}"
        if req.tif not in TIFS:
            return f"the simulator accepts DAY, GTC and IOC orders, not {req.tif}"
        if req.quantity != req.quantity.to_integral_value():
            return "fractional quantities are not accepted"
        if req.has_conditions:
            return "conditional orders are not accepted by the simulator"
        if req.account and req.account != self.account:
            return f"account {req.account} is not managed by this gateway"
        return None

    def _oversell(self, req: PlaceOrderRequest, contract: Contract) -> str | None:
        """An option sell (not a bracket's leg) of more than the account holds would open a
        short: IB refuses it at once with an error, it does not cancel it later."""
        if req.action != "SELL" or req.parent_id or not isinstance(contract, OptionContract):
            return None
        held = self.exchange.positions.get(contract.con_id)
        have = held.qty if held is not None else 0
        if req.quantity > have:
            return (
                f"YOUR ORDER IS NOT ACCEPTED. A SELL OF {req.quantity} WOULD OPEN A SHORT "
                f"OPTION POSITION (THE ACCOUNT HOLDS {have})"
            )
        return None

    def _what_if(
        self, client_id: int, req: PlaceOrderRequest, contract: Contract, now: datetime
    ) -> OrderNotice:
        quote = self.exchange.quote(contract, now) if contract.con_id else None
        price = req.limit or (quote.ask if quote is not None else Decimal(0))
        qty = int(req.quantity)
        fee = commission(qty, self.exchange.per_contract, self.exchange.minimum)
        view = replace(
            _request_view(client_id, req, contract, self.account, "PreSubmitted"),
            what_if=True,
            what_if_cost=price * qty * multiplier_of(contract),
            commission=fee,
        )
        return OrderNotice(view, only_owner=True)

    def _modify(self, order: SimOrder, req: PlaceOrderRequest, now: datetime) -> list[Notice]:
        client_id, order_id = self.owners[order.order_id]
        same = (
            req.action == order.action
            and req.order_type == order.order_type
            and self._contract(req, now).con_id == order.contract.con_id
        )
        if not same:
            text = "Order being modified does not match original order: "
            text += "only price, quantity and time in force can change"
            return [ErrorNotice(client_id, order_id, 105, text)]
        limit = req.limit if order.order_type == "LMT" else None
        stop = req.aux if order.order_type == "STP" else None
        grid = order.contract.grid if isinstance(order.contract, OptionContract) else None
        for price in (limit, stop):
            valid = price is None or (
                grid.contains(price)
                if grid is not None
                else price > 0 and price % order.contract.tick == 0
            )
            if not valid:
                text = "The price does not conform to the minimum price variation for this "
                text += "contract."
                return [ErrorNotice(client_id, order_id, 110, text)]
        qty = int(req.quantity)
        if qty < max(order.filled, 1):
            return [ErrorNotice(client_id, order_id, 434, "The order size cannot be zero.")]
        order.limit, order.stop, order.qty, order.tif = limit, stop, qty, req.tif
        order.order_ref = req.order_ref or order.order_ref
        if req.parent_id == 0:
            order.parent_id = 0  # IB: re-send a child with parentId 0 to modify it alone
        return [OrderNotice(self._view(order))]

    # -- cancelling ----------------------------------------------------------------------------
    def cancel(self, client_id: int, order_id: int, now: datetime) -> list[Notice]:
        for group in self.inactive:
            ids = {h.request.order_id for h in group if h.client_id == client_id}
            if order_id in ids and self.faults.held_cancels_ignored:
                return []  # IB goes on holding it (still listed, Inactive)
            if order_id in ids:
                # Cancelling an order IB holds Inactive may bring no status at all
                # (erdewit/ib_insync#363): it (and its children) are simply gone.
                group[:] = [
                    h for h in group
                    if h.request.order_id != order_id and h.request.parent_id != order_id
                ]  # fmt: skip
                self.inactive = [g for g in self.inactive if g]
                return []
        held = self.held.pop((client_id, order_id), None)
        if held is not None:
            notices: list[Notice] = [self._held_cancelled(held)]
            for key, child in list(self.held.items()):
                if key[0] == client_id and child.request.parent_id == order_id:
                    del self.held[key]
                    notices.append(self._held_cancelled(child))
            return notices
        order = self.order(client_id, order_id)
        if order is None:
            # IB's answer to a cancel of an id it has no open order for (ib_insync#656).
            text = f"OrderId {order_id} that needs to be cancelled is not found."
            return [ErrorNotice(client_id, order_id, 10147, text)]
        notices = []
        if order.working and self.faults.take_fill_before_cancel():
            self._take_snapshot()
            notices += self._translate(self.exchange.force_fill(order.order_id, now))
        return notices + self._cancel_venue(order, now)

    def _cancel_venue(
        self, order: SimOrder, now: datetime, quiet_reason: str | None = None
    ) -> list[Notice]:
        self._take_snapshot()
        events = self.exchange.cancel(order.order_id, now)
        if quiet_reason:
            events = [e for e in events if not isinstance(e, ErrorEvent) or e.code != 202]
        return self._translate(events)

    def cancel_all(self, now: datetime) -> list[Notice]:
        """reqGlobalCancel: every working order of every client, and every held one."""
        notices: list[Notice] = [self._held_cancelled(h) for h in self.held.values()]
        self.held.clear()
        for order in sorted(self.exchange.working_orders(), key=lambda o: o.order_id):
            if order.working:  # cancelling a parent may already have cancelled this child
                notices += self._cancel_venue(order, now)
        return notices

    def _held_cancelled(self, held: HeldOrder) -> OrderNotice:
        view = _request_view(held.client_id, held.request, held.contract, self.account, "Cancelled")
        return OrderNotice(view, only_owner=True)

    # -- time and faults -------------------------------------------------------------------------
    def advance(self, now: datetime) -> list[Notice]:
        self._take_snapshot()
        return self._translate(self.exchange.advance(now))

    def liquidate(self, symbol: str, now: datetime) -> list[Notice]:
        """IB sells the account's option positions in `symbol` at market itself: orders of no
        API client (client 0, order id 0, no orderRef) whose executions carry the liquidation
        flag."""
        notices: list[Notice] = []
        for pos in list(self.exchange.positions.values()):
            c = pos.contract
            if c.symbol != symbol.upper() or not isinstance(c, OptionContract) or pos.qty <= 0:
                continue
            venue_id = self.next_venue_id
            self.next_venue_id += 1
            self.owners[venue_id] = (0, 0)
            self.liquidations.add(venue_id)
            order = SimOrder(
                order_id=venue_id, contract=c, action="SELL", qty=pos.qty, order_type="MKT",
                tif="DAY", account=self.account,
            )  # fmt: skip
            self._take_snapshot()
            notices += self._translate(self.exchange.submit(order, now))
        return notices

    def force_fill(
        self, client_id: int, order_id: int, now: datetime, qty: int | None = None
    ) -> list[Notice] | None:
        order = self.order(client_id, order_id)
        if order is None or order.status != "Submitted":
            return None
        self._take_snapshot()
        return self._translate(self.exchange.force_fill(order.order_id, now, qty))

    # -- translation ---------------------------------------------------------------------------
    def _take_snapshot(self) -> None:
        self._snapshot = {c: (p.qty, p.avg_cost) for c, p in self.exchange.positions.items()}

    def _translate(self, events: list[Event]) -> list[Notice]:
        """Venue events → notices, each order shown as it was at that point of the batch.

        The venue reports an order by reference, so an order that arrived and filled in one
        call shows up as Filled in both of its updates. IB would say Submitted, then the
        execution, then Filled: an update followed later in the batch by more news about the
        same order is shown as still working, without the fills that come after it.
        """
        notices: list[Notice] = []
        touched: list[int] = []
        for i, event in enumerate(events):
            if isinstance(event, OrderUpdate):
                order = event.order
                later = events[i + 1 :]
                if any(_about(e, order.order_id) for e in later):
                    notices.append(OrderNotice(self._interim_view(order, later)))
                else:
                    notices.append(OrderNotice(self._view(order)))
            elif isinstance(event, FillEvent):
                fill = event.fill
                notices.append(
                    FillNotice(self.exec_view(fill), fill.commission, self._realize(fill))
                )
                touched.append(fill.contract.con_id)
            elif isinstance(event, PositionEvent):
                touched.extend(event.con_ids)
            else:
                client_id, order_id = self.owners.get(event.order_id, (0, event.order_id))
                notices.append(ErrorNotice(client_id, order_id, event.code, event.message))
        if touched:
            notices.append(AccountNotice(tuple(dict.fromkeys(touched))))
        return notices

    def _interim_view(self, order: SimOrder, later: list[Event]) -> OrderView:
        later_qty = sum(
            e.fill.qty
            for e in later
            if isinstance(e, FillEvent) and e.fill.order_id == order.order_id
        )
        filled = order.filled - later_qty
        parent_fills_later = order.parent_id and any(
            isinstance(e, FillEvent) and e.fill.order_id == order.parent_id for e in later
        )
        status = "PreSubmitted" if parent_fills_later else "Submitted"
        return replace(
            self._view(order),
            status=status,
            filled=filled,
            remaining=order.qty - filled,
            avg_fill_price=order.avg_fill_price if filled else Decimal(0),
            last_fill_price=order.last_fill_price if filled else Decimal(0),
            finished_at=None,
            reason="",
        )

    def _realize(self, fill: SimFill) -> Decimal | None:
        """Realized P&L of a closing fill (after its commission); None for an opening one."""
        qty, avg = self._snapshot.get(fill.contract.con_id, (0, Decimal(0)))
        signed = fill.qty if fill.side == "BOT" else -fill.qty
        realized: Decimal | None = None
        if qty == 0 or (qty > 0) == (signed > 0):
            total = abs(qty) + abs(signed)
            avg = (avg * abs(qty) + fill.price * abs(signed)) / total
        else:
            closing = min(abs(signed), abs(qty))
            direction = 1 if qty > 0 else -1
            gross = (fill.price - avg) * closing * multiplier_of(fill.contract) * direction
            realized = gross - fill.commission
        qty += signed
        self._snapshot[fill.contract.con_id] = (qty, avg if qty else Decimal(0))
        if realized is not None:
            self.realized[fill.exec_id] = realized
        return realized

    def _view(self, order: SimOrder) -> OrderView:
        client_id, order_id = self.owners.get(order.order_id, (order.client_id, order.order_id))
        parent = self.exchange.orders.get(order.parent_id) if order.parent_id > 0 else None
        parent_id = self.owners.get(parent.order_id, (0, 0))[1] if parent is not None else 0
        extras = self.extras.get(order.order_id, Extras())
        return OrderView(
            order_id=order_id,
            client_id=client_id,
            perm_id=order.perm_id,
            parent_id=parent_id,
            parent_perm_id=parent.perm_id if parent is not None else 0,
            contract=wire_contract(order.contract),
            action=order.action,
            quantity=order.qty,
            order_type=order.order_type,
            limit=order.limit if order.order_type == "LMT" else None,
            aux=order.stop if order.order_type == "STP" else None,
            tif=order.tif,
            oca_group=order.oca_group,
            oca_type=extras.oca_type,
            account=order.account or self.account,
            order_ref=order.order_ref,
            outside_rth=extras.outside_rth,
            status=order.status,
            filled=order.filled,
            remaining=order.remaining if order.working else 0,
            avg_fill_price=order.avg_fill_price,
            last_fill_price=order.last_fill_price,
            finished_at=order.finished_at,
            reason=order.reason,
        )

    def exec_view(self, fill: SimFill) -> ExecView:
        client_id, order_id = self.owners.get(fill.order_id, (fill.client_id, fill.order_id))
        return ExecView(
            order_id=order_id,
            client_id=client_id,
            perm_id=fill.perm_id,
            contract=wire_contract(fill.contract),
            exec_id=fill.exec_id,
            time=fill.time,
            account=fill.account or self.account,
            side=fill.side,
            shares=fill.qty,
            price=fill.price,
            cum_qty=fill.cum_qty,
            avg_price=fill.avg_price,
            order_ref=fill.order_ref,
            liquidation=fill.order_id in self.liquidations,
        )

    # -- queries -------------------------------------------------------------------------------
    def open_orders(self, client_id: int | None) -> list[OrderView]:
        """Working orders of `client_id` (every client's with None), in venue order, after those
        IB holds Inactive: IB lists a held order among the open ones, status Inactive (its
        openOrder says so: ib_insync#554, #559), until it works or is cancelled."""
        found = [
            _request_view(h.client_id, h.request, h.contract, self.account, "Inactive")
            for group in self.inactive
            for h in group
            if client_id is None or h.client_id == client_id
        ]
        for venue_id, order in sorted(self.exchange.orders.items()):
            owner = self.owners.get(venue_id, (order.client_id, venue_id))[0]
            if order.working and (client_id is None or owner == client_id):
                found.append(self._view(order))
        return found

    def completed_orders(self, now: datetime) -> list[OrderView]:
        """Orders finished since the start of the IB day (IB lists no older ones)."""
        day = ib_day_start(now)
        return [
            self._view(o)
            for _, o in sorted(self.exchange.orders.items())
            if not o.working
            and o.status != "Inactive"
            and (o.finished_at or o.submitted_at or now) >= day
        ]

    def executions(self, requester: int, f: ExecutionFilter, now: datetime) -> list[FillNotice]:
        """Executions since the start of the IB day that the filter selects: IB answers
        reqExecutions with today's executions only."""
        since = _filter_time(f.time)
        day = ib_day_start(now)
        found = []
        for fill in self.exchange.fills:
            if fill.time < day:
                continue
            view = self.exec_view(fill)
            owner_ok = requester in (0, view.client_id) or fill.kind == "expiry"
            if not owner_ok or (f.client_id and view.client_id != f.client_id):
                continue
            if f.account and f.account != view.account:
                continue
            if f.symbol and f.symbol != view.contract.symbol:
                continue
            if f.sec_type and f.sec_type != view.contract.sec_type:
                continue
            if f.exchange and f.exchange not in (view.exchange, "SMART"):
                continue
            if f.side and {"BUY": "BOT", "SELL": "SLD"}.get(f.side, f.side) != view.side:
                continue
            if since is not None and fill.time < since:
                continue
            found.append(FillNotice(view, fill.commission, self.realized.get(fill.exec_id)))
        return found

    # -- persistence -------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """The book's part of `--state` (held orders are not kept: IB loses them too)."""
        kept = set(self.exchange.orders)
        return {
            "ids": [[c, o, v] for (c, o), v in self.venue_ids.items() if v in kept],
            "extras": [[v, e.oca_type, e.outside_rth] for v, e in self.extras.items() if v in kept],
            "highest_id": [[c, i] for c, i in self.highest_id.items()],
            "next_venue_id": self.next_venue_id,
            "realized": self.realized,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        self.venue_ids = {(int(c), int(o)): int(v) for c, o, v in state.get("ids", [])}
        self.owners = {v: k for k, v in self.venue_ids.items()}
        self.extras = {int(v): Extras(int(t), bool(r)) for v, t, r in state.get("extras", [])}
        self.highest_id = {int(c): int(i) for c, i in state.get("highest_id", [])}
        self.next_venue_id = int(state.get("next_venue_id") or 1)
        self.next_venue_id = max(self.next_venue_id, max(self.exchange.orders, default=0) + 1)
        self.realized = {str(k): Decimal(str(v)) for k, v in state.get("realized", {}).items()}
        for order in self.exchange.orders.values():
            self.universe.remember(order.contract)


def _request_view(
    client_id: int, req: PlaceOrderRequest, contract: Contract, account: str, status: str
) -> OrderView:
    """An order that never reached the venue (held, or what-if), as its client sent it."""
    qty = int(req.quantity)
    return OrderView(
        order_id=req.order_id,
        client_id=client_id,
        perm_id=0,
        parent_id=req.parent_id,
        parent_perm_id=0,
        contract=wire_contract(contract),
        action=req.action,
        quantity=qty,
        order_type=req.order_type,
        limit=req.limit,
        aux=req.aux,
        tif=req.tif,
        oca_group=req.oca_group,
        oca_type=req.oca_type,
        account=account,
        order_ref=req.order_ref,
        outside_rth=req.outside_rth,
        status=status,
        filled=0,
        remaining=qty if status != "Cancelled" else 0,
        avg_fill_price=Decimal(0),
        last_fill_price=Decimal(0),
    )


def _about(event: Event, venue_id: int) -> bool:
    if isinstance(event, OrderUpdate):
        return event.order.order_id == venue_id
    if isinstance(event, FillEvent):
        return event.fill.order_id == venue_id
    return False


def ib_day_start(now: datetime) -> datetime:
    """Midnight, New York time, of `now`'s day: IB's executions and completed orders start
    there (IB API docs, reqExecutions: "executions since midnight"; quoted in
    erdewit/ib_insync#483; completed orders: wboayue/rust-ibapi#299)."""
    local = now.astimezone(NEW_YORK)
    return datetime(local.year, local.month, local.day, tzinfo=NEW_YORK).astimezone(UTC)


def _filter_time(text: str) -> datetime | None:
    """An execution filter's time (see `parse_ib_time`); None when empty or unreadable."""
    try:
        return parse_ib_time(text) if text.strip() else None
    except ValueError:
        return None
