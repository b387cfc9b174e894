"""The live panel renders every state an operator can meet (rich Console record)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from rich.console import Console

from tradebot.cli.live_view import LiveUpdater, live_view, render
from tradebot.engine.status import LoopStatus, OrderLine, PositionLine, SignalLine

NOW = datetime(2025, 7, 1, 15, 3, tzinfo=UTC)


def _status(**changes: object) -> LoopStatus:
    base: dict[str, object] = {
        "pid": 4242,
        "started": NOW,
        "clock": NOW,
        "broker": "sim",
        "mode": "paper",
        "connected": True,
        "phase": "proof",
        "limits": {
            "live_allowed": True,
            "max_entries_per_session": 1,
            "entries_this_session": 1,
            "position_cap_usd": Decimal(100),
        },
        "equity": Decimal("10012.50"),
        "day_pnl": Decimal("12.50"),
        "halted": False,
        "halt_reason": None,
        "blocking": [],
        "positions": [],
        "orders": [],
        "signals": [],
        "next_wake": NOW,
        "last_error": None,
    }
    base.update(changes)
    return LoopStatus(**base)  # type: ignore[arg-type]


POSITION = PositionLine(
    "SPY-250701-s1", "SPY 2025-07-03 625 C", "scalp", 1, Decimal("0.85"), Decimal("0.92"),
    Decimal("7.00"),
)  # fmt: skip
ORDER = OrderLine(
    "SPY-250701-s1.tp", "take_profit", "SPY 2025-07-03 625 C", "SELL", 1, "LMT", Decimal("1.70"),
    "submitted",
)  # fmt: skip
SIGNAL = SignalLine("SPY", NOW, "BUY CALL", "scalp", "scalp BUY: close 625.10 > VWAP 624.90")


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (_status(), ["paper on sim", "connected", "phase proof", "entries 1/1", "no open"]),
        (
            _status(positions=[POSITION], orders=[ORDER], signals=[SIGNAL]),
            ["SPY-250701-s1", "take_profit", "BUY CALL", "$7.00", "11:03"],
        ),
        (
            _status(halted=True, halt_reason="halted by ops: lunch", blocking=["halt: halted"]),
            ["HALTED", "halted by ops: lunch", "blocked: halt"],
        ),
        (_status(connected=False, equity=None, day_pnl=None), ["DISCONNECTED", "equity —"]),
        (
            _status(phase=None, limits={}, last_error="boom", stuck_for_s=42.0),
            ["phase unknown", "last error: boom", "running for 42 s"],
        ),
    ],
)
def test_every_state_renders(status: LoopStatus, expected: list[str]) -> None:
    console = Console(record=True, width=140, color_system=None)
    console.print(render(status, 140))
    text = console.export_text()
    for word in expected:
        assert word in text, word


def test_the_live_region_updates() -> None:
    console = Console(record=True, width=140, force_terminal=True, color_system=None)
    with live_view(console) as update:
        assert isinstance(update, LiveUpdater)
        update(_status())
        update(_status(halted=True, halt_reason="stop"))
    assert "HALTED" in console.export_text()
