"""Assemble a run from the configuration and the `tradebot run` options, and run it.

* One loop per logs directory, state directory and broker account: `state/run.lock`,
  `journal/run.lock` and (IBKR) a lock per gateway and account are held (flock) for the whole
  run; a second `tradebot run` sharing any of them is refused with the pid of the first.
* The clock is the wall clock, unless `--start`, `--speed` or `--bars` ask for a simulated one
  (then `--speed` defaults to `max`: as fast as the machine goes). With `broker.kind = "ibkr"`
  those are refused: time is the gateway's, followed only in a rehearsal against
  `tradebot gateway sim` (`broker.clock = "gateway"`, see `tradebot.brokers.ibkr.clock`).
* Trading `live` while the ladder is in experience is refused before anything connects.
* SIGTERM / SIGINT stop the loop between steps (working orders stay at the broker); a second
  SIGINT interrupts at once.

Why one module: the run's assembly in the order it happens (locks, clock, broker, market data,
context, signals); each piece is built elsewhere and only wired here.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import time as time_module
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from tradebot.books.session_calendar import refresh_cache
from tradebot.config import LoadedConfig
from tradebot.engine.clock import Clock, SimClock, WallClock
from tradebot.engine.context import EngineContext, Notify, build_context
from tradebot.engine.events import EventLog
from tradebot.engine.loop import RunSummary, TradingLoop
from tradebot.engine.supervisor import View
from tradebot.errors import RefusedError, UsageError
from tradebot.logging_setup import use_clock
from tradebot.notify.systemd import SystemdNotifier

if TYPE_CHECKING:
    from tradebot.market import MarketModel
    from tradebot.market.csv_bars import CsvBars

NEW_YORK = ZoneInfo("America/New_York")
LOCK_FILE = "run.lock"
LOCK_TRIES = 20  # × 0.1 s


@dataclass(frozen=True)
class RunOptions:
    once: bool = False
    bars: Path | None = None
    speed: float | None = 1.0  # None = as fast as possible
    start: datetime | None = None
    until: datetime | None = None
    simulated: bool = False


def parse_when(value: str, option: str) -> datetime:
    """An ISO date (midnight New York) or datetime (naive = New York time) as UTC."""
    text = value.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            if not 1990 <= day.year <= 2200:
                raise UsageError(f"{option} {value!r} is out of range; use a year 1990–2200")
            return datetime.combine(day, time(0), NEW_YORK).astimezone(UTC)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{option} {value!r} is not an ISO date or time; write 2025-07-01 or "
            "2025-07-01T10:30 (New York) or 2025-07-01T14:30Z"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=NEW_YORK)
    if not 1990 <= moment.year <= 2200:
        raise UsageError(f"{option} {value!r} is out of range; use a year 1990–2200")
    return moment.astimezone(UTC)


def parse_speed(value: str | None) -> tuple[float | None, bool]:
    """(speed, given): 'max' → None; a positive number; absent → 1.0 (not given)."""
    if value is None:
        return 1.0, False
    if value.strip().lower() == "max":
        return None, True
    try:
        speed = float(value)
    except ValueError:
        raise UsageError(f"--speed {value!r} is not a number or 'max'") from None
    if not 0 < speed <= 1_000_000 or speed != speed:
        raise UsageError(f"--speed must be a positive number up to 1000000 or 'max', got {value}")
    return speed, True


BEFORE_OPEN = timedelta(minutes=1)


def before_the_open(day: date, calendar: str, option: str = "--start") -> datetime:
    """A minute before `day`'s open (a replay of a day starts at its session, not at midnight);
    a day with no session is a usage error that names the next session."""
    from tradebot.core.sessions import session_open_close, sessions_between

    try:
        opens, _ = session_open_close(day, calendar)
    except ValueError:
        after = sessions_between(day, day + timedelta(days=30), calendar)
        following = (
            f"the next one is {after[0]} ({after[0]:%A}): `{option} {after[0]}`"
            if after
            else "none in the 30 days after it"
        )
        raise UsageError(
            f"{option} {day} ({day:%A}): the {calendar} exchange has no session that day; "
            f"{following}"
        ) from None
    return opens - BEFORE_OPEN


def build_options(
    *,
    once: bool,
    bars: Path | None,
    speed: str | None,
    start: str | None,
    until: str | None,
    calendar: str = "XNYS",
) -> RunOptions:
    speed_value, speed_given = parse_speed(speed)
    start_at = None if start is None else parse_when(start, "--start")
    if start is not None and len(start.strip()) == 10 and start_at is not None:
        # A bare date: the replay starts just before that day's open.
        start_at = before_the_open(start_at.astimezone(NEW_YORK).date(), calendar)
    until_at = None if until is None else parse_when(until, "--until")
    simulated = start_at is not None or bars is not None or (speed_given and speed_value != 1.0)
    if simulated and not speed_given:
        speed_value = None  # a replay runs as fast as it can unless asked otherwise
    if start_at is not None and until_at is not None and until_at <= start_at:
        raise UsageError("--until must be after --start")
    return RunOptions(once, bars, speed_value, start_at, until_at, simulated)


@contextmanager
def run_lock(state_dir: Path, *, loaded: LoadedConfig | None = None) -> Iterator[None]:
    """One loop per logs directory, state directory and broker account, for the whole run.

    `state/run.lock` (the state: the simulated account, the halt, the OCO legs); with `loaded`
    also `journal/run.lock` in the logs directory (the journals, whatever state_dir says) and,
    for IBKR, a lock per gateway and per account in the user's runtime directory. Each lock
    file holds the pid of its holder; a second run is refused naming it (exit 4)."""
    locks = [(Path(state_dir) / LOCK_FILE, f"using {Path(state_dir).parent}")]
    if loaded is not None:
        journal = Path(loaded.logs_dir) / "journal"
        locks.append((journal / LOCK_FILE, f"writing the journals in {loaded.logs_dir}"))
        broker = loaded.settings.broker
        if broker.kind == "ibkr":
            ib = broker
            shared = account_lock_dir()
            locks.append(
                (shared / f"ibkr-gateway-{_safe(ib.host)}-{ib.port}.lock",
                 f"trading through the IB gateway at {ib.host}:{ib.port}")
            )  # fmt: skip
            if ib.account:
                locks.append(
                    (shared / f"ibkr-account-{_safe(ib.account)}.lock",
                     f"trading the IB account {ib.account}")
                )  # fmt: skip
    fds: list[int] = []
    try:
        for path, what in locks:
            fds.append(_take_lock(path, what))
        yield
    finally:
        for fd in fds:
            os.close(fd)


def account_lock_dir() -> Path:
    """Where locks on things outside the logs directory live: the user's runtime directory
    ($XDG_RUNTIME_DIR, else the temporary directory), in a 0700 folder of this user."""
    import tempfile

    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"tradebot-{os.getuid()}"


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in text)


def _take_lock(path: Path, what: str) -> int:
    """Open and flock `path` (a regular file, 0600, directories 0700); the pid is written in
    it. RefusedError naming the holder's pid when another run holds it."""
    from tradebot.storage.atomic import make_private_dirs, open_regular

    make_private_dirs(path.parent)
    if path.parent.name.startswith("tradebot-") and os.stat(path.parent).st_uid != os.getuid():
        raise RefusedError(
            f"{path.parent} belongs to another user; set XDG_RUNTIME_DIR to a directory of yours"
        )
    try:
        fd, _created = open_regular(path, os.O_RDWR, follow_symlinks=False)
    except OSError as exc:
        from tradebot.errors import CorruptRecordError

        raise CorruptRecordError(
            path, None, str(exc.strerror or exc), action="move it away, then run again"
        ) from None
    try:
        for attempt in range(LOCK_TRIES):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                # `tradebot status` takes the lock shared for an instant: try a little longer
                # before deciding another loop holds it.
                if attempt + 1 < LOCK_TRIES:
                    time_module.sleep(0.1)
        else:
            other = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "unknown"
            raise RefusedError(
                f"another tradebot run (pid {other}) is already {what}; stop it first (one "
                "loop per logs directory, state directory and broker account)"
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_clock(loaded: LoadedConfig, options: RunOptions) -> Clock:
    broker = loaded.settings.broker
    if broker.kind == "ibkr":
        if options.simulated:
            raise UsageError(
                "--start, --speed and --bars replay the simulated broker's market; with "
                "broker.kind = 'ibkr' time is the gateway's (to rehearse a past session, run "
                "`tradebot gateway sim --start ...` and set broker.clock = 'gateway')"
            )
        if broker.clock == "gateway":
            from tradebot.brokers.ibkr.clock import GatewayClock

            return GatewayClock()
        return WallClock()
    if not options.simulated:
        return WallClock()
    start = options.start
    if start is None and options.bars is not None:
        source = _csv_source(loaded, options.bars)
        firsts = [source.sessions(s)[0] for s in source.symbols() if source.sessions(s)]
        if not firsts:
            raise UsageError(f"--bars {options.bars}: no regular-session bars in the files")
        start = before_the_open(min(firsts), loaded.settings.schedule.calendar, "--bars")
    if start is None:
        start = datetime.now(UTC)
    return SimClock(start, options.speed)


def _csv_source(loaded: LoadedConfig, bars: Path) -> CsvBars:
    """The configured symbols' bar files (no other file in the folder is looked at)."""
    from tradebot.market.csv_bars import CsvBars

    symbols = loaded.settings.trading.symbols
    source = CsvBars(bars, loaded.settings.schedule.calendar, symbols=symbols)
    for symbol in symbols:
        if symbol.upper() not in source.files:
            raise UsageError(
                f"--bars {bars} has no file for {symbol} (trading.symbols); add {symbol}.csv "
                "or remove the symbol"
            )
    return source


def default_until(loaded: LoadedConfig, options: RunOptions, clock: Clock) -> datetime | None:
    """A simulated run stops by itself: after the last session of `--bars`, else at the end of
    the New York day it started on. Real time runs until stopped."""
    if options.until is not None or not options.simulated:
        return options.until
    if options.bars is not None:
        source = _csv_source(loaded, options.bars)
        last = max(source.sessions(s)[-1] for s in source.symbols() if source.sessions(s))
        return datetime.combine(last + timedelta(days=1), time(0), NEW_YORK).astimezone(UTC)
    day = clock.now().astimezone(NEW_YORK).date()
    return datetime.combine(day + timedelta(days=1), time(0), NEW_YORK).astimezone(UTC)


def make_context(
    loaded: LoadedConfig,
    options: RunOptions,
    clock: Clock,
    notify: Notify,
    *,
    market: MarketModel | None = None,
    throwaway: bool = False,
) -> EngineContext:
    """The loop's context on the simulated broker. `market`: a market model made by the caller
    (`tradebot backtest` streams its bars); by default the one `options.bars` describes.
    `throwaway`: the simulated account is saved only at the start and the end (a backtest)."""
    s = loaded.settings
    if s.broker.kind == "ibkr":
        from tradebot.brokers.ibkr.broker import IbkrBroker
        from tradebot.brokers.ibkr.clock import GatewayClock
        from tradebot.brokers.ibkr.settings import IbkrSettings

        events = EventLog(loaded.logs_dir)

        def broker_notify(event: str, message: str) -> None:
            # A dropped connection and its return are journaled, not only logged: they are
            # what an operator looks for in events.jsonl after a rehearsal's `drop`.
            if event in ("disconnect", "reconnect"):
                events.record(clock.now(), event, message, logged=True)
            notify(event, message)

        ibkr = IbkrBroker(
            IbkrSettings.from_config(s),
            loaded.state_dir,
            clock.now,
            notify=broker_notify,
            on_gateway_time=clock.follow if isinstance(clock, GatewayClock) else None,
        )
        if isinstance(clock, GatewayClock):
            clock.source = ibkr.conn.refresh_clock
        return build_context(loaded, ibkr, clock, notify)
    from tradebot.brokers.sim import SimBroker
    from tradebot.market import make_market

    if market is None:
        from tradebot.market.volatility import pricing_params

        market = make_market(
            seed=s.broker.sim.seed,
            bars_dir=options.bars,
            calendar=s.schedule.calendar,
            params=pricing_params(s.broker.sim.pricing),
            symbols=s.trading.symbols,
        )
    for symbol in s.trading.symbols:
        if not market.supports(symbol):
            raise UsageError(
                f"--bars {options.bars} has no file for {symbol} (trading.symbols); add "
                f"{symbol}.csv or remove the symbol"
            )
    broker = SimBroker(
        market,
        clock.now,
        loaded.state_dir,
        starting_cash=s.risk.paper_equity,
        per_contract=s.broker.sim.commission_per_contract,
        minimum=s.broker.sim.commission_minimum,
        data_type=s.broker.market_data_type,
        quote_delay_s=s.broker.sim.quote_delay_s,
        refuse_brackets=s.broker.sim.refuse_brackets,
        save_as_it_goes=not throwaway,
    )
    return build_context(loaded, broker, clock, notify)


def refuse_live_in_experience(loaded: LoadedConfig, now: datetime) -> None:
    """`live` is refused in experience (and while the phase is unknown), before connecting."""
    if loaded.settings.trading.mode != "live":
        return
    from tradebot.books.ladder import PhaseLadder

    snap = PhaseLadder(loaded).snapshot(now)
    phase = snap.evaluation.phase if snap.evaluation is not None else None
    if phase == "experience" or phase is None:
        raise RefusedError(
            "trading.mode = 'live' is refused in the experience phase: experience trades paper "
            "only; run in 'paper' and earn proof with `tradebot phase advance`"
            if phase == "experience"
            else f"trading.mode = 'live' is refused while the phase is unknown ({snap.error})"
        )


def run(
    loaded: LoadedConfig,
    options: RunOptions,
    notify: Notify,
    *,
    view: View | None = None,
    systemd: SystemdNotifier | None = None,
) -> RunSummary:
    """Run the loop to its end (until, once, or a stop signal); returns what happened."""
    # The lock first: nothing of a refused second run touches the files of the first.
    with run_lock(loaded.state_dir, loaded=loaded):
        clock = make_clock(loaded, options)
        refuse_live_in_experience(loaded, clock.now())
        until = default_until(loaded, options, clock)
        ctx = make_context(loaded, options, clock, notify)
        # Log lines say when the loop acted: its own clock's time when it is not this machine's.
        own_clock = isinstance(clock, SimClock) or clock.describe() is not None
        use_clock(clock.now if own_clock else None)
        try:
            # The loop loads exchange_calendars anyway: it leaves a copy of the sessions for the
            # commands that must start fast (`risk check`, `status`).
            refresh_cache(loaded.state_dir, loaded.settings.schedule.calendar)
            return asyncio.run(_main(ctx, until, options.once, view, systemd or SystemdNotifier()))
        finally:
            use_clock(None)


def fast_replay(options: RunOptions) -> bool:
    """A simulated clock at full speed: over in seconds, no live view or watchdog needed."""
    return options.simulated and options.speed is None


async def _main(
    ctx: EngineContext,
    until: datetime | None,
    once: bool,
    view: View | None,
    systemd: SystemdNotifier,
) -> RunSummary:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    interrupts = 0

    def on_signal(signum: int) -> None:
        nonlocal interrupts
        if signum == signal.SIGINT:
            interrupts += 1
            if interrupts > 1:
                raise KeyboardInterrupt
        stop.set()

    handled = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)  # SIGHUP: tmux kill-session
    for signum in handled:
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        if ctx.broker.kind == "ibkr":
            # Connected before the loop reads its clock: a rehearsal's clock follows the
            # gateway's (broker.clock = "gateway"), and a gateway that cannot be reached is
            # reported (exit 5) before anything is journaled. The loop's own connect is then
            # a no-op.
            await ctx.broker.connect()
        loop_ = TradingLoop(ctx, until=until, once=once, stop=stop, view=view, systemd=systemd)
        return await loop_.run()
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)
