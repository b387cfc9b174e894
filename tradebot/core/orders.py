"""Order-journal events (`journal/orders.jsonl`) and what the phase rules need from them.

The loop records every order intent *before* it is sent, then submissions, status changes and
fills. Entries per session are counted from these records, never from memory, so a restart
cannot reset the proof phase's one entry per session.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal, get_args

from tradebot.core.validation import MAX_ID, MAX_QTY, iso_date, text, utc_timestamp, whole_number

OrderRole = Literal["entry", "take_profit", "stop_loss", "exit"]
ORDER_ROLES: tuple[str, ...] = get_args(OrderRole)
# Statuses after which an entry order can no longer fill. If it never filled, the entry did not
# happen and does not use up the session's allowance.
DEAD_STATUSES = frozenset({"cancelled", "rejected", "inactive", "not_sent"})


@dataclass(frozen=True)
class OrderEvent:
    """One line of the order journal (the fields the phase rules read; others are kept)."""

    ts: datetime
    event: str  # intent | submitted | status | fill | ...
    order_ref: str
    role: str
    session: date
    mode: str
    status: str | None = None
    filled_qty: int = 0

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> OrderEvent:
        """Parse a record strictly; raises ValueError naming the bad field.

        Texts must be text (a number where `order_ref` belongs is an error, not "5"), `ts` an
        ISO-8601 time with a timezone, `session` a date, `role` one of `OrderRole`, and
        `filled_qty` a whole number.
        """
        missing = [
            k for k in ("ts", "session", "event", "order_ref", "role", "mode") if k not in record
        ]
        if missing:
            raise ValueError(f"missing field {missing[0]}")
        ts = utc_timestamp(record["ts"], "ts")
        session = iso_date(record["session"], "session")
        event = text(record["event"], "event")
        ref = text(record["order_ref"], "order_ref", max_length=MAX_ID)
        role = text(record["role"], "role")
        if role not in ORDER_ROLES:
            raise ValueError(f"unknown role {role[:40]!r} (one of {', '.join(ORDER_ROLES)})")
        mode = text(record["mode"], "mode")
        status = record.get("status")
        if status is not None:
            status = text(status, "status")
        filled = record.get("filled_qty")
        filled_qty = (
            0 if filled is None else whole_number(filled, "filled_qty", low=0, high=MAX_QTY)
        )
        return cls(ts, event, ref, role, session, mode, status, filled_qty)


@dataclass(frozen=True)
class SessionEntries:
    """A session's entries as the proof phase's limit counts them."""

    counted: int  # intents that filled, are working, or whose outcome is unknown
    cancelled_unfilled: int  # intents that ended (cancelled, rejected, not sent) without a fill


def session_entries(events: Iterable[OrderEvent], session: date) -> SessionEntries:
    """Entry orders intended in `session`: those that died without any fill are not counted
    (the entry did not happen), every other one is, including one whose outcome is unknown."""
    intended: set[str] = set()
    filled: set[str] = set()
    dead: set[str] = set()
    for e in events:
        if e.role != "entry" or e.session != session:
            continue
        if e.event == "intent":
            intended.add(e.order_ref)
        if e.filled_qty > 0 or e.event == "fill":
            filled.add(e.order_ref)
        if e.status is not None and e.status.lower() in DEAD_STATUSES:
            dead.add(e.order_ref)
    uncounted = intended & (dead - filled)
    return SessionEntries(len(intended) - len(uncounted), len(uncounted))


def entries_in_session(events: Iterable[OrderEvent], session: date) -> int:
    """Entry orders intended in `session`, except those that died without any fill."""
    return session_entries(events, session).counted


# A limit order fills at its limit or better, and "better" is bounded by the quotes: a fill at
# more than this many times (or less than this fraction of) its limit or stop is a price no quote
# of the contract came near — a forged or corrupted line, never a fill.
PLAUSIBLE_FACTOR = 3


def impossible_fill(
    *,
    action: str,
    order_type: str,
    ordered: int,
    already_filled: int,
    limit: Decimal | None,
    stop: Decimal | None,
    qty: int,
    price: Decimal,
) -> str | None:
    """Why no broker could have reported this fill of this order, or None when it could."""
    if already_filled + qty > ordered:
        return f"{already_filled + qty} filled, more than the {ordered} ordered"
    if order_type in ("EXPIRY", "RECONCILED"):
        # Settled at expiry, or recorded from evidence or by the operator: 0 is an option that
        # expired worthless (or was exercised), which `journal close --price 0` records.
        return None if price >= 0 else f"settled at {price}, below zero"
    if price <= 0:
        return f"price {price} is not above zero"
    if order_type == "LMT" and limit is not None:
        if action == "BUY" and price > limit:
            return f"bought at {price}, above the order's limit {limit}"
        if action == "SELL" and price < limit:
            return f"sold at {price}, below the order's limit {limit}"
    # "Better" than a limit, or a sell stop's fill above its stop, is bounded by the quotes.
    # (A stop's fill far below it is a gap, which happens: no lower bound for a sell stop.)
    far = None
    if order_type == "LMT" and limit is not None and limit > 0:
        beyond = (
            price * PLAUSIBLE_FACTOR < limit
            if action == "BUY"
            else price > limit * PLAUSIBLE_FACTOR
        )
        far = ("limit", limit) if beyond else None
    elif order_type == "STP" and stop is not None and stop > 0 and action == "SELL":
        far = ("stop", stop) if price > stop * PLAUSIBLE_FACTOR else None
    if far is not None:
        return (
            f"at {price}, against the order's {far[0]} {far[1]}: no quote of the contract comes "
            "near that price"
        )
    return None
