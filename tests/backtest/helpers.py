"""Backtest test helpers: a plan from a config and options, run in-process."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from tradebot.backtest.engine import BacktestResult, run_backtest
from tradebot.backtest.plan import BacktestRequest, prepare
from tradebot.config import LoadedConfig

NOW = datetime(2025, 8, 1, 12, 0, tzinfo=UTC)

# Every phase already counts the simulated broker's trades, so `tradebot run` on this config
# and a backtest of it run the ladder identically.
ALL_COUNT = """
[phase.experience]
counted_modes = ["paper", "sim"]
[phase.proof]
counted_modes = ["live", "sim"]
[phase.trial]
counted_modes = ["live", "sim"]
[phase.scaling]
counted_modes = ["live", "sim"]
"""


def backtest(
    loaded: LoadedConfig,
    out: Path,
    *,
    bars: Path | None = None,
    start: date | None = None,
    end: date | None = None,
    sessions: int | None = None,
    skip: bool = True,
) -> BacktestResult:
    request = BacktestRequest(
        bars=bars,
        synthetic=bars is None,
        sessions=sessions,
        start=start,
        end=end,
        out=out,
    )
    return run_backtest(prepare(request, loaded, NOW), skip_idle_ticks=skip)
