"""Our orders and positions: rebuilt from `journal/orders.jsonl`, kept in step with the broker.

The order journal is the book. Every change is journaled before it is acted on or as soon as it
is learnt: an intent before an order is sent, then its submission, status changes and fills. On
start (and after a reconnect) `sync` adopts what the broker did while we were away — fills
included — and reports orders it does not know, never touching them. A position closes into one
line of `journal/trades.jsonl` when its exits have sold everything its entry bought; a trade is
never written twice (`trade_id` = the entry's order_ref).

Order records (`"v": 1`, `ts`, `event`, `order_ref`, `role`, `session`, `mode` on every line):

* `intent` — what is about to be sent: symbol, strategy, phase, contract, action, qty, order_type,
  tif, limit / stop, parent_ref (bracket legs and exits), stop_loss_pct, exit_reason (exits), and
  for an entry its signal, sizing, quote and bracket prices;
* `submitted` — the broker accepted it: order_id, perm_id, status;
* `status` — a new status (`presubmitted`, `submitted`, `filled`, `cancelled`, `inactive`,
  `rejected`, `not_sent` (dry run), `abandoned` (intent never sent), `unknown`) with a reason;
* `fill` — exec_id, qty, price, commission, time, filled_qty (cumulative), kind (trade/expiry),
  order_id, perm_id; `source` when the fill was not an execution the broker reported live: the
  broker's order status, an account statement ("IB Flex query N"), or "operator <user>" (`tradebot
  journal close`). Exits recorded that way are orders `<entry>.r<n>` (order_type `RECONCILED` or
  `EXPIRY`) unless the evidence names one of the position's own legs.

Contracts in intents carry `ladder` ([[low edge, increment], …], IB's market rule) when known.

Why one module: replaying the journal and syncing with the broker update the same indexes (live,
unfinished, by permId) and must keep them consistent record by record; split, each half would reach
into the other's state.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from tradebot.books.journal_cache import CachedOrderJournal, CachedTradeJournal
from tradebot.brokers.base import Broker, BrokerOrder, Execution, Foresight, OrderSpec
from tradebot.core.instruments import OptionContract
from tradebot.core.orders import impossible_fill
from tradebot.core.trades import ClosedTrade, ExitReason, close_trade, session_of
from tradebot.core.validation import (
    MAX_ID,
    MAX_MONEY,
    MAX_PRICE,
    MAX_QTY,
    decimal_number,
    text,
    utc_timestamp,
    whole_number,
)
from tradebot.engine.events import EventLog
from tradebot.errors import CorruptRecordError

log = logging.getLogger("tradebot.engine")

# "abandoned": journaled, never reached the broker (a crash between intent and send). Final for
# the book, but unlike "not_sent" it still counts toward the session's entries (fail safe).
FINAL = frozenset({"filled", "cancelled", "rejected", "inactive", "not_sent", "abandoned"})
UNKNOWN_GRACE = timedelta(minutes=2)  # how long a failed send may take to show up at the broker
FORGET_AFTER = timedelta(days=3)  # finished round trips older than this leave memory
# However sure a simulated broker is that nothing changed, the book asks it in full at least
# this often while something is open (the wake planner keeps a sync at least as often): a
# safety net that costs nothing measurable, and what fault-injection tests rely on.
FULL_SYNC_EVERY = timedelta(minutes=15)
# Exec ids of fills recorded from an order's status (engine/positions.py), not an execution.
RECONCILED_PREFIX = "order:"
_EXIT_REASON: dict[str, ExitReason] = {
    "take_profit": "take_profit",
    "stop_loss": "stop_loss",
    "flatten": "flatten",
    "manual": "manual",
    "expired": "expired",
}
_SIX_PLACES = Decimal("0.000001")


@dataclass(frozen=True)
class FillRecord:
    exec_id: str
    qty: int
    price: Decimal
    commission: Decimal
    time: datetime
    kind: str = "trade"
    line: int | None = None  # where it is in orders.jsonl


@dataclass
class TrackedOrder:
    """One of our orders as the journal knows it."""

    ref: str
    role: str
    symbol: str
    strategy: str
    contract: OptionContract
    action: str
    qty: int
    order_type: str
    tif: str
    session: date
    mode: str
    phase: str
    intent_ts: datetime
    limit: Decimal | None = None
    stop: Decimal | None = None
    parent_ref: str = ""
    stop_loss_pct: Decimal = Decimal(50)
    exit_reason: str = ""
    emulated: bool = False
    status: str = "intent"
    order_id: int = 0
    perm_id: int = 0
    reason: str = ""
    fills: dict[str, FillRecord] = field(default_factory=dict)
    last_ts: datetime | None = None  # the journal time of its last event

    @property
    def filled_qty(self) -> int:
        return sum(f.qty for f in self.fills.values())

    @property
    def avg_price(self) -> Decimal:
        qty = self.filled_qty
        if qty == 0:
            return Decimal(0)
        return sum((f.price * f.qty for f in self.fills.values()), Decimal(0)) / qty

    @property
    def commission(self) -> Decimal:
        return sum((f.commission for f in self.fills.values()), Decimal(0))

    @property
    def final(self) -> bool:
        return self.status in FINAL

    def spec(self) -> OrderSpec:
        """What the broker is asked to do for this order."""
        return OrderSpec(
            order_ref=self.ref,
            contract=self.contract,
            action="BUY" if self.action == "BUY" else "SELL",
            qty=self.qty,
            order_type=self.order_type,  # type: ignore[arg-type]
            tif=self.tif,
            limit=self.limit,
            stop=self.stop,
        )

    @property
    def working(self) -> bool:
        return not self.final and self.status != "not_sent"


@dataclass
class Position:
    """An entry that bought something, with the exits that sell it."""

    entry: TrackedOrder
    exits: list[TrackedOrder]

    @property
    def open_qty(self) -> int:
        return self.entry.filled_qty - sum(e.filled_qty for e in self.exits)

    @property
    def working_exits(self) -> list[TrackedOrder]:
        return [e for e in self.exits if e.working]


@dataclass
class SyncReport:
    fills: int = 0
    status_changes: int = 0
    trades: list[ClosedTrade] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)


class OrderBook:
    """In-memory view of our orders, fed by the order journal (the only writer is the loop)."""

    def __init__(
        self,
        journal: CachedOrderJournal,
        trades: CachedTradeJournal,
        events: EventLog,
    ) -> None:
        self.journal = journal
        self.trades = trades
        self.events = events
        self.orders: dict[str, TrackedOrder] = {}
        self.exits_of: dict[str, list[str]] = {}
        self.seen_execs: set[str] = set()
        # IB's permId of each order the broker acknowledged: a broker that does not echo our
        # orderRef (a Gateway that drops it) still has its reports matched to our orders.
        self.by_perm: dict[int, str] = {}
        # Indexes, so a wake costs the same after a thousand sessions as after one: entries
        # whose round trip is not over, orders not final, entry refs per prefix.
        self.unfinished: dict[str, TrackedOrder] = {}
        self.live: dict[str, TrackedOrder] = {}
        self._prefix_count: dict[str, int] = {}
        self._last_sync: datetime | None = None
        self._reported: set[str] = set()
        self._pruned_on: date | None = None
        # The last sync left something for a later one (a fill waiting for its commission):
        # the next sync must run even when the broker reports no change.
        self.waiting = False
        # A sync that raised half way (orders answered, executions not) left fills and status
        # changes unread: the next one is full, whatever the broker says about changes.
        self._interrupted = False
        self._pending: deque[tuple[dict[str, Any], int]] = deque()  # read, not yet applied
        self._reset_pending = False  # the journal was replaced: `_pending` is all of it
        self._drain_failed = False  # the last drain met a damaged record
        self._batch = False  # applying a batch of records
        self._trades_read = False  # ... and the trade journal was read for it
        self._closed: list[ClosedTrade] = []  # written, not yet taken by the loop
        self.journal_error: str | None = None  # trades.jsonl unreadable: trades wait
        self.on_close: Callable[[ClosedTrade], None] | None = None
        journal.subscribe(self._records)

    def take_closed(self) -> list[ClosedTrade]:
        """Trades closed since the last call (whoever's sync closed them)."""
        closed, self._closed = self._closed, []
        return closed

    # -- reading the journal -------------------------------------------------------------------
    def refresh(self) -> None:
        """Apply journal records appended since the last refresh (by us or by the ladder): the
        journal hands them over as it reads them (`_records`), and they are applied here.

        A record that cannot be (a fill above its buy limit, more than was ordered, a quantity
        that is not a number) raises CorruptRecordError naming `orders.jsonl:line`, now and at
        every refresh until the journal is repaired: callers fail safe (the loop refuses entries
        while exits go on; a command exits 4)."""
        self.journal.refresh()
        self._drain()

    def _records(self, records: list[dict[str, Any]], lines: list[int], reset: bool) -> None:
        # Called by whoever reads the journal first (the ladder may, in the middle of a tick):
        # the book itself changes only in `_drain`, so it is never seen half rebuilt.
        if reset:  # replaced or repaired: the records are the whole journal again
            self._reset_pending = True
            self._pending.clear()
        self._pending.extend(zip(records, lines, strict=True))
        self._drain_failed = False

    def _drain(self) -> None:
        """Apply what the journal handed over. After a reset the book is rebuilt from the new
        records at once: until the rebuild succeeds every reader sees the old book, whole (a
        damaged line leaves it as it was and raises, again at every refresh)."""
        pending = self._pending
        if not pending and not self._reset_pending:
            return
        self._batch, self._trades_read = True, False
        self._drain_failed = True
        try:
            if self._reset_pending:
                self._rebuild()
            else:
                while pending:
                    record, line = pending[0]
                    self._apply_checked(record, line)
                    pending.popleft()
            self._drain_failed = False
        finally:
            self._batch = False

    def _rebuild(self) -> None:
        old = (
            self.orders, self.exits_of, self.seen_execs, self.by_perm,
            self.unfinished, self.live, self._prefix_count,
        )  # fmt: skip
        self.orders, self.exits_of, self.seen_execs = {}, {}, set()
        self.by_perm = {}
        self.unfinished, self.live, self._prefix_count = {}, {}, {}
        try:
            # New TrackedOrders are made from the new intents: the old ones stay untouched.
            for record, line in self._pending:
                self._apply_checked(record, line)
        except BaseException:
            (
                self.orders, self.exits_of, self.seen_execs, self.by_perm,
                self.unfinished, self.live, self._prefix_count,
            ) = old  # fmt: skip
            raise
        self._pending.clear()
        self._reset_pending = False

    def _apply_checked(self, record: dict[str, Any], line: int) -> None:
        try:
            self._apply(record, line)
        except KeyError as exc:
            raise CorruptRecordError(
                self.journal.path, line, f"missing field {exc.args[0]}"
            ) from None
        except (TypeError, ValueError, ArithmeticError) as exc:
            raise CorruptRecordError(self.journal.path, line, str(exc)) from None

    def forget_finished(self, now: datetime) -> int:
        """Drop round trips that ended well before anything the broker can still report: their
        entry is final with its trade written (or never filled), and their last event is more
        than `FORGET_AFTER` before both `now` and the oldest unfinished business (executions
        are asked for from a day before that). Memory stays flat however long the loop runs.
        A dry run's would-be position (`not_sent`, nothing filled) is kept until it is closed:
        its take-profit and stop are read from the book, and a restart finds it there."""
        times = [o.intent_ts for o in self.live.values()]
        times += [e.intent_ts for e in self.unfinished.values()]
        horizon = min([now, *times]) - FORGET_AFTER
        gone = 0
        for ref, entry in list(self.orders.items()):
            if entry.role != "entry" or ref in self.unfinished or not entry.final:
                continue
            if entry.status == "not_sent" and not self._would_be_closed(ref):
                continue  # a dry run's would-be position, still open (its bracket is kept)
            trip = [
                entry,
                *(self.orders[r] for r in self.exits_of.get(ref, []) if r in self.orders),
            ]
            if any(o.working or (o.last_ts or o.intent_ts) >= horizon for o in trip):
                continue
            for order in trip:
                del self.orders[order.ref]
                self.live.pop(order.ref, None)
                if order.perm_id and self.by_perm.get(order.perm_id) == order.ref:
                    del self.by_perm[order.perm_id]
                self.seen_execs.difference_update(order.fills)
            self.exits_of.pop(ref, None)
            gone += 1
        return gone

    def _would_be_closed(self, ref: str) -> bool:
        """A dry run closes a would-be position with an exit child (`<ref>.x`, engine/dry_run)."""
        return any(
            r in self.orders and self.orders[r].role == "exit" for r in self.exits_of.get(ref, [])
        )

    def _index(self, order: TrackedOrder) -> None:
        """Keep `live` and `unfinished` true for `order` (and the entry it belongs to)."""
        if order.final:
            self.live.pop(order.ref, None)
        else:
            self.live[order.ref] = order
        entry = order if order.role == "entry" else self.orders.get(order.parent_ref)
        if entry is None or entry.role != "entry":
            return
        done = entry.final and (
            entry.filled_qty == 0
            or (self.position(entry).open_qty <= 0 and self._written(entry.ref))
        )
        if done:
            self.unfinished.pop(entry.ref, None)
        else:
            self.unfinished[entry.ref] = entry

    def _written(self, trade_id: str) -> bool:
        """Whether the trade is in trades.jsonl; a damaged journal answers no (kept pending)
        instead of stopping the loop: trades are written again once it is repaired."""
        try:
            # Read the trade journal once for a batch of records, not once per record.
            found = self.trades.has_trade(trade_id, refresh=not (self._batch and self._trades_read))
            self._trades_read = self._batch
            return found
        except CorruptRecordError as exc:
            self.journal_error = exc.message
            return False

    def _apply(self, r: dict[str, Any], line: int | None = None) -> None:
        ref, event = str(r["order_ref"]), str(r["event"])
        ts = datetime.fromisoformat(str(r["ts"]))
        if event == "intent":
            if ref in self.orders:
                return
            contract = OptionContract.from_record(r["contract"])
            order = TrackedOrder(
                ref=ref,
                role=str(r["role"]),
                symbol=str(r.get("symbol") or contract.symbol),
                strategy=str(r.get("strategy") or ""),
                contract=contract,
                action=str(r.get("action") or "BUY"),
                qty=int(r.get("qty") or 0),
                order_type=str(r.get("order_type") or "LMT"),
                tif=str(r.get("tif") or "DAY"),
                session=date.fromisoformat(str(r["session"])),
                mode=str(r["mode"]),
                phase=str(r.get("phase") or "experience"),
                intent_ts=ts,
                limit=_dec(r.get("limit")),
                stop=_dec(r.get("stop")),
                parent_ref=str(r.get("parent_ref") or ""),
                stop_loss_pct=Decimal(str(r.get("stop_loss_pct") or 50)),
                exit_reason=str(r.get("exit_reason") or ""),
                emulated=bool(r.get("emulated", False)),
            )
            order.last_ts = ts
            self.orders[ref] = order
            if order.parent_ref:
                self.exits_of.setdefault(order.parent_ref, []).append(ref)
            if order.role == "entry":
                prefix = ref.rstrip("0123456789")
                self._prefix_count[prefix] = self._prefix_count.get(prefix, 0) + 1
            self._index(order)
            return
        known = self.orders.get(ref)
        if known is None:
            return  # an event for an intent we never saw (journal edited by hand): ignore
        order = known
        order.last_ts = ts
        if event == "submitted":
            order.order_id = int(r.get("order_id") or 0)
            order.perm_id = int(r.get("perm_id") or 0)
            order.status = str(r.get("status") or "submitted")
            if order.perm_id:
                self.by_perm[order.perm_id] = ref
        elif event == "status":
            order.status = str(r["status"])
            order.reason = str(r.get("reason") or "")
        elif event == "fill":
            fill = _fill(r, line)
            already = order.filled_qty - (
                order.fills[fill.exec_id].qty if fill.exec_id in order.fills else 0
            )
            problem = impossible_fill(
                action=order.action, order_type=order.order_type, ordered=order.qty,
                already_filled=already, limit=order.limit, stop=order.stop, qty=fill.qty,
                price=fill.price,
            )  # fmt: skip
            if problem is not None:
                raise ValueError(
                    f"fill {fill.exec_id} of {order.ref} cannot be: {problem}; no broker reports "
                    "that (a forged or damaged line)"
                )
            exec_id = fill.exec_id
            order.fills[exec_id] = fill
            self.seen_execs.add(exec_id)
            perm_id = int(r.get("perm_id") or 0)
            if perm_id:
                self.by_perm.setdefault(perm_id, ref)
        self._index(order)

    # -- writing -------------------------------------------------------------------------------
    def _base(self, now: datetime, event: str, order: TrackedOrder) -> dict[str, Any]:
        return {
            "v": 1,
            "ts": now,
            "event": event,
            "order_ref": order.ref,
            "role": order.role,
            "session": session_of(now),
            "mode": order.mode,
        }

    def intent_record(self, now: datetime, order: TrackedOrder, **extra: Any) -> dict[str, Any]:
        """The intent line for `order` (the caller appends it, e.g. through reserve_entry)."""
        return {
            **self._base(now, "intent", order),
            "symbol": order.symbol,
            "strategy": order.strategy,
            "phase": order.phase,
            "contract": order.contract.as_record(),
            "action": order.action,
            "qty": order.qty,
            "order_type": order.order_type,
            "tif": order.tif,
            "limit": order.limit,
            "stop": order.stop,
            "parent_ref": order.parent_ref or None,
            "stop_loss_pct": order.stop_loss_pct,
            "exit_reason": order.exit_reason or None,
            "emulated": order.emulated,
            **extra,
        }

    def add_intent(self, now: datetime, order: TrackedOrder, **extra: Any) -> None:
        """Journal an intent (durably, before sending) and track the order."""
        self.journal.append(self.intent_record(now, order, **extra))
        self.refresh()

    def mark_submitted(
        self, now: datetime, ref: str, order_id: int, perm_id: int, status: str
    ) -> None:
        order = self.orders[ref]
        self.journal.append(
            {
                **self._base(now, "submitted", order),
                "order_id": order_id,
                "perm_id": perm_id,
                "status": status,
            }
        )
        self.refresh()

    def mark_status(self, now: datetime, ref: str, status: str, reason: str = "") -> None:
        order = self.orders[ref]
        if order.status == status:
            return
        self.journal.append(
            {**self._base(now, "status", order), "status": status, "reason": reason or None}
        )
        self.refresh()

    def _record_fill(
        self, now: datetime, order: TrackedOrder, x: Execution, qty: int, **extra: Any
    ) -> None:
        commission = Decimal(0) if x.commission is None else x.commission
        commission = commission.quantize(_SIX_PLACES)  # IB reports floats
        self.journal.append(
            {
                **self._base(now, "fill", order),
                "exec_id": x.exec_id,
                "qty": qty,
                "price": x.price,
                "commission": commission,
                "time": x.time,
                "filled_qty": order.filled_qty + qty,
                "kind": x.kind,
                "order_id": x.order_id,
                "perm_id": x.perm_id,
                **extra,
            }
        )
        self.refresh()

    # -- queries -------------------------------------------------------------------------------
    def _current(self, *, strict: bool = False) -> None:
        """Apply what the journal handed over since (the ladder may have read it in the middle of
        a tick) before answering. A damaged record is reported by `refresh`; a reader gets the
        book as it stands, whole, unless `strict` (an entry is refused rather than decided on a
        journal that cannot be read)."""
        if (self._pending or self._reset_pending) and not self._batch:
            if self._drain_failed and not strict:
                return  # tried since the last records came: not again at every read
            try:
                self._drain()
            except CorruptRecordError:
                if strict:
                    raise

    def entries(self) -> list[TrackedOrder]:
        """Entries whose round trip is not over (working, or with something still open)."""
        self._current()
        return list(self.unfinished.values())

    def position(self, entry: TrackedOrder) -> Position:
        self._current()
        return Position(entry, [self.orders[r] for r in self.exits_of.get(entry.ref, [])])

    def open_positions(self) -> list[Position]:
        out = []
        for entry in self.entries():
            if entry.filled_qty > 0:
                pos = self.position(entry)
                if pos.open_qty > 0:
                    out.append(pos)
        return out

    def working_entries(self) -> list[TrackedOrder]:
        return [o for o in self.entries() if o.working and o.status != "intent"]

    def holds(self, symbol: str, strategy: str) -> TrackedOrder | None:
        """The entry that already occupies (symbol, strategy): working or with an open position."""
        self._current(strict=True)
        for entry in self.entries():
            if entry.symbol != symbol or entry.strategy != strategy:
                continue
            if entry.working or self.position(entry).open_qty > 0:
                return entry
        return None

    def next_entry_ref(self, symbol: str, session: date, strategy: str) -> str:
        self._current(strict=True)
        prefix = f"{symbol}-{session:%y%m%d}-{strategy[:1]}"
        return f"{prefix}{self._prefix_count.get(prefix, 0) + 1}"

    def has_activity(self) -> bool:
        self._current()
        return bool(self.live) or bool(self.unfinished)

    # -- broker sync ---------------------------------------------------------------------------
    def sync_since(self, now: datetime) -> datetime:
        """How far back executions must be asked for: our oldest unfinished business."""
        times = [o.intent_ts for o in self.live.values()]
        times += [e.intent_ts for e in self.unfinished.values()]
        oldest = min(times, default=now)
        return min(oldest, now) - timedelta(minutes=1)

    async def sync(self, broker: Broker, now: datetime) -> SyncReport:
        """Adopt what the broker did: fills, status changes, expiries; close finished trades."""
        self.refresh()
        report = SyncReport()
        if (
            self._last_sync is not None
            and now - self._last_sync < FULL_SYNC_EVERY
            and isinstance(broker, Foresight)
            and broker.unchanged_since_report()
            and self.journal_error is None
            and not self.waiting
            and not self._interrupted
            and not any(o.status in ("intent", "unknown", "pending") for o in self.live.values())
        ):
            # Nothing happened at the broker since the last sync and nothing here waits on
            # time: the sync would adopt nothing (a simulated broker can tell).
            return report
        self.waiting = False
        # Orders that finished before the last sync were adopted then (a margin covers clock
        # differences); the first sync looks back to our oldest unfinished business.
        if self._last_sync is None:
            since = self.sync_since(now) - timedelta(days=1)
        else:
            since = self._last_sync - timedelta(minutes=10)
        self._interrupted = True
        broker_orders = await broker.orders(since)
        asked_since = self.sync_since(now) - timedelta(days=1)
        executions = await broker.executions(asked_since)
        for x in sorted(executions, key=lambda e: (e.time, e.exec_id)):
            if x.exec_id in self.seen_execs:
                continue
            if x.kind == "expiry":
                report.fills += self._adopt_expiry(now, x)
                continue
            order = self.find(x.order_ref, x.perm_id)
            if order is None:
                self._report(
                    now,
                    report,
                    f"exec:{x.exec_id}",
                    "unknown_execution",
                    f"execution {x.exec_id} ({x.side} {x.qty} {x.contract.label} at "
                    f"{x.price}, order_ref {x.order_ref!r}) is not one of tradebot's "
                    "orders; left alone",
                    exec_id=x.exec_id,
                )
                continue
            if x.commission is None and now - x.time < timedelta(minutes=1):
                self.waiting = True  # a later sync adopts it, even if nothing else changes
                continue  # the commission report follows the fill; adopt both together
            if order.filled_qty + x.qty > order.qty and any(
                f.exec_id.startswith(RECONCILED_PREFIX) for f in order.fills.values()
            ):
                # Its fill was recorded from the broker's order status when the executions
                # were not listed: the late execution is the same fill, never a second one.
                self.seen_execs.add(x.exec_id)
                self._report(
                    now, report, f"exec:{x.exec_id}", "execution_already_reconciled",
                    f"execution {x.exec_id} of {order.ref} ({x.qty} at {x.price}) arrived "
                    "after its fill was recorded from IB's order status; not counted twice",
                    exec_id=x.exec_id,
                )  # fmt: skip
                continue
            self._record_fill(now, order, x, x.qty)
            report.fills += 1
        if getattr(broker, "account_is_truth", False):
            self._verify_fills(executions, asked_since)
        known = set()
        for bo in broker_orders:
            ours = self.find(bo.order_ref, bo.perm_id)
            known.add(ours.ref if ours is not None else bo.order_ref)
            report.status_changes += self._adopt_status(now, bo, report)
        complete = broker.order_lists_complete()  # else "not listed" proves nothing
        for order in list(self.live.values()):
            if (
                complete
                and order.status in ("unknown", "pending")
                and order.ref not in known
                and now - order.intent_ts >= UNKNOWN_GRACE
            ):
                # A send that failed (or that the broker never acknowledged) and that it does
                # not list: it never arrived. Closed as abandoned (an entry still counts toward
                # the session); an exit may be sent again under a new ref.
                self.mark_status(
                    now, order.ref, "abandoned", "the broker never listed it after a failed send"
                )
                report.status_changes += 1
        report.trades = self.close_trades(now)
        # Only a sync that adopted everything moves the look-back on: after a failure the next
        # one asks again from the last complete sync (an order finished during an outage longer
        # than the margin would otherwise never be adopted).
        self._last_sync = now
        self._interrupted = False
        today = session_of(now)
        if self._pruned_on != today:
            self._pruned_on = today
            self.forget_finished(now)
        return report

    def find(self, order_ref: str, perm_id: int = 0) -> TrackedOrder | None:
        """Our order by its orderRef, else by the permId the broker gave it."""
        self._current()
        order = self.orders.get(order_ref) if order_ref else None
        if order is None and perm_id:
            ref = self.by_perm.get(perm_id)
            order = self.orders.get(ref) if ref else None
        return order

    def _verify_fills(self, executions: list[Execution], since: datetime) -> None:
        """The simulated account is the truth (it keeps every fill): each journaled fill of our
        unfinished business must be one of its executions, same quantity, same price. One that
        is not was written by someone else: CorruptRecordError naming the line (exit 4 at the
        start; in the loop the sync fails, so no entry opens, while exits go on)."""
        known = {x.exec_id: x for x in executions}
        for entry in list(self.unfinished.values()):
            for order in [entry, *(self.orders[r] for r in self.exits_of.get(entry.ref, []))]:
                for fill in order.fills.values():
                    if fill.time < since:
                        continue
                    x = known.get(fill.exec_id)
                    same = x is not None and (
                        fill.kind == "expiry" or (x.qty == fill.qty and x.price == fill.price)
                    )
                    if not same:
                        found = (
                            "no such execution"
                            if x is None
                            else f"its execution is {x.qty} at {x.price}"
                        )
                        raise CorruptRecordError(
                            self.journal.path,
                            fill.line,
                            f"fill {fill.exec_id} of {order.ref} ({fill.qty} at {fill.price}) is "
                            f"not in the simulated account ({found}); the account is the truth",
                            action="remove that line (keep a backup), then run again",
                        )

    def _adopt_status(self, now: datetime, bo: BrokerOrder, report: SyncReport) -> int:
        order = self.find(bo.order_ref, bo.perm_id)
        if order is None:
            if bo.status not in ("filled", "cancelled", "inactive"):
                self._report(
                    now,
                    report,
                    f"order:{bo.perm_id or bo.order_id}",
                    "unknown_order",
                    f"working order {bo.order_id} ({bo.action} {bo.qty} "
                    f"{bo.contract.label}, order_ref {bo.order_ref!r}) is not one of "
                    "tradebot's; left alone",
                    order_id=bo.order_id,
                    perm_id=bo.perm_id,
                )
            return 0
        changed = 0
        if (
            order.status in ("intent", "unknown", "pending")
            and bo.order_id
            and (bo.status, bo.order_id, bo.perm_id)
            != (order.status, order.order_id, order.perm_id)
        ):
            self.mark_submitted(now, order.ref, bo.order_id, bo.perm_id, bo.status)
            changed += 1
        if bo.status in FINAL and bo.filled > order.filled_qty:
            self.waiting = True
            # The broker has filled more than the journal has adopted (a fill waiting for its
            # commission report): a final status now would make a filled order look dead.
            return changed
        if bo.status != order.status and bo.status != "pending" and not order.final:
            self.mark_status(now, order.ref, bo.status, bo.reason)
            changed += 1
        return changed

    def record_exit(
        self,
        now: datetime,
        entry: TrackedOrder,
        x: Execution,
        *,
        source: str,
        note: str,
        leg: TrackedOrder | None = None,
        reason: str = "manual",
    ) -> TrackedOrder | None:
        """An exit the broker's live reports could not show (filled while tradebot was away
        and older than IB's same-day executions, settled at expiry, or recorded by the
        operator), journaled with its `source`: on `leg` when the evidence names one of the
        position's own orders, else on a new exit order `<entry>.r<n>`.

        Decided and written under the journal's inter-process lock, on the journal as it is
        then: the loop's reconciliation and the operator's `journal close` never both record
        the same exit. At most what is still open is recorded; None when nothing is."""
        with self.journal.hold():
            self.refresh()
            qty = min(x.qty, self.position(entry).open_qty)
            if qty <= 0:
                return None
            if qty != x.qty:
                x = replace(x, qty=qty)
            if leg is not None:
                leg = self.orders.get(leg.ref, leg)
            return self._record_exit(now, entry, x, source=source, note=note, leg=leg,
                                     reason=reason)  # fmt: skip

    def _record_exit(
        self,
        now: datetime,
        entry: TrackedOrder,
        x: Execution,
        *,
        source: str,
        note: str,
        leg: TrackedOrder | None,
        reason: str,
    ) -> TrackedOrder:
        order = leg
        if order is None:
            n = 1 + sum(1 for r in self.exits_of.get(entry.ref, []) if ".r" in r[len(entry.ref) :])
            order = TrackedOrder(
                ref=f"{entry.ref}.r{n}",
                role="exit",
                symbol=entry.symbol,
                strategy=entry.strategy,
                contract=entry.contract,
                action="SELL",
                qty=x.qty,
                order_type="EXPIRY" if x.kind == "expiry" else "RECONCILED",
                tif="",
                session=session_of(now),
                mode=entry.mode,
                phase=entry.phase,
                intent_ts=now,
                parent_ref=entry.ref,
                stop_loss_pct=entry.stop_loss_pct,
                exit_reason=reason,
            )
            self.add_intent(now, order, note=note, source=source)
        # The book tracks its own copy, rebuilt from the journal: read the fill back from it
        # (the local one never learns it, and a `.rN` left 'intent' reads as a working sell).
        order = self.orders[order.ref]
        self._record_fill(now, order, x, x.qty, source=source)
        order = self.orders[order.ref]
        if order.filled_qty >= order.qty:
            self.mark_status(now, order.ref, "filled", f"{note} ({source})")
        return order

    def _adopt_expiry(self, now: datetime, x: Execution) -> int:
        """An expiration settles our open positions in that contract (oldest entry first)."""
        left = x.qty
        adopted = 0
        for pos in sorted(self.open_positions(), key=lambda p: p.entry.intent_ts):
            if left == 0 or not pos.entry.contract.same_option(x.contract):
                continue
            qty = min(left, pos.open_qty)
            entry = pos.entry
            exit_order = TrackedOrder(
                ref=f"{entry.ref}.ex",
                role="exit",
                symbol=entry.symbol,
                strategy=entry.strategy,
                contract=entry.contract,
                action="SELL",
                qty=qty,
                order_type="EXPIRY",
                tif="",
                session=session_of(now),
                mode=entry.mode,
                phase=entry.phase,
                intent_ts=now,
                parent_ref=entry.ref,
                exit_reason="expired",
            )
            if exit_order.ref not in self.orders:
                self.add_intent(now, exit_order, note="settled at expiration")
            self._record_fill(now, self.orders[exit_order.ref], x, qty)
            self.mark_status(now, exit_order.ref, "filled", "expired")
            left -= qty
            adopted += 1
        return adopted

    def _report(
        self, now: datetime, report: SyncReport, key: str, event: str, message: str, **fields: Any
    ) -> None:
        report.unknown.append(message)
        if key in self._reported:
            return
        self._reported.add(key)
        self.events.record(now, event, message, **fields)

    # -- trades --------------------------------------------------------------------------------
    def close_trades(self, now: datetime) -> list[ClosedTrade]:
        """Write each position whose exits sold everything its entry bought (once)."""
        closed = []
        self.journal_error = None
        for entry in self.entries():
            if entry.filled_qty == 0 or not entry.final or self._written(entry.ref):
                continue
            if self.journal_error is not None:
                self._report(
                    now, SyncReport(), f"trades-journal:{self.journal_error}", "ladder_error",
                    f"closed trades are not written until trades.jsonl is repaired: "
                    f"{self.journal_error}",
                )  # fmt: skip
                break
            pos = self.position(entry)
            if pos.open_qty > 0:
                continue
            try:
                trade = self._trade(pos)
            except ValueError as exc:  # a record that would not validate: say so, keep going
                self._report(
                    now, SyncReport(), f"trade:{entry.ref}", "error",
                    f"{entry.ref}: the closed trade cannot be recorded ({exc})",
                )  # fmt: skip
                continue
            if pos.open_qty < 0:
                self._report(
                    now, SyncReport(), f"overfill:{entry.ref}", "position_mismatch",
                    f"{entry.ref}: exits sold {-pos.open_qty} more than the entry bought; "
                    "check the account",
                )  # fmt: skip
            if trade is not None:
                self.trades.append(trade)
                closed.append(trade)
                self._closed.append(trade)
                self._index(entry)
                if self.on_close is not None:
                    self.on_close(trade)
                log.info(
                    "trade closed: %s %s %s ×%d, %s → %s, P&L %+.2f (%s)",
                    trade.trade_id,
                    trade.strategy,
                    trade.contract,
                    trade.qty,
                    trade.entry_price.normalize(),
                    trade.exit_price.normalize(),
                    trade.pnl,
                    trade.exit_reason,
                )
        return closed

    def _trade(self, pos: Position) -> ClosedTrade | None:
        entry = pos.entry
        exit_fills = [(e, f) for e in pos.exits for f in e.fills.values()]
        if not exit_fills:
            return None
        last_order, last_fill = max(exit_fills, key=lambda ef: (ef[1].time, ef[1].exec_id))
        qty = entry.filled_qty
        exit_value = sum((f.price * f.qty for _, f in exit_fills), Decimal(0))
        exit_qty = sum(f.qty for _, f in exit_fills)
        exit_price = _at_most_six_places(exit_value / exit_qty)
        entry_price = _at_most_six_places(entry.avg_price)
        commission = entry.commission + sum((f.commission for _, f in exit_fills), Decimal(0))
        reason = _EXIT_REASON.get(last_order.exit_reason or last_order.role, "manual")
        return close_trade(
            trade_id=entry.ref,
            symbol=entry.symbol,
            contract=entry.contract.label,
            right=entry.contract.right,
            strike=entry.contract.strike,
            expiry=entry.contract.expiry,
            strategy=entry.strategy,
            qty=qty,
            multiplier=entry.contract.multiplier,
            entry_time=min(f.time for f in entry.fills.values()),
            exit_time=last_fill.time,
            entry_price=entry_price,
            exit_price=exit_price,
            stop_loss_pct=entry.stop_loss_pct,
            exit_reason=reason,
            phase=entry.phase,  # type: ignore[arg-type]
            mode=entry.mode,  # type: ignore[arg-type]
            commission=commission,
        )


def _at_most_six_places(price: Decimal) -> Decimal:
    """An average price as recorded: exact when it has ≤ 6 places (the usual case)."""
    rounded = price.quantize(_SIX_PLACES)
    return price.normalize() if rounded == price else rounded


def _fill(r: dict[str, Any], line: int | None) -> FillRecord:
    """A fill line's fields, each checked (a ValueError names the field)."""
    kind = text(r.get("kind") or "trade", "kind")
    if kind not in ("trade", "expiry"):
        raise ValueError(f"kind {kind[:40]!r} is not trade or expiry")
    return FillRecord(
        exec_id=text(r["exec_id"], "exec_id", max_length=MAX_ID),
        qty=whole_number(r["qty"], "qty", low=1, high=MAX_QTY),
        price=decimal_number(r["price"], "price", low=Decimal(0), high=MAX_PRICE),
        commission=decimal_number(
            r.get("commission") or 0, "commission", low=-MAX_MONEY, high=MAX_MONEY
        ),
        time=utc_timestamp(r["time"], "time"),
        kind=kind,
        line=line,
    )


def _dec(value: Any) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))
