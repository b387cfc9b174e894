"""What a backtest will do, decided and checked before anything is written.

`prepare` turns the command's options and the operator's configuration into a `BacktestPlan`:
the sessions to replay, the bar source (streamed CSV files or the synthetic market), the real
option quotes (`--options`), the symbols and the isolated output folder with a configuration
pointing every path there. Every problem (bad bars, bad option quote files, an empty range,
`--from` after `--to`, an output folder that is not new) is raised here, as one clear error, so
a refused backtest leaves nothing behind.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from tradebot.config import LoadedConfig, PathsConfig
from tradebot.core.phase_history import PHASES
from tradebot.core.sessions import previous_sessions, session_open_close, sessions_between
from tradebot.core.trades import TradeMode
from tradebot.errors import UsageError
from tradebot.market.model import MarketModel
from tradebot.market.profiles import profile
from tradebot.market.volatility import MIN_WEIGHT, PricingParams, pricing_params

NEW_YORK = ZoneInfo("America/New_York")
BACKTEST_MODE: TradeMode = "sim"  # the `mode` of the simulated broker's trades (spec §7)
MAX_SESSIONS = 20_000
SYNTHETIC_FIRST = date(2000, 1, 4)  # the synthetic market starts after its anchor session
_SYMBOL = re.compile(r"^[A-Z][A-Z0-9.]{0,11}$")


@dataclass(frozen=True)
class BacktestRequest:
    """The command's options, parsed but not yet checked against the data."""

    bars: Path | None = None
    synthetic: bool = False
    sessions: int | None = None
    seed: int | None = None
    start: date | None = None  # --from
    end: date | None = None  # --to
    symbols: tuple[str, ...] | None = None
    out: Path | None = None
    options: Path | None = None  # --options: real option quotes


@dataclass(frozen=True)
class BacktestPlan:
    loaded: LoadedConfig  # the backtest's configuration: every path inside `out`
    operator_config: LoadedConfig  # the operator's, untouched (never written through)
    market: MarketModel
    sessions: tuple[date, ...]  # sessions with bars, in order
    symbols: tuple[str, ...]
    out: Path
    start: datetime  # the simulated clock starts here (midnight New York of the first session)
    until: datetime  # ... and stops here (midnight after the last one)
    source: str  # "csv" | "synthetic"
    description: str
    seed: int | None
    bars: int  # 1-minute bars replayed, all symbols
    warnings: tuple[str, ...] = ()  # what the report must say about the data (gaps)
    options: str | None = None  # where the real option quotes came from (--options)

    @property
    def first(self) -> date:
        return self.sessions[0]

    @property
    def last(self) -> date:
        return self.sessions[-1]


def parse_symbols(text: str | None) -> tuple[str, ...] | None:
    """`--symbols SPY,QQQ` as a tuple of upper-case symbols; None when not given."""
    if text is None:
        return None
    symbols = [part.strip().upper() for part in text.split(",") if part.strip()]
    if not symbols:
        raise UsageError("--symbols is empty; write them like SPY,QQQ")
    for symbol in symbols:
        if not _SYMBOL.match(symbol):
            raise UsageError(f"--symbols: {symbol!r} is not a symbol; write them like SPY,QQQ")
    if len(set(symbols)) != len(symbols):
        raise UsageError("--symbols lists a symbol twice")
    if len(symbols) > 100:
        raise UsageError("--symbols: at most 100 symbols")
    return tuple(symbols)


def midnight(day: date) -> datetime:
    """Midnight New York at the start of `day`, in UTC (how `tradebot run --start` reads a date)."""
    return datetime.combine(day, time(0), NEW_YORK).astimezone(UTC)


def prepare(request: BacktestRequest, operator: LoadedConfig, now: datetime) -> BacktestPlan:
    """Check everything and decide the backtest; writes nothing."""
    if request.start is not None and request.end is not None and request.start > request.end:
        raise UsageError(
            f"--from {request.start} is after --to {request.end}; give the earlier date first"
        )
    if request.synthetic == (request.bars is not None):
        raise UsageError(
            "give either --bars DIR (your 1-minute CSV bars) or --synthetic (the seeded "
            "synthetic market)"
            if not request.synthetic
            else "--bars and --synthetic cannot be used together; choose one"
        )
    if not request.synthetic and (request.sessions is not None or request.seed is not None):
        raise UsageError("--sessions and --seed go with --synthetic (with --bars use --from/--to)")
    if request.synthetic and request.options is not None:
        raise UsageError(
            "--options goes with --bars: real option quotes belong to the real bars of their "
            "underlying, not to the synthetic market"
        )
    params = pricing_params(operator.settings.broker.sim.pricing)
    calendar = operator.settings.schedule.calendar
    symbols = request.symbols or tuple(s.upper() for s in operator.settings.trading.symbols)
    out = _output_folder(request.out, operator, now)
    seed: int | None = None
    if request.synthetic:
        from tradebot.market.synthetic import SyntheticBars

        seed = operator.settings.broker.sim.seed if request.seed is None else request.seed
        sessions = _synthetic_sessions(request, calendar, now)
        source = SyntheticBars(seed, calendar)
        market = MarketModel(source, calendar, params)
        bars = len(symbols) * sum(_session_minutes(d, calendar) for d in sessions)
        description = f"synthetic market (seed {seed})"
        kind = "synthetic"
        warnings = []
    else:
        from tradebot.market.csv_bars import StreamingCsvBars

        assert request.bars is not None
        csv = StreamingCsvBars(request.bars, calendar, symbols=symbols)
        have = sorted({d for s in symbols for d in csv.sessions(s)})
        if not have:
            raise UsageError(
                f"--bars {request.bars}: no regular-session bars in the files for "
                f"{', '.join(symbols)}"
            )
        sessions = [
            d
            for d in have
            if (request.start is None or d >= request.start)
            and (request.end is None or d <= request.end)
        ]
        if not sessions:
            raise UsageError(
                f"--bars {request.bars}: no session with bars between "
                f"{request.start or 'the start'} and {request.end or 'the end'} (the files have "
                f"{have[0]} … {have[-1]})"
            )
        quotes = None
        if request.options is not None:
            from tradebot.market.option_quotes import load_option_quotes

            quotes = load_option_quotes(request.options)
        market = MarketModel(csv, calendar, params, quotes)
        bars = sum(csv.bar_count(s, d) for s in symbols for d in sessions)
        description = csv.describe()
        kind = "csv"
        warnings = _coverage_warnings(csv, symbols, sessions, calendar, params)
        if quotes is not None:
            warnings.extend(_quote_warnings(quotes, symbols, sessions))
    loaded = backtest_config(operator, out, symbols, seed)
    return BacktestPlan(
        loaded=loaded,
        operator_config=operator,
        market=market,
        sessions=tuple(sessions),
        symbols=symbols,
        out=out,
        start=midnight(sessions[0]),
        until=midnight(sessions[-1] + timedelta(days=1)),
        source=kind,
        description=description,
        seed=seed,
        bars=bars,
        warnings=tuple(warnings),
        options=None if market.quotes is None else market.quotes.describe(),
    )


def backtest_config(
    operator: LoadedConfig, out: Path, symbols: tuple[str, ...], seed: int | None
) -> LoadedConfig:
    """The operator's configuration with every path inside `out`, the simulated broker trading
    paper, these symbols, no notification URLs, and backtest trades counted in every phase."""
    s = operator.settings
    phase_updates: dict[str, Any] = {}
    for name in PHASES:
        rules = s.phase.rules(name)
        modes = [*rules.counted_modes]
        if BACKTEST_MODE not in modes:
            modes.append(BACKTEST_MODE)
        phase_updates[name] = rules.model_copy(update={"counted_modes": modes})
    sim = s.broker.sim if seed is None else s.broker.sim.model_copy(update={"seed": seed})
    settings = s.model_copy(
        update={
            "broker": s.broker.model_copy(update={"kind": "sim", "sim": sim}),
            "trading": s.trading.model_copy(update={"mode": "paper", "symbols": list(symbols)}),
            "phase": s.phase.model_copy(update=phase_updates),
            "monitoring": s.monitoring.model_copy(update={"notify_urls": []}),
            "paths": PathsConfig(logs_dir=str(out), state_dir=str(out / "state")),
        }
    )
    return operator.model_copy(update={"settings": settings, "base_dir": out, "env_keys": ()})


def _output_folder(given: Path | None, operator: LoadedConfig, now: datetime) -> Path:
    """A new (or empty) folder that is not, and does not hold, the live journals or state."""
    live_logs, live_state = operator.logs_dir.resolve(), operator.state_dir.resolve()
    if given is None:
        stamp = now.astimezone(NEW_YORK).strftime("%Y%m%d-%H%M%S")
        base = live_logs / "backtests" / f"backtest-{stamp}"
        out, n = base, 1
        while out.exists():
            n += 1
            out = base.with_name(f"{base.name}-{n}")
        return out
    out = given.expanduser().resolve()
    for live in (live_logs, live_state):
        if out == live or live.is_relative_to(out):
            raise UsageError(
                f"--out {given} holds the live journals or state ({live}); a backtest writes "
                "only into a folder of its own"
            )
    if out.exists():
        if not out.is_dir():
            raise UsageError(f"--out {given} is not a folder; give a new folder")
        if any(out.iterdir()):
            raise UsageError(
                f"--out {given} already has files in it; give a new or empty folder (a "
                "backtest never mixes with earlier results)"
            )
    return out


def _synthetic_sessions(request: BacktestRequest, calendar: str, now: datetime) -> list[date]:
    count = request.sessions
    if count is not None and not 1 <= count <= MAX_SESSIONS:
        raise UsageError(f"--sessions must be 1–{MAX_SESSIONS}, got {count}")
    if count is None and (request.start is None or request.end is None):
        raise UsageError("--synthetic needs --sessions N (or both --from and --to)")
    for option, day in (("--from", request.start), ("--to", request.end)):
        if day is not None and not SYNTHETIC_FIRST <= day <= date(2199, 12, 31):
            raise UsageError(f"{option} {day}: the synthetic market starts on {SYNTHETIC_FIRST}")
    if request.start is not None:
        end = request.end or request.start + timedelta(days=2 * (count or 1) + 14)
        days = sessions_between(request.start, end, calendar)
        days = days if count is None else days[:count]
    else:
        end = request.end or now.astimezone(NEW_YORK).date() - timedelta(days=1)
        days = sessions_between(end - timedelta(days=2 * (count or 1) + 14), end, calendar)
        days = days[-(count or 1) :]
    days = [d for d in days if d >= SYNTHETIC_FIRST]
    if not days:
        raise UsageError("no exchange session in that range")
    if count is not None and len(days) < count:
        raise UsageError(
            f"only {len(days)} session(s) from {days[0]} to {days[-1]}; ask for fewer or "
            "move --from/--to"
        )
    if len(days) > MAX_SESSIONS:
        raise UsageError(f"at most {MAX_SESSIONS} sessions per backtest")
    return days


COVERED = 0.9  # a session with fewer bars than this share of its minutes is reported


def _coverage_warnings(
    csv: Any, symbols: tuple[str, ...], sessions: list[date], calendar: str, params: PricingParams
) -> list[str]:
    """A line per symbol whose bars miss a session in range, or most of one.

    Where a symbol has no bar the loop goes on with the last earlier price: signals see nothing
    new, quotes, stops and the flatten before the close come from a frozen underlying, and no
    resting order can fill (the simulated exchange fills only in minutes that have a bar). A
    report that showed those trades like the others would lie, so it names those sessions."""
    out = []
    every = sessions_between(sessions[0], sessions[-1], calendar)  # the loop runs them all
    for symbol in symbols:
        short = []
        for day in every:
            have, want = csv.bar_count(symbol, day), _session_minutes(day, calendar)
            if have == 0:
                short.append(f"{day} (no bars)")
            elif have < COVERED * want:
                short.append(f"{day} ({have} of {want} minutes)")
        if short:
            shown = ", ".join(short[:5]) + (f" and {len(short) - 5} more" if len(short) > 5 else "")
            out.append(
                f"{symbol}: {len(short)} session(s) with no or too few bars: {shown}; after its "
                "last bar the backtest priced and filled from a frozen underlying (no resting "
                "order could fill), so its trades there are not what the market would have done"
            )
        # The options' volatility is premium × the realized one of the bars seen so far
        # (`tradebot.market.volatility`); before a tenth of a session's variance, with no
        # earlier bars, the symbol's assumed one.
        assumed = [
            day
            for day in every
            if not any(
                csv.bar_count(symbol, prev) > 1
                for prev in previous_sessions(day, params.lookback_sessions, calendar)
            )
        ]
        if assumed:
            shown = ", ".join(str(d) for d in assumed[:5]) + (" …" if len(assumed) > 5 else "")
            out.append(
                f"{symbol}: no earlier bars to measure a realized volatility for {shown}: its "
                f"options were priced at an assumed {profile(symbol).vol * 100:g} % volatility "
                f"there until {MIN_WEIGHT * 100:g} % of the session's variance had passed (about "
                "its first half hour), then from that session's own bars (start --from later, or "
                "give the bars of the sessions before)"
            )
    return out


def _quote_warnings(quotes: Any, symbols: tuple[str, ...], sessions: list[date]) -> list[str]:
    """A line per symbol that the real option quotes do not cover on any session in range."""
    out = []
    in_range = set(sessions)
    for symbol in symbols:
        days = quotes.days(symbol)
        if not days & in_range:
            have = f" (they cover {min(days)} … {max(days)})" if days else ""
            out.append(
                f"--options {quotes.directory}: no quotes of {symbol} options on the sessions "
                f"replayed{have}; every {symbol} option price was modelled"
            )
    return out


def _session_minutes(day: date, calendar: str) -> int:
    opens, closes = session_open_close(day, calendar)
    return int((closes - opens).total_seconds() // 60)
