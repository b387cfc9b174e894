"""The real SPY minute bars of July 2025 through `tradebot run --bars` (skips without the data)."""

from __future__ import annotations

import shutil
from datetime import date, datetime
from pathlib import Path

from tests.conftest import shared_data
from tests.engine.harness import config, entry_intents, run, trades, ts
from tradebot.core.trades import session_of

SPY_FILE = "pratikdkale-rl-trade-execution/data/SPY_1min.csv"


def test_replay_of_real_spy_bars(tmp_path: Path) -> None:
    source = shared_data(SPY_FILE)
    bars = tmp_path / "bars"
    bars.mkdir()
    shutil.copy(source, bars / "SPY_1min.csv")  # read at test time, never committed
    loaded = config(
        tmp_path,
        base='[trading]\nmode = "paper"\nsymbols = ["SPY"]\n',
    )
    summary, _ = run(loaded, "2025-07-01", "2025-07-09", bars=bars)
    assert summary.ticks > 300
    intents = entry_intents(loaded)
    days = {session_of(ts(r)) for r in intents}
    assert intents and date(2025, 7, 4) not in days
    for r in intents:
        if session_of(ts(r)) == date(2025, 7, 3):  # 13:00 early close: window ends 12:45
            assert ts(r) < datetime.fromisoformat("2025-07-03T16:45:00+00:00")
    for t in trades(loaded):
        assert t.pnl == (t.exit_price - t.entry_price) * t.qty * t.multiplier - t.commission
        assert t.symbol == "SPY" and 590 < t.strike < 650  # July 2025 SPY was 610–630
