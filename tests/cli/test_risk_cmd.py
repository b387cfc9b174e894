"""`tradebot risk check`: allowed, each blocking reason, persistence, --json contract."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.cli.conftest import invoke, run_process
from tests.factories import trade
from tradebot.books.halt import KillSwitch
from tradebot.books.order_journal import OrderJournal
from tradebot.books.risk_report import build_risk_report
from tradebot.books.state_store import StateStore
from tradebot.config import load_config
from tradebot.core.trades import session_of

IN_WINDOW = "2025-07-01T15:00:00Z"  # 11:00 New York, a Tuesday session
AT = datetime(2025, 7, 1, 15, 0, tzinfo=UTC)

REPORT_KEYS = {
    "v",
    "now",
    "session",
    "broker",
    "mode",
    "can_open",
    "blocking",
    "equity",
    "today",
    "daily_loss",
    "halt",
    "entry_window",
    "phase",
    "phase_error",
    "symbol",
    "sizing",
    "warnings",
}


def _check(*args: str):  # type: ignore[no-untyped-def]
    return invoke(["risk", "check", "--at", IN_WINDOW, *args])


def _text(result) -> str:  # type: ignore[no-untyped-def]
    """The table's words in reading order, cells wrapped over several lines joined again."""
    return " ".join(result.stdout.replace("│", " ").split())


def _rules(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [b["rule"] for b in json.loads(result.stdout)["blocking"]]


def _sim_loss(journal, amount: str, day: date = date(2025, 7, 1), minute: int = 0) -> None:  # type: ignore[no-untyped-def]
    exit_time = datetime(day.year, day.month, day.day, 14, minute, tzinfo=UTC)
    journal(trade(amount, exit_time=exit_time, mode="sim", entry_price="10.00"))


def test_allowed_exit_0_with_sizing_preview() -> None:
    result = _check("--premium", "0.80", "--symbol", "spy")
    assert result.exit_code == 0, result.stdout
    assert "can_open: true" in result.stdout
    doc = json.loads(_check("--premium", "0.80", "--json").stdout)
    assert doc["can_open"] is True and doc["blocking"] == []
    # The worked example: 10,000 × 1 % / (0.80 × 100 × 50 %) = 2.5 → 2 by risk; $100 cap → 1.
    assert doc["sizing"]["risk_based_contracts"] == 2
    assert doc["sizing"]["cap_based_contracts"] == 1
    assert doc["sizing"]["contracts"] == 1
    assert doc["sizing"]["cost"] == "80.00"


def test_json_contract() -> None:
    result = _check("--json", "--premium", "0.45")
    doc = json.loads(result.stdout)
    assert set(doc) == REPORT_KEYS
    assert doc["v"] == 1 and doc["session"] == "2025-07-01"
    assert set(doc["equity"]) == {"current", "source", "start_of_day", "start_source"}
    assert doc["equity"]["current"] == "10000"
    assert set(doc["today"]) == {"realized_pnl", "loss_pct"}
    assert set(doc["daily_loss"]) == {
        "tripped",
        "tripped_earlier",
        "limit_pct",
        "message",
        "inputs",
    }
    assert set(doc["halt"]) == {"halted", "since", "operator", "reason"}
    assert set(doc["entry_window"]) == {
        "in_window",
        "session",
        "opens",
        "closes",
        "next_open",
        "message",
    }
    assert doc["phase"]["phase"] == "experience"
    assert doc["phase"]["position_cap_usd"] == "100"
    assert set(doc["sizing"]) == {
        "premium",
        "multiplier",
        "risk_based_contracts",
        "cap_based_contracts",
        "contracts",
        "contract_cost",
        "cost",
        "risk_budget",
        "reason",
    }
    assert result.stderr == ""


def test_blocked_outside_the_entry_window() -> None:
    result = invoke(["risk", "check", "--at", "2025-07-04T15:00:00Z", "--json"])
    assert result.exit_code == 4
    assert _rules(result) == ["outside_entry_window"]


def test_blocked_by_halt(tmp_path: Path) -> None:
    loaded = load_config(tmp_path / "config.toml")
    KillSwitch(loaded.state_dir, loaded.logs_dir).halt(AT, operator="ops", reason="FOMC")
    result = _check()
    assert result.exit_code == 4
    assert "halted since" in result.stdout and "by ops: FOMC" in result.stdout
    KillSwitch(loaded.state_dir, loaded.logs_dir).resume(AT, operator="ops", reason=None)
    assert _check().exit_code == 0
    events = (tmp_path / "logs" / "journal" / "events.jsonl").read_text().splitlines()
    assert [json.loads(e)["event"] for e in events] == ["halt", "resume"]


def test_daily_loss_trips_at_exactly_the_threshold(journal) -> None:  # type: ignore[no-untyped-def]
    _sim_loss(journal, "-499.99")
    assert _check().exit_code == 0
    _sim_loss(journal, "-0.01", minute=5)  # now exactly 5.00 % down
    result = _check("--json")
    assert result.exit_code == 4
    assert _rules(result) == ["daily_loss"]
    doc = json.loads(result.stdout)
    assert doc["today"]["realized_pnl"] == "-500"
    assert doc["today"]["loss_pct"] == "5.0000"


def test_daily_loss_trip_persists_across_processes_and_resets_next_session(
    journal, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    _sim_loss(journal, "-600")
    loaded = load_config(tmp_path / "config.toml")
    report = build_risk_report(loaded, AT, persist=True)  # what the loop does each tick
    assert "daily_loss" in [b.rule for b in report.blocking]
    trip = StateStore(loaded.state_dir).daily_loss_trip()
    assert trip is not None and trip[0] == date(2025, 7, 1)
    _sim_loss(journal, "300", minute=30)  # equity recovers to -3 % ...
    proc = run_process(["risk", "check", "--at", "2025-07-01T16:00:00Z", "--json"], cwd=tmp_path)
    assert proc.returncode == 4  # ... but a new process still refuses for the rest of the session
    doc = json.loads(proc.stdout)
    assert doc["daily_loss"]["tripped_earlier"] is True
    assert "tripped earlier in the 2025-07-01 session" in doc["blocking"][0]["message"]
    nxt = invoke(["risk", "check", "--at", "2025-07-02T15:00:00Z", "--json"])
    assert nxt.exit_code == 0, nxt.stdout  # next session: start-of-day equity is the new level


def test_equity_and_start_of_day_unknown_on_ibkr(write_config, tmp_path: Path) -> None:
    write_config('[broker]\nkind = "ibkr"\n')
    result = _check("--json")
    assert result.exit_code == 4
    assert _rules(result) == ["equity_unknown"]
    loaded = load_config(tmp_path / "config.toml")
    StateStore(loaded.state_dir).record_equity(Decimal("25000"), "NetLiquidation", AT)
    result = _check("--json")
    assert _rules(result) == ["start_of_day_unknown"]
    StateStore(loaded.state_dir).record_start_of_day(session_of(AT), Decimal("25000"), "loop", AT)
    assert _check().exit_code == 0
    stale = invoke(["risk", "check", "--at", "2025-07-01T16:00:00Z", "--json"])
    assert "equity_unknown" in _rules(stale)  # the 14:00 reading is an hour old by 16:00


def test_live_entries_refused_in_experience(write_config) -> None:  # type: ignore[no-untyped-def]
    write_config('[broker]\nkind = "ibkr"\n[trading]\nmode = "live"\n')
    loaded = load_config(Path("config.toml"))
    StateStore(loaded.state_dir).record_equity(Decimal("25000"), "NetLiquidation", AT)
    StateStore(loaded.state_dir).record_start_of_day(session_of(AT), Decimal("25000"), "loop", AT)
    result = _check("--json")
    assert result.exit_code == 4
    assert _rules(result) == ["live_not_allowed"]


def test_proof_entry_limit(journal, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tests.phase_helpers import series_of
    from tradebot.books.ladder import PhaseLadder

    journal(*series_of([100] * 20, start_day=-25))  # before the advance
    loaded = load_config(tmp_path / "config.toml")
    PhaseLadder(loaded).advance(AT - timedelta(days=1), to=None, operator="t", reason=None)
    assert _check().exit_code == 0
    OrderJournal(loaded.logs_dir).append(
        {
            "v": 1,
            "ts": AT,
            "event": "intent",
            "order_ref": "tb-1",
            "role": "entry",
            "session": session_of(AT),
            "mode": "sim",
        }
    )
    result = _check("--json")
    assert _rules(result) == ["entry_limit"]
    message = json.loads(result.stdout)["blocking"][0]["message"]
    assert "phase proof allows 1 entry per session" in message
    assert "next session open (2025-07-02 09:35 EDT)" in message


def test_proof_cancelled_unfilled_entry_is_not_counted(journal, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue 23: proof's one entry a session counts entries that happened. An entry cancelled
    without a fill did not: the next one is allowed, and `risk check` says why it counts 0;
    once that one has filled, a further entry is refused."""
    from tests.phase_helpers import series_of
    from tradebot.books.ladder import PhaseLadder

    journal(*series_of([100] * 20, start_day=-25))  # before the advance
    loaded = load_config(tmp_path / "config.toml")
    ladder = PhaseLadder(loaded)
    ladder.advance(AT - timedelta(days=1), to=None, operator="t", reason=None)
    day = session_of(AT)

    def event(ref: str, name: str, minute: int, **more: object) -> dict[str, object]:
        record = {"v": 1, "ts": AT - timedelta(minutes=minute), "event": name,
                  "order_ref": ref, "role": "entry", "session": day, "mode": "sim"}  # fmt: skip
        return {**record, **more}

    orders = OrderJournal(loaded.logs_dir)
    orders.append(event("SPY-250701-s1", "intent", 30))
    orders.append(event("SPY-250701-s1", "status", 29, status="cancelled", filled_qty=0))
    doc = json.loads(_check("--json").stdout)
    assert doc["can_open"] is True
    assert doc["phase"]["entries_this_session"] == 0
    assert doc["phase"]["entries_cancelled_unfilled"] == 1
    assert "entries this session: 0 of 1 (1 cancelled unfilled, not counted)" in _text(_check())

    # The loop's own path: the reservation of the next entry is granted ...
    intent = event("QQQ-250701-s1", "intent", 0)
    assert ladder.reserve_entry(AT, "paper", intent).allowed
    orders.append(event("QQQ-250701-s1", "fill", 0, filled_qty=1))
    # ... and once it filled, a second filled entry is refused.
    refused = ladder.reserve_entry(AT, "paper", event("IWM-250701-s1", "intent", 0))
    assert [r.rule for r in refused.refusals] == ["entry_limit"]
    assert "1 were made in the 2025-07-01 session (1 more cancelled unfilled, not counted)" in (
        refused.refusals[0].message
    )
    result = _check("--json")
    assert _rules(result) == ["entry_limit"]
    assert "entries this session: 1 of 1 (1 cancelled unfilled, not counted)" in _text(_check())


def test_symbol_not_configured() -> None:
    result = _check("--symbol", "TSLA", "--json")
    assert result.exit_code == 4
    assert _rules(result) == ["symbol_not_configured"]


def test_position_size_zero_blocks() -> None:
    result = _check("--premium", "1.50", "--json")  # one contract costs $150 > $100 cap
    assert result.exit_code == 4
    assert _rules(result) == ["position_size"]
    assert (
        "more than the $100.00 position cap" in json.loads(result.stdout)["blocking"][0]["message"]
    )


def test_unreadable_phase_history_blocks(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "phase" / "phase-history.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text("garbage\n{}\n")
    result = _check("--json")
    assert result.exit_code == 4
    assert "phase_unknown" in _rules(result)
    assert "phase-history.jsonl:1" in json.loads(result.stdout)["blocking"][-1]["message"]


@pytest.mark.parametrize(
    "args",
    [["--premium", "abc"], ["--premium", "-1"], ["--at", "noon"], ["--at", "2025-07-01T15:00"]],
)
def test_usage_errors(args: list[str]) -> None:
    result = invoke(["risk", "check", *args])
    assert result.exit_code == 2
    assert result.stdout == ""
