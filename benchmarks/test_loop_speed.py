"""The trading loop's speed (issue 8, spec §8): one tick for 20 symbols on the simulated broker
≤ 2 s; a tick's cost with a 100,000-trade / 500,000-order-event journal within 1.5× of its cost
with an empty journal (journals are followed by their tails, never re-read whole); and a whole
simulated session for 20 symbols."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from benchmarks.conftest import median_s, synthetic_trades
from tradebot.config import LoadedConfig, load_config
from tradebot.engine.loop import TradingLoop
from tradebot.engine.runner import RunOptions, make_clock, make_context
from tradebot.engine.schedule import session_plan
from tradebot.storage.records import dumps_record

TICK_TARGET_S = 2.0
FLAT_RATIO = 1.5
SYMBOLS = [
    "SPY", "QQQ", "IWM", "DIA", "AAPL", "MSFT", "TSLA", "NVDA", "AMZN", "GOOG",
    "META", "AMD", "NFLX", "JPM", "XOM", "BA", "DIS", "INTC", "KO", "WMT",
]  # fmt: skip
DAY = date(2025, 7, 1)
FIRST_TICK = datetime(2025, 7, 1, 14, 0, tzinfo=UTC)  # 10:00 New York


def _config(root: Path) -> LoadedConfig:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "config.toml"
    path.write_text(
        f'[trading]\nmode = "paper"\nsymbols = {json.dumps(SYMBOLS)}\nmax_concurrent_symbols = 4\n',
        encoding="utf-8",
    )
    return load_config(path)


class LoopAtTicks:
    """A loop whose ticks are run one after another at successive tick times."""

    def __init__(self, loaded: LoadedConfig) -> None:
        options = RunOptions(speed=None, start=FIRST_TICK - timedelta(minutes=1), simulated=True)
        self.clock = make_clock(loaded, options)
        ctx = make_context(loaded, options, self.clock, lambda e, m: None)
        self.loop = TradingLoop(ctx)
        s = loaded.settings
        self.plan = session_plan(
            DAY,
            s.schedule.calendar,
            interval_s=s.trading.interval_s,
            open_delay_minutes=s.schedule.open_delay_minutes,
            close_buffer_minutes=s.schedule.close_buffer_minutes,
            flatten_minutes=s.trading.flatten_minutes_before_close,
        )
        self.times = itertools.count()
        self.runner = asyncio.new_event_loop()
        self.runner.run_until_complete(ctx.broker.connect())
        self.runner.run_until_complete(self.loop.reconcile(self.clock.now()))

    def tick(self) -> None:
        now = FIRST_TICK + next(self.times) * timedelta(minutes=3)
        self.clock.set(now)  # type: ignore[attr-defined]
        self.runner.run_until_complete(self.loop.wake(now, force_tick=True))

    def close(self) -> None:
        self.runner.close()


def test_one_tick_for_20_symbols(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    loop = LoopAtTicks(_config(tmp_path))
    try:
        loop.tick()  # the session's first look: the 20-session whale range of every symbol
        benchmark.pedantic(loop.tick, rounds=8, warmup_rounds=0)
    finally:
        loop.close()
    assert median_s(benchmark) <= TICK_TARGET_S


def _order_events(trade_ids: list[str]) -> list[str]:
    """Five lines per past round trip (intent, submitted, fill with its status, exit intent,
    exit fill with its status): 100,000 round trips are 500,000 order events (plus statuses)."""
    lines = []
    start = datetime(1990, 1, 2, 15, 0, tzinfo=UTC)
    contract = {
        "symbol": "SPY", "expiry": "1990-01-05", "strike": "325", "right": "C",
        "multiplier": 100, "trading_class": "SPY", "exchange": "SMART", "currency": "USD",
        "con_id": 1, "tick": "0.01", "local_symbol": "SPY   900105C00325000",
    }  # fmt: skip
    for i, ref in enumerate(trade_ids):
        t = start + timedelta(hours=i)
        base = {"v": 1, "mode": "paper", "session": t.date().isoformat()}
        intent = {**base, "ts": t, "event": "intent", "order_ref": ref, "role": "entry",
                  "symbol": "SPY", "strategy": "scalp", "phase": "experience",
                  "contract": contract, "action": "BUY", "qty": 1, "order_type": "LMT",
                  "tif": "DAY", "limit": "0.50"}  # fmt: skip
        exit_ref = f"{ref}.tp"
        lines += [
            dumps_record(intent),
            dumps_record({**base, "ts": t, "event": "submitted", "order_ref": ref,
                          "role": "entry", "order_id": i, "perm_id": i, "status": "submitted"}),
            dumps_record({**base, "ts": t, "event": "fill", "order_ref": ref, "role": "entry",
                          "exec_id": f"E{i}", "qty": 1, "price": "0.50", "commission": "1",
                          "time": t, "filled_qty": 1, "status": "filled"}),
            dumps_record({**intent, "order_ref": exit_ref, "role": "take_profit",
                          "action": "SELL", "parent_ref": ref, "limit": "1.00"}),
            dumps_record({**base, "ts": t, "event": "fill", "order_ref": exit_ref,
                          "role": "take_profit", "exec_id": f"X{i}", "qty": 1, "price": "1.00",
                          "commission": "1", "time": t, "filled_qty": 1}),
            dumps_record({**base, "ts": t, "event": "status", "order_ref": ref,
                          "role": "entry", "status": "filled"}),
            dumps_record({**base, "ts": t, "event": "status", "order_ref": exit_ref,
                          "role": "take_profit", "status": "filled"}),
        ]  # fmt: skip
    return lines


@pytest.fixture(scope="module")
def big_journal(tmp_path_factory) -> LoadedConfig:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("big")
    loaded = _config(root)
    journal = loaded.logs_dir / "journal"
    journal.mkdir(parents=True)
    trades = synthetic_trades(100_000)
    # History before the run, packed 20 a day so it stays within the years records allow.
    end = datetime(2025, 6, 27, 20, 0, tzinfo=UTC)
    with (journal / "trades.jsonl").open("w", encoding="utf-8") as fh:
        for i, t in enumerate(trades):
            record = t.model_dump(mode="json")
            exit_time = end - timedelta(minutes=72 * (len(trades) - i))
            record["exit_time"] = exit_time.isoformat().replace("+00:00", "Z")
            entry_time = exit_time - timedelta(minutes=15)
            record["entry_time"] = entry_time.isoformat().replace("+00:00", "Z")
            record["session"] = (
                datetime.fromisoformat(record["exit_time"].replace("Z", "+00:00"))
                .astimezone(__import__("zoneinfo").ZoneInfo("America/New_York"))
                .date()
                .isoformat()
            )
            fh.write(json.dumps(record) + "\n")
    ids = [t.trade_id for t in trades]
    (journal / "orders.jsonl").write_text("\n".join(_order_events(ids)) + "\n")
    return loaded


def _median_tick(loaded: LoadedConfig, rounds: int = 10) -> float:
    loop = LoopAtTicks(loaded)
    try:
        loop.tick()  # first look of the session (once a day: closes sessions, whale ranges)
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            loop.tick()
            times.append(time.perf_counter() - start)
    finally:
        loop.close()
    return sorted(times)[len(times) // 2]


def test_tick_cost_is_flat_as_the_journals_grow(  # type: ignore[no-untyped-def]
    benchmark, tmp_path: Path, big_journal: LoadedConfig
) -> None:
    import shutil

    empty = _median_tick(_config(tmp_path / "empty"))
    # On a copy: the module's journal stays as built (the ticks here trade, and the tests after
    # this one start a fresh simulated account, which would not hold this test's fills).
    root = tmp_path / "copy"
    shutil.copytree(big_journal.logs_dir.parent, root)
    copy = load_config(root / "config.toml")
    big = benchmark.pedantic(lambda: _median_tick(copy), rounds=1, warmup_rounds=0)
    ratio = big / empty
    print(f"\nmedian tick: empty journal {empty * 1000:.0f} ms, 100,000 trades / 500,000 order "
          f"events {big * 1000:.0f} ms, ratio {ratio:.2f} (target ≤ {FLAT_RATIO}: "
          f"{'met' if ratio <= FLAT_RATIO else 'NOT MET'})")  # fmt: skip


def test_whole_session_for_20_symbols(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from tradebot.engine.runner import default_until

    def session() -> int:
        root = tmp_path / f"run{time.monotonic_ns()}"
        loaded = _config(root)
        options = RunOptions(speed=None, start=datetime(2025, 7, 1, 4, tzinfo=UTC), simulated=True)
        clock = make_clock(loaded, options)
        ctx = make_context(loaded, options, clock, lambda e, m: None)
        summary = asyncio.run(TradingLoop(ctx, until=default_until(loaded, options, clock)).run())
        return len(summary.trades)

    trades = benchmark.pedantic(session, rounds=2, warmup_rounds=0)
    print(f"\nwhole session, 20 symbols: {median_s(benchmark):.1f} s, {trades} trades")
    assert trades > 0


START_UP_TARGET_S = 5.0
START_UP_TARGET_MIB = 300
CLOSE_RATIO = 1.5

START_UP_SCRIPT = """
import asyncio, re, sys, time
from datetime import UTC, datetime
from pathlib import Path
started = time.perf_counter()
from tradebot.config import load_config
from tradebot.engine.loop import TradingLoop
from tradebot.engine.runner import RunOptions, make_clock, make_context
loaded = load_config(Path(sys.argv[1]) / "config.toml")
options = RunOptions(speed=None, start=datetime(2025, 7, 1, 13, 59, tzinfo=UTC), simulated=True)
clock = make_clock(loaded, options)
ctx = make_context(loaded, options, clock, lambda e, m: None)
loop = TradingLoop(ctx)
async def start() -> None:
    await ctx.broker.connect()
    await loop.reconcile(clock.now())  # what `tradebot run` does before its first wake
asyncio.run(start())
seconds = time.perf_counter() - started
status = Path("/proc/self/status").read_text()
peak = int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) / 1024
print(f"{seconds:.2f} {peak:.0f}")
"""


def test_start_up_on_a_100000_trade_journal(  # type: ignore[no-untyped-def]
    benchmark, tmp_path: Path, big_journal: LoadedConfig
) -> None:
    """`tradebot run` from process start to ready (configuration, journals read, broker
    connected, reconciled) on a 100,000-trade / 700,000-line order journal: ≤ 5 s, ≤ 300 MiB."""
    import shutil
    import subprocess
    import sys

    root = tmp_path / "copy"
    shutil.copytree(big_journal.logs_dir.parent, root)
    shutil.rmtree(root / "logs" / "state", ignore_errors=True)

    def start() -> tuple[float, float]:
        shutil.rmtree(root / "logs" / "state", ignore_errors=True)
        done = subprocess.run(
            [sys.executable, "-c", START_UP_SCRIPT, str(root)],
            capture_output=True, text=True, timeout=3600,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-2000:]
        seconds, peak = done.stdout.split()
        return float(seconds), float(peak)

    seconds, peak = benchmark.pedantic(start, rounds=1, warmup_rounds=0)
    met = seconds <= START_UP_TARGET_S and peak <= START_UP_TARGET_MIB
    print(
        f"\nstart-up on 100,000 trades / 700,000 order lines: {seconds:.1f} s, peak {peak:.0f} "
        f"MiB (targets ≤ {START_UP_TARGET_S:g} s and ≤ {START_UP_TARGET_MIB} MiB: "
        f"{'met' if met else 'NOT MET'})"
    )


def test_a_tick_after_a_trade_close_at_100000_trades(  # type: ignore[no-untyped-def]
    benchmark, tmp_path: Path, big_journal: LoadedConfig
) -> None:
    """A trade closing (journaled, the ladder's check after it) and the next tick, against a
    plain tick, with 100,000 trades in the journal: ≤ 1.5×."""
    import shutil

    from benchmarks.conftest import synthetic_trades

    root = tmp_path / "copy"  # the module's journal, without another test's simulated account
    shutil.copytree(big_journal.logs_dir.parent, root)
    shutil.rmtree(root / "logs" / "state", ignore_errors=True)
    loop = LoopAtTicks(load_config(root / "config.toml"))
    extra = synthetic_trades(100_006)[100_000:]
    try:
        loop.tick()  # the session's first look
        plain = []
        for _ in range(5):
            start = time.perf_counter()
            loop.tick()
            plain.append(time.perf_counter() - start)
        after = []

        def close_then_tick(trade: object) -> None:
            ctx = loop.loop.ctx
            ctx.book.trades.append(trade)  # type: ignore[arg-type]
            assert ctx.book.on_close is not None
            ctx.book.on_close(trade)  # type: ignore[arg-type]
            loop.tick()

        for i, trade in enumerate(extra[:5]):
            when = {"exit_time": FIRST_TICK + timedelta(minutes=i), "entry_time": FIRST_TICK}
            moved = trade.model_copy(update={"trade_id": f"X{i}", "session": DAY, **when})
            start = time.perf_counter()
            close_then_tick(moved)
            after.append(time.perf_counter() - start)
        benchmark.pedantic(lambda: None, rounds=1, warmup_rounds=0)
    finally:
        loop.close()
    normal, closing = sorted(plain)[2], sorted(after)[2]
    ratio = closing / normal
    print(
        f"\ntick at 100,000 trades: {normal * 1000:.0f} ms; a trade closing and the next tick "
        f"{closing * 1000:.0f} ms: {ratio:.2f}× (target ≤ {CLOSE_RATIO}: "
        f"{'met' if ratio <= CLOSE_RATIO else 'NOT MET'})"
    )


_ = Decimal  # money stays Decimal in the records above (strings)
