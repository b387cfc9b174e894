"""The IBKR path's speed (issue 11, spec §8): one loop tick for 20 symbols against the gateway
simulator over loopback, with the real ib_async client and the real loop: ≤ 2 s.

The session's first tick is not measured (as in test_loop_speed): it downloads each symbol's
20-session whale range, lists the options and opens their quote lines once for the session
(about 20 s for 20 symbols: ib_async sends at most 45 requests a second, IB's limit being 50).
The ticks measured after it are the loop's steady state: 1-minute bars fetched incrementally,
chains and contracts from the session's cache, quotes from the lines already open, orders,
reconciliation with IB's messages.

Quote lines: 20 symbols' candidate strikes need a few hundred streams. The target is measured
with an account that has them (`broker.market_data_lines = 1000`, IB's quote booster packs);
with IB's default 100 lines the least recently used streams are closed and reopened every
tick, and the 45-requests-a-second limit makes a tick cost 2–4 s (second test, reported with a
looser bound). See docs/decisions.md.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.conftest import median_s
from benchmarks.test_loop_speed import SYMBOLS
from tests.brokers.ibkr.conftest import SimTime, make_rig
from tradebot.config import load_config
from tradebot.gateway_sim import GatewaySim, SimClock, SimSettings

TICK_TARGET_S = 2.0
LINES = 1000
DEFAULT_LINES_BOUND_S = 5.0
FIRST_TICK = datetime(2025, 7, 1, 14, 0, tzinfo=UTC)  # 10:00 New York


class IbkrLoopAtTicks:
    def __init__(self, root: Path, lines: int = LINES) -> None:
        self.runner = asyncio.new_event_loop()
        self.sim = GatewaySim(
            SimSettings(port=0, version=178, symbols=tuple(SYMBOLS)),
            clock=SimClock(FIRST_TICK - timedelta(minutes=1), speed=0),
        )
        self.runner.run_until_complete(self.sim.start())
        root.mkdir(parents=True, exist_ok=True)
        (root / "config.toml").write_text(
            f'[broker]\nkind = "ibkr"\nport = {self.sim.port}\nmarket_data_lines = {lines}\n'
            '[trading]\nmode = "paper"\n'
            f"symbols = {json.dumps(SYMBOLS)}\nmax_concurrent_symbols = 4\n",
            encoding="utf-8",
        )
        self.rig = make_rig(self.sim, load_config(root / "config.toml"))
        assert isinstance(self.rig.clock, SimTime)
        self.runner.run_until_complete(self.rig.start())
        self.times = itertools.count()

    def tick(self) -> None:
        now = FIRST_TICK + next(self.times) * timedelta(minutes=3)
        self.sim.set_time(now)
        self.runner.run_until_complete(self.rig.loop.wake(now, force_tick=True))

    def close(self) -> None:
        self.runner.run_until_complete(self.rig.stop())
        self.runner.run_until_complete(self.sim.stop())
        self.runner.close()


def _measure(benchmark, root: Path, lines: int) -> float:  # type: ignore[no-untyped-def]
    loop = IbkrLoopAtTicks(root, lines)
    try:
        loop.tick()  # the session's first tick (and first look): ranges, listings, quote lines
        benchmark.pedantic(loop.tick, rounds=8, warmup_rounds=0)
        summary = loop.rig.loop.summary
        print(
            f"\nIBKR tick, 20 symbols, {lines} market-data lines: median "
            f"{median_s(benchmark) * 1000:.0f} ms; {summary.ticks} ticks, "
            f"{summary.entries_sent} entries sent, {len(loop.sim.exchange.orders)} orders at the "
            "simulator"
        )
        assert summary.entries_sent > 0  # the ticks did real work
    finally:
        loop.close()
    assert loop.sim.protocol_problems == []
    return median_s(benchmark)


def test_one_ibkr_tick_for_20_symbols(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert _measure(benchmark, tmp_path, LINES) <= TICK_TARGET_S


def test_one_ibkr_tick_for_20_symbols_with_100_lines(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    assert _measure(benchmark, tmp_path, 100) <= DEFAULT_LINES_BOUND_S
