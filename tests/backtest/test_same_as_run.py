"""One code path: a backtest writes the journals `tradebot run` writes on the same bars, seed
and configuration — the same orders, fills, trades, prices and P&L, byte for byte — while
leaving out the ticks in which the loop provably does nothing."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from tests.backtest.helpers import ALL_COUNT, backtest, history_of, text_of
from tests.conftest import shared_data
from tests.engine.harness import config, run
from tradebot.config import LoadedConfig

BASE = """
[broker.sim]
seed = 7

[trading]
mode = "paper"
symbols = ["SPY", "QQQ"]
"""
FILES = ("journal/orders.jsonl", "journal/trades.jsonl", "journal/events.jsonl")


def _assert_same(live: LoadedConfig, out: Path) -> None:
    for name in FILES:
        assert text_of(out, name) == text_of(live.logs_dir, name), name
    assert text_of(out, "phase/session-metrics.jsonl") == text_of(
        live.logs_dir, "phase/session-metrics.jsonl"
    )
    assert history_of(out) == history_of(live.logs_dir)


def test_synthetic_backtest_writes_what_run_writes(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    loaded = config(tmp_path / "run", ALL_COUNT, base=BASE)
    summary, _ = run(loaded, "2025-07-01", "2025-07-04")  # three sessions (07-03 closes early)
    result = backtest(loaded, tmp_path / "bt", start=date(2025, 7, 1), end=date(2025, 7, 3))
    assert len(summary.trades) >= 5
    assert result.ticks_skipped > 0  # idle ticks were left out ...
    assert result.summary.ticks + result.ticks_skipped == summary.ticks  # ... and only those
    assert [t.model_dump() for t in result.summary.trades] == [
        t.model_dump() for t in summary.trades
    ]
    _assert_same(loaded, tmp_path / "bt")


@pytest.mark.shared_data
def test_csv_backtest_writes_what_run_writes(tmp_path: Path) -> None:
    source = shared_data("pratikdkale-rl-trade-execution/data/SPY_1min.csv")
    bars = tmp_path / "bars"
    bars.mkdir()
    (bars / "SPY.csv").symlink_to(source)
    (tmp_path / "run").mkdir()
    loaded = config(tmp_path / "run", ALL_COUNT, base=BASE.replace('"SPY", "QQQ"', '"SPY"'))
    summary, _ = run(loaded, "2025-07-28", "2025-07-31", bars=bars)
    result = backtest(loaded, tmp_path / "bt", bars=bars, start=date(2025, 7, 28))
    assert summary.trades
    assert result.summary.ticks + result.ticks_skipped == summary.ticks
    _assert_same(loaded, tmp_path / "bt")
