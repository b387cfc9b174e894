"""The simulated venue and account: orders, fills, positions, cash, commissions, expiries.

Both the built-in simulated broker (`tradebot.brokers.sim`) and the IB Gateway simulator
(`tradebot.gateway_sim`) wrap one `SimExchange`, so an order fills the same way in both. It knows
nothing about wire protocols or journals: callers submit and cancel orders and advance time; it
returns what happened as events and keeps state that round-trips through `to_state` /
`from_state` (JSON-ready) for persistence.

Semantics (IB's, simplified to what tradebot sends: LMT, STP, MKT on options and stocks):

* an order whose `parent_id` names an unfilled parent waits as PreSubmitted and becomes
  Submitted when the parent fills; when one child of a parent fills, its siblings are cancelled
  (IB's attached-order OCA), as are orders sharing a non-empty `oca_group`;
* cancelling a parent that has not filled cancels its children; cancelling a filled order is an
  error (10148), not a cancel;
* fills follow `tradebot.market.fills` (the touch for marketable orders, the limit for resting
  ones, stops at the bid), evaluated at four points of each completed minute;
* a sell never takes a position below zero: a fill that would is refused and the order cancelled
  (the account cannot write options);
* DAY orders are cancelled at the session close; options settle at intrinsic value at the close
  of their expiry session (a fill of kind "expiry", no commission) — or, with
  `exercise_at_expiry` (the IB Gateway simulator), as IB and the OCC do it: an option in the
  money by $0.01 or more is exercised into 100 shares a contract at the strike, one that is not
  expires worthless, and neither is an execution (only the positions change; `eae` keeps the
  statement's record of it);
* commission per order: max(minimum, rate × contracts), charged on its first fill.

Why one module: the venue's orders, fills, positions and cash change together in one step (a fill
moves cash, positions and linked orders at once) and round-trip through one state; split, each part
would need the others' internals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, TypeVar

import numpy as np

from tradebot.core.instruments import DataType, OptionContract, Quote, StockContract
from tradebot.core.sessions import session_open_close, sessions_between
from tradebot.core.trades import session_of
from tradebot.core.validation import (
    MAX_MONEY,
    MAX_PRICE,
    MAX_QTY,
    decimal_number,
    utc_timestamp,
    whole_number,
)
from tradebot.market.fills import POINT_OFFSETS, commission, fill_price, holder_path
from tradebot.market.model import MINUTE, MINUTE_NS, MarketModel, floor_minute

Action = Literal["BUY", "SELL"]
OrderType = Literal["LMT", "STP", "MKT"]
Status = Literal["PreSubmitted", "Submitted", "Filled", "Cancelled", "Inactive"]
WORKING: frozenset[str] = frozenset({"PreSubmitted", "Submitted"})
STATUSES: frozenset[str] = frozenset(
    {"PreSubmitted", "Submitted", "Filled", "Cancelled", "Inactive"}
)
Contract = OptionContract | StockContract
KEEP_DAYS = 10  # finished orders and fills older than this are dropped from the state
# The fill search's margin in dollars: far above the float difference between the vectorised
# and the scalar prices (~1e-13), far below a tick.
SEARCH_MARGIN = 1e-6
POINT_NS = np.array([int(o.total_seconds() * 1e9) for o in POINT_OFFSETS], dtype=np.int64)


@dataclass
class SimOrder:
    """One order at the venue. Mutable: the exchange updates status and fills in place."""

    order_id: int
    contract: Contract
    action: Action
    qty: int
    order_type: OrderType
    limit: Decimal | None = None
    stop: Decimal | None = None
    tif: str = "DAY"
    order_ref: str = ""
    parent_id: int = 0
    oca_group: str = ""
    client_id: int = 0
    account: str = ""
    perm_id: int = 0
    status: Status = "Submitted"
    filled: int = 0
    avg_fill_price: Decimal = Decimal(0)
    last_fill_price: Decimal = Decimal(0)
    submitted_at: datetime | None = None
    finished_at: datetime | None = None
    reason: str = ""

    @property
    def remaining(self) -> int:
        return self.qty - self.filled

    @property
    def working(self) -> bool:
        return self.status in WORKING

    def as_record(self) -> dict[str, Any]:
        return {
            "order_id": self.order_id,
            "contract": contract_record(self.contract),
            "action": self.action,
            "qty": self.qty,
            "order_type": self.order_type,
            "limit": self.limit,
            "stop": self.stop,
            "tif": self.tif,
            "order_ref": self.order_ref,
            "parent_id": self.parent_id,
            "oca_group": self.oca_group,
            "client_id": self.client_id,
            "account": self.account,
            "perm_id": self.perm_id,
            "status": self.status,
            "filled": self.filled,
            "avg_fill_price": self.avg_fill_price,
            "last_fill_price": self.last_fill_price,
            "submitted_at": self.submitted_at,
            "finished_at": self.finished_at,
            "reason": self.reason,
        }

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> SimOrder:
        """Parse a saved order strictly: a ValueError names the bad key (an unknown status, a
        quantity that is not a positive whole number, a price that is not finite)."""
        status = r["status"]
        if status not in STATUSES:
            raise ValueError(
                f"status {str(status)[:40]!r} is not one of {', '.join(sorted(STATUSES))}"
            )
        action = r["action"]
        if action not in ("BUY", "SELL"):
            raise ValueError(f"action {str(action)[:40]!r} is not BUY or SELL")
        qty = whole_number(r["qty"], "qty", low=1, high=MAX_QTY)
        return cls(
            order_id=whole_number(r["order_id"], "order_id", low=1, high=2**31 - 1),
            contract=contract_from_record(r["contract"]),
            action=action,
            qty=qty,
            order_type=r["order_type"],
            limit=_price(r.get("limit"), "limit"),
            stop=_price(r.get("stop"), "stop"),
            tif=str(r.get("tif") or "DAY"),
            order_ref=str(r.get("order_ref") or ""),
            parent_id=int(r.get("parent_id") or 0),
            oca_group=str(r.get("oca_group") or ""),
            client_id=int(r.get("client_id") or 0),
            account=str(r.get("account") or ""),
            perm_id=int(r.get("perm_id") or 0),
            status=status,
            filled=whole_number(r.get("filled") or 0, "filled", low=0, high=qty),
            avg_fill_price=_money(r.get("avg_fill_price") or 0, "avg_fill_price"),
            last_fill_price=_money(r.get("last_fill_price") or 0, "last_fill_price"),
            submitted_at=_time(r.get("submitted_at"), "submitted_at"),
            finished_at=_time(r.get("finished_at"), "finished_at"),
            reason=str(r.get("reason") or ""),
        )


@dataclass(frozen=True)
class SimFill:
    """One execution. `kind` is "trade", or "expiry" for a settlement at expiration."""

    exec_id: str
    order_id: int
    perm_id: int
    client_id: int
    order_ref: str
    contract: Contract
    side: Literal["BOT", "SLD"]
    qty: int
    price: Decimal
    time: datetime
    commission: Decimal
    cum_qty: int
    avg_price: Decimal
    account: str = ""
    kind: Literal["trade", "expiry"] = "trade"

    def as_record(self) -> dict[str, Any]:
        return {
            "exec_id": self.exec_id,
            "order_id": self.order_id,
            "perm_id": self.perm_id,
            "client_id": self.client_id,
            "order_ref": self.order_ref,
            "contract": contract_record(self.contract),
            "side": self.side,
            "qty": self.qty,
            "price": self.price,
            "time": self.time,
            "commission": self.commission,
            "cum_qty": self.cum_qty,
            "avg_price": self.avg_price,
            "account": self.account,
            "kind": self.kind,
        }

    @classmethod
    def from_record(cls, r: dict[str, Any]) -> SimFill:
        t = _time(r["time"], "time")
        if t is None:
            raise ValueError("time is missing")
        return cls(
            exec_id=str(r["exec_id"]),
            order_id=int(r["order_id"]),
            perm_id=int(r["perm_id"]),
            client_id=int(r.get("client_id") or 0),
            order_ref=str(r.get("order_ref") or ""),
            contract=contract_from_record(r["contract"]),
            side=_side(r["side"]),
            qty=whole_number(r["qty"], "qty", low=1, high=MAX_QTY),
            price=decimal_number(r["price"], "price", low=Decimal(0), high=MAX_PRICE),
            time=t,
            commission=_money(r["commission"], "commission"),
            cum_qty=whole_number(r["cum_qty"], "cum_qty", low=0, high=MAX_QTY),
            avg_price=decimal_number(r["avg_price"], "avg_price", low=Decimal(0), high=MAX_PRICE),
            account=str(r.get("account") or ""),
            kind=r.get("kind", "trade"),
        )


@dataclass
class SimPosition:
    contract: Contract
    qty: int
    avg_cost: Decimal  # per share (options: per share of the 100, IB reports × multiplier)


@dataclass(frozen=True)
class OrderUpdate:
    """An order's status, filled quantity or prices changed."""

    order: SimOrder


@dataclass(frozen=True)
class FillEvent:
    fill: SimFill


@dataclass(frozen=True)
class ErrorEvent:
    """What IB would send as an error message for an order (code and text)."""

    order_id: int
    code: int
    message: str


@dataclass(frozen=True)
class PositionEvent:
    """Positions changed without an execution (an exercise or an expiry at the close)."""

    con_ids: tuple[int, ...]


@dataclass(frozen=True)
class EaeRecord:
    """An exercise, assignment or expiration, as an account statement lists it (Flex OptionEAE)."""

    date: date
    contract: OptionContract
    kind: Literal["Exercise", "Expiration"]
    qty: int
    underlying_price: Decimal


Event = OrderUpdate | FillEvent | ErrorEvent | PositionEvent


def contract_record(contract: Contract) -> dict[str, Any]:
    if isinstance(contract, OptionContract):
        return {"sec_type": "OPT", **contract.as_record()}
    return {
        "sec_type": "STK",
        "symbol": contract.symbol,
        "exchange": contract.exchange,
        "primary_exchange": contract.primary_exchange,
        "currency": contract.currency,
        "con_id": contract.con_id,
        "tick": contract.tick,
    }


def contract_from_record(r: dict[str, Any]) -> Contract:
    if r.get("sec_type") == "STK":
        return StockContract(
            symbol=str(r["symbol"]),
            exchange=str(r.get("exchange") or "SMART"),
            primary_exchange=str(r.get("primary_exchange") or "ARCA"),
            currency=str(r.get("currency") or "USD"),
            con_id=int(r.get("con_id") or 0),
            tick=Decimal(str(r.get("tick") or "0.01")),
        )
    return OptionContract.from_record(r)


def _dec(value: Any) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))


def _price(value: Any, name: str) -> Decimal | None:
    """A saved limit or stop: none, or a finite price (ValueError naming `name`)."""
    if value is None or value == "":
        return None
    return decimal_number(value, name, low=Decimal(0), high=MAX_PRICE)


def _money(value: Any, name: str) -> Decimal:
    """A saved amount of money: finite and within MAX_MONEY (ValueError naming `name`)."""
    return decimal_number(value, name, low=-MAX_MONEY, high=MAX_MONEY)


def _side(value: Any) -> Literal["BOT", "SLD"]:
    if value == "BOT":
        return "BOT"
    if value == "SLD":
        return "SLD"
    raise ValueError(f"side {str(value)[:40]!r} is not BOT or SLD")


def _time(value: Any, name: str) -> datetime | None:
    """A saved time: ISO-8601 with a timezone (ValueError naming `name` otherwise), as UTC."""
    if value is None or value == "":
        return None
    return utc_timestamp(value, name)


_T = TypeVar("_T")


def _indexed(kind: str, i: int, parse: Callable[[dict[str, Any]], _T], r: dict[str, Any]) -> _T:
    """`parse(r)`, a ValueError naming where the record sits (`orders[2]: time has no ...`)."""
    try:
        return parse(r)
    except ValueError as exc:
        raise ValueError(f"{kind}[{i}]: {exc}") from None


def multiplier_of(contract: Contract) -> int:
    return contract.multiplier if isinstance(contract, OptionContract) else 1


@dataclass
class SimExchange:
    """The venue plus one account. Advance it with `advance(now)` before reading it."""

    market: MarketModel
    cash: Decimal
    per_contract: Decimal = Decimal("0.65")
    minimum: Decimal = Decimal("1.00")
    account: str = "DUSIM0001"
    orders: dict[int, SimOrder] = field(default_factory=dict)
    positions: dict[int, SimPosition] = field(default_factory=dict)
    fills: list[SimFill] = field(default_factory=list)
    processed_until: datetime | None = None
    next_perm_id: int = 1_000_001
    exec_seq: int = 0
    realized_pnl: Decimal = Decimal(0)
    commissions: Decimal = Decimal(0)
    refuse_brackets: bool = False  # fault: refuse orders that have a parent (tests OCO emulation)
    order_id_floor: int = 0  # the highest order id ever used: ids are never reused
    # Bumped at every change of an order, a fill or a position: what a broker sync would see.
    version: int = 0
    _working: tuple[int, list[SimOrder]] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _candidates: tuple[tuple[int, date], Any] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    _order_points: dict[tuple[Any, ...], Any] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    exercise_at_expiry: bool = False  # IB's way (see the module docstring), not a cash settlement
    eae: list[EaeRecord] = field(default_factory=list)

    # -- orders --------------------------------------------------------------------------------
    def submit(self, order: SimOrder, now: datetime, *, reject: str | None = None) -> list[Event]:
        """Accept (or reject) an order at `now`; a marketable one may fill at once.

        `reject` (fault injection) refuses the order with error 201 and that reason, as IB
        does for margin or permission problems, whatever the order looks like.
        """
        events = self.advance(now)
        self.version += 1
        problem = (201, f"Order rejected - reason: {reject}") if reject else self.check(order)
        if problem is not None:
            code, text = problem
            order.status, order.reason = "Inactive" if code != 201 else "Cancelled", text
            order.perm_id = order.perm_id or self._perm_id()
            order.submitted_at = order.finished_at = now
            self.orders[order.order_id] = order
            return [*events, ErrorEvent(order.order_id, code, text), OrderUpdate(order)]
        order.perm_id = order.perm_id or self._perm_id()
        order.submitted_at = now
        parent = self.orders.get(order.parent_id) if order.parent_id else None
        order.status = "PreSubmitted" if parent is not None and parent.filled == 0 else "Submitted"
        self.orders[order.order_id] = order
        events.append(OrderUpdate(order))
        if any(s.status == "Filled" for s in self._siblings(order)):
            # Legs placed one by one after a parent filled on arrival: when one already
            # filled, the OCA group is done and this one must not stay working.
            return [*events, *self._finish(order, "Cancelled", now, "OCA sibling filled")]
        if order.status == "Submitted":
            quote = self._quote_now(order.contract, now)
            if quote is not None:
                events.extend(self._try_fill(order, quote[0], quote[1], now, resting=False))
        return events

    def cancel(self, order_id: int, now: datetime) -> list[Event]:
        """Cancel a working order (and the children of an unfilled parent)."""
        events = self.advance(now)
        order = self.orders.get(order_id)
        if order is None:
            # IB's answer to a cancel of an id it has no open order for (ib_insync#656).
            text = f"OrderId {order_id} that needs to be cancelled is not found."
            return [*events, ErrorEvent(order_id, 10147, text)]
        if not order.working:
            code = 10148 if order.status == "Filled" else 161
            text = (
                f"OrderId {order_id} that needs to be cancelled cannot be cancelled, state: "
                f"{order.status}."
            )
            return [*events, ErrorEvent(order_id, code, text)]
        events.extend(self._finish(order, "Cancelled", now, "cancelled by request"))
        events.append(ErrorEvent(order_id, 202, "Order Canceled - reason: cancelled by request"))
        if order.filled == 0:
            for child in self._children(order_id):
                if child.working:
                    events.extend(self._finish(child, "Cancelled", now, "parent cancelled"))
        return events

    def force_fill(self, order_id: int, now: datetime, qty: int | None = None) -> list[Event]:
        """Fault injection: fill a working order now, as if the market had traded through it
        (`qty` of it: a partial fill; all that remains by default).

        A limit order fills at its limit; a market order at the touch; a stop at the touch or
        its stop, whichever is worse for the holder. A child whose parent has not filled does
        not fill, and a sell that would take the position below zero is cancelled (as in
        `advance`). Nothing happens to an order that is not working.
        """
        events = self.advance(now)
        order = self.orders.get(order_id)
        if order is None or order.status != "Submitted":
            return events
        quote = self._quote_now(order.contract, now)
        touch = None if quote is None else (quote[1] if order.action == "BUY" else quote[0])
        if order.order_type == "LMT" and order.limit is not None:
            price = order.limit
        elif touch is None or touch <= 0:
            return events
        elif order.order_type == "STP" and order.stop is not None:
            price = max(touch, order.stop) if order.action == "BUY" else min(touch, order.stop)
        else:
            price = touch
        # Offered on both sides at `price`, every order type fills at exactly that price.
        if qty is not None and 0 < qty < order.remaining:
            return [*events, *self._fill(order, qty, price, now)]
        return [*events, *self._try_fill(order, price, price, now, resting=True)]

    def check(self, order: SimOrder, *, parent_pending: bool = False) -> tuple[int, str] | None:
        """(IB error code, text) when the venue would refuse `order`, else None.

        `parent_pending`: the parent is part of the same submission (a bracket validated as a
        whole before any of it goes live, as IB does with transmit=False)."""
        if self.refuse_brackets and order.parent_id:
            return 201, "Order rejected - reason: attached orders are refused by this venue"
        if order.qty <= 0:
            return 201, "Order rejected - reason: the quantity must be positive"
        if order.contract.con_id <= 0:
            return 200, "No security definition has been found for the request"
        grid = order.contract.grid if isinstance(order.contract, OptionContract) else None
        for name, price in (("limit", order.limit), ("stop", order.stop)):
            if price is None:
                continue
            valid = (
                grid.contains(price)
                if grid is not None
                else (price > 0 and price % order.contract.tick == 0)
            )
            if not valid:
                return 110, f"The price does not conform to the minimum price variation ({name})"
        if order.order_type == "LMT" and order.limit is None:
            return 201, "Order rejected - reason: a limit order needs a limit price"
        if order.order_type == "STP" and order.stop is None:
            return 201, "Order rejected - reason: a stop order needs a stop price"
        if order.parent_id and order.parent_id not in self.orders and not parent_pending:
            return 201, f"Order rejected - reason: parent order {order.parent_id} is unknown"
        return None

    def working_orders(self) -> list[SimOrder]:
        """Working orders (a fresh list; the index behind it is rebuilt after each change)."""
        cached = self._working
        if cached is None or cached[0] != self.version:
            cached = (self.version, [o for o in self.orders.values() if o.working])
            self._working = cached
        return list(cached[1])

    # -- where a fill can happen ---------------------------------------------------------------
    def fill_candidates(self, session: date) -> np.ndarray | None:
        """The points of `session` (UTC ns, ascending) at which some working order might fill,
        found with one vectorised pass per order over the session's bars; None when that cannot
        be bounded (a stock, a model without vectorised prices): then every point is a
        candidate. Conservative: a point left out provably fills nothing (each is still priced
        exactly, one by one, when it is processed). Cached until the orders change."""
        key = (self.version, session)
        if self._candidates is not None and self._candidates[0] == key:
            found: np.ndarray | None = self._candidates[1]
            return found
        found = self._search(session)
        self._candidates = (key, found)
        return found

    def _search(self, session: date) -> np.ndarray | None:
        found: list[np.ndarray] = []
        kept: dict[tuple[Any, ...], np.ndarray | None] = {}
        for order in self.working_orders():
            if order.status != "Submitted":
                continue  # a child waits for its parent's fill, itself a change
            # An order's candidates depend on it and the market only: kept while it works.
            key = (order.order_id, session, order.order_type, order.action, order.limit,
                   order.stop)  # fmt: skip
            points = self._order_points.get(key, _MISSING)
            if points is _MISSING:
                points = self._order_search(order, session)
            kept[key] = points
            if points is None:
                return None
            found.append(points)
        self._order_points = kept
        if not found:
            return np.zeros(0, dtype=np.int64)
        # Orders on several symbols: their sessions may have different bars (a gap).
        return found[0] if len(found) == 1 else np.unique(np.concatenate(found))

    def _order_search(self, order: SimOrder, session: date) -> np.ndarray | None:
        contract = order.contract
        if not isinstance(contract, OptionContract):
            return None
        starts, o, h, lo, c = self.market.session_minute_bars(contract.symbol, session)
        if len(starts) == 0:
            return np.zeros(0, dtype=np.int64)
        path = np.stack([o, lo, h, c] if contract.right == "C" else [o, h, lo, c], axis=1)
        t_ns = (starts[:, None] + POINT_NS[None, :]).ravel()
        bounds = self.market.option_price_bounds(contract, session, t_ns, path.ravel())
        if bounds is None:
            return None
        points: np.ndarray = t_ns[_may_fill(order, *bounds)]
        return points

    # -- time ----------------------------------------------------------------------------------
    def advance(self, now: datetime) -> list[Event]:
        """Process everything that happened before `now`: fills at each minute's four path
        points, DAY orders at the close, option settlement at expiry. Each point in time is
        processed exactly once, so the result does not depend on how often this is called."""
        if self.processed_until is None:
            self.processed_until = now
            return []
        start = self.processed_until
        if now <= start:
            return []
        events: list[Event] = []
        for session in sessions_between(session_of(start), session_of(now), self.market.calendar):
            opens, closes = session_open_close(session, self.market.calendar)
            minute = max(opens, floor_minute(start))
            end = min(now, closes)
            while minute < end and self.working_orders():
                # Minutes in which no working order can fill are passed over (the search is
                # conservative); the others are processed point by point, exactly as always.
                candidates = self.fill_candidates(session)
                if candidates is not None:
                    at = _utc_ns(minute)
                    i = int(np.searchsorted(candidates, at, side="left"))
                    if i == len(candidates):
                        break  # nothing can fill before the close
                    first = int(candidates[i]) // MINUTE_NS * MINUTE_NS
                    if first > at:
                        minute += timedelta(microseconds=(first - at) // 1000)
                        continue
                events.extend(self._process_minute(minute, start, now))
                minute += MINUTE
            if start < closes <= now:
                events.extend(self._session_close(session, closes))
        self.processed_until = now
        return events

    def _process_minute(self, minute: datetime, start: datetime, now: datetime) -> list[Event]:
        events: list[Event] = []
        bars: dict[str, tuple[float, ...] | None] = {}
        quotes: dict[tuple[int, int], tuple[Decimal, Decimal]] = {}  # per contract and point
        for index, offset in enumerate(POINT_OFFSETS):
            t = minute + offset
            if not start <= t < now:
                continue
            for order in sorted(self.working_orders(), key=lambda o: o.order_id):
                # Orders become live after their submission instant (the arrival check covers
                # that instant); children released by a fill at `t` start at the next point.
                if order.status != "Submitted" or (order.submitted_at and order.submitted_at >= t):
                    continue
                if (
                    order.parent_id
                    and order.order_type != "STP"
                    and order.submitted_at
                    and order.submitted_at >= minute
                ):
                    # A take-profit released by its entry's fill inside this minute starts with
                    # the next one: a bar does not say whether its low or its high came first,
                    # and buying the one and selling the other in the same bar assumes the order
                    # that helps. The stop stays live: an entry filled before the bar's low (at
                    # its open, or on arrival) can be stopped at that low, so assuming it can is
                    # the order that hurts, as the stop-before-take-profit rule assumes.
                    continue
                symbol = order.contract.symbol
                if symbol not in bars:
                    bars[symbol] = self.market.minute_bar(symbol, minute)
                bar = bars[symbol]
                if bar is None:
                    continue
                key = (order.contract.con_id, index)
                quote = quotes.get(key)
                if quote is None:
                    quote = quotes[key] = self._quote_at(order.contract, bar, index, t)
                events.extend(self._try_fill(order, quote[0], quote[1], t, resting=True))
        return events

    def _session_close(self, session: date, closes: datetime) -> list[Event]:
        events: list[Event] = []
        for order in self.working_orders():
            expiring = (
                isinstance(order.contract, OptionContract) and order.contract.expiry <= session
            )
            if order.tif == "DAY" or expiring:
                why = "option expired" if expiring else "DAY order expired at the close"
                events.extend(self._finish(order, "Cancelled", closes, why))
        for con_id, pos in list(self.positions.items()):
            c = pos.contract
            if isinstance(c, OptionContract) and c.expiry <= session and pos.qty != 0:
                price = self.market.intrinsic(c, closes)
                if self.exercise_at_expiry:
                    events.extend(self._exercise_or_expire(con_id, pos, price, session))
                else:
                    events.extend(self._settle(con_id, pos, price, closes))
        self._forget_before(closes - timedelta(days=KEEP_DAYS))
        return events

    def _forget_before(self, horizon: datetime) -> None:
        """Drop finished orders and fills older than `horizon` from memory, as `to_state` drops
        them from the saved state: a long run (or a backtest of years) keeps days, not years."""
        self.order_id_floor = max(self.order_id_floor, max(self.orders, default=0))
        old = [
            order_id
            for order_id, o in self.orders.items()
            if not o.working and (o.finished_at or o.submitted_at or horizon) < horizon
        ]
        for order_id in old:
            del self.orders[order_id]
        if self.fills and self.fills[0].time < horizon:
            self.fills = [f for f in self.fills if f.time >= horizon]

    # -- fills ---------------------------------------------------------------------------------
    def _quote_now(self, contract: Contract, now: datetime) -> tuple[Decimal, Decimal] | None:
        q = self.quote(contract, now)
        return None if q is None else (q.bid, q.ask)

    def _quote_at(
        self, contract: Contract, bar: tuple[float, ...], index: int, t: datetime
    ) -> tuple[Decimal, Decimal]:
        o, h, lo, c = bar
        if isinstance(contract, OptionContract):
            spot = holder_path(o, h, lo, c, contract.right)[index]
            return self.market.option_bid_ask(contract, spot, t)
        price = Decimal(repr(round([o, lo, h, c][index], 2)))
        return price - Decimal("0.01"), price + Decimal("0.01")

    def quote(
        self, contract: Contract, now: datetime, data_type: DataType = "live"
    ) -> Quote | None:
        if isinstance(contract, OptionContract):
            return self.market.option_quote(contract, now, data_type)
        return self.market.stock_quote(contract.symbol, now, data_type)

    def _try_fill(
        self, order: SimOrder, bid: Decimal, ask: Decimal, t: datetime, *, resting: bool
    ) -> list[Event]:
        price = fill_price(
            order.action,
            order.order_type,
            limit=order.limit,
            stop=order.stop,
            bid=bid,
            ask=ask,
            resting=resting,
        )
        if price is None:
            return []
        if order.action == "BUY":
            cost = price * order.remaining * multiplier_of(order.contract)
            if cost > self.cash:
                return self._finish(
                    order,
                    "Cancelled",
                    t,
                    f"insufficient cash: {order.remaining} at {price} costs {cost}, the account "
                    f"has {self.cash}",
                )
        held = self.positions.get(order.contract.con_id)
        if order.action == "SELL" and (held is None or held.qty < order.remaining):
            have = 0 if held is None else held.qty
            return self._finish(
                order,
                "Cancelled",
                t,
                f"a sell of {order.remaining} would exceed the position of {have}: refused",
            )
        return self._fill(order, order.remaining, price, t)

    def _fill(self, order: SimOrder, qty: int, price: Decimal, t: datetime) -> list[Event]:
        fee = (
            commission(order.qty, self.per_contract, self.minimum)
            if order.filled == 0
            else Decimal(0)
        )
        if isinstance(order.contract, StockContract):
            fee = max(self.minimum, Decimal("0.005") * qty) if order.filled == 0 else Decimal(0)
        self.version += 1
        total = order.avg_fill_price * order.filled + price * qty
        order.filled += qty
        order.avg_fill_price = total / order.filled
        order.last_fill_price = price
        self.exec_seq += 1
        fill = SimFill(
            exec_id=f"{order.perm_id:08x}.{self.exec_seq:06d}.01",
            order_id=order.order_id,
            perm_id=order.perm_id,
            client_id=order.client_id,
            order_ref=order.order_ref,
            contract=order.contract,
            side="BOT" if order.action == "BUY" else "SLD",
            qty=qty,
            price=price,
            time=t,
            commission=fee,
            cum_qty=order.filled,
            avg_price=order.avg_fill_price,
            account=self.account,
        )
        self._book(fill)
        events: list[Event] = [FillEvent(fill)]
        if order.remaining == 0:
            events.extend(self._finish(order, "Filled", t, ""))
            for child in self._children(order.order_id):
                released = child.status == "PreSubmitted"
                grows = child.working and child.filled == 0 and child.qty < order.qty
                if released:
                    child.status = "Submitted"
                    child.submitted_at = t
                if released or grows:
                    child.qty = max(child.qty, order.qty)
                    events.append(OrderUpdate(child))
            if order.parent_id or order.oca_group:
                for sibling in self._siblings(order):
                    if sibling.working:
                        events.extend(self._finish(sibling, "Cancelled", t, "OCA sibling filled"))
        else:
            events.append(OrderUpdate(order))
            # IB's attached orders follow a partly filled parent: they go live for what has
            # filled, and grow as more fills (the rest of the parent may never fill).
            for child in self._children(order.order_id):
                if child.working and child.filled == 0:
                    if child.status == "PreSubmitted":
                        child.status = "Submitted"
                        child.submitted_at = t
                    child.qty = order.filled
                    events.append(OrderUpdate(child))
        return events

    def _settle(self, con_id: int, pos: SimPosition, price: Decimal, t: datetime) -> list[Event]:
        self.exec_seq += 1
        qty = abs(pos.qty)
        fill = SimFill(
            exec_id=f"exp{con_id:08x}.{self.exec_seq:06d}.01",
            order_id=0,
            perm_id=0,
            client_id=0,
            order_ref="",
            contract=pos.contract,
            side="SLD" if pos.qty > 0 else "BOT",
            qty=qty,
            price=price,
            time=t,
            commission=Decimal(0),
            cum_qty=qty,
            avg_price=price,
            account=self.account,
            kind="expiry",
        )
        self._book(fill)
        return [FillEvent(fill)]

    def _exercise_or_expire(
        self, con_id: int, pos: SimPosition, intrinsic: Decimal, session: date
    ) -> list[Event]:
        """OCC exercise by exception: a long option in the money by $0.01 or more becomes 100
        shares a contract at the strike (bought for a call, sold for a put); any other expires
        worthless. No execution is reported for either."""
        c = pos.contract
        assert isinstance(c, OptionContract)
        self.version += 1
        mult = multiplier_of(c)
        del self.positions[con_id]
        self.realized_pnl -= pos.avg_cost * pos.qty * mult  # the premium is gone either way
        if pos.qty <= 0 or intrinsic < Decimal("0.01"):
            self.eae.append(EaeRecord(session, c, "Expiration", pos.qty, intrinsic))
            return [PositionEvent((con_id,))]
        stock = self.market.stock(c.symbol)
        shares = pos.qty * mult * (1 if c.right == "C" else -1)
        self.cash -= c.strike * shares
        held = self.positions.get(stock.con_id)
        if held is None:
            self.positions[stock.con_id] = SimPosition(stock, shares, c.strike)
        else:
            total = held.qty + shares
            if total == 0:
                del self.positions[stock.con_id]
            else:
                if (held.qty > 0) == (shares > 0):
                    held.avg_cost = (held.avg_cost * abs(held.qty) + c.strike * abs(shares)) / abs(
                        total
                    )
                held.qty = total
        self.eae.append(EaeRecord(session, c, "Exercise", pos.qty, intrinsic))
        return [PositionEvent((con_id, stock.con_id))]

    def _book(self, fill: SimFill) -> None:
        self.version += 1
        mult = multiplier_of(fill.contract)
        signed = fill.qty if fill.side == "BOT" else -fill.qty
        self.cash -= fill.price * signed * mult + fill.commission
        self.commissions += fill.commission
        pos = self.positions.get(fill.contract.con_id)
        if pos is None:
            pos = SimPosition(fill.contract, 0, Decimal(0))
            self.positions[fill.contract.con_id] = pos
        if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
            cost = pos.avg_cost * abs(pos.qty) + fill.price * abs(signed)
            pos.qty += signed
            pos.avg_cost = cost / abs(pos.qty)
        else:
            closing = min(abs(signed), abs(pos.qty))
            direction = 1 if pos.qty > 0 else -1
            self.realized_pnl += (fill.price - pos.avg_cost) * closing * mult * direction
            pos.qty += signed
        if pos.qty == 0:
            del self.positions[fill.contract.con_id]
        self.fills.append(fill)

    def _finish(self, order: SimOrder, status: Status, t: datetime, reason: str) -> list[Event]:
        self.version += 1
        order.status = status
        order.finished_at = t
        order.reason = reason
        return [OrderUpdate(order)]

    def _children(self, parent_id: int) -> list[SimOrder]:
        return [o for o in self.orders.values() if o.parent_id == parent_id]

    def _siblings(self, order: SimOrder) -> Iterable[SimOrder]:
        for other in self.orders.values():
            if other.order_id == order.order_id:
                continue
            if (order.parent_id and other.parent_id == order.parent_id) or (
                order.oca_group and other.oca_group == order.oca_group
            ):
                yield other

    def _perm_id(self) -> int:
        self.next_perm_id += 1
        return self.next_perm_id

    # -- account -------------------------------------------------------------------------------
    def net_liquidation(self, now: datetime, marks: dict[int, Decimal] | None = None) -> Decimal:
        """Cash plus positions marked at the mid (intrinsic when there is no quote); `marks`:
        `self.marks(now)` when the caller has them already."""
        if marks is None:
            marks = self.marks(now)
        return self.cash + sum(
            (
                mark * self.positions[con_id].qty * multiplier_of(self.positions[con_id].contract)
                for con_id, mark in marks.items()
            ),
            Decimal(0),
        )

    def marks(self, now: datetime) -> dict[int, Decimal]:
        """The price each position is valued at in `net_liquidation`, by conId."""
        return {con_id: self.mark(pos.contract, now) for con_id, pos in self.positions.items()}

    def mark(self, contract: Contract, now: datetime) -> Decimal:
        q = self.quote(contract, now)
        if q is not None and q.mid is not None:
            return q.mid
        if isinstance(contract, OptionContract):
            return self.market.intrinsic(contract, now)
        return Decimal(0) if q is None or q.last is None else q.last

    # -- persistence ---------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """JSON-ready state; finished orders and fills older than KEEP_DAYS are dropped."""
        horizon = (
            None
            if self.processed_until is None
            else self.processed_until - timedelta(days=KEEP_DAYS)
        )
        orders = [
            o.as_record()
            for o in self.orders.values()
            if o.working
            or horizon is None
            or (o.finished_at or o.submitted_at or horizon) >= horizon
        ]
        fills = [f.as_record() for f in self.fills if horizon is None or f.time >= horizon]
        return {
            "account": self.account,
            "cash": self.cash,
            "realized_pnl": self.realized_pnl,
            "commissions": self.commissions,
            "processed_until": self.processed_until,
            "next_perm_id": self.next_perm_id,
            "exec_seq": self.exec_seq,
            "order_id_floor": max(self.order_id_floor, max(self.orders, default=0)),
            "orders": orders,
            "positions": [
                {"contract": contract_record(p.contract), "qty": p.qty, "avg_cost": p.avg_cost}
                for p in self.positions.values()
            ],
            "fills": fills,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Replace this exchange's account with `state` (from `to_state`)."""
        self.version += 1
        self.account = str(state.get("account") or self.account)
        self.cash = _money(state["cash"], "cash")
        self.realized_pnl = _money(state.get("realized_pnl") or 0, "realized_pnl")
        self.commissions = _money(state.get("commissions") or 0, "commissions")
        self.processed_until = _time(state.get("processed_until"), "processed_until")
        self.next_perm_id = int(state.get("next_perm_id") or self.next_perm_id)
        self.exec_seq = int(state.get("exec_seq") or 0)
        self.order_id_floor = int(state.get("order_id_floor") or 0)
        self.orders = {}
        for i, r in enumerate(state.get("orders", [])):
            order = _indexed("orders", i, SimOrder.from_record, r)
            self.orders[order.order_id] = order
        self.positions = {}
        for r in state.get("positions", []):
            contract = contract_from_record(r["contract"])
            qty = whole_number(r["qty"], "positions: qty", low=-MAX_QTY, high=MAX_QTY)
            cost = decimal_number(r["avg_cost"], "positions: avg_cost", low=Decimal(0),
                                  high=MAX_PRICE)  # fmt: skip
            self.positions[contract.con_id] = SimPosition(contract, qty, cost)
        self.fills = [
            _indexed("fills", i, SimFill.from_record, r)
            for i, r in enumerate(state.get("fills", []))
        ]

    def next_order_id(self) -> int:
        return max(max(self.orders, default=0), self.order_id_floor) + 1


_MISSING = object()


def _utc_ns(t: datetime) -> int:
    return int(t.timestamp() * 1_000_000) * 1000


def _may_fill(
    order: SimOrder,
    bid_high: np.ndarray,
    bid_low: np.ndarray,
    ask_low: np.ndarray,
    ask_high: np.ndarray,
) -> np.ndarray:
    """Per point: could `fill_price` give a price, the bid being its unrounded value (between
    `bid_low` and `bid_high`) rounded down onto the ladder (0 below the lowest price) and the
    ask its unrounded value (between `ask_low` and `ask_high`) rounded up? Conservative by
    SEARCH_MARGIN; a point whose bounds are not numbers is a candidate."""
    eps = SEARCH_MARGIN
    grid = order.contract.grid if isinstance(order.contract, OptionContract) else None
    lowest = float(grid.steps[0][1]) if grid is not None else float(order.contract.tick)
    largest = (
        float(max(inc for _, inc in grid.steps)) if grid is not None else float(order.contract.tick)
    )
    unknown = ~(
        np.isfinite(bid_high) & np.isfinite(bid_low) & np.isfinite(ask_low) & np.isfinite(ask_high)
    )
    with np.errstate(invalid="ignore"):
        if order.order_type == "MKT":
            if order.action == "SELL":  # bid > 0: the bid's value reaches the lowest price
                ok = bid_high >= lowest - eps
            else:
                ok = np.ones(len(bid_high), dtype=bool)
        elif order.order_type == "LMT" and order.limit is not None:
            limit = float(order.limit)
            # sell: bid ≥ limit (a price on the ladder) ⟺ its value ≥ limit;
            # buy: ask ≤ limit ⇒ its value ≤ limit
            ok = bid_high >= limit - eps if order.action == "SELL" else ask_low <= limit + eps
        elif order.order_type == "STP" and order.stop is not None:
            stop = float(order.stop)
            if order.action == "SELL":  # 0 < bid ≤ stop ⇒ lowest ≤ value < stop + increment
                ok = (bid_high >= lowest - eps) & (bid_low < stop + largest + eps)
            else:  # ask ≥ stop: the ask is below its value + an increment (or is the lowest)
                ok = (ask_high + largest >= stop - eps) | (lowest >= stop - eps)
        else:
            ok = np.ones(len(bid_high), dtype=bool)
    out: np.ndarray = ok | unknown
    return out


def copy_order(order: SimOrder, **changes: Any) -> SimOrder:
    return replace(order, **changes)
