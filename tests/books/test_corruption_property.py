"""Property (issue 7): no single corrupted line in any record file can make `risk check` say
`can_open: true` while the same file without that line says false.

A "corrupted line" is what damage and careless or hostile editing produce: a truncated line, stray
or missing structural bytes, bytes that are not UTF-8, a nesting bomb, the line doubled, a lost
newline, a field removed, or a field set to a hostile value (null, a wrong type, NaN, 1e400,
1e-30, text where a number or a boolean belongs, a time without a timezone or far in the future).
Each must either fail safe or count for no more than the line would if it were absent.

Out of scope by construction: an edit that yields another *plausible* record (a different digit
in a timestamp or a price that still adds up) is indistinguishable from a real record.
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.factories import trade
from tradebot.books.risk_report import build_risk_report
from tradebot.config import load_config

NOW = datetime(2025, 7, 1, 15, 0, tzinfo=UTC)  # a Tuesday, 11:00 in New York: in the window
CONFIG = '[trading]\nmode = "paper"\n'
TRADES = "logs/journal/trades.jsonl"
ORDERS = "logs/journal/orders.jsonl"
HISTORY = "logs/phase/phase-history.jsonl"
AUDIT = "logs/phase/phase-overrides.jsonl"
HALT = "logs/state/halt.json"
DAILY_LOSS = "logs/state/daily-loss.json"
START_OF_DAY = "logs/state/start-of-day-equity.json"
STATE_FILES = (HALT, DAILY_LOSS, START_OF_DAY)  # one JSON object each: the "line" is the file


def _trade(pnl: int, day: int, hour: int, mode: str = "live") -> dict[str, Any]:
    exit_time = datetime(2025, 6 if day > 1 else 7, day, hour, 0, tzinfo=UTC)
    record = trade(pnl, exit_time=exit_time, mode=mode, entry_price="10.00")  # type: ignore[arg-type]
    return record.model_dump(mode="json")


def _order(ref: str, session: str, event: str = "intent", **extra: Any) -> dict[str, Any]:
    return {
        "v": 1,
        "ts": f"{session}T14:00:00Z",
        "event": event,
        "order_ref": ref,
        "role": "entry",
        "session": session,
        "mode": "paper",
        **extra,
    }


def _to_proof() -> dict[str, Any]:
    return {
        "v": 1,
        "transition_id": "t-proof",
        "ts": "2025-06-02T12:00:00Z",
        "from_phase": "experience",
        "to_phase": "proof",
        "trigger": "advance",
        "validation_passed": True,
        "failures": [],
        "metrics": {"trades": 20, "win_rate": "0.7000"},
        "operator": "alice",
        "reason": "earned",
    }


def _downgraded_today() -> dict[str, Any]:
    return {
        **_to_proof(),
        "transition_id": "t-down",
        "ts": "2025-07-01T14:00:00Z",
        "from_phase": "proof",
        "to_phase": "experience",
        "trigger": "auto_downgrade",
        "validation_passed": False,
        "failures": ["3 consecutive losses (limit 3)"],
        "operator": "tradebot",
    }


AUDIT_LINES = [
    {"v": 1, "ts": "2025-06-01T10:00:00Z", "outcome": "password_set", "granted": True},
    {"v": 1, "ts": "2025-06-10T10:00:00Z", "outcome": "wrong_password", "granted": False},
]
START = {
    "v": 1,
    "sessions": {"2025-07-01": {"equity": "10000", "source": "x", "ts": "2025-07-01T13:35:00Z"}},
}

# Scenarios: file -> records. Several block entries for different reasons, one allows them.
SCENARIOS: dict[str, dict[str, list[dict[str, Any]]]] = {
    "three live losses in proof": {
        HISTORY: [_to_proof()],
        TRADES: [_trade(150, 3, 15), _trade(-60, 4, 15), _trade(-60, 5, 15), _trade(-60, 6, 15)],
        ORDERS: [_order("R1", "2025-06-30"), _order("R1", "2025-06-30", "fill", filled_qty=1)],
        AUDIT: AUDIT_LINES,
        HALT: [{"v": 1, "halted": False}],
        START_OF_DAY: [START],
    },
    "proof's one entry used today": {
        HISTORY: [_to_proof()],
        TRADES: [_trade(150, 3, 15), _trade(150, 4, 15)],
        ORDERS: [
            _order("R1", "2025-07-01"),
            _order("R1", "2025-07-01", "fill", filled_qty=1),
            _order("R2", "2025-07-01"),
            _order("R2", "2025-07-01", "status", status="cancelled"),
        ],
        AUDIT: AUDIT_LINES,
        START_OF_DAY: [START],
    },
    "halted after a daily loss": {
        TRADES: [_trade(200, 30, 15, "sim"), _trade(-600, 1, 14, "sim")],
        HALT: [{"v": 1, "halted": True, "since": "2025-07-01T14:30:00Z", "reason": "loss"}],
        DAILY_LOSS: [{"v": 1, "session": "2025-07-01", "tripped_at": "2025-07-01T14:10:00Z"}],
        START_OF_DAY: [START],
    },
    "daily loss only": {
        TRADES: [_trade(200, 30, 15, "sim"), _trade(-800, 1, 14, "sim")],
        HALT: [{"v": 1, "halted": False}],
        START_OF_DAY: [START],
    },
    "halt only": {
        HISTORY: [_to_proof()],
        TRADES: [_trade(150, 3, 15)],
        HALT: [{"v": 1, "halted": True, "since": "2025-07-01T14:30:00Z", "reason": "news"}],
        START_OF_DAY: [START],
    },
    "downgraded this session": {
        HISTORY: [_to_proof(), _downgraded_today()],
        TRADES: [_trade(150, 3, 15), _trade(-60, 4, 15)],
        AUDIT: AUDIT_LINES,
    },
    "allowed": {
        HISTORY: [_to_proof()],
        TRADES: [_trade(150, 3, 15), _trade(150, 4, 15)],
        ORDERS: [_order("R1", "2025-06-30")],
        AUDIT: AUDIT_LINES,
        HALT: [{"v": 1, "halted": False}],
        START_OF_DAY: [START],
    },
}

HOSTILE: list[Any] = [
    None,
    True,
    False,
    -1,
    "",
    "x" * 300,
    "NaN",
    "Infinity",
    "1e400",
    "1e-30",
    "-0",
    "false",
    "true",
    [],
    {},
    [[[["deep"]]]],
    10**30,
    "2025-07-01T15:00:00",  # no timezone
    "2190-01-01T00:00:00Z",  # far in the future
    "2025-13-45",
]
RAW_HOSTILE = ["NaN", "-Infinity", "1e400", "1e-30", "[" * 3000 + "]" * 3000]  # JSON text
STRUCTURAL = [b'"', b"{", b"}", b"[", b"]", b",", b":", b"\\", b"\xff", b"\x00", b"\n"]


def _paths(value: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every key path in nested objects, e.g. ("sessions", "2025-07-01", "equity")."""
    if not isinstance(value, dict):
        return []
    out = []
    for key in sorted(value):
        out.append((*prefix, key))
        out.extend(_paths(value[key], (*prefix, key)))
    return out


def _replaced(record: Any, path: tuple[str, ...], new: Any, *, delete: bool = False) -> Any:
    if len(path) == 1:
        rest = {k: v for k, v in record.items() if k != path[0]}
        return rest if delete else {**rest, path[0]: new}
    return {**record, path[0]: _replaced(record[path[0]], path[1:], new, delete=delete)}


RAW = "@@RAW@@"


def _field_mutations(line: bytes) -> st.SearchStrategy[bytes]:
    record = json.loads(line)
    paths = _paths(record)

    def set_value(path: tuple[str, ...], value: Any) -> bytes:
        return json.dumps(_replaced(record, path, value)).encode()

    def set_raw(path: tuple[str, ...], raw: str) -> bytes:
        text = json.dumps(_replaced(record, path, RAW))
        return text.replace(json.dumps(RAW), raw).encode()

    def delete(path: tuple[str, ...]) -> bytes:
        return json.dumps(_replaced(record, path, None, delete=True)).encode()

    return st.one_of(
        st.builds(set_value, st.sampled_from(paths), st.sampled_from(HOSTILE)),
        st.builds(set_raw, st.sampled_from(paths), st.sampled_from(RAW_HOSTILE)),
        st.builds(delete, st.sampled_from(paths)),
    )


def _byte_mutations(line: bytes) -> st.SearchStrategy[bytes]:
    n = len(line)
    structural = [i for i, b in enumerate(line) if bytes([b]) in STRUCTURAL]
    return st.one_of(
        st.integers(0, n - 1).map(lambda k: line[:k]),  # truncated
        st.tuples(st.integers(0, n), st.sampled_from(STRUCTURAL)).map(
            lambda t: line[: t[0]] + t[1] + line[t[0] :]
        ),  # a stray byte
        st.sampled_from(structural).map(lambda k: line[:k] + line[k + 1 :]),  # a lost one
        st.just(line + b"\n" + line),  # doubled
        st.just(line + b"\x00"),
    )


@st.composite
def corruption(draw: st.DrawFn) -> tuple[str, str, int, bytes]:
    name = draw(st.sampled_from(sorted(SCENARIOS)))
    files = SCENARIOS[name]
    file = draw(st.sampled_from(sorted(files)))
    index = draw(st.integers(0, len(files[file]) - 1))
    line = json.dumps(files[file][index]).encode()
    mutated = draw(st.one_of(_field_mutations(line), _byte_mutations(line)))
    return name, file, index, mutated


def _write(root: Path, files: dict[str, list[bytes]], newline_at_end: dict[str, bool]) -> None:
    (root / "config.toml").write_text(CONFIG)
    for name, lines in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if name in STATE_FILES:
            if lines:
                path.write_bytes(lines[0])
            continue
        body = b"\n".join(lines)
        path.write_bytes(body + (b"\n" if lines and newline_at_end.get(name, True) else b""))


def _can_open(files: dict[str, list[bytes]], newline_at_end: dict[str, bool] | None = None) -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write(root, files, newline_at_end or {})
        return build_risk_report(load_config(root / "config.toml"), NOW).can_open


def _encoded(name: str) -> dict[str, list[bytes]]:
    return {f: [json.dumps(r).encode() for r in rs] for f, rs in SCENARIOS[name].items()}


def test_the_scenarios_say_what_they_are_named_for() -> None:
    verdicts = {name: _can_open(_encoded(name)) for name in SCENARIOS}
    assert verdicts == {name: name == "allowed" for name in SCENARIOS}


@settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(corruption(), st.booleans())
def test_no_single_corrupted_line_makes_risk_check_more_permissive(
    case: tuple[str, str, int, bytes], last_without_newline: bool
) -> None:
    name, file, index, mutated = case
    clean = _encoded(name)
    corrupted = {**clean, file: [*clean[file][:index], mutated, *clean[file][index + 1 :]]}
    without = {**clean, file: [*clean[file][:index], *clean[file][index + 1 :]]}
    endings = {file: not last_without_newline}  # also: the file's last newline lost
    if _can_open(corrupted, endings):
        assert _can_open(without), (name, file, index, mutated[:200])
