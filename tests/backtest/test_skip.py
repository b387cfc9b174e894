"""The idle-tick test never calls a tick idle when the scalp rule could signal in it."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from tests.backtest.helpers import backtest
from tests.conftest import shared_data
from tests.engine.harness import config
from tradebot.backtest.skip import SessionSignals
from tradebot.config import ScalpConfig, WhaleConfig
from tradebot.core.sessions import sessions_between
from tradebot.core.strategies import scalp_signal
from tradebot.engine.schedule import session_plan
from tradebot.market import make_market
from tradebot.market.model import MarketModel


def _check(market: MarketModel, symbol: str, days: list[date], cfg: ScalpConfig) -> int:
    """Every tick where the loop's scalp rule signals must be 'possible'; returns how many
    ticks were called idle."""
    idle = 0
    for day in days:
        bars = market.session_bars(symbol, day)
        signals = SessionSignals(bars, cfg, WhaleConfig(enabled=False), "XNYS")
        plan = session_plan(
            day,
            "XNYS",
            interval_s=60,
            open_delay_minutes=0,
            close_buffer_minutes=0,
            flatten_minutes=0,
        )
        for tick in plan.ticks():
            now: datetime = tick
            real = scalp_signal(market.completed_bars(symbol, day, now), cfg, now=now)
            possible = signals.possible(int(now.timestamp()) * 1_000_000_000, None)
            assert possible or not real.is_entry, (symbol, now, real.reason)
            idle += not possible
    return idle


@pytest.mark.parametrize("symbol", ["SPY", "TSLA"])
def test_synthetic_sessions(symbol: str) -> None:
    market = make_market(seed=3)
    days = sessions_between(date(2025, 7, 1), date(2025, 7, 3))
    assert _check(market, symbol, days, ScalpConfig()) > 0
    wide = ScalpConfig(min_bars=22, rsi_buy=(40, 90), rsi_sell=(10, 60))
    _check(market, symbol, days, wide)


@pytest.mark.shared_data
def test_real_spy_sessions() -> None:
    path = shared_data("pratikdkale-rl-trade-execution/data/SPY_1min.csv")
    market = make_market(bars_dir=path.parent)
    days = sessions_between(date(2025, 7, 7), date(2025, 7, 10))
    assert _check(market, "SPY", days, ScalpConfig()) > 0


def test_ticks_left_out_are_counted_right_when_the_flatten_comes_before_the_window_closes(
    tmp_path: Path,
) -> None:
    """The report's "N idle ticks left out" counted grid times after the entry window had
    closed (here: flatten 30 minutes before the close, window closing 15 minutes before) as
    ticks. Only ticks `tradebot run` would have run may be counted; the journals stay the same."""
    (tmp_path / "cfg").mkdir()
    loaded = config(
        tmp_path / "cfg",
        "",
        base='[broker.sim]\nseed = 11\n[trading]\nsymbols = ["SPY"]\ninterval_s = 60\n'
        "flatten_minutes_before_close = 30\n",
    )
    on = backtest(loaded, tmp_path / "on", start=date(2025, 7, 1), sessions=2)
    off = backtest(loaded, tmp_path / "off", start=date(2025, 7, 1), sessions=2, skip=False)
    assert on.ticks_skipped > 0
    assert on.summary.ticks + on.ticks_skipped == off.summary.ticks
    for name in ("journal/orders.jsonl", "journal/trades.jsonl", "journal/events.jsonl"):
        assert (tmp_path / "on" / name).read_text() == (tmp_path / "off" / name).read_text()
