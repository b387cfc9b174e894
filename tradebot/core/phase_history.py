"""The phase-history record: the ladder's only state (spec §3).

The current phase is the `to_phase` of the last record (or `phase.initial` when there is none).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from operator import itemgetter
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, get_args

from tradebot.core.trades import PhaseName
from tradebot.core.validation import (
    MAX_ID,
    MAX_NAME,
    MAX_TEXT,
    MAX_YEAR,
    MIN_YEAR,
    boolean,
    optional_text,
    text,
    utc_timestamp,
)

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
    # What an automatic downgrade decided on, by trigger (`consecutive_losses`: the losing
    # trades; `rolling_win_rate`: the window of trades; `daily_loss`: start-of-day equity,
    # realized P&L today, each open position's mark, the equity used), as plain JSON values.
    # None on other records, and on downgrades written before it existed.
    inputs: Mapping[str, Any] | None = None

    def as_record(self) -> dict[str, Any]:
        """The JSONL record (v1); `inputs` only when there are some."""
        record = {
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
        if self.inputs is not None:
            record["inputs"] = dict(self.inputs)
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> PhaseTransition:
        """Parse a v1 record strictly; raises ValueError naming the problem.

        Every field has its JSON type (`"validation_passed": "false"` is an error, not true),
        times carry a timezone, texts are bounded, `metrics` holds plain values, and the trigger
        fits the move: `advance` is one step up (criteria met), `auto_downgrade` one step down.
        """
        fast = _fast_parse(cls, record)
        if fast is not None:
            return fast
        return _careful_parse(cls, record)


def _careful_parse(cls: type[PhaseTransition], record: dict[str, Any]) -> PhaseTransition:
    """Every check, one by one, so the ValueError names what is wrong."""
    version = record.get("v")
    if type(version) is not int or version != 1:
        raise ValueError(f"unsupported record version {version!r}")
    missing = [k for k in _REQUIRED if k not in record]
    if missing:
        raise ValueError(f"missing field {missing[0]}")
    transition_id = text(record["transition_id"], "transition_id", max_length=MAX_ID)
    ts = utc_timestamp(record["ts"], "ts")
    from_phase, to_phase = record["from_phase"], record["to_phase"]
    trigger = record["trigger"]
    if from_phase not in PHASES or to_phase not in PHASES:
        raise ValueError(f"unknown phase in {from_phase!r} -> {to_phase!r}")
    if trigger not in TRIGGERS:
        raise ValueError(f"unknown trigger {trigger!r}")
    passed = boolean(record["validation_passed"], "validation_passed")
    failures = record.get("failures", [])
    metrics = record.get("metrics", {})
    if failures is None:
        failures = []
    if metrics is None:
        metrics = {}
    if type(failures) is not list or len(failures) > MAX_LIST:
        raise ValueError(f"failures must be a list of at most {MAX_LIST} texts")
    for item in failures:
        text(item, "each failure", max_length=MAX_TEXT, empty=True)
    if type(metrics) is not dict or len(metrics) > MAX_LIST:
        raise ValueError(f"metrics must be an object of at most {MAX_LIST} values")
    if not _PLAIN_TYPES.issuperset(map(type, metrics.values())):
        raise ValueError("metrics must hold numbers, texts or null")
    operator = optional_text(record.get("operator"), "operator", max_length=MAX_NAME)
    reason = optional_text(record.get("reason"), "reason", max_length=MAX_TEXT)
    inputs = record.get("inputs")
    if inputs is not None:
        check_inputs(inputs)
    _check_move(from_phase, to_phase, trigger, passed)
    return cls(
        transition_id,
        ts,
        from_phase,
        to_phase,
        trigger,
        passed,
        tuple(failures),
        metrics,
        operator,
        reason,
        inputs,
    )


def _fast_parse(cls: type[PhaseTransition], record: dict[str, Any]) -> PhaseTransition | None:
    """The common case (a record this code wrote, every field present) checked with a few C-level
    operations; None when anything is unusual, and `_careful_parse` then decides and names the
    problem. It accepts nothing the careful path refuses (a hypothesis test holds it to that).
    100,000 rows export in about a second this way (spec §8)."""
    try:
        version, tid, stamp, frm, to, trigger, passed, failures, metrics, operator, reason = (
            _ALL_FIELDS(record)
        )
        if not (
            version == 1
            and type(version) is int
            and type(passed) is bool
            and (frm, to, trigger, passed) in _VALID_MOVES
            and type(tid) is str
            and 0 < len(tid) <= MAX_ID
            and type(failures) is list
            and (
                not failures
                or (
                    len(failures) <= MAX_LIST
                    and _TEXT_TYPE.issuperset(map(type, failures))
                    and max(map(len, failures)) <= MAX_TEXT
                )
            )
            and type(metrics) is dict
            and len(metrics) <= MAX_LIST
            and _PLAIN_TYPES.issuperset(map(type, metrics.values()))
            and (operator is None or (type(operator) is str and len(operator) <= MAX_NAME))
            and (reason is None or (type(reason) is str and len(reason) <= MAX_TEXT))
            and type(stamp) is str
        ):
            return None
        ts = datetime.fromisoformat(stamp)
    except (KeyError, TypeError, ValueError):  # a missing field, an unhashable value, a bad time
        return None
    if ts.tzinfo is not UTC or not MIN_YEAR <= ts.year <= MAX_YEAR:
        return None  # other offsets (converted to UTC) and errors: the careful path
    inputs = record.get("inputs")
    if inputs is not None:
        return None  # rare (downgrades): the careful path checks them
    return _new_tuple(
        cls, (tid, ts, frm, to, trigger, passed, tuple(failures), metrics, operator, reason, None)
    )


def quick_transition(record: dict[str, Any]) -> PhaseTransition | None:
    """The transition in `record` when it passes the fast checks, else None (then use
    `PhaseTransition.from_record`, which decides and names the problem)."""
    return _fast_parse(PhaseTransition, record)


_ALL_FIELDS = itemgetter(
    "v",
    "transition_id",
    "ts",
    "from_phase",
    "to_phase",
    "trigger",
    "validation_passed",
    "failures",
    "metrics",
    "operator",
    "reason",
)
_new_tuple = tuple.__new__  # what a NamedTuple's own __new__ calls, without its Python frame
# Every (from, to, trigger, validation_passed) that `_check_move` accepts.
_VALID_MOVES = frozenset(
    (frm, to, trigger, passed)
    for frm in PHASES
    for to in PHASES
    for trigger in TRIGGERS
    for passed in (True, False)
    if frm != to
    and (trigger != "advance" or (passed and to == next_phase(frm)))
    and (trigger != "auto_downgrade" or to == previous_phase(frm))
)


_REQUIRED = ("transition_id", "ts", "from_phase", "to_phase", "trigger", "validation_passed")
MAX_INPUT_VALUES = 20_000  # values in a record's `inputs` (a 1,000-loss run takes ~3,000)
MAX_INPUT_DEPTH = 4
_PLAIN_TYPES = frozenset({str, int, Decimal, bool, type(None)})
_TEXT_TYPE = frozenset({str})
MAX_LIST = 100


def check_inputs(inputs: object) -> None:
    """ValueError unless `inputs` is a JSON object of plain values, lists and objects, at most
    MAX_INPUT_DEPTH deep and MAX_INPUT_VALUES values, texts of at most MAX_TEXT characters."""
    if type(inputs) is not dict:
        raise ValueError("inputs must be an object")
    stack: list[tuple[Any, int]] = [(inputs, 1)]
    count = 0
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_INPUT_VALUES:
            raise ValueError(f"inputs hold more than {MAX_INPUT_VALUES} values")
        kind = type(value)
        if kind is dict or kind is list:
            if depth > MAX_INPUT_DEPTH:
                raise ValueError(f"inputs are nested deeper than {MAX_INPUT_DEPTH} levels")
            if kind is dict and not all(type(k) is str for k in value):
                raise ValueError("inputs keys must be texts")
            items = value.values() if kind is dict else value
            stack.extend((item, depth + 1) for item in items)
        elif kind is str:
            if len(value) > MAX_TEXT:
                raise ValueError(f"an inputs text is longer than {MAX_TEXT} characters")
        elif kind not in _PLAIN_TYPES:
            raise ValueError("inputs must hold numbers, texts, booleans, null, lists or objects")


def plain_inputs(value: Any) -> Any:
    """`value` as the JSON values a record holds once read back: Decimal and times as text
    (UTC, a trailing Z), tuples as lists; so an in-memory record equals its stored form."""
    if isinstance(value, Mapping):
        return {str(k): plain_inputs(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_inputs(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().removesuffix("+00:00") + "Z"
    if isinstance(value, date):
        return value.isoformat()
    return value


def _check_move(frm: PhaseName, to: PhaseName, trigger: str, passed: bool) -> None:
    if frm == to:
        raise ValueError(f"from_phase and to_phase are both {frm}")
    if trigger == "advance" and (to != next_phase(frm) or not passed):
        raise ValueError(
            f"an advance is one step up with its criteria met, not {frm} -> {to}"
            + ("" if passed else " with validation_passed false")
        )
    if trigger == "auto_downgrade" and to != previous_phase(frm):
        raise ValueError(f"an auto_downgrade is one step down, not {frm} -> {to}")


def check_follows(
    previous: PhaseTransition | None, transition: PhaseTransition, initial: PhaseName | None
) -> None:
    """ValueError unless `transition` starts where the history stood before it.

    The first record must start from `phase.initial` (when given); every other one from the
    previous record's `to_phase`. A forged or spliced history cannot skip the chain.
    """
    if previous is not None:
        if transition.from_phase != previous.to_phase:
            raise ValueError(
                f"from_phase {transition.from_phase} does not follow the previous record, which "
                f"ended in {previous.to_phase}"
            )
    elif initial is not None and transition.from_phase != initial:
        raise ValueError(
            f"the first transition starts from {transition.from_phase} but phase.initial is "
            f"{initial}; a history starts at phase.initial"
        )


def current_phase(history: list[PhaseTransition], initial: PhaseName) -> PhaseName:
    """The phase in effect: the last record's `to_phase`, else the configured initial phase."""
    return history[-1].to_phase if history else initial
