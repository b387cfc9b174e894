"""A position still open when the backtest ends is not in the metrics (they count closed
trades); the report must say so rather than show a P&L that silently leaves it out (review)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path

from tests.backtest.helpers import NOW
from tests.engine.harness import config
from tradebot.backtest.engine import run_backtest
from tradebot.backtest.plan import BacktestRequest, prepare
from tradebot.backtest.report import build_report


def test_open_positions_at_the_end_are_a_warning(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    loaded = config(
        tmp_path / "cfg", "", base='[broker.sim]\nseed = 7\n[trading]\nsymbols = ["SPY"]\n'
    )
    request = BacktestRequest(synthetic=True, sessions=1, start=date(2025, 7, 1))
    whole = prepare(dataclasses.replace(request, out=tmp_path / "whole"), loaded, NOW)
    assert build_report(run_backtest(whole))["warnings"] == []  # scalp: flat at the close
    # Stopped inside the session's first trade (14:05 → 15:47 UTC on this seed): it is open.
    plan = prepare(dataclasses.replace(request, out=tmp_path / "cut"), loaded, NOW)
    plan = dataclasses.replace(plan, until=datetime(2025, 7, 1, 15, 0, tzinfo=UTC))
    report = build_report(run_backtest(plan))
    assert report["summary"]["trades"] == 0
    warnings = [w for w in report["warnings"] if "still open" in w]
    assert len(warnings) == 1 and "SPY-250701-s1" in warnings[0], report["warnings"]
    assert "not in the metrics" in warnings[0]
