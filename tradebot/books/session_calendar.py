"""Exchange sessions for commands that must start fast: a cached copy of the calendar, checked.

exchange_calendars is the single source of truth for sessions, but importing it (with pandas and
numpy) and building a calendar costs several times a whole command's start-up. `risk check` and
`status` need only dates and open/close times, so a copy of the calendar's sessions
(`tradebot.core.session_table.SessionTable`) is kept in

    <state_dir>/cache/calendar-<NAME>.json

and a command reads that instead. The copy is trusted only when it is exactly what this
installation's exchange_calendars would say (see docs/decisions.md, "The exchange calendar,
cached"):

* it names the calendar, the exchange_calendars version installed now and the fixed start
  (`CALENDAR_START`), and its format version is ours; its sessions pass a CRC-32 check;
* anything else (missing, another version, damaged, a question past its last session) and the
  answer comes from exchange_calendars itself, which then writes a fresh copy. Correctness never
  depends on the cache; only speed does.

Who writes it: `run` at start, and any command that had to ask exchange_calendars because the
copy was missing or stale — only into a state directory that exists already (a look at a config
that never ran leaves nothing behind). A write that fails is ignored: the answer was exact anyway.
A process that has exchange_calendars loaded already (the loop, a backtest) asks it directly and
neither reads nor writes the copy.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import operator
import os
import re
import sys
import zlib
from array import array
from collections.abc import Sequence
from datetime import date, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from tradebot.core.session_table import CALENDAR_START, NotCovered, SessionTable
from tradebot.errors import ConfigError, CorruptRecordError
from tradebot.storage import read_json_state, write_json_state

CACHE_DIR = "cache"
FORMAT = 1
# Calendar names that are safe as part of a file name (exchange_calendars has "24/7").
_FILE_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_DIST = "exchange_calendars"

log = logging.getLogger(__name__)


def cache_path(state_dir: Path, name: str) -> Path | None:
    """Where the copy of calendar `name` lives, or None for a name unfit for a file name."""
    if not _FILE_SAFE.fullmatch(name):
        return None
    return Path(state_dir) / CACHE_DIR / f"calendar-{name}.json"


@lru_cache(maxsize=1)
def installed_version() -> str | None:
    """The installed exchange_calendars version, without importing it (None when unknown).

    Read from the name of its `.dist-info` folder next to the package (importlib.metadata would
    cost ~40 ms of the very start-up this saves). Unknown means no cache is read or written."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(_DIST)
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    site = Path(spec.origin).parent.parent
    prefix, suffix = f"{_DIST}-", ".dist-info"
    try:
        found = [
            e.name[len(prefix) : -len(suffix)]
            for e in os.scandir(site)
            if e.name.startswith(prefix) and e.name.endswith(suffix)
        ]
    except OSError:
        return None
    return found[0] if len(found) == 1 else None


# -- the file format -----------------------------------------------------------------------------
def _checksum(table: SessionTable) -> int:
    crc = 0
    for column in (table.days, table.opens, table.closes):
        crc = zlib.crc32(array("q", column).tobytes(), crc)
    for breaks in (table.break_starts, table.break_ends):
        if breaks is not None:
            crc = zlib.crc32(array("q", [-1 if b is None else b for b in breaks]).tobytes(), crc)
    return crc


def encode(table: SessionTable, version: str) -> dict[str, Any]:
    """The cache record: session days as the gaps between them, times as runs of
    [seconds after 00:00 UTC, sessions] (they change a few times a year: ~20 KB, not 130)."""
    days = list(table.days)
    breaks = None
    if table.break_starts is not None and table.break_ends is not None:
        breaks = {"starts": _runs(table.break_starts), "ends": _runs(table.break_ends)}
    return {
        "v": FORMAT,
        "calendar": table.name,
        "exchange_calendars": version,
        "start": CALENDAR_START,
        "first": table.first,
        "last": table.last,
        "sessions": len(days),
        "days": [0, *map(operator.sub, days[1:], days)],
        "opens": _runs(table.opens),
        "closes": _runs(table.closes),
        "breaks": breaks,
        "crc32": _checksum(table),
    }


def decode(record: dict[str, Any], name: str, version: str) -> SessionTable:
    """The table in `record`; ValueError unless it is whole, ours and for `name` at `version`."""
    expected = {"v": FORMAT, "calendar": name, "exchange_calendars": version}
    expected["start"] = CALENDAR_START
    for key, value in expected.items():
        if record.get(key) != value:
            raise ValueError(f"{key} is {record.get(key)!r}, not {value!r}")
    n = record.get("sessions")
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"sessions is {n!r}, not a count")
    first = date.fromisoformat(str(record.get("first")))
    gaps = record.get("days")
    if not isinstance(gaps, list) or len(gaps) != n or not set(map(type, gaps)) <= {int}:
        raise ValueError(f"days is not a list of {n} whole numbers")
    if gaps[0] != 0 or min(gaps[1:], default=1) < 1:
        raise ValueError("session days are not strictly ascending")
    breaks = record.get("breaks")
    starts = ends = None
    if breaks is not None:
        if not isinstance(breaks, dict):
            raise ValueError("breaks is not an object")
        starts = _expand(breaks.get("starts"), n, "breaks.starts", optional=True)
        ends = _expand(breaks.get("ends"), n, "breaks.ends", optional=True)
    table = SessionTable(
        name=name,
        days=list(itertools.accumulate(gaps[1:], initial=first.toordinal())),
        opens=_expand(record.get("opens"), n, "opens"),
        closes=_expand(record.get("closes"), n, "closes"),
        break_starts=starts,
        break_ends=ends,
    )
    if str(table.last) != str(record.get("last")) or _checksum(table) != record.get("crc32"):
        raise ValueError("the sessions do not match their checksum")
    return table


def _runs(values: Sequence[int | None]) -> list[list[int | None]]:
    return [[value, len(list(group))] for value, group in itertools.groupby(values)]


def _expand(runs: Any, n: int, key: str, *, optional: bool = False) -> list[Any]:
    if not isinstance(runs, list) or not all(isinstance(r, list) and len(r) == 2 for r in runs):
        raise ValueError(f"{key} is not a list of [value, count] runs")
    values, counts = zip(*runs, strict=True) if runs else ((), ())
    if not set(map(type, counts)) <= {int} or min(counts, default=1) < 1 or sum(counts) != n:
        raise ValueError(f"{key} does not cover the {n} sessions")
    if not set(map(type, values)) <= ({int, type(None)} if optional else {int}):
        raise ValueError(f"{key} holds something other than whole numbers")
    return list(itertools.chain.from_iterable(map(itertools.repeat, values, counts)))


def read_table(state_dir: Path, name: str, version: str) -> SessionTable | None:
    """The cached table of `name` when it is valid for `version`, else None (never raises)."""
    path = cache_path(state_dir, name)
    if path is None:
        return None
    try:
        record = read_json_state(path)
        return None if record is None else decode(record, name, version)
    except (CorruptRecordError, OSError, ValueError, TypeError, OverflowError) as exc:
        log.debug("calendar cache %s not used: %s", path, exc)
        return None


def write_table(state_dir: Path, table: SessionTable, version: str) -> bool:
    """Replace the cached copy atomically; False (and nothing changed) when it cannot be written.

    Only into a state directory that exists: a read-only look at a config that never ran must
    not create one."""
    path = cache_path(state_dir, table.name)
    if path is None or not Path(state_dir).is_dir():
        return False
    try:
        write_json_state(path, encode(table, version))
    except OSError as exc:  # StorageError too: a cache is never worth failing a command for
        log.debug("calendar cache %s not written: %s", path, exc)
        return False
    return True


def refresh_cache(state_dir: Path, name: str) -> bool:
    """Write the copy of `name` from exchange_calendars unless a valid one reaching as far is
    there already (`run` does this at start: it loads exchange_calendars anyway). True when
    written; ConfigError for a calendar exchange_calendars does not know."""
    check_calendar(name)
    version = installed_version()
    if version is None or cache_path(state_dir, name) is None:
        return False
    current = read_table(state_dir, name, version)
    return _write_fresh(state_dir, name, version, unless_reaching=current)


def _write_fresh(
    state_dir: Path, name: str, version: str, *, unless_reaching: SessionTable | None = None
) -> bool:
    from tradebot.core.sessions import session_table

    try:
        table = session_table(name)
    except ValueError as exc:  # times that are not whole seconds: no copy, exact answers still
        log.debug("calendar %s not cached: %s", name, exc)
        return False
    if unless_reaching is not None and unless_reaching.last >= table.last:
        return False
    return write_table(state_dir, table, version)


# -- the questions -------------------------------------------------------------------------------
def check_calendar(name: str) -> None:
    """ConfigError (exit 3) unless `name` is an exchange calendar exchange_calendars knows."""
    import exchange_calendars

    names = exchange_calendars.get_calendar_names(include_aliases=True)
    if name not in names:
        import difflib

        close = difflib.get_close_matches(name, names, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(
            f"schedule.calendar: unknown exchange calendar '{name}'{hint}; use an "
            "exchange_calendars name such as XNYS"
        )


class CalendarSessions:
    """One calendar's sessions, as `tradebot.core.sessions` answers: from the cached table when
    it covers the question, else from exchange_calendars (which then refreshes the cache)."""

    def __init__(
        self,
        name: str,
        table: SessionTable | None,
        *,
        state_dir: Path | None = None,
    ) -> None:
        self.name = name
        self.table = table
        self.state_dir = state_dir

    def is_session(self, day: date) -> bool:
        try:
            return self._copy().is_session(day)
        except NotCovered:
            self._past_the_copy()
            from tradebot.core.sessions import is_session

            return is_session(day, self.name)

    def open_close(self, day: date) -> tuple[datetime, datetime]:
        """(open, close) as UTC datetimes; ValueError when `day` is not a session."""
        try:
            return self._copy().open_close(day)
        except NotCovered:
            self._past_the_copy()
            from tradebot.core.sessions import session_open_close

            return session_open_close(day, self.name)

    def between(self, start: date, end: date) -> list[date]:
        """The sessions from `start` to `end`, both inclusive, in order."""
        try:
            return self._copy().between(start, end)
        except NotCovered:
            self._past_the_copy()
            from tradebot.core.sessions import sessions_between

            return sessions_between(start, end, self.name)

    def previous(self, day: date, count: int) -> list[date]:
        """The `count` sessions strictly before `day` (oldest first)."""
        try:
            return self._copy().previous(day, count)
        except NotCovered:
            self._past_the_copy()
            from tradebot.core.sessions import previous_sessions

            return previous_sessions(day, count, self.name)

    def next_session(self, day: date) -> date:
        """The first session strictly after `day`."""
        try:
            return self._copy().next_session(day)
        except NotCovered:
            self._past_the_copy()
            from tradebot.core.sessions import next_session

            return next_session(day, self.name)

    def session_at(self, moment: datetime) -> date | None:
        """The session whose [open, close) holds `moment`, or None outside regular hours."""
        try:
            return self._copy().session_at(moment)
        except NotCovered:
            self._past_the_copy()
            from tradebot.core.sessions import session_at

            return session_at(moment, self.name)

    def _copy(self) -> SessionTable:
        """The cached table; NotCovered when there is none (exchange_calendars answers)."""
        if self.table is None:
            raise NotCovered("no cached copy")
        return self.table

    def _past_the_copy(self) -> None:
        """The copy could not answer: exchange_calendars answers from now on, and a fresh copy
        (reaching a year past today) is written for the next command."""
        if self.table is None:
            return
        self.table = None
        if self.state_dir is not None:
            with contextlib.suppress(ConfigError):
                refresh_cache(self.state_dir, self.name)


def open_calendar(
    name: str, state_dir: Path | None, *, prefer_loaded: bool = True
) -> CalendarSessions:
    """The sessions of calendar `name`, from the copy under `state_dir` when it is valid.

    Without a `state_dir`, or (with `prefer_loaded`) in a process that has loaded
    exchange_calendars already, exchange_calendars answers and no copy is read or written.
    ConfigError for a calendar exchange_calendars does not know."""
    version = installed_version()
    if (
        state_dir is None
        or version is None
        or (prefer_loaded and "exchange_calendars" in sys.modules)
    ):
        check_calendar(name)
        return CalendarSessions(name, None)
    table = read_table(state_dir, name, version)
    if table is not None:  # only exchange_calendars wrote it: the name is a real one
        return CalendarSessions(name, table, state_dir=state_dir)
    check_calendar(name)
    _write_fresh(state_dir, name, version)
    return CalendarSessions(name, None)


@lru_cache(maxsize=32)
def calendar_sessions(name: str, state_dir: Path | None = None) -> CalendarSessions:
    """`open_calendar`, once per process for each calendar and state directory."""
    return open_calendar(name, state_dir)
