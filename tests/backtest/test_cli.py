"""`tradebot backtest` from the command line: isolation, bad input, the --json contract."""

from __future__ import annotations

import hashlib
import json
from decimal import Decimal
from pathlib import Path

import pytest

from tests.cli.conftest import invoke
from tests.cli.test_journal_cmd import SUMMARY_KEYS
from tests.factories import trade
from tradebot.books.trade_journal import TradeJournal

CONFIG = '[trading]\nsymbols = ["SPY"]\n'
SYNTH = ["backtest", "--synthetic", "--sessions", "2", "--from", "2025-07-01"]
HEADER = "timestamp,open,high,low,close,volume\n"


def _tree(root: Path, skip: Path | None = None) -> dict[str, str]:
    """Every file under `root` (but `skip`) with the sha256 of its bytes and its mode."""
    out = {}
    for path in sorted(root.rglob("*")):
        if skip is not None and path.is_relative_to(skip):
            continue
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            out[str(path.relative_to(root))] = f"{digest} {path.stat().st_mode:o}"
        else:
            out[str(path.relative_to(root))] = "dir"
    return out


def _live_logs(tmp_path: Path) -> None:
    TradeJournal(tmp_path / "logs").append(trade(50, mode="paper"))
    (tmp_path / "logs" / "state").mkdir(parents=True)
    (tmp_path / "logs" / "state" / "halt.json").write_text("{}\n")


def test_nothing_is_written_outside_out(write_config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_config(CONFIG)
    _live_logs(tmp_path)
    before = _tree(tmp_path)
    result = invoke([*SYNTH, "--out", "results", "--json"])
    assert result.exit_code == 0, result.stderr
    assert _tree(tmp_path, skip=tmp_path / "results") == before
    out = tmp_path / "results"
    assert (out / "journal" / "orders.jsonl").exists() and (out / "report.json").exists()
    assert json.loads(result.stdout)["out"] == str(out)


def test_the_default_out_is_a_new_folder_under_logs_backtests(write_config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_config(CONFIG)
    _live_logs(tmp_path)
    before = _tree(tmp_path / "logs")
    first = json.loads(invoke([*SYNTH, "--json"]).stdout)["out"]
    second = json.loads(invoke([*SYNTH, "--json"]).stdout)["out"]
    backtests = tmp_path / "logs" / "backtests"
    assert first != second
    assert Path(first).parent == backtests and Path(second).parent == backtests
    assert _tree(tmp_path / "logs", skip=backtests) == before  # the live journals untouched
    assert not (tmp_path / "logs" / "tradebot.log").exists()


def _bars(tmp_path: Path, rows: list[str], header: str = HEADER) -> None:
    (tmp_path / "bars").mkdir()
    (tmp_path / "bars" / "SPY.csv").write_text(header + "".join(r + "\n" for r in rows))


GOOD = ["2025-07-01 09:30:00,1,1,1,1,1", "2025-07-01 09:31:00,1,1,1,1,1"]


@pytest.mark.parametrize(
    ("setup", "args", "code", "message"),
    [
        (None, ["--bars", "nope"], 3, "--bars nope: no such directory"),
        ("empty", ["--bars", "bars"], 3, "no <SYMBOL>.csv files"),
        ("columns", ["--bars", "bars"], 3, "missing column(s) volume"),
        ("unsorted", ["--bars", "bars"], 3, "row 3: time '2025-07-01 09:30:00' is before"),
        ("duplicate", ["--bars", "bars"], 3, "row 3: duplicate time"),
        ("good", ["--bars", "bars", "--from", "2025-07-10", "--to", "2025-07-01"], 2,
         "--from 2025-07-10 is after --to 2025-07-01"),
        ("good", ["--bars", "bars", "--from", "2025-08-01"], 2, "no session with bars between"),
        ("good", ["--bars", "bars", "--symbols", "QQQ"], 3, "no bars for QQQ"),
        (None, [], 2, "give either --bars DIR"),
        (None, ["--synthetic"], 2, "--synthetic needs --sessions N"),
        (None, ["--synthetic", "--sessions", "0"], 2, "--sessions must be 1–"),
        (None, ["--synthetic", "--sessions", "2", "--from", "July"], 2, "--from 'July' is not"),
        ("good", ["--bars", "bars", "--sessions", "3"], 2, "--sessions and --seed go with"),
        ("good", ["--bars", "bars", "--symbols", "SPY,,spy"], 2, "lists a symbol twice"),
        ("full_out", ["--synthetic", "--sessions", "2", "--out", "out"], 2, "already has files"),
        (None, ["--synthetic", "--sessions", "2", "--out", "logs"], 2, "holds the live journals"),
    ],
)  # fmt: skip
def test_bad_input_is_one_line_and_writes_nothing(  # type: ignore[no-untyped-def]
    write_config, tmp_path: Path, setup: str | None, args: list[str], code: int, message: str
) -> None:
    write_config(CONFIG)
    if setup == "empty":
        (tmp_path / "bars").mkdir()
    elif setup == "columns":
        _bars(tmp_path, ["2025-07-01 09:30:00,1,1,1,1"], "timestamp,open,high,low,close\n")
    elif setup == "unsorted":
        _bars(tmp_path, list(reversed(GOOD)))
    elif setup == "duplicate":
        _bars(tmp_path, [GOOD[0], GOOD[0]])
    elif setup == "good":
        _bars(tmp_path, GOOD)
    elif setup == "full_out":
        (tmp_path / "out").mkdir()
        (tmp_path / "out" / "x").write_text("mine")
    before = _tree(tmp_path)
    result = invoke(["backtest", *args])
    assert result.exit_code == code, result.stderr
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert _tree(tmp_path) == before


def test_json_contract(write_config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    write_config('[broker.sim]\nseed = 7\n[trading]\nsymbols = ["SPY", "QQQ"]\n')
    result = invoke([*SYNTH, "--out", "out", "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc == json.loads((tmp_path / "out" / "report.json").read_text())
    assert set(doc) == {
        "v", "source", "range", "symbols", "out", "base_equity", "drawdown_anchor", "summary",
        "by_strategy", "by_symbol", "equity_curve", "ladder", "pricing", "option_quotes", "run",
        "warnings",
    }  # fmt: skip
    assert doc["v"] == 1
    assert doc["source"] == {"kind": "synthetic", "description": "synthetic market (seed 7)",
                             "seed": 7}  # fmt: skip
    assert doc["range"] == {"from": "2025-07-01", "to": "2025-07-02", "sessions": 2}
    assert doc["symbols"] == ["SPY", "QQQ"] and doc["base_equity"] == "10000"
    assert set(doc["summary"]) == SUMMARY_KEYS
    trades = doc["summary"]["trades"]
    assert trades > 0 and doc["run"]["trades"] == trades
    assert set(doc["by_symbol"]) <= {"SPY", "QQQ"} and set(doc["by_strategy"]) <= {"scalp", "whale"}
    assert all(set(v) == SUMMARY_KEYS for v in doc["by_symbol"].values())
    assert len(doc["equity_curve"]) == trades
    assert set(doc["equity_curve"][0]) == {"exit_time", "equity"}
    last = Decimal(doc["equity_curve"][-1]["equity"])
    assert last == Decimal(10000) + Decimal(doc["summary"]["total_pnl"])
    ladder = doc["ladder"]
    assert set(ladder) == {"initial", "counted_modes", "operator_advances", "steps", "end",
                           "warnings"}  # fmt: skip
    assert ladder["initial"] == "experience" and ladder["operator_advances"] is True
    assert ladder["counted_modes"]["experience"] == ["paper", "sim"]
    end = ladder["end"]
    assert set(end) == {"phase", "next_phase", "since", "counted_modes", "eligible", "criteria",
                        "metrics", "limits", "drawdown", "downgrade"}  # fmt: skip
    assert end["phase"] == "experience" and end["next_phase"] == "proof"
    assert {c["name"] for c in end["criteria"]} == {
        "profitable_sessions", "trades", "win_rate", "avg_rr"}  # fmt: skip
    assert all(set(c) == {"name", "op", "required", "actual", "met", "unit", "note"}
               for c in end["criteria"])  # fmt: skip
    assert "Black–Scholes" in doc["pricing"] and "option quotes were modelled" in doc["pricing"]
    quotes = doc["option_quotes"]
    assert set(quotes) == {"real", "modelled", "source"}
    assert quotes["real"] == 0 and quotes["modelled"] > 0 and quotes["source"] is None
    assert set(doc["run"]) == {"bars", "ticks", "ticks_skipped", "wakes", "entries_sent",
                               "entry_refused", "trades", "seconds", "bars_per_second",
                               "final_equity"}  # fmt: skip
    assert doc["run"]["bars"] == 2 * 2 * 390
    assert doc["warnings"] == []


def test_rich_report_on_a_terminal_shape(write_config) -> None:  # type: ignore[no-untyped-def]
    write_config(CONFIG)
    result = invoke([*SYNTH, "--out", "out"])
    assert result.exit_code == 0, result.stderr
    for text in ("Backtest SPY", "Summary", "By strategy", "By symbol", "Ladder replay",
                 "Criteria for proof", "Black–Scholes", "equity after each"):  # fmt: skip
        assert text in result.stdout, text
