"""The idle-tick test never calls a tick idle when the scalp rule could signal in it."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from tests.conftest import shared_data
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
