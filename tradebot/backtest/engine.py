"""Run a planned backtest: the real trading loop, on the simulated broker, into `--out`.

The same `TradingLoop`, context, broker and market model as `tradebot run --bars/--start`
(`tradebot.engine.runner.make_context`), on a `BacktestClock`, with the output folder's journals
written without fsync (`storage.not_durable`: they are throw-away, never live state). Nothing is
written outside the plan's output folder.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from tradebot.backtest.clock import BacktestClock
from tradebot.backtest.ladder import BacktestOperator
from tradebot.backtest.plan import BacktestPlan
from tradebot.books.state_store import EQUITY_FILE, EquityReading, StateStore
from tradebot.core.market_time import market_datetime
from tradebot.core.sessions import session_open_close
from tradebot.engine.context import EngineContext, Notify
from tradebot.engine.loop import RunSummary, TradingLoop
from tradebot.engine.runner import RunOptions, make_context, run_lock
from tradebot.storage import not_durable
from tradebot.storage.atomic import make_private_dirs, write_atomic
from tradebot.storage.records import utc_iso

Progress = Callable[[int, int, date], None]  # (sessions done, of, current session)


@dataclass
class BacktestResult:
    plan: BacktestPlan
    summary: RunSummary
    operator: BacktestOperator
    ctx: EngineContext
    ended: datetime
    seconds: float
    wakes: int
    ticks_skipped: int

    @property
    def bars_per_second(self) -> float:
        return self.plan.bars / self.seconds if self.seconds > 0 else 0.0


def run_backtest(
    plan: BacktestPlan,
    *,
    progress: Progress | None = None,
    notify: Notify | None = None,
    skip_idle_ticks: bool = True,
    actions: Sequence[tuple[datetime, Callable[[datetime], None]]] = (),
) -> BacktestResult:
    """Replay every session of `plan` through the loop; returns what happened.

    `actions`: (simulated time, what an operator does then), e.g. a `tradebot halt` on the
    backtest's own state, to see what the loop would have done (`SimClock.schedule`)."""
    make_private_dirs(plan.out)
    clock = BacktestClock(plan.start)
    for when, action in actions:
        clock.schedule(when, action)
    options = RunOptions(speed=None, start=plan.start, until=plan.until, simulated=True)
    operator = BacktestOperator(ladder=None, forward=notify)  # type: ignore[arg-type]
    ctx = make_context(
        plan.loaded, options, clock, operator.notify, market=plan.market, throwaway=True
    )
    state = _LastEquityAtTheEnd(plan.loaded.state_dir)
    ctx.state = state
    operator.ladder = ctx.ladder
    loop = TradingLoop(ctx, until=plan.until, skip_idle=skip_idle_ticks)
    loop.after_wake_hooks.append(operator.act)
    if progress is not None:
        clock.between_wakes.append(_progress_hook(plan, progress))
    started = time.perf_counter()
    with not_durable(), run_lock(plan.loaded.state_dir, loaded=plan.loaded):
        # On disk from the start (a SIGKILL or a power cut leaves no chance to write it at the
        # end), with the reason when the replay fails; removed once it has finished.
        mark_incomplete(plan, clock.now(), None)
        try:
            summary = asyncio.run(loop.run())
            state.flush()
        except BaseException as exc:  # Ctrl-C, a file changed under it, a bug: say so on disk
            mark_incomplete(plan, clock.now(), exc)
            raise
        (plan.out / INCOMPLETE).unlink()
    seconds = time.perf_counter() - started
    if progress is not None:
        progress(len(plan.sessions), len(plan.sessions), plan.last)
    # The backtest reports the ticks run and the idle ones left out apart (`tradebot run`
    # counts both as ticks of its schedule).
    return BacktestResult(
        plan=plan,
        summary=replace(summary, ticks=summary.ticks - summary.ticks_idle),
        operator=operator,
        ctx=ctx,
        ended=clock.now(),
        seconds=seconds,
        wakes=clock.sleeps,
        ticks_skipped=summary.ticks_idle,
    )


INCOMPLETE = "INCOMPLETE"


def mark_incomplete(plan: BacktestPlan, at: datetime, exc: BaseException | None) -> Path:
    """Write `INCOMPLETE` into the output folder: the backtest stopped before its end (or is
    still running: `exc` None), so its journals cover part of the range and there is no
    `report.json`."""
    if exc is None:
        why = "it is still running, or it was killed (no reason could be written)"
    elif isinstance(exc, KeyboardInterrupt):
        why = "interrupted (Ctrl-C)"
    else:
        text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        why = f"{type(exc).__name__}: {text}"
    path = plan.out / INCOMPLETE
    span = "part of the" if exc is None else f"{plan.first} up to {market_datetime(at)} of the"
    text = (
        f"This backtest stopped before the end: {why}.\n"
        f"Its journals cover {span} {plan.first} … {plan.last} range, and there is no "
        "report.json: they are not a result.\n"
        "Delete this folder and run the backtest again.\n"
    )
    write_atomic(path, text.encode("utf-8"))  # 0600 like every file tradebot writes
    return path


def incomplete_note(plan: BacktestPlan) -> str:
    """What the command adds to its error line when the backtest stopped part-way."""
    marker = plan.out / INCOMPLETE
    when = ""
    if marker.exists():
        lines = marker.read_text(encoding="utf-8").splitlines()
        if len(lines) > 1 and " up to " in lines[1]:
            when = " at " + lines[1].split(" up to ", 1)[1].split(" of the ", 1)[0]
    return (
        f"the backtest stopped{when}, before the end: its partial journals in {plan.out} are "
        f"marked {INCOMPLETE} (delete the folder, or give a new --out)"
    )


class _LastEquityAtTheEnd(StateStore):
    """The loop records the broker's equity at every tick (`state/equity.json`, read back only
    for IBKR); in a backtest only the last one is written, at the end."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self._last: tuple[Decimal, str, datetime] | None = None

    def record_equity(self, amount: Decimal, source: str, now: datetime) -> None:
        self._last = (amount, source, now)

    def equity_snapshot(self) -> EquityReading | None:
        if self._last is None:
            return super().equity_snapshot()
        amount, source, now = self._last
        record = {"v": 1, "equity": str(amount), "source": source, "ts": utc_iso(now)}
        return self._reading(EQUITY_FILE, record)

    def flush(self) -> None:
        if self._last is not None:
            super().record_equity(*self._last)


def _progress_hook(plan: BacktestPlan, progress: Progress) -> Callable[[datetime], None]:
    calendar = plan.loaded.settings.schedule.calendar
    closes = [session_open_close(d, calendar)[1] for d in plan.sessions]
    shown = [-1]

    def hook(now: datetime) -> None:
        done = bisect.bisect_right(closes, now)
        if done != shown[0]:
            shown[0] = done
            progress(done, len(closes), plan.sessions[min(done, len(closes) - 1)])

    return hook
