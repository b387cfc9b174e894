"""Fault injection: what a test (or the operator, through `control`) can make go wrong.

Two kinds of faults:

* **armed** ones wait for the next matching request and are used up by it (reject the next
  order with 201, answer the next historical request with a pacing violation, fill an order
  just before the next cancel arrives, roll nextValidId back at the next connect) or hold until
  cleared (market-data permissions, stale quotes, refused brackets);
* **immediate** ones happen now (drop sockets, lose and restore connectivity, fill an order,
  send an error about a live order). They need the running server, reached through the small
  `FaultTarget` interface so this module stays free of sockets.

Every fault is observable from the client side through ib_async's own events: `errorEvent`
(codes 1100/1101/1102, 162, 201, 354, 10167, 10349, 10148, 103), `disconnectedEvent`,
`fills()` after a reconnect, or a ticker whose `lastTimestamp` stops moving.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from tradebot.core.market_time import market_datetime

Permission = Literal["live", "delayed", "none"]
ANY = "*"
# The start-up requests a Gateway may leave unanswered, by the name the control command takes.
UNANSWERABLE = ("executions", "positions", "open-orders", "completed-orders")

TIF_PRESET_CODE = 10349
TIF_PRESET_TEXT = "Order TIF was set to DAY based on order preset."
PACING_TEXT = (
    "Historical Market Data Service error message:Historical data request pacing violation"
)


class FaultTarget(Protocol):
    """What the server offers the immediate faults."""

    def drop_clients(self, client_id: int | None) -> int: ...

    def set_connectivity(self, up: bool, *, data_lost: bool = False) -> None: ...

    def send_order_error(self, client_id: int, order_id: int, code: int, text: str) -> bool: ...

    def fill_order(self, client_id: int, order_id: int, qty: int | None = None) -> bool: ...

    def refuse_brackets(self, refuse: bool) -> None: ...

    def liquidate(self, symbol: str) -> int: ...

    def release_inactive(self) -> None: ...


@dataclass
class OrderNoticeFault:
    code: int
    text: str
    client_id: int | None


@dataclass
class Faults:
    """Armed faults, consulted by the server and the order book, and immediate ones."""

    target: FaultTarget | None = None
    rejects: list[tuple[str, int | None]] = field(default_factory=list)
    order_notices: list[OrderNoticeFault] = field(default_factory=list)
    pacing_violations: int = 0
    fills_before_cancel: int = 0
    lost_orders: int = 0
    unset_commissions: int = 0
    orders_before_loss: int = 0
    rolled_back_id: int | None = None
    permissions: dict[str, Permission] = field(default_factory=dict)
    option_permissions: dict[str, Permission] = field(default_factory=dict)
    read_only_api: bool = False
    stale_since: dict[str, datetime] = field(default_factory=dict)
    order_refs_dropped: bool = False
    unanswered: set[str] = field(default_factory=set)  # of UNANSWERABLE
    inactive_first: int = 0
    held_cancels_ignored: bool = False

    # -- armed: orders ---------------------------------------------------------------------
    def reject_next_order(
        self,
        reason: str = "insufficient margin (simulated)",
        *,
        count: int = 1,
        client_id: int | None = None,
    ) -> None:
        """The next `count` new orders (of `client_id`, or anyone's) are rejected with 201."""
        self.rejects.extend([(reason, client_id)] * count)

    def take_reject(self, client_id: int) -> str | None:
        for i, (reason, who) in enumerate(self.rejects):
            if who is None or who == client_id:
                del self.rejects[i]
                return reason
        return None

    def notice_next_order(
        self,
        code: int = TIF_PRESET_CODE,
        text: str = TIF_PRESET_TEXT,
        *,
        client_id: int | None = None,
    ) -> None:
        """After the next accepted order, send this informational error about it (the order
        stays live: ib_async 2.1 wrongly marks it Cancelled for codes outside its list)."""
        self.order_notices.append(OrderNoticeFault(code, text, client_id))

    def take_order_notice(self, client_id: int) -> OrderNoticeFault | None:
        for i, notice in enumerate(self.order_notices):
            if notice.client_id is None or notice.client_id == client_id:
                return self.order_notices.pop(i)
        return None

    def fill_before_next_cancel(self, count: int = 1) -> None:
        """The next `count` cancels race a fill: the order fills first, the cancel gets 10148."""
        self.fills_before_cancel += count

    def take_fill_before_cancel(self) -> bool:
        if self.fills_before_cancel > 0:
            self.fills_before_cancel -= 1
            return True
        return False

    def lose_next_order(self, *, after: int = 0) -> None:
        """The socket dies with a placeOrder in flight (the next one, or the one after `after`
        more have arrived): the gateway never receives it, nor anything the client sent after
        it on that socket, and the client only learns that the connection dropped. A bracket
        cut after its parent leaves the held (transmit=False) orders at the gateway, unsent."""
        self.lost_orders, self.orders_before_loss = 1, after

    def take_lost_order(self) -> bool:
        if self.lost_orders <= 0:
            return False
        if self.orders_before_loss > 0:
            self.orders_before_loss -= 1
            return False
        self.lost_orders -= 1
        return True

    def unset_next_commission(self, count: int = 1) -> None:
        """The commission reports of the next `count` fills carry IB's unset double
        (1.7976931348623157E308) instead of an amount, live and when executions are asked
        for again."""
        self.unset_commissions += count

    def take_unset_commission(self) -> bool:
        if self.unset_commissions > 0:
            self.unset_commissions -= 1
            return True
        return False

    def drop_order_refs(self, drop: bool = True) -> None:
        """The Gateway stops echoing orderRef in openOrder, completedOrder and execDetails (some
        TWS builds and orders modified in TWS lose it): a client must also know its orders by
        permId and by order id + client id."""
        self.order_refs_dropped = drop

    def inactive_next(self, count: int = 1) -> None:
        """The next `count` orders (a bracket counts as one) are reported Inactive and do not
        work until `release_inactive` — as IB does for a locate hold or a precaution
        (nautilus_trader#3603); cancelling one then brings no status (ib_insync#363)."""
        self.inactive_first += count

    def take_inactive(self, client_id: int) -> bool:
        if self.inactive_first > 0:
            self.inactive_first -= 1
            return True
        return False

    def ignore_held_cancels(self, ignore: bool = True) -> None:
        """A cancel of an order held Inactive changes nothing yet: IB goes on holding it (and
        listing it among the open orders, status Inactive) — the locate search may still find
        shares and fill it (ib_insync#363)."""
        self.held_cancels_ignored = ignore

    def release_inactive(self) -> None:
        """The orders held Inactive start working: Submitted (children PreSubmitted)."""
        self._server().release_inactive()

    def leave_unanswered(self, request: str, silent: bool = True) -> None:
        """`request` (one of UNANSWERABLE) gets no answer at all — no data, no end marker —
        as some Gateway builds do with reqExecutions (ib-api-reloaded/ib_async#54, #82): a
        client that waits for it at connect with raiseSyncErrors=True cannot connect, and a
        client that reads the silence as "nothing" is wrong (no positions, no open orders)."""
        if request not in UNANSWERABLE:
            raise ValueError(f"request must be one of {', '.join(UNANSWERABLE)}, got {request!r}")
        if silent:
            self.unanswered.add(request)
        else:
            self.unanswered.discard(request)

    def leave_executions_unanswered(self, silent: bool = True) -> None:
        self.leave_unanswered("executions", silent)

    def answers(self, request: str) -> bool:
        return request not in self.unanswered

    # -- armed: connection and data ----------------------------------------------------------
    def roll_back_next_valid_id(self, to: int = 1) -> None:
        """The next connection is told nextValidId = `to`, as after a gateway restart."""
        self.rolled_back_id = to

    def take_rolled_back_id(self) -> int | None:
        value, self.rolled_back_id = self.rolled_back_id, None
        return value

    def pace_historical(self, count: int = 1) -> None:
        """The next `count` historical-data requests get error 162 (pacing violation)."""
        self.pacing_violations += count

    def take_pacing_violation(self) -> bool:
        if self.pacing_violations > 0:
            self.pacing_violations -= 1
            return True
        return False

    def market_data_permission(self, symbol: str = ANY, permission: Permission = "live") -> None:
        """'live' (default), 'delayed' (live requests get 10167 and delayed ticks) or 'none'
        (354) for `symbol`'s stock and options, or every symbol with '*'."""
        if permission not in ("live", "delayed", "none"):
            raise ValueError(f"permission must be live, delayed or none, got {permission!r}")
        self.permissions[symbol.upper()] = permission

    def option_data_permission(self, symbol: str = ANY, permission: Permission = "live") -> None:
        """Like `market_data_permission`, for `symbol`'s options only: an account with the
        stock exchanges' data but no OPRA subscription gets 354 for every option quote."""
        if permission not in ("live", "delayed", "none"):
            raise ValueError(f"permission must be live, delayed or none, got {permission!r}")
        self.option_permissions[symbol.upper()] = permission

    def permission_for(self, symbol: str, *, option: bool = False) -> Permission:
        stock = self.permissions.get(symbol.upper(), self.permissions.get(ANY, "live"))
        if not option:
            return stock
        own = self.option_permissions.get(symbol.upper(), self.option_permissions.get(ANY))
        if own is None:
            return stock
        order = ("none", "delayed", "live")
        return own if order.index(own) < order.index(stock) else stock

    def set_read_only_api(self, read_only: bool = True) -> None:
        """The Gateway's "Read-Only API" setting: every order is refused with 321
        (IbcAlpha/IBC#341), what-if orders included; reading works as usual."""
        self.read_only_api = read_only

    def stale_quotes(self, symbol: str = ANY, *, since: datetime) -> None:
        """Quotes for `symbol` stop at `since`: streams go quiet, snapshots repeat that
        moment's quote and its lastTimestamp."""
        self.stale_since[symbol.upper()] = since

    def fresh_quotes(self, symbol: str = ANY) -> None:
        if symbol == ANY:
            self.stale_since.clear()
        else:
            self.stale_since.pop(symbol.upper(), None)

    def stale_time(self, symbol: str) -> datetime | None:
        return self.stale_since.get(symbol.upper(), self.stale_since.get(ANY))

    # -- immediate ---------------------------------------------------------------------------
    def _server(self) -> FaultTarget:
        if self.target is None:
            raise RuntimeError("this fault needs a running simulator")
        return self.target

    def drop_connections(self, client_id: int | None = None) -> int:
        """Close the socket of `client_id` (every client with None), as a crashed gateway
        would; returns how many were dropped."""
        return self._server().drop_clients(client_id)

    def connectivity_lost(self) -> None:
        """Error 1100 to every client; streaming market data pauses."""
        self._server().set_connectivity(False)

    def connectivity_restored(self, *, data_lost: bool = False) -> None:
        """Error 1102 (data maintained), or 1101 (data lost: every market-data subscription
        is gone and must be requested again)."""
        self._server().set_connectivity(True, data_lost=data_lost)

    def order_error(self, client_id: int, order_id: int, code: int, text: str) -> bool:
        """Send an error about a live order now (the order itself is not touched)."""
        return self._server().send_order_error(client_id, order_id, code, text)

    def fill_order(self, client_id: int, order_id: int, qty: int | None = None) -> bool:
        """Fill a working order now, as if the market traded through it — `qty` of it (a
        partial fill: a parent's attached orders go live for what has filled, as IB's do), or
        all of it."""
        return self._server().fill_order(client_id, order_id, qty)

    def fill_while_disconnected(self, client_id: int, order_id: int) -> bool:
        """Drop the client's socket, then fill its order: it learns of the fill only after it
        reconnects (reqExecutions, completed orders, positions)."""
        self._server().drop_clients(client_id)
        return self._server().fill_order(client_id, order_id)

    def refuse_brackets(self, refuse: bool = True) -> None:
        """Orders with a parent are rejected with 201 (to rehearse the OCO fallback)."""
        self._server().refuse_brackets(refuse)

    def liquidate(self, symbol: str) -> int:
        """IB liquidates the account's option positions in `symbol` itself (as it may do with
        expiring positions, or a margin deficit): a market sell that is not the client's
        order, flagged as a liquidation in its execution. Returns how many orders it sent."""
        return self._server().liquidate(symbol)

    def clear(self) -> None:
        """Disarm everything (immediate faults have already happened)."""
        self.rejects.clear()
        self.order_notices.clear()
        self.pacing_violations = 0
        self.fills_before_cancel = 0
        self.lost_orders = self.orders_before_loss = 0
        self.unset_commissions = 0
        self.rolled_back_id = None
        self.permissions.clear()
        self.option_permissions.clear()
        self.read_only_api = False
        self.stale_since.clear()
        self.order_refs_dropped = False
        self.unanswered.clear()
        self.inactive_first = 0
        self.held_cancels_ignored = False
        if self.target is not None:
            self.target.refuse_brackets(False)

    def describe(self) -> list[str]:
        armed = []
        if self.rejects:
            armed.append(f"reject the next {len(self.rejects)} order(s) with 201")
        if self.order_notices:
            codes = ", ".join(str(n.code) for n in self.order_notices)
            armed.append(f"informational error after the next order(s): {codes}")
        if self.pacing_violations:
            armed.append(f"pacing violation for {self.pacing_violations} historical request(s)")
        if self.fills_before_cancel:
            armed.append(f"fill before {self.fills_before_cancel} cancel(s)")
        if self.lost_orders:
            armed.append(f"lose an order with the socket after {self.orders_before_loss} more")
        if self.unset_commissions:
            armed.append(f"unset commission for the next {self.unset_commissions} fill(s)")
        if self.rolled_back_id is not None:
            armed.append(f"nextValidId {self.rolled_back_id} at the next connect")
        for symbol, permission in sorted(self.permissions.items()):
            armed.append(f"market data {permission} for {symbol}")
        for symbol, permission in sorted(self.option_permissions.items()):
            armed.append(f"option market data {permission} for {symbol}")
        if self.read_only_api:
            armed.append("Read-Only API: every order refused with 321")
        if self.inactive_first:
            armed.append(f"the next {self.inactive_first} order(s) held Inactive")
        if self.held_cancels_ignored:
            armed.append("cancels of orders held Inactive ignored")
        for request in sorted(self.unanswered):
            armed.append(f"{request} requests left unanswered")
        if self.order_refs_dropped:
            armed.append("orderRef dropped from order and execution reports")
        for symbol, since in sorted(self.stale_since.items()):
            armed.append(f"quotes for {symbol} stale since {market_datetime(since, seconds=True)}")
        return armed
