"""Exchange sessions: which bars are regular trading hours (RTH), and which session each belongs to.

Bar frames (the contract every strategy function relies on):

* a pandas DataFrame with lowercase float columns ``open, high, low, close, volume``;
* a tz-aware ``DatetimeIndex`` labelled by the bar's START, sorted ascending, no duplicates;
* after `rth_bars`, the index is UTC and a ``session`` column holds the session date (naive
  midnight, as exchange_calendars labels sessions).

A bar is RTH when its start lies in ``[open, close)`` of a real session of the exchange calendar
(XNYS by default): holidays have no session, early closes (e.g. 2025-07-03 at 13:00) end early, so
the after-close prints that many vendors still stamp 13:00–16:00 are dropped. Times are UTC inside;
the calendar alone knows America/New_York.

exchange_calendars is imported lazily (it costs ~0.1–0.4 s) and each calendar is built once per
process, so commands that never look at bars stay fast.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]

from tradebot.core.session_table import CALENDAR_START as CALENDAR_START
from tradebot.core.session_table import DEFAULT_CALENDAR as DEFAULT_CALENDAR
from tradebot.core.session_table import SessionTable

BAR_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close", "volume")
SESSION_COLUMN = "session"

DayArray = npt.NDArray[np.datetime64]
_NAT_NS = np.iinfo(np.int64).min


@dataclass(frozen=True, eq=False)
class SessionSchedule:
    """A calendar's sessions as parallel numpy arrays, for vectorised lookups.

    ``opens_ns``/``closes_ns`` are UTC epoch nanoseconds; ``break_starts_ns``/``break_ends_ns``
    hold the lunch break where a calendar has one, else ``_NAT_NS``.
    """

    name: str
    sessions: DayArray  # datetime64[D], ascending
    opens_ns: npt.NDArray[np.int64]
    closes_ns: npt.NDArray[np.int64]
    break_starts_ns: npt.NDArray[np.int64]
    break_ends_ns: npt.NDArray[np.int64]
    has_breaks: bool


@lru_cache(maxsize=8)
def exchange_calendar(name: str = DEFAULT_CALENDAR) -> Any:
    """The exchange_calendars calendar `name` (built once per process)."""
    import exchange_calendars  # lazy: heavy import, only needed once bars are handled

    with warnings.catch_warnings():
        # exchange_calendars 4.x reads `Series.values` of tz-aware columns while building the
        # schedule, which pandas ≥ 3.1 flags as deprecated; the values it gets are still right.
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray")
        return exchange_calendars.get_calendar(name, start=CALENDAR_START)


@lru_cache(maxsize=8)
def session_schedule(name: str = DEFAULT_CALENDAR) -> SessionSchedule:
    """The calendar's schedule as numpy arrays (built once per process)."""
    schedule = exchange_calendar(name).schedule

    def ns(column: str) -> npt.NDArray[np.int64]:
        values = pd.DatetimeIndex(schedule[column]).tz_convert(UTC).as_unit("ns")
        out: npt.NDArray[np.int64] = values.asi8.copy()
        return out

    break_starts = ns("break_start")
    return SessionSchedule(
        name=name,
        sessions=schedule.index.to_numpy().astype("datetime64[D]"),
        opens_ns=ns("open"),
        closes_ns=ns("close"),
        break_starts_ns=break_starts,
        break_ends_ns=ns("break_end"),
        has_breaks=bool((break_starts != _NAT_NS).any()),
    )


@lru_cache(maxsize=8)
def session_table(name: str = DEFAULT_CALENDAR) -> SessionTable:
    """The calendar's schedule as a pure-Python `SessionTable` (same answers, no numpy needed
    to ask it): what the edge keeps on disk so that commands need not import this module."""
    sched = session_schedule(name)
    ns_per_day = 86_400 * 1_000_000_000
    midnights = sched.sessions.astype("datetime64[ns]").astype(np.int64)

    def offsets(values: npt.NDArray[np.int64]) -> list[int]:
        whole, rest = np.divmod(values - midnights, 1_000_000_000)
        if rest.any():  # exchange_calendars works in minutes: a fraction would be a new habit
            raise ValueError(f"{name}: session times are not whole seconds")
        if np.abs(values - midnights).max() >= 2 * ns_per_day:
            raise ValueError(f"{name}: a session time is days away from its date")
        out: list[int] = whole.tolist()
        return out

    days = (sched.sessions.astype(np.int64) + date(1970, 1, 1).toordinal()).tolist()
    breaks: tuple[list[int | None], list[int | None]] | None = None
    if sched.has_breaks:
        has = (sched.break_starts_ns != _NAT_NS).tolist()
        starts = offsets(np.where(has, sched.break_starts_ns, midnights))
        ends = offsets(np.where(has, sched.break_ends_ns, midnights))
        breaks = (
            [s if h else None for s, h in zip(starts, has, strict=True)],
            [e if h else None for e, h in zip(ends, has, strict=True)],
        )
    return SessionTable(
        name=name,
        days=days,
        opens=offsets(sched.opens_ns),
        closes=offsets(sched.closes_ns),
        break_starts=None if breaks is None else breaks[0],
        break_ends=None if breaks is None else breaks[1],
    )


def utc_ns(index: Any) -> npt.NDArray[np.int64]:
    """UTC epoch nanoseconds of tz-aware timestamps (index, Series or array; naive refused)."""
    if isinstance(index, pd.Series):
        index = index.array
    if not isinstance(index, pd.DatetimeIndex | pd.arrays.DatetimeArray):
        index = pd.DatetimeIndex(index)
    if index.tz is None:
        raise ValueError("bar timestamps must be timezone-aware (naive times are ambiguous)")
    # A tz-aware index stores UTC instants, so no tz conversion is needed, only the unit.
    if index.unit != "ns":
        index = index.as_unit("ns")
    out: npt.NDArray[np.int64] = index.asi8
    return out


def session_positions(
    times_ns: npt.NDArray[np.int64], sched: SessionSchedule
) -> npt.NDArray[np.int64]:
    """Index into `sched` of the session whose [open, close) holds each UTC time, or -1."""
    pos = np.searchsorted(sched.opens_ns, times_ns, side="right").astype(np.int64) - 1
    if len(times_ns) and (
        times_ns.min() < sched.opens_ns[0] or times_ns.max() >= sched.closes_ns[-1]
    ):
        first, last = sched.sessions[0], sched.sessions[-1]
        raise ValueError(
            f"bars outside the {sched.name} calendar's known sessions ({first} … {last})"
        )
    safe = np.maximum(pos, 0)
    inside = (pos >= 0) & (times_ns < sched.closes_ns[safe])
    if sched.has_breaks:
        in_break = (times_ns >= sched.break_starts_ns[safe]) & (
            times_ns < sched.break_ends_ns[safe]
        )
        inside &= ~in_break
    return np.where(inside, pos, -1)


def session_labels(index: Any, calendar: str = DEFAULT_CALENDAR) -> DayArray:
    """The session date (datetime64[D]) of each bar start; NaT for bars outside RTH."""
    sched = session_schedule(calendar)
    pos = session_positions(utc_ns(index), sched)
    labels = sched.sessions[np.maximum(pos, 0)].copy()
    labels[pos < 0] = np.datetime64("NaT")
    return labels


def rth_mask(index: Any, calendar: str = DEFAULT_CALENDAR) -> npt.NDArray[np.bool_]:
    """True for bars whose start lies inside [open, close) of a real session."""
    return session_positions(utc_ns(index), session_schedule(calendar)) >= 0


def rth_bars(bars: pd.DataFrame, calendar: str = DEFAULT_CALENDAR) -> pd.DataFrame:
    """The RTH bars only, with a UTC index and a ``session`` column (session date, naive)."""
    check_bars(bars)
    sched = session_schedule(calendar)
    pos = session_positions(utc_ns(bars.index), sched)
    keep = pos >= 0
    out = bars.loc[keep].copy()
    out.index = pd.DatetimeIndex(bars.index[keep]).tz_convert(UTC)
    out[SESSION_COLUMN] = sched.sessions[pos[keep]].astype("datetime64[s]")
    return out


def check_bars(bars: pd.DataFrame) -> None:
    """Raise ValueError unless `bars` follows the bar-frame contract (see module docstring)."""
    missing = [c for c in BAR_COLUMNS if c not in bars.columns]
    if missing:
        raise ValueError(f"bars lack the column(s) {', '.join(missing)} (lowercase names)")
    index = bars.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise ValueError("bars need a timezone-aware DatetimeIndex labelled by bar start")
    if not index.is_monotonic_increasing or not index.is_unique:
        raise ValueError("bar timestamps must be strictly increasing (sort and de-duplicate)")


def _day(session: date | np.datetime64) -> np.datetime64:
    if isinstance(session, np.datetime64):
        day: np.datetime64 = session.astype("datetime64[D]")
        return day
    if isinstance(session, datetime):
        raise ValueError("a session is a date, not a datetime")
    return np.datetime64(session, "D")


def _to_date(day: np.datetime64) -> date:
    value = day.astype("datetime64[D]").item()
    if not isinstance(value, date):
        raise ValueError(f"not a session date: {day}")
    return value


def utc_datetime(ns: int) -> datetime:
    """A UTC epoch-nanosecond timestamp as an aware datetime (to the microsecond)."""
    seconds, rem = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).replace(microsecond=rem // 1000)


def is_session(day: date, calendar: str = DEFAULT_CALENDAR) -> bool:
    """True when `day` is a trading session of the calendar."""
    sched = session_schedule(calendar)
    d = _day(day)
    i = int(np.searchsorted(sched.sessions, d))
    return i < len(sched.sessions) and sched.sessions[i] == d


@lru_cache(maxsize=4096)
def session_open_close(
    session: date, calendar: str = DEFAULT_CALENDAR
) -> tuple[datetime, datetime]:
    """(open, close) of `session` as UTC datetimes; ValueError when it is not a session."""
    sched = session_schedule(calendar)
    d = _day(session)
    i = int(np.searchsorted(sched.sessions, d))
    if i >= len(sched.sessions) or sched.sessions[i] != d:
        raise ValueError(f"{session} is not a {calendar} session")
    return utc_datetime(int(sched.opens_ns[i])), utc_datetime(int(sched.closes_ns[i]))


def session_at(moment: datetime, calendar: str = DEFAULT_CALENDAR) -> date | None:
    """The session whose [open, close) holds `moment` (tz-aware), or None outside RTH."""
    if moment.tzinfo is None:
        raise ValueError("moment must be timezone-aware")
    sched = session_schedule(calendar)
    ns = np.array([pd.Timestamp(moment).as_unit("ns").value], dtype=np.int64)
    pos = int(session_positions(ns, sched)[0])
    return None if pos < 0 else _to_date(sched.sessions[pos])


def sessions_between(start: date, end: date, calendar: str = DEFAULT_CALENDAR) -> list[date]:
    """The sessions from `start` to `end`, both inclusive, in order."""
    sched = session_schedule(calendar)
    lo = int(np.searchsorted(sched.sessions, _day(start), side="left"))
    hi = int(np.searchsorted(sched.sessions, _day(end), side="right"))
    return [_to_date(d) for d in sched.sessions[lo:hi]]


def next_session(day: date, calendar: str = DEFAULT_CALENDAR) -> date:
    """The first session strictly after `day`; ValueError past the calendar's last session."""
    sched = session_schedule(calendar)
    i = int(np.searchsorted(sched.sessions, _day(day), side="right"))
    if i >= len(sched.sessions):
        raise ValueError(
            f"no {calendar} session after {day} (the calendar ends {sched.sessions[-1]})"
        )
    return _to_date(sched.sessions[i])


def previous_sessions(session: date, count: int, calendar: str = DEFAULT_CALENDAR) -> list[date]:
    """The `count` sessions strictly before `session` (oldest first); fewer near the start."""
    return [_to_date(d) for d in previous_session_days(session, count, calendar)]


def previous_session_days(
    session: date | np.datetime64, count: int, calendar: str = DEFAULT_CALENDAR
) -> DayArray:
    """Like `previous_sessions`, as a datetime64[D] array (no per-item conversion)."""
    sched = session_schedule(calendar)
    hi = int(np.searchsorted(sched.sessions, _day(session), side="left"))
    out: DayArray = sched.sessions[max(0, hi - count) : hi]
    return out
