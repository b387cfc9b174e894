"""Issue 23: a backtest's numbers can be re-derived from its journals alone — a session-metrics
line for every session (the last one included), the report's trades in the one canonical order,
and one count of refusals, named for what it counts (the `entry_refused` lines)."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from tests.backtest.helpers import ALL_COUNT, backtest
from tests.cli.conftest import invoke
from tests.engine.harness import config, read_jsonl
from tradebot.backtest.engine import BacktestResult
from tradebot.backtest.report import build_report
from tradebot.storage.records import dumps_record

# TSLA's options never fit the $100 cap: its entries are refused (`no_contract`) while the
# other three trade, and every scalp position is flattened in the same second before the close.
BASE = """
[broker.sim]
seed = 7

[trading]
mode = "paper"
symbols = ["SPY", "QQQ", "IWM", "TSLA"]
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[BacktestResult, dict[str, Any]]:
    root = tmp_path_factory.mktemp("bt")
    loaded = config(root, ALL_COUNT, base=BASE)
    result = backtest(loaded, root / "out", start=date(2025, 7, 7), end=date(2025, 7, 9))
    return result, json.loads(dumps_record(build_report(result)))  # as `--json` prints it


def test_every_session_with_a_closed_trade_has_its_line_the_last_included(
    run: tuple[BacktestResult, dict[str, Any]],
) -> None:
    result, _ = run
    out = result.plan.out
    traded = sorted({t["session"] for t in read_jsonl(out / "journal" / "trades.jsonl")})
    lines = read_jsonl(out / "phase" / "session-metrics.jsonl")
    assert traded == ["2025-07-07", "2025-07-08", "2025-07-09"]
    assert [line["session"] for line in lines] == traded  # 2025-07-09, the last, included
    ended = [e["session"] for e in read_jsonl(out / "journal" / "events.jsonl")
             if e["event"] == "session_end"]  # fmt: skip
    assert ended == traded
    trades = read_jsonl(out / "journal" / "trades.jsonl")
    for line in lines:
        pnls = [Decimal(t["pnl"]) for t in trades if t["session"] == line["session"]]
        assert line["trades"] == len(pnls)
        assert Decimal(line["pnl"]) == sum(pnls)


def test_the_report_lists_the_trades_in_the_journals_order(
    run: tuple[BacktestResult, dict[str, Any]],
) -> None:
    """Simultaneous exits (the flatten before the close sells every scalp position in one
    second) are listed losers first, then by trade id, in `journal --json` and in the report's
    equity curve alike."""
    result, report = run
    trades = read_jsonl(result.plan.out / "journal" / "trades.jsonl")
    times = [t["exit_time"] for t in trades]
    tied = [t for t in trades if times.count(t["exit_time"]) > 1]
    assert any(Decimal(t["pnl"]) > 0 for t in tied) and any(Decimal(t["pnl"]) <= 0 for t in tied)
    expected = sorted(trades, key=lambda t: (t["exit_time"], Decimal(t["pnl"]) > 0, t["trade_id"]))
    assert [t["trade_id"] for t in trades] != [t["trade_id"] for t in expected]  # file order

    cfg = result.plan.out / "view.toml"
    cfg.write_text(f'[paths]\nlogs_dir = "{result.plan.out}"\n', encoding="utf-8")
    listed = json.loads(invoke(["--config", str(cfg), "journal", "--json"]).stdout)["trades"]
    assert [t["trade_id"] for t in listed] == [t["trade_id"] for t in expected]

    equity = Decimal(report["base_equity"])
    curve = []
    for t in expected:
        equity += Decimal(t["pnl"])
        curve.append((t["exit_time"], equity))
    assert [(p["exit_time"], Decimal(p["equity"])) for p in report["equity_curve"]] == curve


def test_refusals_are_the_entry_refused_lines(run: tuple[BacktestResult, dict[str, Any]]) -> None:
    result, report = run
    events = read_jsonl(result.plan.out / "journal" / "events.jsonl")
    refused = [e for e in events if e["event"] == "entry_refused"]
    assert refused, "the scenario needs refusals (TSLA's options never fit the cap)"
    counted = report["run"]["entry_refused"]
    assert counted["events"] == len(refused)
    assert counted["by_rule"] == {
        rule: sum(1 for e in refused if e["rule"] == rule) for rule in {e["rule"] for e in refused}
    }


def test_report_json_says_which_anchor_its_drawdown_uses(
    run: tuple[BacktestResult, dict[str, Any]],
) -> None:
    _, report = run
    assert report["drawdown_anchor"] == "risk.paper_equity"
    ladder_end = report["ladder"]["end"]
    assert ladder_end["drawdown"]["anchor"] == "equity_at_window_start"
    assert "the equity when the window began" in ladder_end["drawdown"]["description"]
