"""The texts the phone reads: `tradebot status` in one plain-text message, New York time.

Pure functions of the report `tradebot status --json` prints (`engine.status.loop_report`) and
the halt as stored. Plain text, never markup: journal and operator text cannot format anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from tradebot.core.guards import Halt
from tradebot.core.market_time import market_datetime
from tradebot.core.trades import EXCHANGE_TZ
from tradebot.core.validation import escape_control

MAX_MESSAGE = 4096  # Telegram's limit for one message
MAX_LINES = 15  # positions or orders listed before "and N more"


def ny(moment: datetime) -> str:
    """Market time with its zone, as on every screen: `2025-07-01 11:03:20 EDT`."""
    return market_datetime(moment.astimezone(EXCHANGE_TZ), seconds=True)


def money(value: Any) -> str:
    try:
        q = Decimal(str(value)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        return "—"
    return f"-${-q:,}" if q < 0 else f"${q:,}"


def halt_line(halt: Halt | None, fallback: str) -> str:
    if halt is None:  # unreadable halt file: the report's text says why
        return f"HALT STATE UNREADABLE: {fallback}"
    if not halt.halted:
        return "not halted"
    since = f" since {ny(halt.since)}" if halt.since else ""
    who = f" by {halt.operator}" if halt.operator else ""
    why = f": {halt.reason}" if halt.reason else ""
    flatten = " (with flatten)" if halt.flatten else ""
    return f"HALTED{flatten}{since}{who}{why}"


def status_text(report: Mapping[str, Any], halt: Halt | None, now: datetime) -> str:
    """One message with what `tradebot status` shows."""
    lines = [f"tradebot · {ny(now)}"]
    state = {"running": "running", "stale": "STALE", "died": "DIED", "not running": "not running"}
    loop = state.get(str(report.get("state")), str(report.get("state")))
    pid = f" (pid {report['pid']})" if report.get("pid") else ""
    age = report.get("heartbeat_age_s")
    beat = "" if age is None else f", heartbeat {age} s ago"
    lines.append(f"Loop: {loop}{pid}{beat}")
    lines += [f"  ! {p}" for p in report.get("problems") or []]
    if report.get("status"):
        lines.append(f"  {report['status']}")
    phase = report.get("phase") or f"unknown ({report.get('phase_error')})"
    lines.append(f"Phase: {phase}")
    lines.append(f"Halt: {halt_line(halt, str(report.get('halt')))}")
    today = report.get("today") or {}
    lines.append(f"Today's realized P&L: {money(today.get('realized_pnl'))}")
    positions = report.get("positions") or []
    orders = report.get("working_orders") or []
    lines.append(f"Open positions: {len(positions)} · working orders: {len(orders)}")
    lines += _positions(positions)
    if report.get("last_error"):
        lines.append(f"Last error: {report['last_error']}")
    return fit(lines)


def positions_text(report: Mapping[str, Any], now: datetime) -> str:
    positions = report.get("positions") or []
    orders = report.get("working_orders") or []
    lines = [f"Positions · {ny(now)}"]
    if not positions:
        lines.append("No open positions.")
    lines += _positions(positions)
    lines.append(f"Working orders: {len(orders)}" if orders else "No working orders.")
    for o in orders[:MAX_LINES]:
        price = o.get("price")
        lines.append(
            f"  {o.get('role')} {o.get('action')} {o.get('qty')} {o.get('contract')} "
            f"{o.get('order_type')}{'' if price is None else ' ' + str(price)} ({o.get('status')})"
        )
    if len(orders) > MAX_LINES:
        lines.append(f"  … and {len(orders) - MAX_LINES} more (`tradebot status`)")
    return fit(lines)


def _positions(positions: Sequence[Mapping[str, Any]]) -> list[str]:
    lines = []
    for p in positions[:MAX_LINES]:
        mark = "" if p.get("mark") is None else f", mark {p['mark']}"
        pnl = "" if p.get("unrealized") is None else f", {money(p['unrealized'])}"
        lines.append(
            f"  {p.get('contract')} · {p.get('strategy')} · {p.get('qty')} @ "
            f"{p.get('entry_price')}{mark}{pnl}"
        )
    if len(positions) > MAX_LINES:
        lines.append(f"  … and {len(positions) - MAX_LINES} more (`tradebot status`)")
    return lines


def fit(lines: Sequence[str]) -> str:
    """The lines as one message of at most MAX_MESSAGE characters, control characters shown as
    escapes."""
    text = "\n".join(escape_control(line) for line in lines)
    if len(text) <= MAX_MESSAGE:
        return text
    return text[: MAX_MESSAGE - 40].rsplit("\n", 1)[0] + "\n… (cut: see `tradebot status`)"
