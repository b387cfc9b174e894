"""`tradebot run`: the trading loop (spec §6).

    start ─ connect ─ reconcile with the broker (before any entry) ─┐
      ┌─────────────────────────────────────────────────────────────┘
      └─ wake: sync fills and statuses → close trades → cancel stale entries → halt --flatten
               → flatten scalp before the close → OCO legs → on a tick: equity, ladder
               (downgrade, sessions), guards, then each symbol's entry pipeline
         sleep until the next thing to do (tick, flatten, close, sync, OCO poll, next open)

Only inside a session: ticks follow the entry window of the exchange calendar. The loop never
reads the system clock itself, so the same code runs in real time and on a simulated clock.

Why one module: the wake's steps must run in one fixed order over one shared state, and that order
is the safety argument (sync before exits, exits before entries); each step's work lives in its own
module (order_book, exits, entries, positions, wake_plan), what remains is the order.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from tradebot.books.risk_report import RiskReport, account_modes, build_risk_report
from tradebot.brokers.base import BrokerError
from tradebot.core.guards import MarkedEquity, PositionMark
from tradebot.core.market_time import market_clock, market_datetime
from tradebot.core.metrics import from_micros
from tradebot.core.phase_rules import Refusal
from tradebot.core.trades import ClosedTrade, session_of
from tradebot.engine.context import EngineContext
from tradebot.engine.dry_run import WouldBePositions
from tradebot.engine.entries import EntryPipeline
from tradebot.engine.exits import ExitManager, ExpiryWatch
from tradebot.engine.heartbeat import write_heartbeat
from tradebot.engine.market_data import MarketData
from tradebot.engine.oco import POLL, OcoWatcher
from tradebot.engine.positions import PositionWatch
from tradebot.engine.schedule import SessionPlan, current_or_next_session, session_plan
from tradebot.engine.status import LoopStatus, OrderLine, PositionLine, SignalLine
from tradebot.engine.supervisor import Supervisor, View
from tradebot.engine.wake_plan import WakePlanner
from tradebot.errors import CorruptRecordError, TradebotError
from tradebot.notify.systemd import SystemdNotifier
from tradebot.storage.watch import one_stat_per_file

log = logging.getLogger("tradebot.engine")

SYNC_EVERY = timedelta(seconds=60)
# From the flatten time to the close, while a position to close is still open, the loop wakes
# this often: a refused or unfilled closing sell is tried again within seconds, not a minute.
FLATTEN_RETRY = timedelta(seconds=15)
RETRY_FIRST = timedelta(seconds=5)
# Blocking rules after which no resting entry order may fill either.
ACCOUNT_STOPS = frozenset(
    {"daily_loss", "downgraded_this_session", "downgrade_pending", "phase_unknown", "halt"}
)
RETRY_MAX = timedelta(seconds=60)
# Failures at which a failing step is journaled and alerted (then every 50th), and, on a fast
# simulated clock (no supervisor), the heartbeat written.
TOLD_AT = (1, 3, 10)


@dataclass
class RunSummary:
    started: datetime
    ended: datetime | None = None
    ticks: int = 0  # ticks of the schedule: run, or passed over as idle (below)
    ticks_idle: int = 0  # passed over: no symbol could signal and nothing was open
    entries_sent: int = 0
    trades: list[ClosedTrade] = field(default_factory=list)
    reconcile: list[str] = field(default_factory=list)
    equity: Decimal | None = None
    stopped_by: str = ""


def disk_full(exc: BaseException | None) -> bool:
    """Whether `exc` (or what caused it) is a full disk, a used-up quota or a file-size limit."""
    while exc is not None:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            return True
        exc = exc.__cause__
    return False


def retry_delay(failures: int) -> timedelta:
    """How long a failing step waits before it is tried again: 5 s, 10 s, 20 s, 40 s, then the
    cap. The exponent is capped before the multiplication (2 ** 45 seconds is no timedelta)."""
    if failures <= 0:
        return timedelta(0)
    delay: timedelta = RETRY_FIRST * 2 ** min(failures - 1, 10)
    return min(RETRY_MAX, delay)


async def sync_clock(clock: Any) -> None:
    """A clock that follows another (the gateway's) reads it now; the others have nothing to
    read."""
    sync = getattr(clock, "sync", None)
    if sync is not None:
        await sync()


def clock_note(clock: Any) -> str | None:
    """The clock's own description (None for this machine's)."""
    describe = getattr(clock, "describe", None)
    note = describe() if describe is not None else None
    return note if isinstance(note, str) else None


class TradingLoop:
    def __init__(
        self,
        ctx: EngineContext,
        *,
        until: datetime | None = None,
        once: bool = False,
        stop: asyncio.Event | None = None,
        view: View | None = None,
        systemd: SystemdNotifier | None = None,
        skip_idle: bool = True,
    ) -> None:
        """`skip_idle=False`: wake at every scheduled tick and sync, even those the wake
        planner can prove idle (the journals are the same; it is slower)."""
        self.ctx = ctx
        self.until = until
        self.once = once
        self.stop = stop or asyncio.Event()
        s = ctx.settings
        self.oco = OcoWatcher(ctx)
        self.exits = ExitManager(ctx, self.oco)
        self.expiry = ExpiryWatch(ctx)
        self.positions = PositionWatch(ctx)
        self.market_data = MarketData(ctx.broker, s.schedule.calendar, s.strategies.whale)
        self.would_be = WouldBePositions(ctx)
        self.entries = EntryPipeline(ctx, self.market_data, self.oco, self.would_be)
        self.plan: SessionPlan | None = None
        self.opened: date | None = None
        self.flattened: date | None = None
        self.closed: date | None = None
        self.last_tick: datetime | None = None
        self.next_oco: datetime | None = None
        self.next_sync: datetime | None = None
        self.summary = RunSummary(started=ctx.clock.now())
        self._ladder_errors: set[tuple[date | None, str]] = set()
        self._generation = 0
        self._paused: str | None = None
        ctx.book.on_close = self._trade_closed
        self.view = view
        self.systemd = systemd or SystemdNotifier({})
        self.started_wall = datetime.now(UTC)
        self._wake_now = asyncio.Event()
        self._wake_started: float | None = None
        self._halted: bool | None = None
        self._risk: RiskReport | None = None
        self._marks: dict[int, Decimal] = {}
        self._cash: Decimal | None = None
        self._next_wake: datetime | None = None
        self.last_error: str | None = None
        self._failures = 0
        self._last_exc: Exception | None = None
        # Run right after each wake, before the next one is planned (a backtest's simulated
        # operator acts here).
        self.after_wake_hooks: list[Callable[[datetime], None]] = []
        self.planner = WakePlanner(self) if skip_idle else None
        self._idle_until: datetime | None = None  # ticks before this were passed over (done)
        self._failing: tuple[str, datetime] | None = None  # the failing step, since when
        self._supervised = False

    # -- life cycle ----------------------------------------------------------------------------
    async def run(self) -> RunSummary:
        ctx = self.ctx
        now = ctx.clock.now()
        await ctx.broker.connect()
        ctx.events.record(
            now,
            "start",
            f"tradebot run started: broker {ctx.broker.kind}, mode {ctx.trading_mode}, symbols "
            f"{', '.join(ctx.settings.trading.symbols)}",
        )
        supervisor_task: asyncio.Task[None] | None = None
        try:
            await self.reconcile(now)
            self._generation = ctx.broker.generation
            self.systemd.ready(self.status().line())
            ctx.notify(
                "start",
                f"tradebot started ({ctx.broker.kind}, {ctx.trading_mode}, "
                f"{', '.join(ctx.settings.trading.symbols)})",
            )
            clock = ctx.clock
            if not clock.simulated or getattr(clock, "speed", None) is not None:
                supervisor = Supervisor(
                    self,
                    state_dir=ctx.loaded.state_dir,
                    heartbeat_s=ctx.settings.monitoring.heartbeat_s,
                    systemd=self.systemd,
                    view=self.view,
                )
                supervisor_task = asyncio.create_task(supervisor.run())
                self._supervised = True
            else:
                write_heartbeat(ctx.loaded.state_dir, self.status(), running=True)
            while not self.stop.is_set():
                await sync_clock(ctx.clock)  # the gateway's clock: read it before each wake
                now = ctx.clock.now()
                if self.until is not None and now >= self.until:
                    plan = self.plan
                    if plan is not None and now >= plan.closes and self.closed != plan.session:
                        # Stopping at (or after) a close: the session is closed first, as a
                        # run that goes on would (its summary, its session-metrics line).
                        await self.wake(now)
                    self.summary.stopped_by = "until"
                    break
                await self.wake(now, force_tick=self.once)
                if self.once:
                    if self._failures and self._last_exc is not None:
                        raise self._last_exc  # `--once` reports its failure (exit code)
                    self.summary.stopped_by = "once"
                    break
                for hook in self.after_wake_hooks:
                    hook(ctx.clock.now())
                await self._sleep_until(self.next_wake(ctx.clock.now()))
            else:
                self.summary.stopped_by = "signal"
        except Exception as exc:
            self.last_error = exc.message if isinstance(exc, TradebotError) else repr(exc)
            raise
        finally:
            end = ctx.clock.now()
            self.summary.ended = end
            why = self.summary.stopped_by or "error"
            why_clean = bool(self.summary.stopped_by)
            self.systemd.stopping(f"stopping ({why})")
            if supervisor_task is not None:
                supervisor_task.cancel()
                await asyncio.gather(supervisor_task, return_exceptions=True)
            self.positions.close()
            try:
                ctx.events.record(
                    end,
                    "stop",
                    f"tradebot run stopped ({why}); working orders stay at the broker",
                )
            except OSError as exc:  # a full disk must not turn a clean stop into a crash
                log.error("the stop was not journaled: %s", exc)
            ctx.notify("stop", f"tradebot stopped ({why}); working orders stay at the broker")
            with contextlib.suppress(OSError):
                write_heartbeat(
                    ctx.loaded.state_dir, self.status(), running=False, crashed=not why_clean
                )
            await ctx.broker.disconnect()
        return self.summary

    # -- what the supervisor and the live view see --------------------------------------------
    def request_wake(self) -> None:
        """Wake the loop now (a halt or resume was written)."""
        self._wake_now.set()

    def stuck_for(self, monotonic_now: float) -> float | None:
        """How long the current wake has been running (None between wakes)."""
        started = self._wake_started
        return None if started is None else monotonic_now - started

    def status(self) -> LoopStatus:
        ctx = self.ctx
        risk = self._risk
        phase = risk.phase if risk is not None else None
        positions = []
        for pos in ctx.book.open_positions():
            entry = pos.entry
            mark = self._marks.get(entry.contract.con_id)
            unrealized = (
                None
                if mark is None
                else (mark - entry.avg_price) * pos.open_qty * entry.contract.multiplier
            )
            positions.append(
                PositionLine(
                    entry.ref,
                    entry.contract.label,
                    entry.strategy,
                    pos.open_qty,
                    entry.avg_price.quantize(Decimal("0.0001")),
                    mark,
                    None if unrealized is None else unrealized.quantize(Decimal("0.01")),
                )
            )
        orders = [
            OrderLine(
                o.ref,
                o.role,
                o.contract.label,
                o.action,
                o.qty,
                o.order_type,
                o.limit if o.limit is not None else o.stop,
                o.status,
            )
            for o in ctx.book.live.values()
            if o.status not in ("intent",)
        ]
        signals = [
            SignalLine(sym, note.at, note.signal, note.strategy, note.reason)
            for sym, note in sorted(ctx.last_signal.items())
        ]
        try:
            halt = ctx.state.halt()
            halted, halt_reason = halt.halted, halt.message() if halt.halted else None
        except CorruptRecordError as exc:
            halted, halt_reason = True, exc.message
        today = ctx.clock.now()
        try:
            series, _ = ctx.ladder.trades.series()
            realized: Decimal | None = from_micros(
                series.sum_pnl(account_modes(ctx.loaded), session=session_of(today).toordinal())
            )
        except CorruptRecordError:
            realized = None
        unrealized_total = sum((p.unrealized or Decimal(0) for p in positions), Decimal(0))
        stuck = self.stuck_for(time.monotonic())
        return LoopStatus(
            pid=os.getpid(),
            started=self.started_wall,
            clock=today,
            broker=ctx.broker.kind,
            mode=ctx.trading_mode,
            connected=ctx.broker.is_connected(),
            phase=None if phase is None else phase.phase,
            limits={} if phase is None else phase.limits.as_record(),
            equity=self.summary.equity,
            day_pnl=None if realized is None else realized + unrealized_total,
            halted=halted,
            halt_reason=halt_reason,
            blocking=[] if risk is None else [f"{r.rule}: {r.message}" for r in risk.blocking],
            positions=positions,
            orders=orders,
            signals=signals,
            next_wake=self._next_wake,
            last_error=self.last_error,
            stuck_for_s=None if stuck is None else round(stuck, 1),
            failing=(None if self._failing is None else f"{self._failing[0]} ×{self._failures}"),
            clock_note=clock_note(ctx.clock),
            urgent=[*self.expiry.urgent, *self.positions.urgent],
        )

    async def _sleep_until(self, when: datetime) -> None:
        if self.until is not None:
            when = min(when, self.until)
        clock = self.ctx.clock
        if self._failures:
            when = self._retry_at(clock.now())
        self._next_wake = when
        if clock.simulated and getattr(clock, "speed", None) is None:
            await clock.sleep_until(when)
            return
        # Real time, a scaled simulated clock or the gateway's: a stop or a halt/resume ends the
        # sleep early. A simulated clock only moves when its sleep completes, and the gateway's
        # reads the gateway between slices of its sleep (a jump is noticed there), so
        # cancelling either is safe.
        sleep: asyncio.Future[Any] = asyncio.ensure_future(clock.sleep_until(when))
        waiters: set[asyncio.Future[Any]] = {
            sleep,
            asyncio.ensure_future(self.stop.wait()),
            asyncio.ensure_future(self._wake_now.wait()),
        }
        _, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _retry_at(self, now: datetime) -> datetime:
        """When to wake after a failed step: after the backoff, never "now" again (what was due
        is still due because it failed), sooner only for what protects positions — the
        emulated legs' next poll, the flatten before the close and its retries — or the end of
        the run."""
        when = now + retry_delay(self._failures)
        plan = self.plan
        if plan is not None and plan.in_session(now):
            soon = [plan.flatten_at]
            if self.next_oco is not None and self.oco.armed():
                soon.append(self.next_oco)
            if now >= plan.flatten_at and self._to_flatten(plan):
                soon.append(now + FLATTEN_RETRY)  # a closing sell is retried within seconds
            when = min([when, *(t for t in soon if t > now)])
        if self.until is not None:
            when = min(when, max(self.until, now + timedelta(microseconds=1)))
        return when

    async def reconcile(self, now: datetime) -> None:
        """Before any entry: adopt what the broker did while we were away; report the rest."""
        ctx, book = self.ctx, self.ctx.book
        book.refresh()
        broker_refs = set()
        for o in await ctx.broker.orders():
            ours = book.find(o.order_ref, o.perm_id)  # by orderRef, else by IB's permId
            broker_refs.add(ours.ref if ours is not None else o.order_ref)
        # Absent from order lists the broker did not send proves nothing: the intents wait for
        # the reconciliation its answer brings (a new generation).
        complete = ctx.broker.order_lists_complete()
        for order in list(book.orders.values()):
            if order.status == "intent" and order.ref not in broker_refs and not complete:
                self.summary.reconcile.append(
                    f"{order.ref}: intent not listed by the broker yet; decided once it sends "
                    "its order lists"
                )
            elif order.status == "intent" and order.ref not in broker_refs:
                # Journaled but never sent (a crash between the two): never re-sent late.
                book.mark_status(
                    now,
                    order.ref,
                    "abandoned",
                    "never reached the broker (stopped between intent and send); not re-sent, "
                    "and it still counts toward the session's entries",
                )
                self.summary.reconcile.append(f"{order.ref}: intent never sent, closed")
        report = await book.sync(ctx.broker, now)
        self._closed()
        # Positions, contract by contract: what the executions could not explain.
        self.summary.reconcile.extend(await self.positions.check(now, settled=True))
        self.summary.reconcile.extend(self.positions.urgent)
        self._closed()
        self._protect(now)
        armed = self.oco.legs()
        text = (
            f"reconciled: {report.fills} fill(s) adopted, {report.status_changes} status "
            f"change(s), {len(report.trades)} trade(s) closed, {len(report.unknown)} unknown "
            f"order(s)/fill(s), {len(book.open_positions())} open position(s), "
            f"{len(armed)} OCO leg set(s) re-armed"
        )
        self.summary.reconcile.insert(0, text)
        self.summary.reconcile.extend(report.unknown)
        ctx.events.record(now, "reconciled", text, fills=report.fills, unknown=report.unknown)

    def _protect(self, now: datetime) -> None:
        """Every open position has a working stop or armed OCO legs: one left bare (a flatten
        interrupted after its legs were cancelled, a leg refused) gets emulated legs at the
        bracket's prices."""
        book, s = self.ctx.book, self.ctx.settings
        armed = self.oco.legs()
        for pos in book.open_positions():
            entry = pos.entry
            guards = [e for e in pos.exits if e.working and e.role in ("stop_loss", "exit")]
            if entry.ref in armed or any(e.status != "held" for e in guards):
                continue
            if guards:
                # Held by the broker: no protection, but it may still fill. The exits step
                # cancels it; the emulated legs are armed once the broker confirms it gone.
                continue
            legs = {e.role: e for e in pos.exits if e.role in ("take_profit", "stop_loss")}
            tp = legs["take_profit"].limit if "take_profit" in legs else None
            sl = legs["stop_loss"].stop if "stop_loss" in legs else None
            if tp is None or sl is None:
                from tradebot.core.sizing import bracket_prices

                prices = bracket_prices(
                    entry.avg_price, entry.contract.grid, s.risk.take_profit_pct,
                    s.risk.stop_loss_pct,
                )  # fmt: skip
                tp, sl = tp or prices.take_profit, sl or prices.stop_loss
            self.oco.arm(now, entry.ref, tp, sl)
            self.ctx.events.record(
                now,
                "position_protected",
                f"{entry.ref}: open with no working stop; emulated take-profit {tp} and stop "
                f"{sl} armed",
                order_ref=entry.ref,
            )

    # -- one wake ------------------------------------------------------------------------------
    def _plan(self, now: datetime) -> SessionPlan:
        s = self.ctx.settings
        if self.plan is None or now >= self.plan.closes:
            if self.plan is not None and self.closed != self.plan.session:
                return self.plan  # finish the session that just closed first
            day = current_or_next_session(now, s.schedule.calendar)
            self.plan = session_plan(
                day,
                s.schedule.calendar,
                interval_s=s.trading.interval_s,
                open_delay_minutes=s.schedule.open_delay_minutes,
                close_buffer_minutes=s.schedule.close_buffer_minutes,
                flatten_minutes=s.trading.flatten_minutes_before_close,
            )
        return self.plan

    async def wake(self, now: datetime, *, force_tick: bool = False) -> None:
        # A halt or resume seen from here on wakes the loop again (none is lost while busy).
        self._wake_now.clear()
        self._wake_started = time.monotonic()
        if self.planner is not None:
            self.planner.before_wake()
        try:
            try:
                # Each state file is stat'ed once in a wake (re-read only if it changed); what
                # another process writes meanwhile is seen at the next wake.
                with one_stat_per_file():
                    failed = await self._wake(now, force_tick)
            except Exception as exc:  # outside the steps (a bug): the loop carries on all the same
                failed = ("wake", exc)
            if failed is None and self._failing is not None:
                failed = self._recovered(now)
            if failed is not None:
                self._failed(now, *failed)
        finally:
            self._wake_started = None
            if self.planner is not None:
                self.planner.after_wake(now)

    def halted_now(self) -> bool:
        """The last wake saw a halt (or could not read the halt state)."""
        return bool(self._halted)

    def failing(self) -> bool:
        return self._failures > 0

    def would_be_open(self) -> bool:
        """A dry run holds a would-be position (reviewed at every tick, and at each wake after
        the flatten)."""
        return self.would_be.any_open()

    def _recovered(self, now: datetime) -> tuple[str, Exception] | None:
        """A clean wake after failures: said in the events journal (and, after a full disk,
        alerted); a journal that still cannot be written is one more failure."""
        assert self._failing is not None
        step, since = self._failing
        text = (
            f"{step} works again after {self._failures} failure(s) since {market_datetime(since)}"
        )
        try:
            self.ctx.events.record(now, "step_recovered", text)
        except OSError as exc:
            return ("events", exc)
        if disk_full(self._last_exc):
            self._paused = None
            self.ctx.notify("error", f"the disk takes writes again; entries may resume: {text}")
        self._failures = 0
        self._failing = None
        return None

    def _failed(self, now: datetime, step: str, exc: Exception) -> None:
        """Nothing that goes wrong in one step ends the loop — a failed broker request, a
        damaged state file, a full disk, a bug: exits, stops and flattening must go on. The next
        wake retries after a capped backoff; entries wait for a clean step."""
        self._failures += 1
        self._last_exc = exc
        if self._failing is None or self._failing[0] != step:
            self._failing = (step, now)
        since = self._failing[1]
        message = exc.message if isinstance(exc, TradebotError) else f"{type(exc).__name__}: {exc}"
        self.last_error = (
            f"{step} failed {self._failures}× since {market_datetime(since)}: {message}"
        )
        # The sync is due again after the backoff, not at once (a past next_sync meant "now").
        self.next_sync = now + retry_delay(self._failures)
        if not isinstance(exc, TradebotError) and self._failures in TOLD_AT:
            log.exception("unexpected error in the loop (it carries on)", exc_info=exc)
        full = disk_full(exc)
        if full and self._failures == 1:
            # Said at once and plainly: nothing new is opened until the disk takes writes again.
            self._paused = "disk full: new entries paused until the journals can be written"
        if self._failures in TOLD_AT or self._failures % 50 == 0:
            kind = "broker_error" if isinstance(exc, BrokerError) else "error"
            text = f"a step failed ({self._failures}×): {step}: {message}"
            if full:
                text = f"disk full: new entries paused; exits go on where they can ({text})"
            try:
                self.ctx.events.record(now, kind, text, step=step, failures=self._failures)
            except OSError:
                log.error("%s (not journaled: %s)", text, "the events journal cannot be written")
            self.ctx.notify("error", text)
            if not self._supervised:  # nobody else writes the heartbeat on a fast clock
                with contextlib.suppress(OSError):
                    write_heartbeat(self.ctx.loaded.state_dir, self.status(), running=True)

    async def _wake(self, now: datetime, force_tick: bool) -> tuple[str, Exception] | None:
        """One wake in steps: sync with the broker; the risk-reducing work (stale entries, the
        halt, flattening, the emulated legs), which runs even when the sync failed (each exit
        checks what the broker holds, so a stale journal never sells twice); then, only after
        a clean sync, the session's first look and the tick (entries). Returns the first step
        that failed and why, or None."""
        ctx = self.ctx
        plan = self._plan(now)
        if self.planner is not None:
            idle, done = self.planner.take_passed(now, plan)
            self.summary.ticks += idle
            self.summary.ticks_idle += idle
            if done is not None:
                self._idle_until = max(self._idle_until or done, done)
        if not ctx.broker.is_connected():
            # The broker alerts its own disconnects and reconnections (it sees them happen).
            self._note_pause(now, "the broker is not connected; waiting for it to reconnect")
            if plan.in_session(now) and now >= plan.flatten_at:
                self.expiry.check(now, plan.session, plan.closes, connected=False)
            return None
        failed: tuple[str, Exception] | None = None
        try:
            await self._sync(now)
        except Exception as exc:
            failed = ("sync", exc)
        try:
            await self._protective(now, plan)
        except Exception as exc:
            failed = failed or ("exits", exc)
        if failed is None:
            try:
                if plan.in_session(now):
                    if self.opened != plan.session:
                        self.opened = plan.session
                        await self._first_look(now)
                    tick = self._due_tick(plan, now, force_tick)
                    if tick is not None:
                        await self.tick(now, plan)
                elif force_tick and not (now >= plan.closes and self.closed != plan.session):
                    opens = market_datetime(plan.opens)
                    log.info("outside the session (next open %s): no tick", opens)
            except Exception as exc:
                failed = ("tick", exc)
        try:
            if not plan.in_session(now) and now >= plan.closes and self.closed != plan.session:
                await self._session_end(now, plan)
            self._closed()
        except Exception as exc:
            failed = failed or ("session end", exc)
        return failed

    async def _sync(self, now: datetime) -> None:
        """Adopt what the broker did (after a reconnect: reconcile first), close finished
        trades, guard bare positions."""
        ctx = self.ctx
        if ctx.broker.generation != self._generation:
            # Reconnected: what happened while away is adopted before anything else.
            await self.reconcile(now)
            self._generation = ctx.broker.generation
        closed_before = len(self.summary.trades)
        await ctx.book.sync(ctx.broker, now)
        self._closed()
        await self.positions.check(now, settled=False)
        self._closed()
        if len(self.summary.trades) > closed_before:
            # The trade triggers were checked after each of these trades; the daily-loss
            # trigger needs the broker's marked equity, read now that they are booked.
            self._ladder_tick(now, await self._equity(now))
        # A stop can die at the broker at any time (cancelled by hand, rejected late, legs
        # refused after the entry filled): a bare position is guarded at the next step.
        self._protect(now)
        self.next_sync = now + SYNC_EVERY

    async def _protective(self, now: datetime, plan: SessionPlan) -> None:
        """What reduces risk: never blocked by a guard, nor by a failed sync."""
        ctx = self.ctx
        if await self.exits.held_guards(now):
            # A held sell cancelled: what replaces it is decided on what the broker now says.
            try:
                await ctx.book.sync(ctx.broker, now)
            except Exception as exc:  # the steps below (halt, flatten, expiry sells) still run
                text = (
                    f"the sync after cancelling a held order failed: {exc}; the next wake "
                    "syncs again"
                )
                ctx.events.record(now, "broker_error", text)
                log.warning("%s", text)
            else:
                self._protect(now)
        await self.exits.cancel_stale_entries(
            now, timedelta(seconds=ctx.settings.trading.interval_s)
        )
        await self._follow_halt(now)
        if not plan.in_session(now):
            return
        left = [
            p.entry.ref
            for p in ctx.book.open_positions()
            if p.entry.strategy == "scalp" and p.entry.session < plan.session
        ]
        if left:  # scalp positions never stay overnight: left over from a stop or a crash
            for line in await self.exits.flatten(now, strategy="scalp", reason="flatten"):
                log.warning("scalp position left from an earlier session: %s", line)
        if now >= plan.flatten_at:
            await self.would_be.review(now, plan)
            closing = self.flattened != plan.session
            self.flattened = plan.session
            lines = await self.exits.flatten(
                now, strategy="scalp", reason="flatten", expiring_by=plan.session
            )
            if closing:  # each sell, cancel and failure is already an event's log line
                for line in lines:
                    log.debug("before the close: %s", line)
            self.expiry.check(now, plan.session, plan.closes, connected=ctx.broker.is_connected())
        if self.oco.armed():
            self.next_oco = now + POLL
            await self.oco.poll(now)

    async def _follow_halt(self, now: datetime) -> None:
        """A halt stops new entries at once: working entry orders are cancelled; with
        `--flatten` every position is sold too (never blocked by any guard)."""
        ctx = self.ctx
        try:
            halt = ctx.state.halt()
        except CorruptRecordError as exc:
            # Unreadable means halted for entries (the guards say so); never flatten on a guess.
            if self._halted is not True:
                ctx.events.record(now, "halt_noticed", f"halt state unreadable: {exc.message}")
            self._halted = True
            return
        if halt.halted and self._halted is not True:
            done = [
                f"cancelled entry {e.ref}" for e in ctx.book.working_entries() if e.filled_qty == 0
            ]
            for entry in ctx.book.working_entries():
                if entry.filled_qty == 0:
                    await self.exits.cancel_entry(entry, now, "halt")
            text = f"halt noticed: {halt.message()}; no new entries" + (
                f"; {len(done)} working entr{'y' if len(done) == 1 else 'ies'} cancelled"
                if done
                else ""
            )
            ctx.events.record(now, "halt_noticed", text, flatten=halt.flatten)
            log.warning(text)
        elif not halt.halted and self._halted:
            ctx.events.record(now, "resume_noticed", "halt lifted: entries may start again")
            log.warning("halt lifted: entries may start again")
        self._halted = halt.halted
        if halt.halted and halt.flatten and ctx.book.has_activity():
            lines = await self.exits.flatten(now, strategy=None, reason="manual")
            for line in lines:
                log.warning("halt --flatten: %s", line)
            if lines:
                ctx.events.record(now, "halt_flatten", "; ".join(lines))

    def _note_pause(self, now: datetime, why: str) -> None:
        if why != self._paused:
            self._paused = why
            self.ctx.events.record(now, "entries_paused", why)

    def _due_tick(self, plan: SessionPlan, now: datetime, force: bool) -> datetime | None:
        if force:
            return now if plan.window_open <= now < plan.window_close else None
        latest = plan.tick_at_or_before(now)
        if latest is None or (self.last_tick is not None and latest <= self.last_tick):
            return None
        if self._idle_until is not None and latest < self._idle_until:
            return None  # passed over as idle: never run late
        if now - latest >= plan.interval:
            return None  # a tick missed long ago (suspended machine) is not run late
        return latest

    def next_wake(self, now: datetime) -> datetime:
        """The next moment something can happen: the schedule's next tick, sync, flatten,
        open or close, less the wakes the planner proves idle (`engine/wake_plan.py`)."""
        plan = self._plan(now)
        if self.planner is not None and now >= plan.opens:
            return self.planner.next_wake(now, plan)
        return self.scheduled_wake(now, plan, self.next_sync)

    def scheduled_wake(self, now: datetime, plan: SessionPlan, sync: datetime | None) -> datetime:
        """The schedule's next wake after `now`, with the next sync due at `sync`."""
        candidates = []
        if now < plan.opens:
            candidates.append(plan.opens)
        else:
            tick = plan.tick_at_or_after(now + timedelta(microseconds=1))
            if tick is not None:
                candidates.append(tick)
            if now < plan.flatten_at:
                candidates.append(plan.flatten_at)
            candidates.append(max(plan.closes, now + timedelta(microseconds=1)))
            if plan.in_session(now) and self.ctx.book.has_activity():
                if sync is not None:
                    candidates.append(sync)
                if now >= plan.flatten_at and self._to_flatten(plan):
                    candidates.append(now + FLATTEN_RETRY)
                if self.next_oco is not None and self.oco.armed():
                    candidates.append(self.next_oco)
        return max(min(candidates), now + timedelta(microseconds=1))

    # -- what the wake planner reads of the last tick -------------------------------------------
    def last_risk(self) -> RiskReport | None:
        return self._risk

    def last_cash(self) -> Decimal | None:
        return self._cash

    def last_risk_could_open(self) -> bool:
        return self._risk is not None and self._risk.can_open

    def _to_flatten(self, plan: SessionPlan) -> bool:
        """Whether the flatten still has something to close: a scalp position, or one whose
        option expires today."""
        return any(
            p.entry.strategy == "scalp" or p.entry.contract.expiry <= plan.session
            for p in self.ctx.book.open_positions()
        )

    async def _first_look(self, now: datetime) -> None:
        """The session's first look: start-of-day equity is recorded (daily-loss guard)."""
        equity = await self._equity(now)
        self._ladder_tick(now, equity)
        build_risk_report(self.ctx.loaded, now, equity=equity, persist=True, ladder=self.ctx.ladder)

    async def _equity(self, now: datetime) -> MarkedEquity:
        """The broker's equity, with what it is made of: cash and each open position at its
        mark (the broker's own when it says, else the quote's mid), so a daily-loss decision
        can be recomputed from what is journaled."""
        account = await self.ctx.broker.account()
        self._cash = account.cash
        self.ctx.state.record_equity(account.net_liquidation, account.source, now)
        self.summary.equity = account.net_liquidation
        positions = self.ctx.book.open_positions()
        if positions:  # marks for the live view and the heartbeat (unrealized P&L)
            contracts = [p.entry.contract for p in positions]
            for contract, quote in zip(
                contracts, await self.ctx.broker.quotes(contracts), strict=True
            ):
                if quote is not None and quote.mid is not None:
                    self._marks[contract.con_id] = quote.mid
        known = {**self._marks, **account.marks}  # the broker's own marks first
        marks = [
            PositionMark(
                p.entry.ref,
                p.entry.contract.label,
                p.open_qty,
                p.entry.contract.multiplier,
                p.entry.avg_price,
                known.get(p.entry.contract.con_id),
            )
            for p in positions
        ]
        source = account.source
        if positions and not account.marks:
            source += " (positions shown at the quote's mid; the broker's own marks may differ)"
        return MarkedEquity(account.net_liquidation, source, account.cash, tuple(marks), now)

    async def tick(self, now: datetime, plan: SessionPlan) -> None:
        ctx = self.ctx
        if self.planner is not None:
            self.planner.tick_starts()
        self.last_tick = now
        self.summary.ticks += 1
        marked = await self._equity(now)
        equity = marked.equity
        self._ladder_tick(now, marked)
        risk = build_risk_report(ctx.loaded, now, equity=marked, persist=True, ladder=ctx.ladder)
        if risk.daily_loss.tripped and not risk.daily_loss.tripped_earlier:
            ctx.notify("daily_loss", f"daily-loss guard tripped: {risk.daily_loss.message}")
        stopping = {r.rule for r in risk.blocking} & ACCOUNT_STOPS
        if stopping:  # the account may not add risk now: entries still resting go too
            for entry in ctx.book.working_entries():
                if entry.filled_qty == 0:
                    await self.exits.cancel_entry(entry, now, ", ".join(sorted(stopping)))
        self._risk = risk
        unexplained = self.positions.refusal()
        if unexplained is not None:
            risk = replace(
                risk,
                can_open=False,
                blocking=[*risk.blocking, Refusal("reconciliation", unexplained)],
            )
        paused = ctx.broker.entries_paused(now)
        if paused is not None:
            risk = replace(
                risk, can_open=False, blocking=[*risk.blocking, Refusal("broker", paused)]
            )
            self._note_pause(now, paused)
        elif self._paused is not None:
            self._paused = None
            ctx.events.record(now, "entries_resumed", "the broker is ready for entries again")
        if not risk.can_open:
            log.debug(
                "tick %s: no new entries (%s)",
                market_clock(now),
                "; ".join(r.rule for r in risk.blocking),
            )
        await self.would_be.review(now, plan)  # dry run: what its bracket would have closed
        limit = asyncio.Semaphore(ctx.settings.trading.max_concurrent_symbols)
        session = plan.session

        async def one(symbol: str) -> str:
            async with limit:
                try:
                    return await self.entries.evaluate(
                        symbol,
                        now,
                        session,
                        risk,
                        equity,
                        scalp_until=plan.flatten_at,
                        cash=marked.cash,
                    )
                except TradebotError as exc:
                    ctx.events.record(now, "broker_error", f"{symbol}: {exc.message}")
                    return "error"
                except Exception as exc:  # one symbol's bug must not stop exits for the others
                    log.exception("%s: unexpected error in the entry pipeline", symbol)
                    ctx.events.record(now, "error", f"{symbol}: {type(exc).__name__}: {exc}")
                    ctx.notify("error", f"{symbol}: {type(exc).__name__}: {exc}")
                    return "error"

        outcomes = await asyncio.gather(*(one(sym) for sym in ctx.settings.trading.symbols))
        # Refusals are counted where they are journaled (`entry_refused` in events.jsonl).
        self.summary.entries_sent += sum(1 for o in outcomes if o.startswith("entry sent"))

    async def _session_end(self, now: datetime, plan: SessionPlan) -> None:
        ctx = self.ctx
        self.closed = plan.session
        marked = await self._equity(now)
        equity = marked.equity
        # Recorded now unless a position could still settle into this session (an option
        # expiring today whose settlement the broker reports later): then when the day changes.
        settling = any(p.entry.contract.expiry <= plan.session for p in ctx.book.open_positions())
        self._ladder_tick(now, marked, closed=None if settling else plan.session)
        today = [t for t in self.summary.trades if t.session == plan.session]
        pnl = sum((t.pnl for t in today), Decimal(0))
        text = (
            f"session {plan.session} closed: {len(today)} trade(s), P&L {pnl:+.2f}, equity "
            f"{equity:.2f}"
        )
        self.expiry.at_close(now, plan.session)
        ctx.events.record(now, "session_end", text, session=plan.session, equity=equity)
        ctx.notify("summary", text)
        self.plan = None

    def _closed(self) -> None:
        self.summary.trades.extend(self.ctx.book.take_closed())

    def _trade_closed(self, trade: ClosedTrade) -> None:
        """Called by the order book right after each trade is journaled."""
        self.ctx.notify(
            "exit",
            f"exit {trade.trade_id} {trade.contract} ×{trade.qty}: {trade.exit_reason}, "
            f"P&L {trade.pnl:+.2f}",
        )
        # After each closed trade the downgrade triggers are checked at once (spec §3), before
        # the next one is journaled: three losses in a row downgrade at the third.
        self._ladder_tick(self.ctx.clock.now(), None)

    def _ladder_tick(
        self, now: datetime, equity: MarkedEquity | None, *, closed: date | None = None
    ) -> None:
        """The ladder's tick (downgrade, sessions, eligibility); a damaged record never stops
        the loop — entries are refused by the guards while exits carry on."""
        try:
            self.ctx.ladder.on_tick(now, equity=equity, session_closed=closed)
        except CorruptRecordError as exc:
            key = (self.plan.session if self.plan else None, exc.message)
            if key not in self._ladder_errors:
                self._ladder_errors.add(key)
                self.ctx.events.record(
                    now, "ladder_error", f"phase ladder not updated: {exc.message}"
                )
                self.ctx.notify("error", f"phase ladder not updated: {exc.message}")
