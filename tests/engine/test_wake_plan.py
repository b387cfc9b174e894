"""The loop wakes only when something can happen (issue 19): an idle session costs a handful of
wakes whatever the tick interval, and the state another process may change is stat'ed once a
wake and read again only when it changed."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from time import sleep
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from tests.backtest.helpers import backtest
from tests.engine.harness import Recorder, config, entry_intents, events, read_jsonl
from tests.phase_helpers import transition
from tradebot.books.state_store import HALT_FILE
from tradebot.brokers.base import BracketSpec, BrokerError, PlacedOrder
from tradebot.brokers.sim import SimBroker
from tradebot.engine.loop import RunSummary, TradingLoop
from tradebot.engine.runner import RunOptions, default_until, make_clock, make_context
from tradebot.storage import not_durable
from tradebot.storage.watch import RACY_NS

QUIET = "[strategies.scalp]\nenabled = false\n[strategies.whale]\nenabled = false\n"


@pytest.mark.parametrize("interval", [60, 300])
def test_an_idle_session_costs_a_few_wakes_not_one_per_tick(tmp_path: Path, interval: int) -> None:
    """No signal is possible: a session is its open, its first tick, the flatten and the close,
    however many ticks its schedule has; ten sessions cost ten times one."""
    base = f'[broker.sim]\nseed = 3\n[trading]\nsymbols = ["SPY", "QQQ"]\ninterval_s = {interval}\n'
    (tmp_path / "cfg").mkdir()
    loaded = config(tmp_path / "cfg", QUIET, base=base)
    one = backtest(loaded, tmp_path / "one", start=date(2025, 6, 2), sessions=1)
    ten = backtest(loaded, tmp_path / "ten", start=date(2025, 6, 2), sessions=10)
    per_session_ticks = (390 - 5 - 15) * 60 // interval
    assert one.summary.ticks + one.ticks_skipped == per_session_ticks
    assert one.summary.ticks == 1  # the first tick of the session runs, the rest are idle
    assert one.wakes <= 6
    assert ten.wakes <= 10 * one.wakes
    assert ten.summary.ticks + ten.ticks_skipped == 10 * per_session_ticks


def _write_from_another_process(code: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-c", code], cwd=cwd, check=True, timeout=60)
    # A file read within two clock ticks of its write is read once more at the next wake
    # (storage.watch's racy rule); this test counts reads of files that are settled.
    sleep(RACY_NS / 1e9)


def test_a_state_file_changed_by_another_process_is_seen_at_the_next_wake(tmp_path: Path) -> None:
    """Unchanged, the halt and the phase history are read once and then only stat'ed (once a
    wake); written by another process, each is read again at the next wake and acted on."""
    loaded = config(
        tmp_path, base='[broker.sim]\nseed = 7\n[trading]\nmode = "paper"\nsymbols = ["SPY"]\n'
    )
    options = RunOptions(speed=None, start=datetime(2025, 7, 1, 13, 0, tzinfo=UTC), simulated=True)
    clock = make_clock(loaded, options)
    ctx = make_context(loaded, options, clock, Recorder())
    loop = TradingLoop(ctx)
    wakes = [datetime(2025, 7, 1, 14, 0, tzinfo=UTC) + timedelta(minutes=3 * i) for i in range(9)]

    def reads() -> tuple[int, int, int, int]:
        halt_reads, halt_stats = ctx.state.reads(HALT_FILE)
        return (
            halt_reads,
            halt_stats,
            ctx.ladder.records.history_reads(),
            len(entry_intents(loaded)),
        )

    async def go() -> list[tuple[int, ...]]:
        await ctx.broker.connect()
        seen = []
        for i, now in enumerate(wakes):
            if i == 3:  # `tradebot halt` in another terminal
                _write_from_another_process(
                    "from datetime import datetime, UTC\n"
                    "from tradebot.books.halt import KillSwitch\n"
                    f"KillSwitch({str(loaded.state_dir)!r}, {str(loaded.logs_dir)!r}).halt("
                    "datetime(2025, 7, 1, 14, 8, tzinfo=UTC), operator='ops', reason='news')\n",
                    tmp_path,
                )
            if i == 6:  # a forced move recorded by `tradebot phase` in another terminal
                record = transition("proof", now - timedelta(seconds=30), frm="experience",
                                    trigger="manual_override").as_record()  # fmt: skip
                _write_from_another_process(
                    "import json, sys\nfrom tradebot.books.phase_records import PhaseRecords\n"
                    f"PhaseRecords({str(loaded.logs_dir)!r}).history.append("
                    f"json.loads({json.dumps(record, default=str)!r}))\n",
                    tmp_path,
                )
            clock.set(now)  # type: ignore[attr-defined]
            before = reads()
            await loop.wake(now)
            after = reads()
            seen.append(tuple(a - b for a, b in zip(after, before, strict=True)))
        await ctx.broker.disconnect()
        return seen

    per_wake = asyncio.run(go())
    halt_reads = [r[0] for r in per_wake]
    history_reads = [r[2] for r in per_wake]
    # One stat of the halt file a wake; an entry reads it once more, fresh, under its lock.
    assert all(stats <= 1 + entries for _, stats, _, entries in per_wake)
    assert halt_reads == [1, 0, 0, 1, 0, 0, 0, 0, 0]  # read at the first wake and after the halt
    assert history_reads[1:6] == [0] * 5 and history_reads[6] >= 1 and history_reads[7:] == [0, 0]
    noticed = [e for e in events(loaded) if e["event"] == "halt_noticed"]
    assert len(noticed) == 1 and noticed[0]["ts"] == "2025-07-01T14:09:00Z"
    assert loop.last_risk() is not None and loop.last_risk().phase.phase == "proof"  # type: ignore[union-attr]


NY = ZoneInfo("America/New_York")
JOURNALS = ("journal/orders.jsonl", "journal/trades.jsonl", "journal/events.jsonl",
            "phase/session-metrics.jsonl")  # fmt: skip


def _journals(
    root: Path, body: str, start: datetime, until: datetime, *, skip: bool
) -> tuple[RunSummary, Path]:
    """`tradebot run` on the simulated broker, its planner on (`skip`) or waking at every
    scheduled wake."""
    root.mkdir(parents=True)
    loaded = config(root, base=body)
    options = RunOptions(speed=None, start=start, until=until, simulated=True)
    clock = make_clock(loaded, options)
    ctx = make_context(loaded, options, clock, Recorder())
    with not_durable():
        summary = asyncio.run(
            TradingLoop(ctx, until=default_until(loaded, options, clock), skip_idle=skip).run()
        )
    return summary, loaded.logs_dir


def _assert_planner_changes_nothing(tmp_path: Path, body: str, days: int) -> RunSummary:
    start = datetime.combine(date(2025, 3, 3), time(0), NY).astimezone(UTC)
    until = start + timedelta(days=days)
    planned, planned_logs = _journals(tmp_path / "planned", body, start, until, skip=True)
    _, every_logs = _journals(tmp_path / "every", body, start, until, skip=False)
    for name in JOURNALS:
        every, ours = every_logs / name, planned_logs / name
        assert ours.exists() == every.exists(), name
        if every.exists():
            assert ours.read_text(encoding="utf-8") == every.read_text(encoding="utf-8"), name
    return planned


def test_a_dry_runs_would_be_exits_come_at_the_same_ticks(tmp_path: Path) -> None:
    """A dry run's would-be positions are `not_sent` (no activity for the book), yet each tick
    reviews their take-profit and stop against the quotes: the planner passes over no wake while
    one is open, so a would-be exit is journaled at the tick a run waking at every tick writes
    it (the review found one journaled later, or as a flatten instead of a take-profit)."""
    body = (
        '[broker.sim]\nseed = 2\n[trading]\nmode = "dry_run"\nsymbols = ["SPY"]\ninterval_s = 120\n'
        "[risk]\ntake_profit_pct = 30\nstop_loss_pct = 20\n"
        '[phase.experience]\ncounted_modes = ["paper", "sim"]\n'
    )
    planned = _assert_planner_changes_nothing(tmp_path, body, days=3)
    assert planned.ticks_idle > 0  # with no would-be position open, idle ticks are still left out


PARTLY = (
    '[broker.sim]\nseed = 7\n[trading]\nmode = "paper"\nsymbols = ["SPY"]\ninterval_s = 300\n'
    "[risk]\nmax_risk_pct = 10\ntake_profit_pct = 900\nstop_loss_pct = 95\n"
    '[phase.experience]\ncounted_modes = ["paper", "sim"]\nposition_cap_usd = 5000\n'
)


def _partly_filled_run(root: Path, *, skip: bool) -> tuple[list[dict[str, object]], int]:
    """The first entry of two contracts or more rests at the broker at half its limit (its
    journaled limit is what the loop decided; a fill below it is one the loop accepts) and one
    contract of it is filled at once (`exchange.force_fill`): the unfilled rest works until the
    entry's time-out cancels it."""
    root.mkdir(parents=True)
    loaded = config(root, base=PARTLY)
    start = datetime(2025, 7, 1, 13, 30, tzinfo=UTC)
    options = RunOptions(speed=None, start=start, until=start + timedelta(hours=3), simulated=True)
    clock = make_clock(loaded, options)
    ctx = make_context(loaded, options, clock, Recorder())
    broker = ctx.broker
    assert isinstance(broker, SimBroker)
    send = broker.place_bracket
    partly: list[str] = []

    async def rests_then_fills_one(bracket: BracketSpec) -> list[PlacedOrder]:
        entry = bracket.entry
        if entry.qty < 2 or partly:
            return await send(bracket)
        assert entry.limit is not None
        low = (entry.limit / 2).quantize(Decimal("0.05"))  # a price a fill may still come at
        placed = await send(
            dataclasses.replace(bracket, entry=dataclasses.replace(entry, limit=low))
        )
        broker.exchange.force_fill(placed[0].order_id, broker.now(), 1)
        partly.append(entry.order_ref)
        return placed

    cancel = broker.cancel
    refused: list[str] = []

    async def fails_once(order_ref: str, **known: Any) -> None:
        if order_ref in partly and not refused:  # a gateway's timeout: nothing is journaled
            refused.append(order_ref)
            raise BrokerError("request timed out (cancel)")
        await cancel(order_ref, **known)

    broker.place_bracket = rests_then_fills_one  # type: ignore[method-assign]
    broker.cancel = fails_once  # type: ignore[method-assign]
    with not_durable():
        summary = asyncio.run(
            TradingLoop(ctx, until=default_until(loaded, options, clock), skip_idle=skip).run()
        )
    assert partly and refused, "the scenario needs an entry of two contracts or more"
    journal = read_jsonl(loaded.logs_dir / "journal" / "orders.jsonl")
    return journal, summary.ticks_idle


def test_the_unfilled_rest_of_a_partly_filled_entry_is_cancelled_at_its_time_out(
    tmp_path: Path,
) -> None:
    """exits.cancel_stale_entries cancels the unfilled remainder of a partly filled entry at the
    time-out as it does an unfilled one, and asks again at the next wake when the broker did not
    take the cancel (a timeout, which journals nothing): the planner may not sleep past that. It
    treated a working entry with a fill as never timing out and slept until the quarter-hour
    sync (the cancel went out at 14:25 instead of 14:11)."""
    planned, idle = _partly_filled_run(tmp_path / "planned", skip=True)
    every, _ = _partly_filled_run(tmp_path / "every", skip=False)
    assert planned == every
    ref = next(r["order_ref"] for r in planned if r["event"] == "fill" and r["role"] == "entry")
    intent = next(r for r in planned if r["order_ref"] == ref and r["event"] == "intent")
    cancel = next(
        r for r in planned
        if r["order_ref"] == ref and r["event"] == "status" and r["status"] == "cancelled"
    )  # fmt: skip
    waited = datetime.fromisoformat(str(cancel["ts"])) - datetime.fromisoformat(str(intent["ts"]))
    # Asked at the time-out (14:10, refused), again at the next wake and adopted a minute later.
    assert waited == timedelta(seconds=300 + 60 + 60)
    assert idle > 0
