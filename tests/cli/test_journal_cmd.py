"""`tradebot journal`: tables, filters, --json and --csv contracts, exit codes."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path

from tests.cli.conftest import invoke
from tests.factories import trade
from tradebot.core.trades import TRADE_FIELDS

SUMMARY_KEYS = {
    "trades",
    "wins",
    "losses",
    "win_rate",
    "avg_win",
    "avg_loss",
    "avg_rr",
    "expectancy_r",
    "profit_factor",
    "total_pnl",
    "gross_profit",
    "gross_loss",
    "max_drawdown_usd",
    "max_drawdown_pct",
    "best_pnl",
    "worst_pnl",
    "sessions",
    "profitable_sessions",
    "losing_sessions",
    "flat_sessions",
    "consecutive_losses",
}


def _three(journal) -> Path:  # type: ignore[no-untyped-def]
    return journal(
        trade(100, symbol="SPY", strategy="scalp", session=date(2025, 7, 1)),
        trade(-50, symbol="QQQ", strategy="whale", session=date(2025, 7, 2), mode="live"),
        trade(30, symbol="SPY", strategy="whale", session=date(2025, 7, 3)),
    )


def test_empty_journal_is_friendly() -> None:
    result = invoke(["journal"])
    assert result.exit_code == 0
    assert "No closed trades yet" in result.stdout
    assert result.stderr == ""


def test_tables(journal) -> None:  # type: ignore[no-untyped-def]
    _three(journal)
    result = invoke(["journal"])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    for heading in ("Closed trades", "Summary", "By strategy", "By symbol"):
        assert heading in out
    assert "66.7 %" in out  # win rate 2/3
    assert "$80.00" in out  # total P&L
    assert result.stderr == ""


def test_filters(journal) -> None:  # type: ignore[no-untyped-def]
    _three(journal)
    doc = json.loads(invoke(["journal", "--json", "--symbol", "spy"]).stdout)
    assert doc["summary"]["trades"] == 2
    doc = json.loads(invoke(["journal", "--json", "--strategy", "whale", "--mode", "live"]).stdout)
    assert [t["symbol"] for t in doc["trades"]] == ["QQQ"]
    doc = json.loads(invoke(["journal", "--json", "--since", "2025-07-02"]).stdout)
    assert doc["summary"]["trades"] == 2
    doc = json.loads(invoke(["journal", "--json", "--until", "2025-07-01"]).stdout)
    assert doc["summary"]["total_pnl"] == "100.00"
    result = invoke(["journal", "--symbol", "IWM"])
    assert "No trades match the filters (3 in" in result.stdout


def test_json_contract(journal) -> None:  # type: ignore[no-untyped-def]
    _three(journal)
    result = invoke(["journal", "--json"])
    assert result.exit_code == 0
    doc = json.loads(result.stdout)  # exactly one JSON document on stdout
    assert set(doc) == {
        "v",
        "filters",
        "base_equity",
        "drawdown_anchor",
        "summary",
        "by_strategy",
        "by_symbol",
        "trades",
        "warnings",
    }
    assert doc["v"] == 1
    assert set(doc["summary"]) == SUMMARY_KEYS
    assert set(doc["by_strategy"]) == {"scalp", "whale"}
    assert set(doc["by_symbol"]) == {"QQQ", "SPY"}
    assert set(doc["by_symbol"]["SPY"]) == SUMMARY_KEYS
    first = doc["trades"][0]
    assert tuple(first) == TRADE_FIELDS
    # Money and ratios are decimal strings, never floats.
    assert first["pnl"] == "100.00" or isinstance(first["pnl"], str)
    assert isinstance(first["entry_price"], str)
    assert doc["summary"]["total_pnl"] == "80.00"
    assert doc["summary"]["win_rate"] == "0.6667"
    assert first["exit_time"].endswith("Z")


def test_json_on_empty_journal() -> None:
    doc = json.loads(invoke(["journal", "--json"]).stdout)
    assert doc["summary"]["trades"] == 0
    assert doc["trades"] == []


def test_csv_to_stdout_contract(journal) -> None:  # type: ignore[no-untyped-def]
    _three(journal)
    result = invoke(["journal", "--csv", "-"])
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert tuple(rows[0]) == TRADE_FIELDS
    assert len(rows) == 3
    assert rows[0]["entry_time"].endswith("Z")
    assert rows[1]["pnl"] == "-50.00"


def test_csv_to_file(journal, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _three(journal)
    result = invoke(["journal", "--csv", "out/trades.csv", "--mode", "paper"])
    assert result.exit_code == 0
    assert "wrote 2 trade(s)" in result.stdout
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "trades.csv").read_text())))
    assert [r["mode"] for r in rows] == ["paper", "paper"]


def test_chart(journal) -> None:  # type: ignore[no-untyped-def]
    _three(journal)
    result = invoke(["journal", "--chart"])
    assert result.exit_code == 0
    assert "equity after each of 3 trade(s), start 10,000.00, end 10,080.00" in result.stdout
    assert "█" in result.stdout


def test_bad_date_is_usage_error() -> None:
    result = invoke(["journal", "--since", "July 1"])
    assert result.exit_code == 2
    assert "YYYY-MM-DD" in result.stderr
    assert result.stdout == ""


def test_json_and_csv_stdout_conflict() -> None:
    result = invoke(["journal", "--json", "--csv", "-"])
    assert result.exit_code == 2


def test_corrupt_journal_line_is_named(journal, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = _three(journal)
    lines = path.read_text().splitlines()
    lines.insert(1, '{"v": 1, "trade_id": "broken"}')
    path.write_text("\n".join(lines) + "\n")
    result = invoke(["journal"])
    assert result.exit_code == 4
    assert "trades.jsonl:2: not a valid trade record" in result.stderr
    assert "Traceback" not in result.stderr


def test_torn_last_line_is_skipped_with_warning(journal) -> None:  # type: ignore[no-untyped-def]
    path = _three(journal)
    with path.open("a") as fh:
        fh.write('{"v": 1, "trade_id": "half')
    result = invoke(["journal", "--json"])
    assert result.exit_code == 0
    doc = json.loads(result.stdout)
    assert doc["summary"]["trades"] == 3
    assert "torn last line" in doc["warnings"][0]
    assert "torn last line" in result.stderr
