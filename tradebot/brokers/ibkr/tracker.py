"""Our own book of IB orders and executions, fed by IB's messages, keyed by orderRef and permId.

This is tradebot's reading of the order messages (`openOrder`, `orderStatus`, completed orders,
`execDetails`, `commissionReport`, errors), independent of ib_async's `Trade` objects, which die
on every reconnect and which ib_async marks Cancelled on error codes it does not know:

* an order's status is the last one IB *stated* for it (orderStatus, or the status in the open
  or completed order lists); an error message never cancels anything. IB's `Inactive` is not
  always final (a bracket parent held with transmit=False, a locate hold: ib_insync#559,
  nautilus_trader#3603): it reads `held` — not working, not finished — until IB says more, or
  until the adapter gives up on it (`IbOrders`: cancelled after a while, then finished). A new
  order refused with one of `codes.REJECTIONS` before it worked is the one exception: it is
  `inactive` (it never went live) with the reason;
* `filled` is terminal, and a `cancelled` (or `inactive`) order can still become `filled`
  (a fill that raced the cancel): fills that arrive after a Cancelled are adopted;
* records are found by permId (IB's permanent id), then by (client id, order id) within the
  current connection only (ids can be reused after a gateway restart), then by our orderRef;
* executions are kept by execId with their commission (None until IB reports it).

Pure: the messages arrive already converted to the small `*Report` types below (`mapping.py`).

Why one module: every order message (openOrder, orderStatus, completed orders, executions,
commissions, errors) updates one book keyed by orderRef and permId, and their handlers must agree
on it line by line.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Literal

from tradebot.brokers.base import FINAL_STATUSES, OrderSpec, OrderStatus
from tradebot.brokers.ibkr import codes
from tradebot.core.instruments import OptionContract

# IB's status words; None means "no news about the status" (PendingCancel: the order is still
# working until IB says Cancelled; ValidationError and ApiUpdate are ib_async's own words).
STATUS_WORDS: dict[str, OrderStatus | None] = {
    "PendingSubmit": "pending",
    "ApiPending": "pending",
    "PreSubmitted": "presubmitted",
    "Submitted": "submitted",
    "PendingCancel": None,
    "ApiCancelled": "cancelled",
    "Cancelled": "cancelled",
    "Filled": "filled",
    "Inactive": "held",
}


def normalise_status(word: str) -> OrderStatus | None:
    return STATUS_WORDS.get(word.strip())


@dataclass(frozen=True)
class OrderReport:
    """An order as IB described it in `openOrder` or a completed order."""

    order_id: int
    client_id: int
    perm_id: int
    parent_id: int
    order_ref: str
    contract: OptionContract | None  # None: not an option (left to the operator)
    label: str
    action: str
    qty: int
    order_type: str
    limit: Decimal | None
    stop: Decimal | None
    tif: str
    account: str
    status: str  # IB's word
    filled: int | None = None
    reason: str = ""
    completed_at: datetime | None = None


@dataclass(frozen=True)
class StatusReport:
    order_id: int
    client_id: int
    perm_id: int
    parent_id: int
    status: str  # IB's word
    filled: int
    avg_fill_price: Decimal


@dataclass(frozen=True)
class ExecReport:
    exec_id: str
    order_id: int
    client_id: int
    perm_id: int
    order_ref: str
    contract: OptionContract | None
    label: str
    side: Literal["BOT", "SLD"]
    qty: int
    price: Decimal
    time: datetime
    kind: Literal["trade", "expiry"] = "trade"


@dataclass
class IbOrder:
    """One order as tradebot knows it."""

    order_ref: str
    order_id: int
    client_id: int
    perm_id: int
    parent_id: int
    contract: OptionContract | None
    label: str
    action: str
    qty: int
    order_type: str
    limit: Decimal | None
    stop: Decimal | None
    tif: str
    account: str = ""
    status: OrderStatus = "pending"
    filled: int = 0
    avg_fill_price: Decimal = Decimal(0)
    reason: str = ""
    rejected: tuple[int, str] | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    notices: list[str] = field(default_factory=list)
    held_since: datetime | None = None  # IB has said Inactive since then (not final yet)
    held_cancel_at: datetime | None = None  # when tradebot asked IB to cancel it
    retired: bool = False  # a refused bracket's order: its orderRef is sent again (OCO fallback)
    # Known only from tradebot's own records (IB has not listed it since a restart): its cancel
    # was sent by order id, and IB's answer to that cancel settles it.
    unlisted: bool = False

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def working(self) -> bool:
        return not self.final


@dataclass
class IbExecution:
    report: ExecReport
    commission: Decimal | None = None


@dataclass(frozen=True)
class ErrorOutcome:
    """What an error about one of our order ids did: `rejected` (a new order refused) or
    `notice` (information; the order's status is unchanged)."""

    order: IbOrder
    effect: Literal["rejected", "notice"]
    code: int
    text: str


class OrderTracker:
    def __init__(self, client_id: int) -> None:
        self.client_id = client_id
        self.by_perm: dict[int, IbOrder] = {}
        self.by_ref: dict[str, IbOrder] = {}
        self.live_ids: dict[tuple[int, int], IbOrder] = {}  # this connection's order ids
        self.orphans: list[IbOrder] = []  # orders with neither permId nor orderRef
        self.execs: dict[str, IbExecution] = {}
        self._early_commissions: dict[str, Decimal] = {}

    # -- connection --------------------------------------------------------------------------
    def new_connection(self) -> None:
        """Order ids are only trusted within one connection (a restart may reuse them)."""
        self.live_ids.clear()

    # -- our own sends -----------------------------------------------------------------------
    def sent(
        self, spec: OrderSpec, order_id: int, *, parent_id: int, account: str, now: datetime
    ) -> IbOrder:
        """An order we are about to send: pending until IB acknowledges or refuses it."""
        order = IbOrder(
            order_ref=spec.order_ref,
            order_id=order_id,
            client_id=self.client_id,
            perm_id=0,
            parent_id=parent_id,
            contract=spec.contract,
            label=spec.contract.label,
            action=spec.action,
            qty=spec.qty,
            order_type=spec.order_type,
            limit=spec.limit,
            stop=spec.stop,
            tif=spec.tif,
            account=account,
            updated_at=now,
        )
        self.by_ref[spec.order_ref] = order
        self.live_ids[(self.client_id, order_id)] = order
        return order

    def track_unlisted(
        self, order_ref: str, order_id: int, contract: OptionContract | None, now: datetime
    ) -> IbOrder:
        """An order of ours IB has not listed since a restart (its open orders unanswered),
        known by the order id it was sent with: tracked so that IB's answer to a cancel by
        that id (an order status, or error 10147) settles it."""
        order = IbOrder(
            order_ref=order_ref,
            order_id=order_id,
            client_id=self.client_id,
            perm_id=0,
            parent_id=0,
            contract=contract,
            label=contract.label if contract is not None else order_ref,
            action="SELL",
            qty=0,
            order_type="",
            limit=None,
            stop=None,
            tif="",
            status="submitted",
            updated_at=now,
            unlisted=True,
        )
        self.by_ref[order_ref] = order
        self.live_ids[(self.client_id, order_id)] = order
        return order

    # -- IB's messages -----------------------------------------------------------------------
    def _find(self, client_id: int, order_id: int, perm_id: int, order_ref: str) -> IbOrder | None:
        if perm_id and perm_id in self.by_perm:
            return self.by_perm[perm_id]
        if order_id > 0 and (client_id, order_id) in self.live_ids:
            found = self.live_ids[(client_id, order_id)]
            if not perm_id or not found.perm_id or found.perm_id == perm_id:
                return found
        if order_ref and order_ref in self.by_ref:
            found = self.by_ref[order_ref]
            if not perm_id or not found.perm_id or found.perm_id == perm_id:
                return found
        return None

    def _link(self, order: IbOrder) -> None:
        if order.perm_id:
            self.by_perm[order.perm_id] = order
        if order.order_ref and not order.retired:
            holder = self.by_ref.get(order.order_ref)
            if holder is None or _answers_before(order, holder):
                self.by_ref[order.order_ref] = order
        if order.order_id > 0:
            self.live_ids[(order.client_id, order.order_id)] = order

    def on_order(self, report: OrderReport, now: datetime, *, completed: bool = False) -> IbOrder:
        """An open order (or a completed one, with `completed`)."""
        order = self._find(report.client_id, report.order_id, report.perm_id, report.order_ref)
        if order is None:
            order = IbOrder(
                order_ref=report.order_ref,
                order_id=report.order_id,
                client_id=report.client_id,
                perm_id=report.perm_id,
                parent_id=report.parent_id,
                contract=report.contract,
                label=report.label,
                action=report.action,
                qty=report.qty,
                order_type=report.order_type,
                limit=report.limit,
                stop=report.stop,
                tif=report.tif,
                account=report.account,
            )
            if not report.perm_id and not report.order_ref:
                self.orphans.append(order)
        else:
            order.perm_id = report.perm_id or order.perm_id
            order.qty = report.qty or order.qty
            order.limit, order.stop = report.limit, report.stop
            order.tif = report.tif or order.tif
            order.order_ref = order.order_ref or report.order_ref
            if order.contract is None:
                order.contract = report.contract
            if report.parent_id:
                order.parent_id = report.parent_id
        if not completed:
            order.order_id = report.order_id or order.order_id
            order.client_id = report.client_id
        if order.unlisted:  # IB describes it now: take IB's word for all of it
            order.unlisted = False
            order.action, order.order_type = report.action, report.order_type
            order.label = report.label
        self._link(order)
        if report.filled is not None:
            order.filled = max(order.filled, report.filled)
        if report.reason and not order.reason:
            order.reason = report.reason
        status = normalise_status(report.status)
        if completed and status not in FINAL_STATUSES:
            status = "inactive"  # in IB's completed list: finished, whatever the word says
        self._apply(order, status, report.completed_at or now, now)
        return order

    def on_status(self, report: StatusReport, now: datetime) -> IbOrder | None:
        order = self._find(report.client_id, report.order_id, report.perm_id, "")
        if order is None:
            return None  # an order we have not seen described (another client's): ignored
        if report.perm_id and not order.perm_id:
            order.perm_id = report.perm_id
            self._link(order)
        order.filled = max(order.filled, report.filled)
        if report.avg_fill_price > 0:
            order.avg_fill_price = report.avg_fill_price
        self._apply(order, normalise_status(report.status), now, now)
        return order

    def on_error(self, req_id: int, code: int, text: str, now: datetime) -> ErrorOutcome | None:
        """An error naming one of this connection's order ids; None when it names none."""
        order = self.live_ids.get((self.client_id, req_id))
        if order is None:
            return None
        if order.status in ("pending", "held") and codes.rejects_new_order(code):
            order.rejected = (code, text)
            order.reason = f"{code}: {text}"
            self._apply(order, "inactive", now, now)
            return ErrorOutcome(order, "rejected", code, text)
        if order.unlisted and code == codes.CANCEL_NOT_FOUND and order.working:
            # Our cancel by order id found nothing open at IB: the order cannot trade any more
            # (it was cancelled, expired, or filled earlier: a fill shows in the positions).
            order.reason = f"{code}: {text}"
            self._apply(order, "cancelled", now, now)
            return ErrorOutcome(order, "notice", code, text)
        order.notices.append(f"{code}: {text}")
        del order.notices[:-20]
        return ErrorOutcome(order, "notice", code, text)

    def _apply(
        self, order: IbOrder, status: OrderStatus | None, finished: datetime, now: datetime
    ) -> None:
        order.updated_at = now
        if status is None or status == order.status:
            return
        if order.status == "filled":
            return  # terminal
        if order.final and status != "filled":
            return  # nothing revives a finished order; only a late fill completes it
        if status == "pending" and order.status != "pending":
            return  # never back to "not acknowledged"
        order.status = status
        order.held_since = now if status == "held" else None
        if status in FINAL_STATUSES and order.finished_at is None:
            order.finished_at = finished

    def on_execution(self, report: ExecReport) -> bool:
        """True when this execution is new."""
        if report.exec_id in self.execs:
            return False
        commission = self._early_commissions.pop(report.exec_id, None)
        self.execs[report.exec_id] = IbExecution(report, commission)
        order = self._find(report.client_id, report.order_id, report.perm_id, report.order_ref)
        if order is not None and report.kind == "trade":
            filled = sum(
                x.report.qty
                for x in self.execs.values()
                if x.report.perm_id == report.perm_id and report.perm_id
            )
            order.filled = max(order.filled, filled)
        return True

    def on_commission(self, exec_id: str, commission: Decimal) -> None:
        known = self.execs.get(exec_id)
        if known is None:
            self._early_commissions[exec_id] = commission
        else:
            known.commission = commission

    def unacknowledged(self) -> list[IbOrder]:
        """Our orders sent and neither acknowledged nor refused by IB (still `pending`)."""
        return [
            o
            for o in self.all_orders()
            if o.status == "pending" and o.rejected is None and o.client_id == self.client_id
        ]

    def forget(self, order: IbOrder) -> None:
        """An order IB does not have (sent on a connection that died with it in flight, and
        absent from IB's order lists since): no longer listed, so the loop sees a send that
        never arrived instead of an order pending forever."""
        if self.by_ref.get(order.order_ref) is order:
            del self.by_ref[order.order_ref]
        if order.perm_id and self.by_perm.get(order.perm_id) is order:
            del self.by_perm[order.perm_id]
        for key in [k for k, o in self.live_ids.items() if o is order]:
            del self.live_ids[key]
        if order in self.orphans:
            self.orphans.remove(order)

    def give_up(self, order: IbOrder, reason: str, now: datetime) -> None:
        """An order IB held Inactive, cancelled without any status back (ib_insync#363): it is
        finished for tradebot, with the reason."""
        order.reason = reason
        self._apply(order, "inactive", now, now)

    def retire(self, order: IbOrder) -> None:
        """A finished order whose orderRef the loop sends again (a refused bracket's entry goes
        out alone): it stays known by permId, but no longer answers to the orderRef."""
        order.retired = True
        if self.by_ref.get(order.order_ref) is order:
            del self.by_ref[order.order_ref]

    # -- queries -----------------------------------------------------------------------------
    def by_order_ref(self, order_ref: str) -> IbOrder | None:
        return self.by_ref.get(order_ref)

    def all_orders(self) -> list[IbOrder]:
        """Every order known, including those another order with the same orderRef shadows."""
        seen: dict[int, IbOrder] = {}
        for order in [*self.by_ref.values(), *self.by_perm.values(), *self.orphans]:
            seen.setdefault(id(order), order)
        return list(seen.values())

    def orders(self, since: datetime | None) -> list[IbOrder]:
        """One order per orderRef (the one that answers to it), and every order without one;
        working ones, and those finished since `since`."""
        seen: dict[int, IbOrder] = {}
        unnamed = [o for o in self.by_perm.values() if not o.order_ref]
        for order in [*self.by_ref.values(), *unnamed, *self.orphans]:
            seen.setdefault(id(order), order)
        return [
            o
            for o in seen.values()
            if since is None or o.working or (o.finished_at is not None and o.finished_at >= since)
        ]

    def executions(self, since: datetime) -> list[IbExecution]:
        return [x for x in self.execs.values() if x.report.time >= since]

    def forget_before(self, moment: datetime, keep: Iterable[str] = ()) -> None:
        """Drop finished orders and executions older than `moment` (bounded memory)."""
        keep_refs = set(keep)
        for order in self.all_orders():
            if (
                order.final
                and order.finished_at is not None
                and order.finished_at < moment
                and order.order_ref not in keep_refs
            ):
                self.by_perm.pop(order.perm_id, None)
                if self.by_ref.get(order.order_ref) is order:
                    del self.by_ref[order.order_ref]
                if order in self.orphans:
                    self.orphans.remove(order)
        for exec_id in [e for e, x in self.execs.items() if x.report.time < moment]:
            del self.execs[exec_id]


def _answers_before(candidate: IbOrder, holder: IbOrder) -> bool:
    """Which of two orders with one orderRef answers to it: a working one before a finished
    one, else the later one (IB's permIds grow)."""
    if holder.retired:
        return True
    if candidate.working != holder.working:
        return candidate.working
    return candidate.perm_id > holder.perm_id
