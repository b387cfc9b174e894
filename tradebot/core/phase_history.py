"""The phase-history record: the ladder's only state (spec §3).

The current phase is the `to_phase` of the last record (or `phase.initial` when there is none).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, get_args

from tradebot.core.trades import PhaseName

Trigger = Literal["advance", "auto_downgrade", "manual_override"]
PHASES: tuple[PhaseName, ...] = get_args(PhaseName)
TRIGGERS: tuple[str, ...] = get_args(Trigger)


def next_phase(phase: PhaseName) -> PhaseName | None:
    """The phase above `phase`, or None at the top."""
    i = PHASES.index(phase)
    return PHASES[i + 1] if i + 1 < len(PHASES) else None


def previous_phase(phase: PhaseName) -> PhaseName | None:
    """The phase below `phase`, or None at the bottom."""
    i = PHASES.index(phase)
    return PHASES[i - 1] if i > 0 else None


class PhaseTransition(NamedTuple):
    """One line of `phase/phase-history.jsonl` (a NamedTuple: 100,000 of them load fast)."""

    transition_id: str
    ts: datetime
    from_phase: PhaseName
    to_phase: PhaseName
    trigger: Trigger
    validation_passed: bool
    failures: tuple[str, ...] = ()
    metrics: Mapping[str, Any] = MappingProxyType({})
    operator: str | None = None
    reason: str | None = None

    def as_record(self) -> dict[str, Any]:
        """The JSONL record (v1)."""
        return {
            "v": 1,
            "transition_id": self.transition_id,
            "ts": self.ts,
            "from_phase": self.from_phase,
            "to_phase": self.to_phase,
            "trigger": self.trigger,
            "validation_passed": self.validation_passed,
            "failures": list(self.failures),
            "metrics": dict(self.metrics),
            "operator": self.operator,
            "reason": self.reason,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> PhaseTransition:
        """Parse a v1 record; raises ValueError naming the problem."""
        if record.get("v") != 1:
            raise ValueError(f"unsupported record version {record.get('v')!r}")
        try:
            ts = datetime.fromisoformat(record["ts"])
            from_phase, to_phase = record["from_phase"], record["to_phase"]
            trigger = record["trigger"]
            transition_id = record["transition_id"]
        except KeyError as exc:
            raise ValueError(f"missing field {exc.args[0]}") from None
        except TypeError:
            raise ValueError("ts must be an ISO-8601 string") from None
        if ts.tzinfo is None:
            raise ValueError("ts has no timezone")
        if from_phase not in PHASES or to_phase not in PHASES:
            raise ValueError(f"unknown phase in {from_phase!r} -> {to_phase!r}")
        if trigger not in TRIGGERS:
            raise ValueError(f"unknown trigger {trigger!r}")
        failures = record.get("failures") or []
        metrics = record.get("metrics") or {}
        if type(failures) is not list or type(metrics) is not dict:
            raise ValueError("failures must be a list and metrics an object")
        operator, reason = record.get("operator"), record.get("reason")
        return cls(
            str(transition_id),
            ts,
            from_phase,
            to_phase,
            trigger,
            bool(record.get("validation_passed")),
            tuple(failures),
            metrics,
            None if operator is None else str(operator),
            None if reason is None else str(reason),
        )


def current_phase(history: list[PhaseTransition], initial: PhaseName) -> PhaseName:
    """The phase in effect: the last record's `to_phase`, else the configured initial phase."""
    return history[-1].to_phase if history else initial
