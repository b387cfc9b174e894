"""Reading the ladder: the phase, its window, every criterion and downgrade trigger, from the
journals, the phase history and the state (never kept in memory between calls: a restart loses
nothing). The duties built on it: `limits` (entries), `transitions` (downgrade, advance,
notices), `session_records` and `overrides`.
"""

from __future__ import annotations

import copy
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from tradebot.books.equity import EquityView, account_modes, equity_view
from tradebot.books.order_journal import OrderJournal
from tradebot.books.phase_records import HistoryRead, PhaseRecords, parse_history
from tradebot.books.state_store import StateStore
from tradebot.books.trade_journal import TradeJournal
from tradebot.config import LoadedConfig
from tradebot.core.guards import DayLoss, MarkedEquity
from tradebot.core.market_time import market_datetime
from tradebot.core.metrics import TradeSeries, from_micros
from tradebot.core.orders import OrderEvent
from tradebot.core.phase_history import (
    PhaseTransition,
    Trigger,
    current_phase,
    plain_inputs,
)
from tradebot.core.phase_rules import (
    PhaseEvaluation,
    evaluate,
    future_transitions,
    metrics_record,
)
from tradebot.core.trades import PhaseName, session_of
from tradebot.core.validation import MAX_TEXT, in_future
from tradebot.errors import CorruptRecordError
from tradebot.storage.jsonl import LockedJsonl

log = logging.getLogger("tradebot.books.ladder")

Notify = Callable[[str, str], None]
# The equity a caller hands the ladder: the broker's figure, or with what it is made of.
Equity = Decimal | MarkedEquity | None


def _log_notify(event: str, message: str) -> None:
    log.warning("[%s] %s", event, message)


@dataclass(frozen=True)
class LadderSnapshot:
    """The ladder at one moment, or why it cannot be known."""

    evaluation: PhaseEvaluation | None
    error: str | None
    equity: EquityView | None
    warnings: list[str] = field(default_factory=list)


def transition_from(
    ev: PhaseEvaluation,
    now: datetime,
    *,
    to: PhaseName,
    trigger: Trigger,
    passed: bool,
    failures: Sequence[str] = (),
    operator: str | None,
    reason: str | None,
    inputs: dict[str, Any] | None = None,
) -> PhaseTransition:
    """A transition out of `ev.phase`, carrying the §3 metrics at that moment (and for a
    downgrade, what each trigger decided on). Texts are clipped to what a record may hold, so a
    long reason can never make the history unreadable."""
    failures = [_clip(f) for f in failures]
    reason = None if reason is None else _clip(reason)
    return PhaseTransition(
        transition_id=uuid.uuid4().hex,
        ts=now,
        from_phase=ev.phase,
        to_phase=to,
        trigger=trigger,
        validation_passed=passed,
        failures=tuple(failures),
        metrics=metrics_record(ev.stats),
        operator=operator,
        reason=reason,
        inputs=None if inputs is None else plain_inputs(inputs),
    )


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _marked(equity: Equity) -> MarkedEquity | None:
    if equity is None or isinstance(equity, MarkedEquity):
        return equity
    return MarkedEquity(equity, "broker")


def _usd(value: Decimal) -> str:
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


class LadderReader:
    """The ladder over one configuration's files: what every duty reads."""

    def __init__(
        self,
        loaded: LoadedConfig,
        *,
        notify: Notify | None = None,
        cached: bool = False,
        lean: bool = False,
    ) -> None:
        """`cached`: keep the journals in memory and read only their appended tails (the
        long-running loop); commands read the files afresh each time. `lean` (the loop): the
        order journal keeps only recent sessions and hands its records to its subscribers."""
        self.loaded = loaded
        self.cfg = loaded.settings.phase
        self.records = PhaseRecords(loaded.logs_dir)
        self.state = StateStore(loaded.state_dir)
        self.trades: TradeJournal
        self.orders: OrderJournal
        if cached:
            from tradebot.books.journal_cache import CachedOrderJournal, CachedTradeJournal

            self.trades = CachedTradeJournal(loaded.logs_dir)
            self.orders = CachedOrderJournal(loaded.logs_dir, lean=lean)
        else:
            self.trades = TradeJournal(loaded.logs_dir)
            self.orders = OrderJournal(loaded.logs_dir)
        self.notify: Notify = notify or _log_notify
        self._sessions_closed_on: Any = None  # the day close_sessions last ran (once a day)
        self._evaluations: dict[Any, tuple[Any, PhaseEvaluation]] = {}

    # -- reading -------------------------------------------------------------------------------
    def _evaluate(
        self,
        history: list[PhaseTransition],
        trades: TradeSeries,
        now: datetime,
        equity: Equity,
        warnings: list[str],
        order_events: list[OrderEvent] | None = None,
    ) -> tuple[PhaseEvaluation, EquityView]:
        view = self._equity(trades, now, equity, warnings)
        session = session_of(now)
        day_loss = None
        if view.current is not None and view.start_of_day is not None:
            realized = from_micros(
                trades.sum_pnl(account_modes(self.loaded), session=session.toordinal())
            )
            reading = _marked(equity) or MarkedEquity(view.current, view.source)
            day_loss = DayLoss.of(view.start_of_day, view.start_source, reading, realized)
        phase = current_phase(history, self.cfg.initial)
        since = history[-1].ts if history else None
        window = trades.window(self.cfg.rules(phase).counted_modes, since)
        # The ladder's drawdown is anchored at the equity when the window began: current minus
        # the window's P&L. Unknown equity leaves it unknown (never the simulated account size
        # for a real one).
        base = None
        anchor = "unknown: the current equity is unknown"
        if view.current is not None:
            window_pnl = from_micros(sum(window.pnl))
            base = view.current - window_pnl
            anchor = (
                f"{_usd(base)}, the equity when the window began (equity now "
                f"{_usd(view.current)} − the window's P&L {_usd(window_pnl)})"
            )
            if base <= 0:
                anchor = (
                    f"unknown: equity now {_usd(view.current)} − the window's P&L "
                    f"{_usd(window_pnl)} is not a positive equity"
                )
                base = None
        events = self.orders.session_events(session) if order_events is None else order_events
        # The same inputs give the same evaluation: remembered (a tick asks two or three times,
        # and at most the equity changes between ticks). The key holds the inputs themselves
        # (the history's last transition, the trade series), so their ids stay unique.
        tail = getattr(self.orders, "tail", None)
        key = None
        if order_events is None and tail is not None:
            last = history[-1] if history else None
            key = (len(history), id(last), id(trades), tail.resets, tail.version, session,
                   base, view.current, day_loss, anchor)  # fmt: skip
        memo = self._evaluations.get(key) if key is not None else None
        if memo is not None:
            evaluation = copy.copy(memo[1])
            object.__setattr__(evaluation, "warnings", list(memo[1].warnings))
            object.__setattr__(evaluation, "future_records", [])
        else:
            evaluation = evaluate(
                history=history,
                trades=trades,
                order_events=events,
                cfg=self.cfg,
                max_daily_loss_pct=self.loaded.settings.risk.max_daily_loss_pct,
                now=now,
                base_equity=base,
                equity=view.current,
                day_loss=day_loss,
                drawdown_anchor=anchor,
            )
            if key is not None:
                if len(self._evaluations) >= 8:
                    self._evaluations.clear()
                kept = copy.copy(evaluation)
                object.__setattr__(kept, "warnings", list(evaluation.warnings))
                object.__setattr__(kept, "future_records", [])
                self._evaluations[key] = ((history[-1] if history else None, trades), kept)
        evaluation.warnings.extend(warnings)
        future = [
            f"{self.records.history.path}: {line}" for line in future_transitions(history, now)
        ]
        # Trades are in exit order: the last one is the latest. A trade closed after now was
        # not closed by this bot; it must not count toward a phase (nor go unnoticed).
        if len(trades) and in_future(trades.trades[-1].exit_time, now):
            late = [t for t in trades.trades if in_future(t.exit_time, now)]
            future.append(
                f"{self.trades.path}: {len(late)} trade(s) dated after now, the latest "
                f"{late[-1].trade_id} at {market_datetime(late[-1].exit_time)} (now "
                f"{market_datetime(now)}); is the system clock right? Fix the clock or the file"
            )
        evaluation.future_records.extend(future)
        evaluation.warnings.extend(future)
        if future:  # records that cannot be trusted earn nothing
            evaluation = replace(evaluation, eligible=False)
        return evaluation, view

    def _future_dated(self, now: datetime) -> list[str]:
        """Override-audit and state records dated after `now` (unreadable ones are skipped)."""
        problems = self.state.future_dated(now)
        try:
            attempts = self.records.read_attempts()
        except CorruptRecordError:
            attempts = []
        late = [a.ts for a in attempts if in_future(a.ts, now)]
        if late:
            problems.append(
                f"{self.records.overrides.path}: {len(late)} record(s) dated after now, the "
                f"latest {market_datetime(max(late))} (now {market_datetime(now)}); is the system "
                "clock right? Fix the clock or the file"
            )
        return problems

    def _equity(
        self, trades: TradeSeries, now: datetime, equity: Equity, warnings: list[str]
    ) -> EquityView:
        view = equity_view(self.loaded, trades, self.state, now, session_of(now))
        reading = _marked(equity)
        if reading is not None:
            view = EquityView(
                reading.equity, reading.source, view.start_of_day, view.start_source, view.warnings
            )
        warnings.extend(view.warnings)
        return view

    def _read_history(self) -> HistoryRead:
        """The history, checked as a chain starting at `phase.initial`."""
        return self.records.read_history(initial=self.cfg.initial)

    def _parse_history(self, locked: LockedJsonl) -> HistoryRead:
        """The history read under its lock, checked like `_read_history`."""
        return parse_history(self.records.history.path, locked.read(), initial=self.cfg.initial)

    def _read_trades(self, warnings: list[str]) -> TradeSeries:
        series, read_warnings = self.trades.series()
        warnings.extend(read_warnings)
        return series

    def snapshot(
        self,
        now: datetime,
        *,
        equity: Equity = None,
        order_events: list[OrderEvent] | None = None,
    ) -> LadderSnapshot:
        """Evaluate the ladder at `now`. Any unreadable file gives `error`, never a guess.

        The equity view is still filled in when only the phase history is unreadable.
        """
        warnings: list[str] = []
        view: EquityView | None = None
        try:
            trades = self._read_trades(warnings)
            view = self._equity(trades, now, equity, [])
            read = self._read_history()
            warnings.extend(read.warnings)
            evaluation, view = self._evaluate(
                read.transitions, trades, now, equity, warnings, order_events
            )
        except CorruptRecordError as exc:
            return LadderSnapshot(None, exc.message, view, warnings)
        future = self._future_dated(now)
        evaluation.future_records.extend(future)
        evaluation.warnings.extend(future)
        if future:
            evaluation = replace(evaluation, eligible=False)
        return LadderSnapshot(evaluation, None, view, evaluation.warnings)
