"""What the running loop looks like, as plain data: the live view draws it, the heartbeat file
carries it to `tradebot status` in another terminal, systemd gets its one-line summary."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class PositionLine:
    ref: str
    contract: str
    strategy: str
    qty: int
    entry_price: Decimal
    mark: Decimal | None
    unrealized: Decimal | None


@dataclass(frozen=True)
class OrderLine:
    ref: str
    role: str
    contract: str
    action: str
    qty: int
    order_type: str
    price: Decimal | None
    status: str


@dataclass(frozen=True)
class SignalLine:
    symbol: str
    at: datetime
    signal: str
    strategy: str | None
    reason: str


@dataclass(frozen=True)
class LoopStatus:
    """One moment of the loop. Times UTC; `clock` is the loop's (possibly simulated) time."""

    pid: int
    started: datetime
    clock: datetime
    broker: str
    mode: str
    connected: bool
    phase: str | None
    limits: dict[str, Any]
    equity: Decimal | None
    day_pnl: Decimal | None
    halted: bool
    halt_reason: str | None
    blocking: list[str]
    positions: list[PositionLine]
    orders: list[OrderLine]
    signals: list[SignalLine]
    next_wake: datetime | None
    last_error: str | None
    stuck_for_s: float | None = None
    notes: list[str] = field(default_factory=list)
    # What a person should know about `clock` ("simulated, ×120", "the gateway's clock, ×10");
    # None when it is this machine's.
    clock_note: str | None = None
    # What the operator must see first: an option expiring today still held near the close,
    # a position the broker changed behind tradebot's back.
    urgent: list[str] = field(default_factory=list)
    failing: str | None = None  # the step failing now and how often ("sync ×12")

    def line(self) -> str:
        """One line for systemd's STATUS= and plain logs."""
        state = "HALTED" if self.halted else ("disconnected" if not self.connected else "ok")
        if self.failing is not None:
            state = f"FAILING ({self.failing})" if state == "ok" else f"{state}, FAILING"
        equity = "?" if self.equity is None else f"{self.equity:.2f}"
        pnl = "?" if self.day_pnl is None else f"{self.day_pnl:+.2f}"
        urgent = f"URGENT ({len(self.urgent)}): {self.urgent[0]} · " if self.urgent else ""
        return (
            f"{urgent}{state} · {self.phase or 'phase unknown'} · {self.mode} · equity {equity} · "
            f"day {pnl} · {len(self.positions)} position(s) · {len(self.orders)} working order(s)"
        )

    def as_record(self) -> dict[str, Any]:
        return {
            "v": 1,
            "pid": self.pid,
            "started": self.started,
            "clock": self.clock,
            "clock_note": self.clock_note,
            "broker": self.broker,
            "mode": self.mode,
            "connected": self.connected,
            "phase": self.phase,
            "limits": self.limits,
            "equity": self.equity,
            "day_pnl": self.day_pnl,
            "halted": self.halted,
            "halt_reason": self.halt_reason,
            "blocking": self.blocking,
            "positions": [vars(p) for p in self.positions],
            "orders": [vars(o) for o in self.orders],
            "signals": [vars(s) for s in self.signals],
            "next_wake": self.next_wake,
            "last_error": self.last_error,
            "stuck_for_s": self.stuck_for_s,
            "urgent": self.urgent,
            "failing": self.failing,
            "status": self.line(),
        }
