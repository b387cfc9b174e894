"""Transitions the ladder makes itself or earns: the automatic downgrade (at most one step a
session), the "next phase eligible" notice, and the operator's earned one-step advance. Every
transition is one durable append under the history file's exclusive lock."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime

from tradebot.books.ladder.evaluation import Equity, LadderReader, LadderSnapshot, transition_from
from tradebot.books.ladder.session_records import SessionRecords
from tradebot.books.phase_records import HistoryRead
from tradebot.core.phase_history import (
    PhaseTransition,
    previous_phase,
)
from tradebot.core.phase_rules import (
    PhaseEvaluation,
)
from tradebot.core.trades import PhaseName
from tradebot.errors import CorruptRecordError, RefusedError, UsageError

log = logging.getLogger("tradebot.books.ladder")


@dataclass(frozen=True)
class TickResult:
    transition: PhaseTransition | None
    snapshot: LadderSnapshot
    sessions_recorded: int = 0


class Transitions(SessionRecords, LadderReader):
    """Downgrade, eligibility notice and earned advance."""

    def on_tick(
        self, now: datetime, *, equity: Equity = None, session_closed: date | None = None
    ) -> TickResult:
        """Auto-downgrade when a trigger holds; record closed sessions; notice eligibility.

        `equity`: the broker's reading (marked: open positions at their quote). The daily-loss
        trigger is judged only on it; without it (right after a closed trade, between ticks)
        only the trade triggers are. `session_closed`: the caller saw that session close, so it
        is recorded in `session-metrics.jsonl` now, not when the date changes."""
        transition = self._maybe_downgrade(now, equity)
        recorded = self.close_sessions(now, closed=session_closed)
        snap = self.snapshot(now, equity=equity)
        ev = snap.evaluation
        if ev is not None and ev.eligible and ev.next_phase is not None:
            key = f"eligible:{ev.phase}:{ev.since.isoformat() if ev.since else 'start'}"
            if not self.state.notice_sent(key) and self._advance_would_be_granted(now):
                self.notify(
                    "eligible",
                    f"phase {ev.phase} has met every criterion for {ev.next_phase}; advance with "
                    "`tradebot phase advance` when you are ready",
                )
                self.state.mark_notice_sent(key)
        return TickResult(transition, snap, recorded)

    def _advance_would_be_granted(self, now: datetime) -> bool:
        """Whether `phase advance` would grant the step now. The tick judges the criteria on
        the broker's equity (open positions at the mid); the advance on the equity it can know
        without the broker (the journal's closed trades, or the loop's last recorded reading).
        An unrealized gain must not announce an advance that is then refused."""
        try:
            self._earned(self._read_history(), now, None)
        except (RefusedError, UsageError, CorruptRecordError):
            return False
        return True

    def _maybe_downgrade(self, now: datetime, equity: Equity) -> PhaseTransition | None:
        # Decided first from the history as last read (re-read only when it changed), without
        # the lock; only a downgrade that looks due is decided again, and recorded, under it.
        seen: list[str] = []
        ev, _ = self._evaluate(
            self._read_history().transitions, self._read_trades(seen), now, equity, seen
        )
        if not ev.downgrade_reasons or previous_phase(ev.phase) is None:
            return None
        if ev.downgraded_this_session:
            return None
        with self.records.history.locked() as locked:
            read = self._parse_history(locked)
            warnings: list[str] = []
            trades = self._read_trades(warnings)
            ev, _ = self._evaluate(read.transitions, trades, now, equity, warnings)
            below = previous_phase(ev.phase)
            # The daily loss is judged on the broker's marked equity only: on the journal's
            # realized P&L alone an open position's loss (or gain) would be left out.
            triggered = [
                (w, reason)
                for w, reason in zip(
                    [w for w in ev.watch if w.triggered], ev.downgrade_reasons, strict=True
                )
                if equity is not None or w.name != "daily_loss"
            ]
            # At most one automatic step down per session: the daily-loss trigger is
            # account-wide and would otherwise cascade through every phase on one bad day.
            if not triggered or below is None or ev.downgraded_this_session:
                return None
            reasons = [reason for _, reason in triggered]
            transition = transition_from(
                ev,
                now,
                to=below,
                trigger="auto_downgrade",
                passed=False,
                failures=reasons,
                operator="tradebot",
                reason="; ".join(reasons),
                inputs={w.name: w.inputs for w, _ in triggered},
            )
            locked.append(transition.as_record())
        self.notify(
            "downgrade",
            f"phase dropped {transition.from_phase} → {transition.to_phase}: "
            f"{transition.reason}. New entries stop for the rest of this session.",
        )
        return transition

    def advance(
        self, now: datetime, *, to: PhaseName | None, operator: str, reason: str | None
    ) -> PhaseTransition:
        """An earned, one-step advance; RefusedError lists every unmet criterion.

        Decided first from a plain read, so a refused advance creates no file (not even the
        history or its directory); then decided again under the history's lock and recorded.
        """
        self._earned(self._read_history(), now, to)
        with self.records.history.locked() as locked:
            ev = self._earned(self._parse_history(locked), now, to)
            assert ev.next_phase is not None
            transition = transition_from(
                ev,
                now,
                to=ev.next_phase,
                trigger="advance",
                passed=True,
                operator=operator,
                reason=reason,
            )
            locked.append(transition.as_record())
        log.info(
            "phase advanced %s -> %s by %s", transition.from_phase, transition.to_phase, operator
        )
        return transition

    def _earned(self, read: HistoryRead, now: datetime, to: PhaseName | None) -> PhaseEvaluation:
        """The evaluation when an earned advance to `to` may happen now; else the refusal."""
        ev, _ = self._evaluate(read.transitions, self._read_trades([]), now, None, [])
        if ev.next_phase is None:
            raise RefusedError(f"already in {ev.phase}, the top of the ladder")
        if to is not None and to != ev.next_phase:
            raise UsageError(
                f"an earned advance moves one step ({ev.phase} → {ev.next_phase}); to move "
                f"to {to} use --force --to {to} (needs the override password)"
            )
        if ev.future_records:
            raise RefusedError(
                f"{ev.phase} → {ev.next_phase} refused: {ev.future_records[0]}; fix the system "
                "clock or the file first"
            )
        if ev.downgrade_reasons or ev.downgraded_this_session:
            why = "; ".join(ev.downgrade_reasons) or "a downgrade happened this session"
            raise RefusedError(
                f"{ev.phase} → {ev.next_phase} refused while a downgrade holds ({why}); "
                "the ladder re-evaluates from the next session"
            )
        if not ev.eligible:
            raise RefusedError(
                f"{ev.phase} → {ev.next_phase} refused: {len(ev.unmet)} criterion(s) not met",
                details=tuple(c.describe() for c in ev.unmet),
            )
        return ev
