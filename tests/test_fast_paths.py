"""The fast paths that keep `phase export` of 100,000 rows near a second (spec §8) must be exact:
each one is held here, on arbitrary input, to the plain code it stands in for."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tradebot.books.phase_records import EXPORT_COLUMNS, history_csv
from tradebot.core.phase_history import (
    _VALID_MOVES,
    MAX_LIST,
    PHASES,
    TRIGGERS,
    PhaseTransition,
    _careful_parse,
    quick_transition,
)
from tradebot.core.validation import MAX_ID, MAX_NAME, MAX_TEXT
from tradebot.errors import CorruptRecordError
from tradebot.storage.jsonl import _iter_chunks, _parse_line_by_line
from tradebot.storage.records import dumps_record

TEXTS = st.text(alphabet=st.sampled_from('ab ,"{}\r\n\t\u00e9Z:.-0123456789'), max_size=12)
ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.decimals(allow_nan=False, allow_infinity=False, places=3),
    TEXTS,
    st.lists(st.integers(), max_size=2),
)
STAMPS = st.sampled_from(
    [
        "2025-07-01T14:30:00+00:00",
        "2025-07-01T14:30:00Z",
        "2025-07-01T10:30:00-04:00",
        "2025-07-01T14:30:00",
        "1899-01-01T00:00:00+00:00",
        "not a time",
        "",
    ]
)


ANY_MOVES = [
    (frm, to, trigger, passed)
    for frm in PHASES
    for to in PHASES
    for trigger in TRIGGERS
    for passed in (True, False)
]
LEGAL_MOVES = [m for m in ANY_MOVES if m in _VALID_MOVES]
WRONG_VALUES: dict[str, Any] = {
    "v": st.sampled_from([2, True, "1", Decimal(1), None]),
    "transition_id": st.one_of(st.just(""), st.just("i" * (MAX_ID + 1)), st.integers()),
    "ts": st.one_of(STAMPS, st.integers()),
    "from_phase": st.sampled_from(["expert", [1], None]),
    "to_phase": st.sampled_from(["expert", {"a": 1}]),
    "trigger": st.sampled_from(["promote", None]),
    "validation_passed": st.sampled_from([1, 0, "false", None]),
    "failures": st.one_of(
        st.lists(st.one_of(TEXTS, st.integers()), min_size=1, max_size=3),
        st.just(["f"] * (MAX_LIST + 1)),
        st.just(["x" * (MAX_TEXT + 1)]),
        ANY_VALUE,
    ),
    "metrics": st.one_of(
        st.dictionaries(st.sampled_from(["trades", "x"]), ANY_VALUE, min_size=1),
        st.just({str(i): i for i in range(MAX_LIST + 1)}),
        ANY_VALUE,
    ),
    "operator": st.one_of(st.integers(), st.just("o" * (MAX_NAME + 1)), st.just("")),
    "reason": st.one_of(st.booleans(), st.just("y" * (MAX_TEXT + 1)), st.just("")),
}


@st.composite
def history_records(draw: st.DrawFn) -> dict[str, Any]:
    """A transition of any move (legal or not), then maybe one field wrong or missing."""
    frm, to, trigger, passed = draw(st.sampled_from(LEGAL_MOVES) | st.sampled_from(ANY_MOVES))
    record: dict[str, Any] = {
        "v": 1,
        "transition_id": draw(st.text(min_size=1, max_size=MAX_ID)),
        "ts": draw(st.sampled_from(["2025-07-01T14:30:00+00:00", "2025-07-01T14:30:00Z"]) | STAMPS),
        "from_phase": frm,
        "to_phase": to,
        "trigger": trigger,
        "validation_passed": passed,
        "failures": draw(st.lists(TEXTS, max_size=3)),
        "metrics": draw(
            st.dictionaries(st.sampled_from(["trades", "win_rate", "x"]), ANY_VALUE, max_size=3)
        ),
        "operator": draw(st.one_of(st.none(), TEXTS)),
        "reason": draw(st.one_of(st.none(), TEXTS)),
    }
    for key in draw(st.lists(st.sampled_from(sorted(record)), max_size=1)):
        if draw(st.booleans()):
            del record[key]
        else:
            record[key] = draw(WRONG_VALUES[key])
    return record


def _careful(record: dict[str, Any]) -> PhaseTransition | str:
    try:
        return _careful_parse(PhaseTransition, record)
    except ValueError as exc:
        return f"refused: {exc}"


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(history_records())
def test_the_quick_transition_check_accepts_only_what_the_careful_one_does(
    record: dict[str, Any],
) -> None:
    quick = quick_transition(record)
    if quick is not None:
        assert _careful(record) == quick
        assert PhaseTransition.from_record(record) == quick


GOOD = {
    "v": 1,
    "transition_id": "t1",
    "ts": "2025-07-01T14:30:00+00:00",
    "from_phase": "experience",
    "to_phase": "proof",
    "trigger": "manual_override",
    "validation_passed": False,
    "failures": ["trades 5 (needs >= 20)"],
    "metrics": {"trades": 5, "win_rate": "0.6"},
    "operator": "me",
    "reason": "why",
}
WRONG = [
    ("v", 2),
    ("v", True),
    ("v", "1"),
    ("transition_id", ""),
    ("transition_id", "i" * (MAX_ID + 1)),
    ("transition_id", 7),
    ("ts", "2025-07-01T14:30:00"),
    ("ts", "1899-01-01T00:00:00+00:00"),
    ("ts", "2025-07-01T10:30:00-04:00"),  # accepted by both, converted by the careful path
    ("ts", "soon"),
    ("from_phase", "expert"),
    ("from_phase", ["experience"]),
    ("to_phase", "experience"),
    ("trigger", "promote"),
    ("trigger", "advance"),  # advance with validation_passed false
    ("validation_passed", 0),
    ("validation_passed", "false"),
    ("failures", "none"),
    ("failures", [3]),
    ("failures", ["x" * (MAX_TEXT + 1)]),
    ("failures", ["f"] * (MAX_LIST + 1)),
    ("failures", None),
    ("metrics", []),
    ("metrics", {"a": [1]}),
    ("metrics", {"a": {"b": 1}}),
    ("metrics", {str(i): i for i in range(MAX_LIST + 1)}),
    ("metrics", None),
    ("operator", 5),
    ("operator", "o" * (MAX_NAME + 1)),
    ("reason", False),
    ("reason", "y" * (MAX_TEXT + 1)),
]


def test_the_good_record_is_quick() -> None:
    assert quick_transition(dict(GOOD)) == _careful(dict(GOOD))


@pytest.mark.parametrize(("key", "value"), WRONG, ids=[f"{k}={str(v)[:20]}" for k, v in WRONG])
def test_each_unusual_field_is_left_to_the_careful_path(key: str, value: Any) -> None:
    record = {**GOOD, key: value}
    assert quick_transition(record) is None  # the careful path decides (and names the problem)


@pytest.mark.parametrize("key", sorted(GOOD))
def test_a_missing_field_is_left_to_the_careful_path(key: str) -> None:
    record = {k: v for k, v in GOOD.items() if k != key}
    assert quick_transition(record) is None


def test_a_record_written_by_tradebot_takes_the_quick_path() -> None:
    written = json.loads(
        dumps_record(
            PhaseTransition.from_record(
                {
                    "v": 1,
                    "transition_id": "a1",
                    "ts": "2025-07-01T14:30:00+00:00",
                    "from_phase": "experience",
                    "to_phase": "proof",
                    "trigger": "advance",
                    "validation_passed": True,
                    "failures": [],
                    "metrics": {"trades": 20, "win_rate": "0.6"},
                    "operator": "me",
                    "reason": None,
                }
            ).as_record()
        )
    )
    written["ts"] = "2025-07-01T14:30:00+00:00"  # how the history writer stores it
    assert quick_transition(written) is not None


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(history_records(), max_size=6))
def test_the_export_csv_is_exactly_what_csv_writer_writes(records: list[dict[str, Any]]) -> None:
    records = [r for r in records if not isinstance(_careful(r), str)]  # validated, as exported
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    for r in records:
        m = r.get("metrics") or {}
        writer.writerow(
            [
                r["ts"],
                r["from_phase"],
                r["to_phase"],
                r["trigger"],
                "true" if r.get("validation_passed") else "false",
                m.get("sessions"),
                m.get("trades"),
                m.get("win_rate"),
                m.get("avg_rr"),
                m.get("total_pnl"),
                r.get("operator"),
                r.get("reason"),
            ]
        )
    assert history_csv(records) == buffer.getvalue()
    assert list(csv.reader(io.StringIO(history_csv(records)))) == list(
        csv.reader(io.StringIO(buffer.getvalue()))
    )


LINES = st.one_of(
    st.builds(lambda n, s: dumps_record({"v": 1, "n": n, "s": s}), st.integers(), TEXTS),
    st.sampled_from(
        [
            "",
            "  ",
            "[1]",
            '{"a":1},{"b":2}',
            '{"a":1}\r',
            '{"a": [{"x": 1}, {"y": 2}]}',
            '{"a":1',
            '"x"',
            '{"s":"}\\n{"}',
            "{}",
        ]
    ),
)


def _outcome(fn: Any) -> Any:
    try:
        return ("ok", fn())
    except CorruptRecordError as exc:
        return ("corrupt", exc.line)


@settings(max_examples=300)
@given(st.lists(LINES, max_size=40), st.integers(1, 7))
def test_chunked_reading_gives_what_reading_line_by_line_gives(
    lines: list[str], chunk: int
) -> None:
    body = "".join(line + "\n" for line in lines).encode()
    path = Path("x.jsonl")

    def chunked() -> tuple[list[Any], list[int]]:
        records: list[Any] = []
        numbers: list[int] = []
        for r, n in _iter_chunks(path, body):
            records += r
            numbers += n
        return records, numbers

    import tradebot.storage.jsonl as jsonl

    saved = jsonl.CHUNK_LINES
    jsonl.CHUNK_LINES = chunk  # small chunks, so boundaries fall everywhere
    try:
        assert _outcome(chunked) == _outcome(
            lambda: _parse_line_by_line(path, body.split(b"\n")[:-1])
        )
    finally:
        jsonl.CHUNK_LINES = saved


@pytest.mark.parametrize("chunk", [1, 2, 1000])
def test_chunk_boundaries_keep_line_numbers(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import tradebot.storage.jsonl as jsonl

    monkeypatch.setattr(jsonl, "CHUNK_LINES", chunk)
    body = b'{"n":1}\n\n{"n":3}\n{"n":4}\n'
    records = [
        (r["n"], n) for rs, ns in _iter_chunks(Path("x"), body) for r, n in zip(rs, ns, strict=True)
    ]
    assert records == [(1, 1), (3, 3), (4, 4)]
