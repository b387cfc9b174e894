"""Can the bot open a trade right now, and how big? Every guard with its numbers (spec §5).

One function, `build_risk_report`, shared by `tradebot risk check` (read-only) and the trading
loop (which passes the broker's equity and `persist=True`, so a daily-loss trip is recorded once
and holds for the rest of the session across restarts).

Guards, each a blocking reason when it says no:

* halt — the operator's kill switch;
* daily loss — equity down ≥ `risk.max_daily_loss_pct` from start-of-day equity;
* equity / start-of-day equity unknown — fail safe;
* entry window — inside the session, after `open_delay_minutes`, before `close_buffer_minutes`;
* the phase ladder — live allowed, entries per session, downgrade, unknown phase;
* the symbol — must be one of `trading.symbols`;
* size — with a premium, 0 contracts (the cap does not fit one contract) blocks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradebot.books.equity import EquityView, account_modes
from tradebot.books.ladder import PhaseLadder
from tradebot.books.session_calendar import calendar_sessions
from tradebot.books.state_store import StateStore
from tradebot.books.whale_debounce import read_last_signals
from tradebot.config import LoadedConfig
from tradebot.core.guards import (
    DailyLoss,
    DayLoss,
    EntryWindow,
    Halt,
    MarkedEquity,
    daily_loss_guard,
    entry_window,
)
from tradebot.core.metrics import from_micros
from tradebot.core.phase_rules import PhaseEvaluation, Refusal, entry_decision
from tradebot.core.sizing import PositionSize, position_size
from tradebot.core.trades import session_of
from tradebot.errors import CorruptRecordError

_EQUITY_KEYS = ("current", "source", "start_of_day", "start_source")


@dataclass(frozen=True)
class RiskReport:
    now: datetime
    broker: str
    mode: str
    can_open: bool
    blocking: list[Refusal]
    equity: EquityView | None
    realized_today: Decimal
    daily_loss: DailyLoss
    halt: Halt
    window: EntryWindow
    phase: PhaseEvaluation | None
    phase_error: str | None
    symbol: str | None
    sizing: PositionSize | None
    premium: Decimal | None
    multiplier: int
    warnings: list[str] = field(default_factory=list)

    def as_record(self) -> dict[str, Any]:
        """The `risk check --json` contract (version 1)."""
        ev, eq, dl, w = self.phase, self.equity, self.daily_loss, self.window
        return {
            "v": 1,
            "now": self.now,
            "session": dl.session,
            "broker": self.broker,
            "mode": self.mode,
            "can_open": self.can_open,
            "blocking": [r.as_record() for r in self.blocking],
            "equity": eq.as_record() if eq else dict.fromkeys(_EQUITY_KEYS),
            "today": {
                "realized_pnl": self.realized_today,
                "loss_pct": None
                if dl.loss_pct is None
                else dl.loss_pct.quantize(Decimal("0.0001")),
            },
            "daily_loss": {
                "tripped": dl.tripped,
                "tripped_earlier": dl.tripped_earlier,
                "limit_pct": dl.limit_pct,
                "message": dl.message,
                "inputs": None if dl.inputs is None else dl.inputs.as_record(),
            },
            "halt": {
                "halted": self.halt.halted,
                "since": self.halt.since,
                "operator": self.halt.operator,
                "reason": self.halt.reason,
            },
            "entry_window": {
                "in_window": w.in_window,
                "session": w.session,
                "opens": w.window_open,
                "closes": w.window_close,
                "next_open": w.next_window_open,
                "message": w.message,
            },
            "phase": None
            if ev is None
            else {
                "phase": ev.phase,
                **ev.limits.as_record(),
                "downgrade_reasons": ev.downgrade_reasons,
            },
            "phase_error": self.phase_error,
            "symbol": self.symbol,
            "sizing": None
            if self.sizing is None
            else {
                "premium": self.premium,
                "multiplier": self.multiplier,
                "risk_based_contracts": self.sizing.risk_based_contracts,
                "cap_based_contracts": self.sizing.cap_based_contracts,
                "contracts": self.sizing.contracts,
                "contract_cost": self.sizing.contract_cost,
                "cost": self.sizing.cost,
                "risk_budget": self.sizing.risk_budget,
                "reason": self.sizing.reason,
            },
            "warnings": self.warnings,
        }


def upcoming_sessions(
    now: datetime, calendar: str, state_dir: Path | None = None
) -> list[tuple[date, datetime, datetime]]:
    """(session, open, close) from the session around `now` to about two weeks ahead (UTC).

    With a `state_dir`, from its cached copy of the calendar when valid (no pandas to import:
    `tradebot.books.session_calendar`); ConfigError for a calendar name that does not exist.
    Remembered per New York day: the loop asks at every tick, the answer changes once a day."""
    day = session_of(now)
    key = (day, calendar, None if state_dir is None else str(state_dir))
    cached = _UPCOMING.get(key)
    if cached is None:
        sessions = calendar_sessions(calendar, None if state_dir is None else Path(state_dir))
        days = sessions.between(day - timedelta(days=1), day + timedelta(days=14))
        cached = [(d, *sessions.open_close(d)) for d in days]
        if len(_UPCOMING) >= 16:
            _UPCOMING.clear()
        _UPCOMING[key] = cached
    return list(cached)


_UPCOMING: dict[tuple[date, str, str | None], list[tuple[date, datetime, datetime]]] = {}


def build_risk_report(
    loaded: LoadedConfig,
    now: datetime,
    *,
    symbol: str | None = None,
    premium: Decimal | None = None,
    multiplier: int = 100,
    equity: Decimal | MarkedEquity | None = None,
    persist: bool = False,
    ladder: PhaseLadder | None = None,
) -> RiskReport:
    """Evaluate every guard at `now`; `persist` records a daily-loss trip (the loop's job).

    `equity`: the broker's reading (the loop's), with the cash and marks it is made of when
    known; without it, the equity known outside the broker (`tradebot.books.equity`)."""
    reading = MarkedEquity(equity, "broker") if isinstance(equity, Decimal) else equity
    equity = None if reading is None else reading.equity
    settings = loaded.settings
    ladder = ladder or PhaseLadder(loaded)
    state = StateStore(loaded.state_dir)
    warnings: list[str] = []
    blocking: list[Refusal] = []

    def unreadable(exc: CorruptRecordError) -> None:
        # A damaged file is never a guess: it blocks new entries and says which file.
        blocking.append(Refusal("state_unreadable", exc.message))

    try:
        halt = state.halt()
    except CorruptRecordError as exc:
        unreadable(exc)
        halt = Halt(True, reason="the halt state cannot be read")
    if halt.halted:
        blocking.append(Refusal("halt", halt.message()))

    snap = ladder.snapshot(now, equity=reading)
    warnings.extend(snap.warnings)
    view = snap.equity
    session = session_of(now)
    derived = view is not None and view.start_source != "recorded at session start"
    if (
        persist
        and view is not None
        and view.current is not None
        and (view.start_of_day is None or (equity is not None and derived))
    ):
        # The loop's first look of the session anchors the daily-loss guard at the broker's
        # equity (for the simulated broker too: a figure derived from closed trades would miss
        # what positions held overnight did since).
        recorded = state.record_start_of_day(session, view.current, view.source, now)
        view = EquityView(
            view.current, view.source, recorded.amount, "recorded at session start", view.warnings
        )

    realized = Decimal(0)
    try:
        trades, _ = ladder.trades.series()
        realized = from_micros(trades.sum_pnl(account_modes(loaded), session=session.toordinal()))
    except CorruptRecordError:
        pass  # already reported through the ladder snapshot below

    try:
        # The whale debounce guards entries too: a file the loop could not read blocks here.
        read_last_signals(loaded.state_dir)
    except CorruptRecordError as exc:
        unreadable(exc)

    trip_session = None
    try:
        trip = state.daily_loss_trip()
        trip_session = trip[0] if trip else None
    except CorruptRecordError as exc:
        unreadable(exc)
    inputs = None
    if view is not None and view.current is not None and view.start_of_day is not None:
        if reading is None or reading.equity != view.current:
            reading = MarkedEquity(view.current, view.source)
        inputs = DayLoss.of(view.start_of_day, view.start_source, reading, realized)
    daily = daily_loss_guard(
        session=session,
        start_equity=view.start_of_day if view else None,
        equity=view.current if view else None,
        limit_pct=settings.risk.max_daily_loss_pct,
        recorded_trip_session=trip_session,
        inputs=inputs,
    )
    if daily.tripped:
        blocking.append(Refusal("daily_loss", daily.message))
        if persist and not daily.tripped_earlier:
            assert daily.start_equity is not None and daily.equity is not None
            assert daily.loss_pct is not None
            state.record_daily_loss_trip(
                session,
                now,
                daily.start_equity,
                daily.equity,
                daily.loss_pct,
                None if inputs is None else inputs.as_record(),
            )
    if view is None or view.current is None:
        blocking.append(
            Refusal(
                "equity_unknown",
                f"current equity is unknown ({view.source if view else 'no data'}); no entries "
                "until it is known",
            )
        )
    elif view.start_of_day is None:
        blocking.append(
            Refusal(
                "start_of_day_unknown",
                "start-of-day equity is not recorded for this session (the loop records it at "
                "its first look); the daily-loss guard cannot be checked",
            )
        )

    window = entry_window(
        now,
        upcoming_sessions(now, settings.schedule.calendar, loaded.state_dir),
        open_delay_minutes=settings.schedule.open_delay_minutes,
        close_buffer_minutes=settings.schedule.close_buffer_minutes,
    )
    if not window.in_window:
        blocking.append(Refusal("outside_entry_window", window.message))

    ev = snap.evaluation
    cap: Decimal | None = None
    if ev is None:
        blocking.append(Refusal("phase_unknown", f"the phase cannot be determined: {snap.error}"))
    else:
        decision = entry_decision(
            ev, mode=settings.trading.mode, next_session_open=window.next_session_open
        )
        blocking.extend(decision.refusals)
        cap = decision.position_cap_usd

    if symbol is not None and symbol.upper() not in settings.trading.symbols:
        blocking.append(
            Refusal(
                "symbol_not_configured",
                f"{symbol.upper()} is not in trading.symbols "
                f"({', '.join(settings.trading.symbols)})",
            )
        )

    sizing = None
    if premium is not None:
        if cap is None or view is None or view.current is None:
            warnings.append("no sizing preview: equity or the position cap is unknown")
        else:
            sizing = position_size(view.current, premium, multiplier, settings.risk, cap)
            if sizing.contracts == 0:
                blocking.append(Refusal("position_size", sizing.reason))

    return RiskReport(
        now=now,
        broker=settings.broker.kind,
        mode=settings.trading.mode,
        can_open=not blocking,
        blocking=blocking,
        equity=view,
        realized_today=realized,
        daily_loss=daily,
        halt=halt,
        window=window,
        phase=ev,
        phase_error=snap.error,
        symbol=symbol.upper() if symbol else None,
        sizing=sizing,
        premium=premium,
        multiplier=multiplier,
        warnings=warnings,
    )


__all__ = ["RiskReport", "account_modes", "build_risk_report"]
