"""Builders for phase-ladder tests: trades, histories, evaluations."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from tests.factories import trade
from tradebot.config import PhaseConfig, Settings
from tradebot.core.metrics import TradeSeries
from tradebot.core.orders import OrderEvent
from tradebot.core.phase_history import PhaseTransition
from tradebot.core.phase_rules import DayLoss, PhaseEvaluation, evaluate
from tradebot.core.trades import ClosedTrade, PhaseName, TradeMode

NOW = datetime(2025, 9, 2, 15, 0, tzinfo=UTC)  # a Tuesday, mid-session in New York


def day(n: int) -> date:
    """The n-th calendar day after 2025-07-01 (sessions need not be trading days here)."""
    return date(2025, 7, 1) + timedelta(days=n)


def series_of(
    pnls: list[int | str],
    *,
    mode: TradeMode = "paper",
    per_session: int = 1,
    start_day: int = 0,
    entry_price: str = "1.00",
) -> list[ClosedTrade]:
    """Trades with these P&Ls, `per_session` per session, on consecutive days."""
    out = []
    for i, pnl in enumerate(pnls):
        d = day(start_day + i // per_session)
        exit_time = datetime(d.year, d.month, d.day, 15, 0, tzinfo=UTC) + timedelta(minutes=i)
        out.append(trade(pnl, exit_time=exit_time, mode=mode, entry_price=entry_price))
    return out


def transition(
    to: PhaseName,
    ts: datetime,
    *,
    frm: PhaseName = "experience",
    trigger: str = "advance",
) -> PhaseTransition:
    return PhaseTransition(
        transition_id=f"t-{ts.timestamp()}",
        ts=ts,
        from_phase=frm,
        to_phase=to,
        trigger=trigger,  # type: ignore[arg-type]
        validation_passed=True,
    )


def run_eval(
    trades: list[ClosedTrade],
    *,
    history: list[PhaseTransition] | None = None,
    cfg: PhaseConfig | None = None,
    events: list[OrderEvent] | None = None,
    now: datetime = NOW,
    equity: Decimal | None = Decimal(10000),
    day_loss: DayLoss | None = None,
    base: Decimal = Decimal(10000),
) -> PhaseEvaluation:
    return evaluate(
        history=history or [],
        trades=TradeSeries.of(trades),
        order_events=events or [],
        cfg=cfg or Settings().phase,
        max_daily_loss_pct=Decimal(5),
        now=now,
        base_equity=base,
        equity=equity,
        day_loss=day_loss,
    )


def phase_cfg(**tables: dict[str, object]) -> PhaseConfig:
    """PhaseConfig with some tables overridden, e.g. phase_cfg(proof={"min_trades": 2})."""
    return Settings.model_validate({"phase": tables}).phase
