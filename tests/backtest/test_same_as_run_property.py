"""One code path, over random seeds and configurations (issue 19): `tradebot run` — the loop
leaving out the wakes its planner proves idle — and a backtest that wakes at every scheduled
tick and sync (`skip_idle_ticks=False`) write byte-identical journals on the same synthetic
market, through halts (with and without --flatten, lifted or not), automatic downgrades, OCO
emulation (native brackets refused) and early-close sessions. Both sides are the real loop: the
property is that leaving wakes out changes nothing, and that a backtest is a run.

A backtest trades in paper mode; a dry run (`mode = "dry_run"`: would-be positions reviewed at
each tick, nothing sent) is compared with the same run waking at every scheduled wake."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.backtest.helpers import NOW, history_of, text_of
from tests.engine.harness import Recorder, config
from tradebot.backtest.engine import run_backtest
from tradebot.backtest.plan import BacktestRequest, prepare
from tradebot.books.halt import KillSwitch
from tradebot.core.sessions import session_open_close, sessions_between
from tradebot.engine.loop import RunSummary, TradingLoop
from tradebot.engine.runner import RunOptions, default_until, make_clock, make_context
from tradebot.storage import not_durable

NY = ZoneInfo("America/New_York")
FILES = ("journal/orders.jsonl", "journal/trades.jsonl", "journal/events.jsonl",
         "phase/session-metrics.jsonl")  # fmt: skip
# Starts next to early closes (13:00 New York): 2024-07-03, 2024-11-29, 2024-12-24, 2025-07-03.
STARTS = [date(2024, 7, 2), date(2024, 11, 27), date(2024, 12, 23), date(2025, 7, 2),
          date(2025, 3, 3), date(2024, 9, 9)]  # fmt: skip
SYMBOLS = ["SPY", "QQQ", "IWM", "AAPL", "TSLA"]

Action = Callable[[Path, Path], Callable[[datetime], None]]


@dataclass(frozen=True)
class Case:
    body: str
    mode: str  # "paper" or "dry_run"
    sessions: list[date]
    halts: list[tuple[datetime, str]]  # (when, "halt" | "halt_flatten" | "resume")


@st.composite
def cases(draw: st.DrawFn) -> Case:
    seed = draw(st.integers(1, 10_000))
    mode = draw(st.sampled_from(["paper", "paper", "dry_run"]))
    symbols = draw(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=2, unique=True))
    interval = draw(st.sampled_from([120, 180, 300]))
    flatten = draw(st.sampled_from([5, 10, 30]))
    refuse = draw(st.booleans())
    initial = draw(st.sampled_from(["experience", "proof", "trial"]))
    losses = draw(st.integers(1, 3))
    daily = draw(st.sampled_from(["0.5", "2", "5"]))
    take, stop = draw(st.sampled_from([30, 60, 100])), draw(st.sampled_from([20, 50]))
    whale = draw(st.booleans())
    scalp = draw(st.booleans()) or not whale
    start = draw(st.sampled_from(STARTS))
    days = sessions_between(start, start + timedelta(days=10))[: draw(st.integers(1, 2))]
    body = (
        f"[broker.sim]\nseed = {seed}\nrefuse_brackets = {str(refuse).lower()}\n"
        f'[trading]\nmode = "{mode}"\nsymbols = {json.dumps(symbols)}\ninterval_s = {interval}\n'
        f"flatten_minutes_before_close = {flatten}\n"
        f"[risk]\nmax_daily_loss_pct = {daily}\ntake_profit_pct = {take}\n"
        f"stop_loss_pct = {stop}\n"
        f"[strategies.scalp]\nenabled = {str(scalp).lower()}\n"
        f"[strategies.whale]\nenabled = {str(whale).lower()}\nvolume_multiple = 1.0\n"
        f'[phase]\ninitial = "{initial}"\n[phase.downgrade]\nconsecutive_losses = {losses}\n'
        '[phase.experience]\ncounted_modes = ["paper", "sim"]\n'
        '[phase.proof]\ncounted_modes = ["live", "sim"]\n'
        '[phase.trial]\ncounted_modes = ["live", "sim"]\n'
        '[phase.scaling]\ncounted_modes = ["live", "sim"]\n'
    )
    halts: list[tuple[datetime, str]] = []
    if draw(st.booleans()):
        day = draw(st.sampled_from(days))
        opens, _ = session_open_close(day)
        at = opens + timedelta(minutes=draw(st.integers(5, 200)), seconds=draw(st.integers(0, 59)))
        halts.append((at, draw(st.sampled_from(["halt", "halt_flatten"]))))
        if draw(st.booleans()):
            halts.append((at + timedelta(minutes=draw(st.integers(1, 90))), "resume"))
    return Case(body, mode, days, halts)


def _operator(kind: str, state_dir: Path, logs_dir: Path) -> Callable[[datetime], None]:
    def act(now: datetime) -> None:
        switch = KillSwitch(state_dir, logs_dir)
        if kind == "resume":
            switch.resume(now, operator="property", reason="lifted")
        else:
            switch.halt(now, operator="property", reason="news", flatten=kind == "halt_flatten")

    return act


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), NY).astimezone(UTC)


def _run(root: Path, case: Case, *, skip_idle: bool = True) -> tuple[RunSummary, Path]:
    """`tradebot run` (its planner leaving idle wakes out unless `skip_idle` is False)."""
    name = "run" if skip_idle else "every"
    (root / name).mkdir(parents=True)
    loaded = config(root / name, base=case.body)
    options = RunOptions(
        speed=None,
        start=_midnight(case.sessions[0]),
        until=_midnight(case.sessions[-1] + timedelta(days=1)),
        simulated=True,
    )
    clock = make_clock(loaded, options)
    for when, kind in case.halts:
        clock.schedule(when, _operator(kind, loaded.state_dir, loaded.logs_dir))  # type: ignore[attr-defined]
    ctx = make_context(loaded, options, clock, Recorder())
    loop = TradingLoop(ctx, until=default_until(loaded, options, clock), skip_idle=skip_idle)
    summary = asyncio.run(loop.run())
    return summary, loaded.logs_dir


def _backtest(root: Path, case: Case) -> tuple[RunSummary, Path]:
    (root / "cfg").mkdir(parents=True)
    loaded = config(root / "cfg", base=case.body)
    request = BacktestRequest(
        synthetic=True, start=case.sessions[0], end=case.sessions[-1], out=root / "bt"
    )
    plan = prepare(request, loaded, NOW)
    actions = [
        (when, _operator(kind, plan.loaded.state_dir, plan.loaded.logs_dir))
        for when, kind in case.halts
    ]
    result = run_backtest(plan, skip_idle_ticks=False, actions=actions)
    return result.summary, root / "bt"


COUNTER: list[int] = [0]


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cases())
def test_run_and_an_unskipped_backtest_write_the_same_journals(tmp_path: Path, case: Case) -> None:
    COUNTER[0] += 1
    root = tmp_path / f"case{COUNTER[0]}"
    with not_durable():  # the run's journals are fsynced otherwise: same bytes, slower
        run_summary, run_logs = _run(root, case)
        # A backtest trades in paper mode: a dry run's peer is the run waking at every wake.
        every = _run(root, case, skip_idle=False) if case.mode == "dry_run" else None
    bt_summary, bt_out = every or _backtest(root, case)
    for name in FILES:
        assert text_of(bt_out, name) == text_of(run_logs, name), (name, case)
    assert history_of(bt_out) == history_of(run_logs), case
    assert bt_summary.ticks_idle == 0  # the backtest ran every scheduled tick ...
    assert bt_summary.ticks == run_summary.ticks  # ... the run counted the same schedule
    assert [t.model_dump() for t in bt_summary.trades] == [
        t.model_dump() for t in run_summary.trades
    ]
    if os.environ.get("PROPERTY_STATS"):
        events = text_of(run_logs, "journal/events.jsonl")
        print(
            "\nSTATS",
            case.mode,
            len(run_summary.trades),
            run_summary.ticks,
            run_summary.ticks_idle,
            "halt" if "halt_noticed" in events else "-",
            "flat" if "halt_flatten" in events else "-",
            "oco" if "bracket_refused" in events else "-",
            "down" if "auto_downgrade" in text_of(run_logs, "phase/phase-history.jsonl") else "-",
            "early"
            if any(
                d in (date(2024, 7, 3), date(2024, 11, 29), date(2024, 12, 24), date(2025, 7, 3))
                for d in case.sessions
            )
            else "-",
        )
