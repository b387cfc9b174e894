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

    def line(self) -> str:
        """One line for systemd's STATUS= and plain logs."""
        state = "HALTED" if self.halted else ("disconnected" if not self.connected else "ok")
        equity = "?" if self.equity is None else f"{self.equity:.2f}"
        pnl = "?" if self.day_pnl is None else f"{self.day_pnl:+.2f}"
        return (
            f"{state} · {self.phase or 'phase unknown'} · {self.mode} · equity {equity} · "
            f"day {pnl} · {len(self.positions)} position(s) · {len(self.orders)} working order(s)"
        )

    def as_record(self) -> dict[str, Any]:
        return {
            "v": 1,
            "pid": self.pid,
            "started": self.started,
            "clock": self.clock,
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
            "status": self.line(),
        }


# -- `tradebot status`: the loop seen from another terminal (heartbeat + journals) ------------

STALE_MIN_S = 90.0


def loop_report(loaded: Any, now: datetime) -> dict[str, Any]:
    """What `tradebot status` shows. Reads files only; never talks to the broker."""
    import fcntl
    import os as _os
    from pathlib import Path

    from tradebot.books.journal_cache import CachedOrderJournal, CachedTradeJournal
    from tradebot.books.ladder import PhaseLadder
    from tradebot.books.risk_report import account_modes
    from tradebot.books.state_store import StateStore
    from tradebot.engine.events import EventLog
    from tradebot.engine.order_book import OrderBook
    from tradebot.engine.supervisor import HEARTBEAT_FILE
    from tradebot.errors import CorruptRecordError
    from tradebot.storage import read_json_state

    state_dir = Path(loaded.state_dir)
    heartbeat_s = float(loaded.settings.monitoring.heartbeat_s)
    lock_holder: int | None = None
    lock_path = state_dir / "run.lock"
    if lock_path.exists():
        fd = _os.open(lock_path, _os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = _os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            lock_holder = int(text) if text.isdigit() else -1
        finally:
            _os.close(fd)
    beat = read_json_state(state_dir / HEARTBEAT_FILE)
    beat_at = (
        None if beat is None else datetime.fromisoformat(str(beat["beat"]).replace("Z", "+00:00"))
    )
    age = None if beat_at is None else (now - beat_at).total_seconds()
    stale_after = max(STALE_MIN_S, 3 * heartbeat_s)
    problems: list[str] = []
    if lock_holder is not None:
        state = "running"
        if age is None or age > stale_after:
            state = "stale"
            problems.append(
                f"the loop (pid {lock_holder}) holds the lock but its last heartbeat is "
                + ("missing" if age is None else f"{age:.0f} s old (> {stale_after:.0f} s)")
                + ": it may be hung; systemd's watchdog restarts it, or stop and restart it"
            )
        elif beat is not None and (beat.get("stuck_for_s") or 0) > stale_after:
            state = "stale"
            problems.append(f"the loop has been stuck in one step for {beat['stuck_for_s']} s")
    elif beat is not None and beat.get("crashed"):
        state = "died"
        problems.append(
            "the loop stopped on an error"
            + (f" ({beat.get('last_error')})" if beat.get("last_error") else "")
            + "; see tradebot.log, then start it again"
        )
    elif beat is not None and beat.get("running"):
        state = "died"
        problems.append(
            "the last heartbeat says a loop was running, but none holds the lock: it stopped "
            "without saying so (kill -9, a crash, a reboot); start it again"
        )
    else:
        state = "not running"

    ladder = PhaseLadder(loaded)
    snap = ladder.snapshot(now)
    try:
        halt = StateStore(state_dir).halt()
        halted, halt_text = halt.halted, halt.message()
    except CorruptRecordError as exc:
        halted, halt_text = True, exc.message
    orders = CachedOrderJournal(loaded.logs_dir)
    trades = CachedTradeJournal(loaded.logs_dir)
    positions: list[dict[str, Any]] = []
    working: list[dict[str, Any]] = []
    realized = Decimal(0)
    try:
        book = OrderBook(orders, trades, EventLog(loaded.logs_dir))
        book.refresh()
        marks = {p["ref"]: p for p in (beat or {}).get("positions", [])}
        for pos in book.open_positions():
            e = pos.entry
            mark = marks.get(e.ref, {})
            positions.append(
                {
                    "ref": e.ref,
                    "contract": e.contract.label,
                    "strategy": e.strategy,
                    "qty": pos.open_qty,
                    "entry_price": e.avg_price,
                    "mark": mark.get("mark"),
                    "unrealized": mark.get("unrealized"),
                }
            )
        for o in book.live.values():
            if o.status != "intent":
                working.append(
                    {
                        "ref": o.ref,
                        "role": o.role,
                        "contract": o.contract.label,
                        "action": o.action,
                        "qty": o.qty,
                        "order_type": o.order_type,
                        "price": o.limit if o.limit is not None else o.stop,
                        "status": o.status,
                    }
                )
        series, _ = trades.series()
        from tradebot.core.metrics import from_micros
        from tradebot.core.trades import session_of

        realized = from_micros(
            series.sum_pnl(account_modes(loaded), session=session_of(now).toordinal())
        )
    except CorruptRecordError as exc:
        problems.append(exc.message)
    last_error = (beat or {}).get("last_error") or _last_error_event(Path(loaded.logs_dir))
    ev = snap.evaluation
    return {
        "v": 1,
        "now": now,
        "state": state,
        "running": state == "running",
        "pid": lock_holder if lock_holder and lock_holder > 0 else (beat or {}).get("pid"),
        "started": (beat or {}).get("started"),
        "last_heartbeat": beat_at,
        "heartbeat_age_s": None if age is None else round(age, 1),
        "stale": state in ("stale", "died"),
        "clock": (beat or {}).get("clock"),
        "status": (beat or {}).get("status"),
        "phase": None if ev is None else ev.phase,
        "phase_error": snap.error,
        "halted": halted,
        "halt": halt_text,
        "today": {"realized_pnl": realized, "session": _session_of(now)},
        "equity": (beat or {}).get("equity"),
        "positions": positions,
        "working_orders": working,
        "last_error": last_error,
        "problems": problems,
    }


def _session_of(now: datetime) -> Any:
    from tradebot.core.trades import session_of

    return session_of(now)


def _last_error_event(logs_dir: Any) -> str | None:
    """The last error-like event in `journal/events.jsonl` (its final 64 KiB only)."""
    import json

    path = logs_dir / "journal" / "events.jsonl"
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 65536))
            tail = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(tail):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") in (
            "error",
            "broker_error",
            "ladder_error",
            "exit_failed",
        ):
            return f"{record.get('ts')}: {record.get('message')}"
    return None
