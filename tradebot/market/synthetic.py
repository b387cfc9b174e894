"""A deterministic synthetic market: 1-minute RTH bars for any symbol on any real exchange session.

The same (seed, symbol, session) always gives the same bars, on any machine, without generating
the days before it, so a simulated session, a restart and a backtest all see one market.

* Daily closes follow a mean-reverting random walk around the symbol's price level, with a slowly
  varying drift so that some weeks trend (20-session breakouts happen: the whale strategy fires).
* Within a session the path is a Brownian bridge from the open (yesterday's close plus a gap) to
  the day's close, built from drift segments of random sign: trends and reversals, so the scalp
  strategy sees both BUY and SELL setups.
* Volume has the intraday U-shape (heavy at the open and the close) and grows with the size of a
  minute's move.
* Sessions, half days and holidays come from the exchange calendar; bars are labelled by their
  start, UTC, like every bar frame in tradebot (see `tradebot.core.sessions`).
"""

from __future__ import annotations

import itertools
import math
import zlib
from datetime import date
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]

from tradebot.core.sessions import (
    BAR_COLUMNS,
    DEFAULT_CALENDAR,
    SESSION_COLUMN,
    session_schedule,
)
from tradebot.market.profiles import profile

ANCHOR = np.datetime64("2000-01-03", "D")  # the daily walk starts here
MINUTE_NS = 60_000_000_000
MINUTES_PER_YEAR = 252 * 390
REVERSION = 0.01  # per session, toward the price level
DRIFT_PERSISTENCE = 0.95
DRIFT_SCALE = 0.0008  # per-session trend innovations (log)


def _rng(*keys: int) -> np.random.Generator:
    return np.random.default_rng([k & 0xFFFFFFFF for k in keys])


def _symbol_key(symbol: str) -> int:
    return zlib.crc32(symbol.encode("utf-8"))


@lru_cache(maxsize=64)
def _daily_log_closes(seed: int, symbol: str, calendar: str) -> npt.NDArray[np.float64]:
    """Log close of every calendar session from ANCHOR on (index aligned with the schedule)."""
    sched = session_schedule(calendar)
    first = int(np.searchsorted(sched.sessions, ANCHOR))
    out = np.full(len(sched.sessions), np.nan)
    out[first:] = daily_walk(seed, symbol, len(sched.sessions) - first)
    return out


def daily_walk(seed: int, symbol: str, n: int) -> npt.NDArray[np.float64]:
    """The first `n` sessions' log closes from ANCHOR on. Session i's close depends on the
    seed, the symbol and i only, never on `n`: the calendar ends a year after today, so `n`
    grows every day, and the market of 2025-07-01 must be the same whenever it is replayed."""
    prof = profile(symbol)
    # One generator per series: a generator's first k draws do not depend on how many follow.
    z = _rng(seed, _symbol_key(symbol), 0xDA11).standard_normal(n)
    eta = _rng(seed, _symbol_key(symbol), 0xD71F).standard_normal(n)
    sd = prof.vol / math.sqrt(252)
    level = math.log(prof.base_price)
    x = np.empty(n)
    prev, drift = level, 0.0
    for i in range(n):
        drift = DRIFT_PERSISTENCE * drift + DRIFT_SCALE * eta[i]
        prev = prev + REVERSION * (level - prev) + drift + sd * z[i]
        x[i] = prev
    return x


class SyntheticBars:
    """Bar source: `session_bars(symbol, session)` for any session of the calendar."""

    kind = "synthetic"

    def __init__(self, seed: int = 1, calendar: str = DEFAULT_CALENDAR) -> None:
        self.seed = int(seed)
        self.calendar = calendar

    def describe(self) -> str:
        return f"synthetic market (seed {self.seed})"

    def symbols(self) -> list[str] | None:
        return None  # any symbol

    def has_session(self, symbol: str, session: date) -> bool:
        sched = session_schedule(self.calendar)
        i = int(np.searchsorted(sched.sessions, np.datetime64(session, "D")))
        return (
            i < len(sched.sessions)
            and sched.sessions[i] == np.datetime64(session, "D")
            and sched.sessions[i] > ANCHOR
        )

    def session_bars(self, symbol: str, session: date) -> pd.DataFrame:
        """The session's RTH 1-minute bars (empty frame when it is not a session)."""
        return _session_frame(self.seed, symbol.upper(), session.toordinal(), self.calendar)


@lru_cache(maxsize=512)
def _session_frame(seed: int, symbol: str, ordinal: int, calendar: str) -> pd.DataFrame:
    sched = session_schedule(calendar)
    day = np.datetime64(date.fromordinal(ordinal), "D")
    i = int(np.searchsorted(sched.sessions, day))
    if i >= len(sched.sessions) or sched.sessions[i] != day or day <= ANCHOR:
        return _empty()
    logs = _daily_log_closes(seed, symbol, calendar)
    prev_close, close = float(logs[i - 1]), float(logs[i])
    open_ns, close_ns = int(sched.opens_ns[i]), int(sched.closes_ns[i])
    n = (close_ns - open_ns) // MINUTE_NS
    prof = profile(symbol)
    rng = _rng(seed, _symbol_key(symbol), ordinal)
    sigma = prof.vol / math.sqrt(MINUTES_PER_YEAR)
    daily_sd = prof.vol / math.sqrt(252)
    open_log = prev_close + 0.3 * daily_sd * float(rng.standard_normal())

    # Drift segments: trends and reversals inside the day.
    cuts = np.sort(rng.choice(np.arange(20, n - 20), size=int(rng.integers(1, 5)), replace=False))
    bounds = np.concatenate(([0], cuts, [n]))
    drift = np.empty(n)
    for a, b in itertools.pairwise(bounds):
        drift[a:b] = 0.1 * sigma * float(rng.standard_normal())
    noise = rng.standard_normal(n)
    steps = drift + 0.8 * sigma * noise
    path = open_log + np.cumsum(steps)
    # Brownian bridge: pin the last close to the day's close from the daily walk.
    path -= np.arange(1, n + 1) / n * (path[-1] - close)
    closes = np.exp(path)
    opens = np.exp(np.concatenate(([open_log], path[:-1])))
    wick_hi = np.exp(np.abs(rng.standard_normal(n)) * 0.35 * sigma)
    wick_lo = np.exp(-np.abs(rng.standard_normal(n)) * 0.35 * sigma)
    o = np.round(opens, 2)
    c = np.round(closes, 2)
    h = np.maximum(np.round(np.maximum(opens, closes) * wick_hi, 2), np.maximum(o, c))
    lo = np.minimum(np.round(np.minimum(opens, closes) * wick_lo, 2), np.minimum(o, c))

    t = np.arange(n)
    centre = (n - 1) / 2
    u_shape = 1.0 + 2.5 * ((t - centre) / centre) ** 2
    weights = u_shape * np.exp(0.3 * rng.standard_normal(n)) * (1.0 + 0.4 * np.abs(noise))
    day_volume = prof.daily_volume * math.exp(0.25 * float(rng.standard_normal())) * n / 390
    volume = np.round(day_volume * weights / weights.sum())

    index = pd.DatetimeIndex((open_ns + t * MINUTE_NS).view("M8[ns]"), tz="UTC")
    frame = pd.DataFrame(
        {"open": o, "high": h, "low": lo, "close": c, "volume": volume.astype(np.float64)},
        index=index,
    )
    frame[SESSION_COLUMN] = np.full(n, day).astype("datetime64[s]")
    return frame


def _empty() -> pd.DataFrame:
    frame = pd.DataFrame(
        {c: np.zeros(0) for c in BAR_COLUMNS}, index=pd.DatetimeIndex([], tz="UTC")
    )
    frame[SESSION_COLUMN] = np.zeros(0, dtype="datetime64[s]")
    return frame
