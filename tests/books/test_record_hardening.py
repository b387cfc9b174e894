"""Records that cannot fool the ladder (issue 7): duplicates, future dates, forged histories,
absurd numbers, wrong types. Each is a named error (file:line) or a refusal, never a number."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.cli.conftest import invoke
from tests.factories import trade
from tradebot.books.ladder import PhaseLadder
from tradebot.books.phase_records import PhaseRecords
from tradebot.books.risk_report import build_risk_report
from tradebot.books.state_store import StateStore
from tradebot.books.trade_journal import TradeJournal
from tradebot.config import LoadedConfig, load_config
from tradebot.core.validation import FUTURE_TOLERANCE
from tradebot.errors import CorruptRecordError

AT = datetime(2025, 7, 1, 15, 0, tzinfo=UTC)  # 11:00 New York, inside the entry window
IN_WINDOW = "2025-07-01T15:00:00Z"


@pytest.fixture
def loaded(tmp_path: Path) -> LoadedConfig:
    return load_config(tmp_path / "config.toml")  # absent: defaults (sim, dry-run)


def _lines(path: Path, records: list[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _trade_record(pnl: int, trade_id: str, minute: int = 0) -> dict[str, Any]:
    exit_time = datetime(2025, 6, 30, 15, minute, tzinfo=UTC)
    return trade(pnl, trade_id=trade_id, exit_time=exit_time).model_dump(mode="json")


def _transition(
    frm: str,
    to: str,
    trigger: str = "advance",
    *,
    tid: str = "t1",
    ts: str = "2025-06-01T15:00:00Z",
) -> dict[str, Any]:
    return {
        "v": 1,
        "transition_id": tid,
        "ts": ts,
        "from_phase": frm,
        "to_phase": to,
        "trigger": trigger,
        "validation_passed": trigger != "auto_downgrade",
        "failures": [],
        "metrics": {"trades": 20, "win_rate": "0.7000"},
        "operator": "alice",
        "reason": None,
    }


def _blocking(loaded: LoadedConfig) -> list[str]:
    return [b.rule for b in build_risk_report(loaded, AT).blocking]


# -- duplicates ------------------------------------------------------------------------------
def test_a_repeated_trade_id_is_an_error_naming_both_lines(loaded: LoadedConfig) -> None:
    path = loaded.logs_dir / "journal" / "trades.jsonl"
    first, second = _trade_record(100, "T1"), _trade_record(-40, "T2", minute=5)
    _lines(path, [first, second, first])  # a journal concatenated with (part of) itself
    with pytest.raises(CorruptRecordError) as err:
        TradeJournal(loaded.logs_dir).read()
    assert err.value.line == 3
    assert "trades.jsonl:3: trade_id 'T1' repeats line 1" in err.value.message
    assert "keep one of lines 1 and 3" in err.value.message
    assert "phase_unknown" in _blocking(loaded)  # fails safe like any unreadable line
    result = invoke(["journal"])
    assert result.exit_code == 4 and "trades.jsonl:3" in result.stderr


def test_a_repeated_transition_id_is_an_error_naming_both_lines(loaded: LoadedConfig) -> None:
    path = loaded.logs_dir / "phase" / "phase-history.jsonl"
    up = _transition("experience", "proof", tid="same")
    down = _transition("proof", "experience", "manual_override", tid="same")
    _lines(path, [up, down])
    with pytest.raises(CorruptRecordError, match=r"history\.jsonl:2: transition_id 'same' repeats"):
        PhaseLadder(loaded).records.read_history()
    assert _blocking(loaded) == ["phase_unknown"]
    export = invoke(["phase", "export", "--csv", "-"])
    assert export.exit_code == 4 and "repeats line 1" in export.stderr


# -- forged or mistyped histories ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("records", "problem"),
    [
        ([_transition("experience", "scaling")], "an advance is one step up"),
        ([_transition("proof", "trial")], "the first transition starts from proof"),
        (
            [_transition("experience", "proof"), _transition("experience", "proof", tid="t2")],
            "does not follow the previous record, which ended in proof",
        ),
        ([_transition("experience", "proof", "auto_downgrade")], "auto_downgrade is one step down"),
        ([{**_transition("experience", "proof"), "validation_passed": "false"}], "true or false"),
        ([{**_transition("experience", "proof"), "ts": "2025-06-01T15:00:00"}], "no timezone"),
        ([{**_transition("experience", "proof"), "ts": 1751382000}], "ISO-8601 time as text"),
        ([{**_transition("experience", "proof"), "operator": {"name": "x"}}], "operator must be"),
        ([{**_transition("experience", "proof"), "metrics": {"a": [[[]]]}}], "metrics must hold"),
        ([{**_transition("experience", "proof"), "failures": [1]}], "each failure must be text"),
        ([{**_transition("experience", "proof"), "transition_id": 7}], "transition_id must be"),
        ([{**_transition("experience", "proof"), "v": True}], "unsupported record version"),
    ],
)
def test_a_forged_or_mistyped_history_is_refused(
    loaded: LoadedConfig, records: list[dict[str, Any]], problem: str
) -> None:
    _lines(loaded.logs_dir / "phase" / "phase-history.jsonl", records)
    with pytest.raises(CorruptRecordError) as err:
        PhaseLadder(loaded).records.read_history(initial="experience")
    assert problem in err.value.message
    assert _blocking(loaded) == ["phase_unknown"]


def test_an_auto_downgrade_missing_only_its_newline_is_never_lost(loaded: LoadedConfig) -> None:
    path = loaded.logs_dir / "phase" / "phase-history.jsonl"
    up = _transition("experience", "proof", tid="t1")
    down = _transition("proof", "experience", "auto_downgrade", tid="t2", ts="2025-06-02T15:00:00Z")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(up) + "\n" + json.dumps(down))  # no final newline
    ladder = PhaseLadder(loaded)
    snap = ladder.snapshot(AT)
    assert snap.evaluation is not None and snap.evaluation.phase == "experience"
    assert snap.warnings == []
    ladder.records.history.append(_transition("experience", "proof", tid="t3"))
    assert [t.transition_id for t in ladder.records.read_history().transitions] == [
        "t1",
        "t2",
        "t3",
    ]


# -- absurd numbers and wrong types in trades and orders ------------------------------------------
@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("pnl", "1e400", "pnl"),
        ("pnl", "NaN", "pnl"),
        ("pnl", "Infinity", "pnl"),
        ("risk", "1e-30", "risk"),
        ("qty", True, "qty"),
        ("qty", "1", "qty"),
        ("entry_price", "1e400", "entry_price"),
        ("exit_time", "2025-06-30T15:00:00", "exit_time"),
        ("exit_time", "9999-12-31T23:59:59-05:00", "exit_time"),
        ("session", 20250630, "session"),
        ("trade_id", 5, "trade_id"),
        ("pnl", "140.00", "does not match"),  # a loss edited into a win, prices untouched
    ],
)
def test_absurd_or_mistyped_trade_fields_are_named_errors(
    loaded: LoadedConfig, field: str, value: object, problem: str
) -> None:
    record = {**_trade_record(-40, "T1"), field: value}
    _lines(loaded.logs_dir / "journal" / "trades.jsonl", [_trade_record(100, "T0"), record])
    with pytest.raises(CorruptRecordError) as err:
        TradeJournal(loaded.logs_dir).read()
    assert err.value.line == 2 and problem in err.value.message
    result = invoke(["risk", "check", "--at", IN_WINDOW, "--json"])
    assert result.exit_code == 4 and json.loads(result.stdout)["can_open"] is False
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("ts", "2025-07-01T14:00:00", "no timezone"),
        ("order_ref", 5, "order_ref must be text"),
        ("role", "entrx", "unknown role"),
        ("filled_qty", "1", "filled_qty must be a whole number"),
        ("session", "2025-13-01", "not a YYYY-MM-DD date"),
    ],
)
def test_mistyped_order_events_are_named_errors(
    loaded: LoadedConfig, field: str, value: object, problem: str
) -> None:
    event = {
        "v": 1,
        "ts": "2025-07-01T14:00:00Z",
        "event": "intent",
        "order_ref": "R1",
        "role": "entry",
        "session": "2025-07-01",
        "mode": "dry_run",
    }
    _lines(loaded.logs_dir / "journal" / "orders.jsonl", [{**event, field: value}])
    snap = PhaseLadder(loaded).snapshot(AT)
    assert snap.error is not None and "orders.jsonl:1" in snap.error and problem in snap.error


# -- future-dated records --------------------------------------------------------------------
LATER = AT + FUTURE_TOLERANCE + timedelta(minutes=1)


def test_a_future_dated_transition_is_reported_and_blocks_entries(loaded: LoadedConfig) -> None:
    ts = LATER.isoformat().replace("+00:00", "Z")
    _lines(
        loaded.logs_dir / "phase" / "phase-history.jsonl",
        [_transition("experience", "proof", ts=ts)],
    )
    report = build_risk_report(loaded, AT)
    assert "future_dated_record" in [b.rule for b in report.blocking]
    assert any("is dated 2025-07-01 11:06 EDT, after now" in w for w in report.warnings)
    # Within the tolerance it is trusted.
    assert "future_dated_record" not in _rules_at(loaded, LATER - timedelta(minutes=1))


def _rules_at(loaded: LoadedConfig, now: datetime) -> list[str]:
    return [b.rule for b in build_risk_report(loaded, now).blocking]


def test_a_future_dated_override_audit_line_blocks_entries(loaded: LoadedConfig) -> None:
    audit = {"v": 1, "ts": LATER.isoformat(), "outcome": "wrong_password", "granted": False}
    _lines(loaded.logs_dir / "phase" / "phase-overrides.jsonl", [audit])
    report = build_risk_report(loaded, AT)
    assert [b.rule for b in report.blocking] == ["future_dated_record"]
    assert any("phase-overrides.jsonl: 1 record(s) dated after now" in w for w in report.warnings)


@pytest.mark.parametrize(
    ("name", "state"),
    [
        ("halt.json", {"v": 1, "halted": False, "since": LATER.isoformat()}),
        ("daily-loss.json", {"v": 1, "session": "2025-07-02", "tripped_at": AT.isoformat()}),
        (
            "start-of-day-equity.json",
            {"v": 1, "sessions": {"2025-06-30": {"equity": "1", "ts": LATER.isoformat()}}},
        ),
        ("whale-debounce.json", {"v": 1, "symbols": {"SPY": {"ts": LATER.isoformat()}}}),
    ],
)
def test_a_future_dated_state_file_blocks_entries(
    loaded: LoadedConfig, name: str, state: dict[str, Any]
) -> None:
    loaded.state_dir.mkdir(parents=True)
    (loaded.state_dir / name).write_text(json.dumps(state))
    report = build_risk_report(loaded, AT)
    assert "future_dated_record" in [b.rule for b in report.blocking]
    assert any(name in w and "after now" in w for w in report.warnings)


def test_phase_status_shows_future_dated_records_and_still_works(loaded: LoadedConfig) -> None:
    loaded.state_dir.mkdir(parents=True)
    halt = {"v": 1, "halted": True, "since": "2190-01-01T00:00:00Z"}
    (loaded.state_dir / "halt.json").write_text(json.dumps(halt))
    status = invoke(["phase", "status", "--json"])  # the real clock: 2190 is in the future
    assert status.exit_code == 0
    assert any("halt.json: since 2190-01-01" in w for w in json.loads(status.stdout)["warnings"])


# -- state files -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "state", "problem"),
    [
        ("halt.json", {"v": 1, "halted": "false"}, "halted must be true or false"),
        ("daily-loss.json", {"v": 1, "session": 20250701}, "session must be"),
        (
            "start-of-day-equity.json",
            {"v": 1, "sessions": {"2025-07-01": {"equity": "1e400", "ts": AT.isoformat()}}},
            "equity must be between",
        ),
        (
            "start-of-day-equity.json",
            {"v": 1, "sessions": {"2025-07-01": {"equity": "NaN", "ts": AT.isoformat()}}},
            "equity must be a finite number",
        ),
        (
            "start-of-day-equity.json",
            {"v": 1, "sessions": {"2025-07-01": {"equity": "9000", "ts": "2025-07-01T13:30"}}},
            "ts has no timezone",
        ),
    ],
)
def test_bad_state_files_block_with_the_file_named(
    loaded: LoadedConfig, name: str, state: dict[str, Any], problem: str
) -> None:
    loaded.state_dir.mkdir(parents=True)
    (loaded.state_dir / name).write_text(json.dumps(state))
    result = invoke(["risk", "check", "--at", IN_WINDOW, "--json"])
    assert result.exit_code == 4, result.stderr
    doc = json.loads(result.stdout)
    text = json.dumps(doc["blocking"]) + str(doc["phase_error"])
    assert name in text and problem in text


@pytest.mark.parametrize(
    "value",
    [
        "scrypt$abc$8$1$c2FsdHNhbHQ=$a2V5a2V5a2V5a2V5a2V5a2V5",
        "scrypt$1099511627776$8$1$c2FsdHNhbHQ=$a2V5a2V5a2V5a2V5a2V5a2V5",
        "plaintext-password",
    ],
)
def test_a_bad_stored_override_hash_is_a_named_error(loaded: LoadedConfig, value: str) -> None:
    loaded.state_dir.mkdir(parents=True)
    (loaded.state_dir / "override-password.json").write_text(json.dumps({"v": 1, "hash": value}))
    with pytest.raises(CorruptRecordError, match="not a hash written by"):
        StateStore(loaded.state_dir).password_hash()
    result = invoke(
        ["phase", "advance", "--force", "--to", "proof", "--password-stdin"], input="whatever\n"
    )
    assert result.exit_code == 4 and "override-password.json" in result.stderr
    assert "Traceback" not in result.stderr and "unexpected" not in result.stderr


def test_the_override_audit_refuses_unknown_outcomes_and_naive_times(
    loaded: LoadedConfig,
) -> None:
    records = PhaseRecords(loaded.logs_dir)
    _lines(records.overrides.path, [{"v": 1, "ts": AT.isoformat(), "outcome": "wrong_passwore"}])
    with pytest.raises(CorruptRecordError, match=r"overrides\.jsonl:1: .*unknown outcome"):
        records.read_attempts()
    _lines(records.overrides.path, [{"v": 1, "ts": "2025-07-01T15:00", "outcome": "granted"}])
    with pytest.raises(CorruptRecordError, match="no timezone"):
        records.read_attempts()


def test_whale_debounce_times_out_of_range_are_named_errors(loaded: LoadedConfig) -> None:
    from tradebot.books.whale_debounce import read_last_signals

    loaded.state_dir.mkdir(parents=True)
    entry = {"session": "2025-07-01", "signal": "BUY_CALL", "ts": "9999-12-31T23:59:59-05:00"}
    (loaded.state_dir / "whale-debounce.json").write_text(
        json.dumps({"v": 1, "symbols": {"SPY": entry}})
    )
    with pytest.raises(CorruptRecordError, match="bad entry for SPY: ts is outside the years"):
        read_last_signals(loaded.state_dir)
