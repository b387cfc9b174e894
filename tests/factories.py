"""Builders for test records."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from tradebot.core.trades import ClosedTrade, ExitReason, PhaseName, TradeMode, close_trade

_ids = itertools.count(1)


def trade(
    pnl: Decimal | int | str,
    *,
    exit_time: datetime | None = None,
    session: date | None = None,
    symbol: str = "SPY",
    strategy: str = "scalp",
    mode: TradeMode = "paper",
    phase: PhaseName = "experience",
    entry_price: Decimal | str = "1.00",
    qty: int = 1,
    trade_id: str | None = None,
    exit_reason: ExitReason | None = None,
) -> ClosedTrade:
    """A closed trade with the given P&L (no commission); risk = entry × qty × 100 × 50 %."""
    pnl = Decimal(str(pnl))
    entry = Decimal(str(entry_price))
    if exit_time is None:
        day = session or date(2025, 7, 1)
        exit_time = datetime(day.year, day.month, day.day, 15, 0, tzinfo=UTC) + timedelta(
            seconds=next(_ids) % 3600
        )
    exit_price = entry + pnl / (qty * 100)
    reason: ExitReason = exit_reason or ("take_profit" if pnl > 0 else "stop_loss")
    return close_trade(
        trade_id=trade_id or f"T{next(_ids):06d}",
        symbol=symbol,
        contract=f"{symbol} 20250703 C 620",
        right="C",
        strike=Decimal(620),
        expiry=date(2025, 7, 3),
        strategy=strategy,
        qty=qty,
        multiplier=100,
        entry_time=exit_time - timedelta(minutes=20),
        exit_time=exit_time,
        entry_price=entry,
        exit_price=exit_price,
        stop_loss_pct=Decimal(50),
        exit_reason=reason,
        phase=phase,
        mode=mode,
    )
