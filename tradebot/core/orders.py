"""Order-journal events (`journal/orders.jsonl`) and what the phase rules need from them.

The loop records every order intent *before* it is sent, then submissions, status changes and
fills. Entries per session are counted from these records, never from memory, so a restart
cannot reset the proof phase's one entry per session.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

OrderRole = Literal["entry", "take_profit", "stop_loss", "exit"]
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
        """Parse a record; raises ValueError naming the bad field."""
        try:
            ts = datetime.fromisoformat(str(record["ts"]))
            session = date.fromisoformat(str(record["session"]))
            event, ref, role = str(record["event"]), str(record["order_ref"]), str(record["role"])
            mode = str(record["mode"])
        except KeyError as exc:
            raise ValueError(f"missing field {exc.args[0]}") from None
        if ts.tzinfo is None:
            raise ValueError("ts has no timezone")
        status = record.get("status")
        filled = record.get("filled_qty", 0) or 0
        return cls(
            ts,
            event,
            ref,
            role,
            session,
            mode,
            None if status is None else str(status),
            int(filled),
        )


def entries_in_session(events: Iterable[OrderEvent], session: date) -> int:
    """Entry orders intended in `session`, except those that died without any fill."""
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
    return len(intended - (dead - filled))
