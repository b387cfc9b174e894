"""The ladder replay: the real phase ladder, climbed by a stand-in for the operator.

During a backtest the loop's own `PhaseLadder` (over the backtest's output folder) does
everything it does in `tradebot run`: it counts the trades, applies the phase limits to every
entry, downgrades one step when a trigger holds, and sends the "eligible" notice. Advancing is
never automatic in `run` — the operator runs `tradebot phase advance`. To answer "how long until
the bot could trade real money, and then more of it?", `BacktestOperator` does what an operator
who advances as soon as allowed would do: on the eligible notice it takes an earned advance (the
real `PhaseLadder.advance`, operator `backtest`) before the simulated clock moves on. The new
phase's limits (proof: one entry per session) apply from then on, so later phases are judged on
the trades they would really have allowed.

`ladder_replay` reads the result back: every eligibility, advance and downgrade with its session
and reasons, and where the ladder stands at the end with its criteria table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from tradebot.books.ladder import PhaseLadder
from tradebot.core.trades import PhaseName, session_of
from tradebot.engine.context import Notify
from tradebot.errors import CorruptRecordError, RefusedError

OPERATOR = "backtest"


@dataclass(frozen=True)
class Eligibility:
    """The moment a phase met every criterion for the next one."""

    at: datetime
    session: date
    phase: str
    next_phase: str
    criteria: list[dict[str, Any]]
    advanced: bool
    note: str


@dataclass
class BacktestOperator:
    """Forwards notices, and advances the ladder once it reports the next phase eligible."""

    ladder: PhaseLadder
    forward: Notify | None = None
    advance: bool = True
    eligible: list[Eligibility] = field(default_factory=list)
    notices: list[tuple[str, str]] = field(default_factory=list)
    _pending: bool = False

    def notify(self, event: str, message: str) -> None:
        if event in ("eligible", "downgrade"):
            self.notices.append((event, message))
        if event == "eligible":
            self._pending = True
        if self.forward is not None:
            self.forward(event, message)

    def act(self, now: datetime) -> None:
        """Between two wakes of the loop (the clock has not moved yet): advance if eligible."""
        if not self._pending:
            return
        self._pending = False
        snap = self.ladder.snapshot(now)
        ev = snap.evaluation
        if ev is None or ev.next_phase is None:
            return
        criteria = [c.as_record() for c in ev.criteria]
        note = "not advanced (the backtest only reports eligibility)"
        advanced = False
        if not ev.eligible:
            # The journal changed between the notice and this step (a trade closed): the
            # advance would be refused; never drop that notice silently.
            unmet = "; ".join(c.describe() for c in ev.unmet) or "not eligible"
            note = f"not advanced: the loop noticed eligibility, but at the advance {unmet}"
        elif self.advance:
            try:
                self.ladder.advance(
                    now,
                    to=None,
                    operator=OPERATOR,
                    reason="backtest: the operator advances as soon as the phase is eligible",
                )
            except RefusedError as exc:
                note = f"advance refused: {exc.message}"
            else:
                advanced = True
                note = f"advanced to {ev.next_phase}"
        self.eligible.append(
            Eligibility(now, session_of(now), ev.phase, ev.next_phase, criteria, advanced, note)
        )


def ladder_replay(
    ladder: PhaseLadder,
    operator: BacktestOperator,
    now: datetime,
    sessions: list[date],
) -> dict[str, Any]:
    """The ladder replay section of the report (JSON-ready)."""
    cfg = ladder.cfg
    steps: list[dict[str, Any]] = []
    for e in operator.eligible:
        steps.append(
            {
                "kind": "eligible",
                "at": e.at,
                "session": e.session,
                "session_number": _number(sessions, e.session),
                "from_phase": e.phase,
                "to_phase": e.next_phase,
                "reasons": [],
                "note": e.note,
                "criteria": e.criteria,
                "inputs": None,
            }
        )
    warnings: list[str] = []
    try:
        history = ladder.records.read_history(initial=cfg.initial).transitions
    except CorruptRecordError as exc:
        history = []
        warnings.append(exc.message)
    for t in history:
        if t.trigger == "advance":
            continue  # shown with its eligibility
        steps.append(
            {
                "kind": t.trigger,
                "at": t.ts,
                "session": session_of(t.ts),
                "session_number": _number(sessions, session_of(t.ts)),
                "from_phase": t.from_phase,
                "to_phase": t.to_phase,
                "reasons": list(t.failures),
                "note": t.reason or "",
                "criteria": [],
                "inputs": None if t.inputs is None else dict(t.inputs),
            }
        )
    steps.sort(key=lambda s: (s["at"], s["kind"] != "eligible"))
    snap = ladder.snapshot(now)
    end: dict[str, Any] | None = None
    if snap.evaluation is not None:
        ev = snap.evaluation
        from tradebot.core.phase_rules import metrics_record

        end = {
            "phase": ev.phase,
            "next_phase": ev.next_phase,
            "since": ev.since,
            "counted_modes": list(ev.counted_modes),
            "eligible": ev.eligible,
            "criteria": [c.as_record() for c in ev.criteria],
            "metrics": metrics_record(ev.stats),
            "limits": {
                "live_allowed": ev.limits.live_allowed,
                "max_entries_per_session": ev.limits.max_entries_per_session,
                "position_cap_usd": ev.limits.position_cap_usd,
            },
            "drawdown": {
                "anchor": "equity_at_window_start",
                "base_equity": ev.drawdown_base,
                "description": ev.drawdown_anchor,
            },
            "downgrade": {"reasons": ev.downgrade_reasons} if ev.downgrade_reasons else None,
        }
    else:
        warnings.append(f"the ladder cannot be evaluated: {snap.error}")
    return {
        "initial": cfg.initial,
        "counted_modes": {p: list(cfg.rules(p).counted_modes) for p in _phases()},
        "operator_advances": operator.advance,
        "steps": steps,
        "end": end,
        "warnings": warnings,
    }


def _number(sessions: list[date], day: date) -> int | None:
    """1-based position of `day` among the replayed sessions."""
    import bisect

    i = bisect.bisect_left(sessions, day)
    return i + 1 if i < len(sessions) and sessions[i] == day else None


def _phases() -> tuple[PhaseName, ...]:
    from tradebot.core.phase_history import PHASES

    return PHASES
