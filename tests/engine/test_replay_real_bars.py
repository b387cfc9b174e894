"""The real SPY minute bars in ../shared/data through `tradebot run --bars` (skips without
the data): July 2025 in-process, and every SPY minute file in its own `tradebot run` process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path

import pytest

from tests.conftest import shared_data
from tests.engine.harness import config, entry_intents, run, trades, ts
from tradebot.config import load_config
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


def _oldest_first(source: Path, target: Path) -> None:
    """masonblier's file is newest first, which `--bars` refuses with a sort hint: sorted here
    the way its hint says, as an operator would."""
    header, *rows = source.read_text(encoding="utf-8").splitlines()
    target.write_text("\n".join([header, *sorted(rows)]) + "\n", encoding="utf-8")


# Each of the real SPY minute files: (file, first session, the day after the last, price range).
REAL_SPY_FILES = [
    (SPY_FILE, "2025-07-01", "2025-07-04", (590, 650)),
    # UTC times with an offset, extended hours, a symbol column and extra columns.
    ("dawsh2-admf-trader/data/SPY_1min.csv~", "2025-04-24", "2025-04-26", (480, 600)),
    # New York times without an offset, regular hours only, newest first.
    ("masonblier-eqker/data/SPY_1min.csv", "2019-02-11", "2019-02-16", (240, 310)),
]


@pytest.mark.parametrize(("name", "start", "until", "strikes"), REAL_SPY_FILES)
def test_every_real_spy_file_replays_through_tradebot_run_bars(
    tmp_path: Path, name: str, start: str, until: str, strikes: tuple[int, int]
) -> None:
    """`tradebot run --bars` as an operator runs it, in its own process, over each file."""
    source = shared_data(name)
    bars = tmp_path / "bars"
    bars.mkdir()
    if name.startswith("masonblier"):
        _oldest_first(source, bars / "SPY.csv")
    else:
        shutil.copy(source, bars / "SPY.csv")  # read at test time, never committed
    (tmp_path / "config.toml").write_text(
        '[trading]\nmode = "paper"\nsymbols = ["SPY"]\n', encoding="utf-8"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    command = [sys.executable, "-m", "tradebot", "run", "--bars", "bars"]
    command += ["--start", start, "--until", until]
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "run ended at" in done.stdout and "Traceback" not in done.stderr
    loaded = load_config(tmp_path / "config.toml")
    intents = entry_intents(loaded)
    assert intents, done.stdout
    lo, hi = strikes
    for record in intents:
        assert session_of(ts(record)).isoformat() >= start
        assert lo < float(record["contract"]["strike"]) < hi
    closed = trades(loaded)
    assert closed
    for t in closed:
        assert t.pnl == (t.exit_price - t.entry_price) * t.qty * t.multiplier - t.commission
