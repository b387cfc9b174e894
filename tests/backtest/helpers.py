"""Backtest test helpers: a plan from a config and options, run in-process."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

from tradebot.backtest.engine import BacktestResult, run_backtest
from tradebot.backtest.ladder import BacktestOperator
from tradebot.backtest.plan import BacktestRequest, backtest_config, prepare
from tradebot.books.ladder import PhaseLadder
from tradebot.books.trade_journal import TradeJournal
from tradebot.config import LoadedConfig, load_config

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


# trial → scaling on two closed trades, whatever their win rate and R:R, while the drawdown
# stays under 5 %: the ladder's notice and its advance decided by the drawdown alone.
TRIAL_ON_DRAWDOWN = (
    '[phase]\ninitial = "trial"\n[phase.trial]\nmin_sessions = 1\nmin_trades = 2\n'
    "min_win_rate_pct = 0\nmin_avg_rr = 0\nmax_drawdown_pct = 5\n"
)


def operated_ladder(
    root: Path, body: str = TRIAL_ON_DRAWDOWN
) -> tuple[PhaseLadder, BacktestOperator, TradeJournal]:
    """A backtest's ladder on `body`, with its simulated operator and trade journal."""
    (root / "cfg").mkdir(parents=True)
    (root / "cfg" / "config.toml").write_text(body, encoding="utf-8")
    loaded = backtest_config(load_config(root / "cfg" / "config.toml"), root / "out",
                             ("SPY",), None)  # fmt: skip
    operator = BacktestOperator(ladder=None)  # type: ignore[arg-type]
    ladder = PhaseLadder(loaded, notify=operator.notify, cached=True)
    operator.ladder = ladder
    return ladder, operator, TradeJournal(loaded.logs_dir)


def text_of(root: Path, name: str) -> str:
    """The file `name` under a run's logs `root`, or "" when it was never written."""
    path = root / name
    return path.read_text(encoding="utf-8") if path.exists() else ""


def history_of(root: Path) -> list[dict[str, object]]:
    """The phase history's records, without their random `transition_id`s."""
    lines = text_of(root, "phase/phase-history.jsonl").splitlines()
    return [{k: v for k, v in json.loads(x).items() if k != "transition_id"} for x in lines]
