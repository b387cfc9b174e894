"""1-minute bars from CSV files (`--bars DIR`): one file per symbol.

Format (documented in README, "Bars from CSV files"):

* file name `<SYMBOL>.csv` or `<SYMBOL>_<anything>.csv` (e.g. `SPY_1min.csv`), symbol upper-cased;
* a header row; column names are case-insensitive: a time column named `timestamp`, `datetime`,
  `date` or `time`, and `open, high, low, close, volume`; other columns are ignored;
* times are ISO-8601; with an offset or `Z` they are taken as given, without one they are
  America/New_York wall-clock times; each bar is labelled by its START;
* rows sorted by time, no duplicate times, prices finite and positive, volume ≥ 0;
* 1-minute bars: every time on a whole minute, and some two rows one minute apart (missing
  minutes are fine; a file of 5-minute or hourly bars is refused: its bars would be taken as
  complete one minute after they start, a look-ahead);
* each row's open and close within its low … high.

Only regular-session bars are kept (by the exchange calendar), so pre/post-market prints and the
after-hours bars of early-close days never reach a signal. Any problem is a `BarsError` naming the
file and the first offending row (exit 3).

Why one module: the CSV format's rules (names, times, zones, minutes, gaps, bounds) are one
contract checked in one pass over the file, each error naming its line; split, the pass would be
too.
"""

from __future__ import annotations

import io
import itertools
import os
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from tradebot.core.sessions import (
    BAR_COLUMNS,
    DEFAULT_CALENDAR,
    SESSION_COLUMN,
    rth_bars,
    session_positions,
    session_schedule,
)
from tradebot.errors import ConfigError

TIME_COLUMNS = ("timestamp", "datetime", "date", "time")
EXCHANGE_TZ = "America/New_York"
_SYMBOL = re.compile(r"^[A-Za-z][A-Za-z0-9.]*$")
_AWARE = r"(?:Z|[+-]\d\d:?\d\d)$"
MINUTE_NS = 60_000_000_000
PRICE_SLACK = 1e-6  # relative: open/close may exceed high/low by rounding, no more
# Bounds checked before anything is parsed, so a hostile or broken file costs neither memory
# nor minutes: a bar row is well under 100 bytes and twenty years of one symbol's minutes, with
# extended hours, are ~300 MB.
MAX_FILE_BYTES = 1024**3
MAX_LINE_BYTES = 4096
MAX_QUOTED = 100  # characters of a bad value an error message repeats
MAX_BAR_PRICE = 1e7  # no share has ever traded this high
MAX_VOLUME = 1e15
FIRST_YEAR, LAST_YEAR = 1990, 2200


class BarsError(ConfigError):
    """A bars directory or file that cannot be used (exit 3, names the file and row)."""


@dataclass(frozen=True)
class BarFile:
    symbol: str
    path: Path


def discover(directory: Path, symbols: Sequence[str] | None = None) -> dict[str, BarFile]:
    """Symbol → file for every usable CSV in `directory` (only `symbols` when given: the
    other files are never looked at); BarsError when there is none."""
    directory = Path(directory)
    if not directory.exists():
        raise BarsError(
            f"--bars {directory}: no such directory; give a folder of <SYMBOL>.csv files"
        )
    if not directory.is_dir():
        raise BarsError(f"--bars {directory}: not a directory; give a folder of <SYMBOL>.csv files")
    wanted = None if symbols is None else {s.upper() for s in symbols}
    try:
        with os.scandir(directory) as entries:
            names = sorted(e.name for e in entries)
    except OSError as exc:
        raise BarsError(
            f"--bars {directory}: the folder cannot be read ({exc.strerror or exc}); fix its "
            "permissions or run tradebot as a user that may read it"
        ) from None
    found: dict[str, BarFile] = {}
    for name in names:
        path = directory / name
        symbol = path.stem.split("_")[0].upper()
        if path.suffix.lower() != ".csv" or not _SYMBOL.match(symbol):
            continue
        if wanted is not None and symbol not in wanted:
            continue
        if not path.is_file():
            continue
        if symbol in found:
            raise BarsError(
                f"--bars {directory}: two files for {symbol} ({found[symbol].path.name}, "
                f"{path.name}); keep one"
            )
        found[symbol] = BarFile(symbol, path)
    if not found and wanted is None:
        raise BarsError(
            f"--bars {directory}: no <SYMBOL>.csv files in it; see README, 'Bars from CSV files'"
        )
    return found


def quoted(value: object) -> str:
    """A bad value as an error message repeats it: at most MAX_QUOTED characters."""
    text = str(value)
    if len(text) <= MAX_QUOTED:
        return repr(text)
    return repr(text[:MAX_QUOTED]) + f"… ({len(text)} characters)"


def check_file_bounds(path: Path) -> None:
    """BarsError unless `path` is a regular file of at most MAX_FILE_BYTES whose lines are at
    most MAX_LINE_BYTES long and hold no NUL byte. Streams the file: memory stays one block."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise BarsError(f"{path}: cannot be read as CSV ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > MAX_FILE_BYTES:
                raise BarsError(
                    f"{path}: {size} bytes, more than a bars file may have "
                    f"({MAX_FILE_BYTES // 1024**2} MiB); split it (a file per year)"
                )
            checker = LineBounds(path)
            while block := handle.read(BLOCK_BYTES):
                checker.feed(block)
            checker.end()
    except OSError as exc:
        raise BarsError(f"{path}: cannot be read as CSV ({exc.strerror or exc})") from None


class LineBounds:
    """Checks blocks of a file as they stream by: no NUL byte, no line over MAX_LINE_BYTES."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.line = 1  # the 1-based line the next byte belongs to
        self.open_bytes = 0  # bytes of that line seen so far

    def feed(self, block: bytes) -> None:
        if b"\0" in block:
            cut = block.index(b"\0")
            line = self.line + block.count(b"\n", 0, cut)
            raise BarsError(
                f"{self.path}, line {line}: a NUL byte; this is not a text CSV file (a damaged "
                "or unfinished download?)"
            )
        ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)
        if not len(ends):
            self.open_bytes += len(block)
            self._check(self.open_bytes, self.line)
            return
        lengths = np.diff(ends, prepend=-1)
        lengths[0] += self.open_bytes
        longest = int(np.argmax(lengths))
        self._check(int(lengths[longest]), self.line + longest)
        self.line += len(ends)
        self.open_bytes = len(block) - int(ends[-1]) - 1
        self._check(self.open_bytes, self.line)

    def end(self) -> None:
        self._check(self.open_bytes, self.line)

    def _check(self, length: int, line: int) -> None:
        if length > MAX_LINE_BYTES:
            raise BarsError(
                f"{self.path}, line {line}: longer than {MAX_LINE_BYTES} bytes; a bar row is "
                "one short line (timestamp,open,high,low,close,volume)"
            )


def load_bar_file(path: Path, calendar: str = DEFAULT_CALENDAR) -> pd.DataFrame:
    """The file's RTH bars as a bar frame (UTC index of bar starts, `session` column)."""
    check_file_bounds(path)
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BarsError(f"{path}: cannot be read as CSV ({_short(exc)})") from None
    layout = bar_columns(path, raw.columns)
    if raw.empty:
        raise BarsError(f"{path}: no rows")
    block = parse_rows(path, raw, layout)
    check_one_minute_bars(path, block.closest)
    return block_rth_bars(path, block, calendar)


@dataclass(frozen=True)
class ColumnLayout:
    """Where the time and OHLCV columns are in a file's header."""

    time: str
    values: dict[str, str]  # bar column → the header's name for it


@dataclass(frozen=True)
class RowBlock:
    """Parsed, checked rows of a bar file (all rows, RTH or not)."""

    times: pd.DatetimeIndex  # UTC, ns
    values: dict[str, np.ndarray]
    aware: bool  # the times had a UTC offset
    # The smallest gap between two consecutive rows (ns; the row before the block included)
    # and the 0-based data row that ends it, first occurrence; None with fewer than two rows.
    closest: tuple[int, int] | None = None


def bar_columns(path: Path, header: Any) -> ColumnLayout:
    """The header's time and OHLCV columns; BarsError naming what is missing."""
    columns = {str(c).strip().lower(): str(c) for c in header}
    time_col = next((columns[c] for c in TIME_COLUMNS if c in columns), None)
    missing = [c for c in BAR_COLUMNS if c not in columns]
    if time_col is None or missing:
        need = ", ".join(([] if time_col else ["a time column (timestamp)"]) + missing)
        raise BarsError(
            f"{path}: missing column(s) {need}; the header needs timestamp, open, high, low, "
            "close, volume"
        )
    return ColumnLayout(time_col, {name: columns[name] for name in BAR_COLUMNS})


def parse_rows(
    path: Path,
    raw: pd.DataFrame,
    layout: ColumnLayout,
    *,
    first_row: int = 0,
    aware: bool | None = None,
    previous_ns: int | None = None,
) -> RowBlock:
    """Parse and check rows read as text. `first_row`: the index of `raw`'s first data row in
    the file (for messages); `aware` and `previous_ns`: what the rows before them were (a file
    read in blocks is checked exactly like a file read whole)."""
    times, is_aware = _parse_times(path, raw[layout.time], first_row=first_row, aware=aware)
    values: dict[str, np.ndarray] = {}
    for name in BAR_COLUMNS:
        column = raw[layout.values[name]]
        series = pd.to_numeric(column.str.strip(), errors="coerce")
        arr = series.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(arr) | (arr < 0 if name == "volume" else arr <= 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise BarsError(
                f"{path}, row {first_row + row + 2}: {name} {quoted(column.iat[row])} is not a "
                f"{'non-negative' if name == 'volume' else 'positive'} number"
            )
        ceiling = MAX_VOLUME if name == "volume" else MAX_BAR_PRICE
        above = arr > ceiling
        if above.any():
            row = int(np.flatnonzero(above)[0])
            raise BarsError(
                f"{path}, row {first_row + row + 2}: {name} {quoted(column.iat[row].strip())} is "
                f"above {ceiling:g}: not a {'volume' if name == 'volume' else 'price'} of a bar"
            )
        values[name] = arr
    ns = times.as_unit("ns").asi8
    if previous_ns is not None and len(ns):
        ns_all = np.concatenate(([previous_ns], ns))
        shift = 0
    else:
        ns_all, shift = ns, 1
    order = np.diff(ns_all)
    if (order == 0).any():
        row = int(np.flatnonzero(order == 0)[0]) + shift
        raise BarsError(
            f"{path}, row {first_row + row + 2}: duplicate time "
            f"{raw[layout.time].iat[row].strip()!r}; remove one of them"
        )
    if (order < 0).any():
        row = int(np.flatnonzero(order < 0)[0]) + shift
        raise BarsError(
            f"{path}, row {first_row + row + 2}: time {raw[layout.time].iat[row].strip()!r} is "
            "before the row above; sort the file by time (oldest first)"
        )
    high_low = values["high"] < values["low"]
    if high_low.any():
        row = int(np.flatnonzero(high_low)[0])
        raise BarsError(f"{path}, row {first_row + row + 2}: high is below low")
    off_minute = ns % MINUTE_NS != 0
    if off_minute.any():
        row = int(np.flatnonzero(off_minute)[0])
        raise BarsError(
            f"{path}, row {first_row + row + 2}: time "
            f"{quoted(raw[layout.time].iat[row].strip())} is not on a whole minute; tradebot "
            "needs 1-minute bars labelled by the minute they start (hh:mm:00)"
        )
    high, low = values["high"], values["low"]
    slack = high * PRICE_SLACK
    for name in ("open", "close"):
        outside = (values[name] > high + slack) | (values[name] < low - slack)
        if outside.any():
            row = int(np.flatnonzero(outside)[0])
            text = {
                c: quoted(raw[layout.values[c]].iat[row].strip())[1:-1]
                for c in (name, "low", "high")
            }
            raise BarsError(
                f"{path}, row {first_row + row + 2}: {name} {text[name]} is outside the bar's "
                f"low {text['low']} … high {text['high']}; fix or remove the row"
            )
    closest = None
    if len(order):
        i = int(np.argmin(order))
        closest = (int(order[i]), first_row + i + shift)
    # Nanoseconds like every bar frame in tradebot (pandas may parse to microseconds).
    return RowBlock(pd.DatetimeIndex(times).as_unit("ns"), values, is_aware, closest)


def check_one_minute_bars(path: Path, closest: tuple[int, int] | None) -> None:
    """BarsError unless the file's closest rows are one minute apart (1-minute bars).

    A longer bar read as a 1-minute one counts as complete one minute after its start, so its
    close — a price from later — would be traded on early: a file with no two rows less than
    two minutes apart is refused. Missing minutes here and there are fine."""
    if closest is None or closest[0] <= MINUTE_NS:
        return
    gap, row = closest
    minutes = gap // MINUTE_NS
    span = f"{minutes} minutes" if minutes < 1440 else f"{gap / (1440 * MINUTE_NS):g} days"
    raise BarsError(
        f"{path}, row {row + 2}: {span} after the row above, and no two rows are closer: these "
        "are not 1-minute bars; tradebot needs 1-minute bars (a longer bar would be taken as "
        "complete after its first minute, a look-ahead)"
    )


def block_rth_bars(path: Path, block: RowBlock, calendar: str) -> pd.DataFrame:
    """The block's regular-session bars as a bar frame (UTC index, `session` column)."""
    frame = pd.DataFrame(block.values, index=block.times)
    try:
        return rth_bars(frame, calendar)
    except ValueError as exc:
        raise BarsError(f"{path}: {exc}") from None


def _parse_times(
    path: Path, column: pd.Series, *, first_row: int = 0, aware: bool | None = None
) -> tuple[pd.DatetimeIndex, bool]:
    """UTC times and whether they had offsets (`aware`: what earlier rows had, if any)."""
    text = column.str.strip()
    try:
        has_offset = text.str.contains(_AWARE, regex=True)
        if aware is None:
            aware = bool(has_offset.any())
        mismatch = ~has_offset.to_numpy() if aware else has_offset.to_numpy()
        if mismatch.any():
            row = int(np.flatnonzero(mismatch)[0])
            problem = "has no UTC offset while others do" if aware else "has a UTC offset"
            raise BarsError(
                f"{path}, row {first_row + row + 2}: time {quoted(text.iat[row])} {problem}; write "
                "every time the same way"
            )
        parsed = pd.DatetimeIndex(pd.to_datetime(text, utc=aware, format="ISO8601"))
        missing = parsed.isna()
        if missing.any():  # an empty cell (or "NaT") parses as no time at all
            row = int(np.flatnonzero(missing)[0])
            raise BarsError(
                f"{path}, row {first_row + row + 2}: time {quoted(text.iat[row])} is not a time; "
                "every row needs one"
            )
        years = parsed.year.to_numpy()
        outside = (years < FIRST_YEAR) | (years > LAST_YEAR)
        if outside.any():
            row = int(np.flatnonzero(outside)[0])
            raise BarsError(
                f"{path}, row {first_row + row + 2}: time {quoted(text.iat[row])} is outside the "
                f"years {FIRST_YEAR}-{LAST_YEAR}"
            )
        if aware:
            return parsed, True
        local = parsed.tz_localize(EXCHANGE_TZ, ambiguous="raise", nonexistent="raise")
        return local.tz_convert("UTC"), False
    except BarsError:
        raise
    except (ValueError, TypeError) as exc:
        bad = _first_bad_time(text, aware=bool(aware))
        if bad is None:  # not found row by row: say what pandas said
            raise BarsError(
                f"{path}: a time cannot be read ({_short(exc)}); use ISO-8601 like "
                "2025-07-01 09:30:00 (New York) or 2025-07-01T13:30:00Z"
            ) from None
        row, problem = bad
        raise BarsError(f"{path}, row {first_row + row + 2}: {problem}") from None


def _first_bad_time(text: pd.Series, *, aware: bool) -> tuple[int, str] | None:
    """(index, problem) of the first time that cannot be read, row by row (only after the
    vectorised parse failed, so speed does not matter)."""
    for i, value in enumerate(text):
        try:
            stamp = pd.to_datetime(value, format="ISO8601", utc=aware)
            if pd.isna(stamp):
                raise ValueError("empty")
        except (ValueError, TypeError):
            return i, (
                f"a time cannot be read ({quoted(value)} is not ISO-8601); use ISO-8601 like "
                "2025-07-01 09:30:00 (New York) or 2025-07-01T13:30:00Z"
            )
        if aware:
            continue
        fix = "; write the times with their UTC offset (e.g. 2025-07-01T09:30:00-04:00) or in UTC"
        try:
            pd.Timestamp(stamp).tz_localize(EXCHANGE_TZ, ambiguous="raise", nonexistent="raise")
        except ValueError as exc:
            if "nonexistent" in str(exc):
                return i, (
                    f"time {quoted(value)} does not exist in New York (the clocks jump forward an "
                    f"hour that night){fix}"
                )
            return i, (
                f"time {quoted(value)} happens twice in New York (the clocks go back an hour that "
                f"night), so it is ambiguous{fix}"
            )
    return None


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


class CsvBars:
    """Bar source over a directory of CSV files; each file is read once, on first use."""

    kind = "csv"

    def __init__(
        self,
        directory: Path,
        calendar: str = DEFAULT_CALENDAR,
        *,
        symbols: Sequence[str] | None = None,
    ) -> None:
        """`symbols`: only these symbols' files are ever looked at (a folder may hold
        thousands)."""
        self.directory = Path(directory)
        self.calendar = calendar
        self.files = discover(self.directory, symbols)
        self._frames: dict[str, pd.DataFrame] = {}
        self._sessions: dict[str, dict[date, tuple[int, int]]] = {}

    def describe(self) -> str:
        return f"1-minute bars from {self.directory} ({', '.join(sorted(self.files))})"

    def symbols(self) -> list[str]:
        return sorted(self.files)

    def frame(self, symbol: str) -> pd.DataFrame:
        symbol = symbol.upper()
        if symbol not in self.files:
            raise BarsError(
                f"no bars for {symbol} in {self.directory}; add {symbol}.csv or remove {symbol} "
                "from trading.symbols"
            )
        if symbol not in self._frames:
            frame = load_bar_file(self.files[symbol].path, self.calendar)
            self._frames[symbol] = frame
            labels = frame[SESSION_COLUMN].to_numpy().astype("datetime64[D]")
            spans: dict[date, tuple[int, int]] = {}
            if len(labels):
                starts = np.concatenate(([0], np.flatnonzero(labels[1:] != labels[:-1]) + 1))
                ends = np.concatenate((starts[1:], [len(labels)]))
                for a, b in zip(starts, ends, strict=True):
                    spans[labels[a].item()] = (int(a), int(b))
            self._sessions[symbol] = spans
        return self._frames[symbol]

    def sessions(self, symbol: str) -> list[date]:
        self.frame(symbol)
        return sorted(self._sessions[symbol.upper()])

    def has_session(self, symbol: str, session: date) -> bool:
        self.frame(symbol)
        return session in self._sessions[symbol.upper()]

    def session_bars(self, symbol: str, session: date) -> pd.DataFrame:
        frame = self.frame(symbol)
        span = self._sessions[symbol.upper()].get(session)
        if span is None:
            return frame.iloc[0:0]
        return frame.iloc[span[0] : span[1]]


# ---------------------------------------------------------------------------- streamed sessions
BLOCK_BYTES = 1 << 20  # a file is checked in blocks of about this many bytes (peak memory)


@dataclass(frozen=True)
class FileIndex:
    """Where each regular session's rows are in a bar file (byte spans), after checking every
    row exactly as `load_bar_file` does — without keeping the rows."""

    path: Path
    header: bytes
    spans: dict[date, tuple[int, int]]
    counts: dict[date, int]  # regular-session bars of each session
    rows: int


def index_bar_file(path: Path, calendar: str = DEFAULT_CALENDAR) -> FileIndex:
    """Check the whole file block by block and index its sessions; BarsError like
    `load_bar_file` (same messages, same rows). Memory stays that of one block."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 (closed below)
    except OSError as exc:
        raise BarsError(f"{path}: cannot be read as CSV ({_short(exc)})") from None
    spans: dict[date, tuple[int, int]] = {}
    counts: dict[date, int] = {}
    with handle:
        size = os.fstat(handle.fileno()).st_size
        if size > MAX_FILE_BYTES:
            raise BarsError(
                f"{path}: {size} bytes, more than a bars file may have "
                f"({MAX_FILE_BYTES // 1024**2} MiB); split it (a file per year)"
            )
        checker = LineBounds(Path(path))
        header = handle.readline(MAX_LINE_BYTES + 1)
        checker.feed(header)
        try:
            names = pd.read_csv(io.BytesIO(header), dtype=str, nrows=0).columns
        except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise BarsError(f"{path}: cannot be read as CSV ({_short(exc)})") from None
        layout = bar_columns(path, names)
        offset = len(header)
        rows = 0
        aware: bool | None = None
        previous: int | None = None
        closest: tuple[int, int] | None = None
        leftover = b""
        while True:
            chunk = handle.read(BLOCK_BYTES)
            checker.feed(chunk)  # NUL bytes and over-long lines, before anything is kept
            data = leftover + chunk
            if not chunk:
                leftover = b""
                if not data:
                    break
            else:
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    leftover = data
                    continue
                data, leftover = data[:cut], data[cut:]
            starts, ends, body = _nonblank_lines(data, offset)
            offset += len(data)
            if not starts:
                if not chunk:
                    break
                continue
            try:
                raw = pd.read_csv(
                    io.BytesIO(header + body), dtype=str, keep_default_na=False, header=0
                )
            except (UnicodeDecodeError, pd.errors.ParserError) as exc:
                raise BarsError(f"{path}: cannot be read as CSV ({_short(exc)})") from None
            if len(raw) != len(starts):
                raise BarsError(
                    f"{path}: cannot be read as CSV (quoted line breaks are not supported)"
                )
            block = parse_rows(path, raw, layout, first_row=rows, aware=aware, previous_ns=previous)
            aware, rows = block.aware, rows + len(raw)
            if block.closest is not None and (closest is None or block.closest[0] < closest[0]):
                closest = block.closest
            ns = block.times.asi8
            previous = int(ns[-1])
            _add_spans(path, spans, counts, ns, np.asarray(starts), np.asarray(ends), calendar)
            if not chunk:
                break
    if rows == 0:
        raise BarsError(f"{path}: no rows")
    check_one_minute_bars(path, closest)
    return FileIndex(Path(path), header, spans, counts, rows)


def _nonblank_lines(data: bytes, offset: int) -> tuple[list[int], list[int], bytes]:
    """Byte offsets (start, end) of the non-blank lines of `data` and those lines joined."""
    starts: list[int] = []
    ends: list[int] = []
    keep: list[bytes] = []
    position = offset
    for line in data.split(b"\n"):
        if line.strip():
            starts.append(position)
            ends.append(position + len(line) + 1)
            keep.append(line)
        position += len(line) + 1
    return starts, ends, b"\n".join(keep) + b"\n"


def _add_spans(
    path: Path,
    spans: dict[date, tuple[int, int]],
    counts: dict[date, int],
    ns: np.ndarray,
    starts: np.ndarray,
    ends: np.ndarray,
    calendar: str,
) -> None:
    sched = session_schedule(calendar)
    try:
        pos = session_positions(ns, sched)
    except ValueError as exc:
        raise BarsError(f"{path}: {exc}") from None
    inside = np.flatnonzero(pos >= 0)
    if not len(inside):
        return
    labels = pos[inside]
    cuts = np.concatenate(([0], np.flatnonzero(labels[1:] != labels[:-1]) + 1, [len(labels)]))
    for a, b in itertools.pairwise(cuts):
        day = sched.sessions[labels[a]].astype("datetime64[D]").item()
        first, last = int(starts[inside[a]]), int(ends[inside[b - 1]])
        if day in spans:  # a session continued from the previous block
            first = spans[day][0]
        spans[day] = (first, last)
        counts[day] = counts.get(day, 0) + int(b - a)


class StreamingCsvBars:
    """Bar source over a directory of CSV files that keeps only recent sessions in memory.

    Every file is checked whole when the source is made (`index_bar_file`: same messages as
    `CsvBars`), then a session's rows are read from the file when first asked for, and only the
    last `keep_sessions` sessions asked for are kept. The frames are the same as `CsvBars`'.
    """

    kind = "csv"

    def __init__(
        self,
        directory: Path,
        calendar: str = DEFAULT_CALENDAR,
        *,
        symbols: Sequence[str] | None = None,
        keep_sessions: int = 64,
    ) -> None:
        self.directory = Path(directory)
        self.calendar = calendar
        files = discover(self.directory, symbols)
        wanted = sorted(files) if symbols is None else [s.upper() for s in symbols]
        for symbol in wanted:
            if symbol not in files:
                have = ", ".join(sorted(discover(self.directory)))
                raise BarsError(
                    f"no bars for {symbol} in {self.directory} (it has {have}); add "
                    f"{symbol}.csv or choose the symbols (--symbols {','.join(sorted(files))})"
                )
        self.files = {s: files[s] for s in wanted}
        self.index = {s: index_bar_file(f.path, calendar) for s, f in self.files.items()}
        self.keep_sessions = keep_sessions
        self._cache: OrderedDict[tuple[str, date], pd.DataFrame] = OrderedDict()
        self._empty: pd.DataFrame | None = None

    def describe(self) -> str:
        return f"1-minute bars from {self.directory} ({', '.join(sorted(self.files))})"

    def symbols(self) -> list[str]:
        return sorted(self.files)

    def sessions(self, symbol: str) -> list[date]:
        return sorted(self._index(symbol).spans)

    def has_session(self, symbol: str, session: date) -> bool:
        return session in self._index(symbol).spans

    def bar_count(self, symbol: str, session: date) -> int:
        """Regular-session bars of `symbol` in `session` (0 when it has none)."""
        return self._index(symbol).counts.get(session, 0)

    def session_bars(self, symbol: str, session: date) -> pd.DataFrame:
        symbol = symbol.upper()
        key = (symbol, session)
        frame = self._cache.get(key)
        if frame is not None:
            self._cache.move_to_end(key)
            return frame
        index = self._index(symbol)
        span = index.spans.get(session)
        if span is None:
            return self._empty_frame()
        changed = BarsError(
            f"{index.path}: the file changed since the backtest checked it (its {session} rows "
            "are no longer where they were); copy the file and back-test the copy, which "
            "nothing writes to meanwhile"
        )
        try:
            with open(index.path, "rb") as handle:
                handle.seek(span[0])
                body = handle.read(span[1] - span[0])
            raw = pd.read_csv(io.BytesIO(index.header + body), dtype=str, keep_default_na=False)
            layout = bar_columns(index.path, raw.columns)
            frame = block_rth_bars(index.path, parse_rows(index.path, raw, layout), self.calendar)
        except (OSError, ValueError, UnicodeDecodeError, BarsError, pd.errors.ParserError):
            raise changed from None
        # Another session's rows at these bytes must never be served as this one's.
        labels = frame[SESSION_COLUMN].to_numpy().astype("datetime64[D]")
        if len(frame) != index.counts.get(session) or (labels != np.datetime64(session)).any():
            raise changed
        self._cache[key] = frame
        while len(self._cache) > self.keep_sessions * max(1, len(self.files)):
            self._cache.popitem(last=False)
        return frame

    def _index(self, symbol: str) -> FileIndex:
        symbol = symbol.upper()
        if symbol not in self.index:
            raise BarsError(
                f"no bars for {symbol} in {self.directory}; add {symbol}.csv or remove {symbol} "
                "from trading.symbols"
            )
        return self.index[symbol]

    def _empty_frame(self) -> pd.DataFrame:
        if self._empty is None:
            frame = pd.DataFrame(
                {c: np.zeros(0) for c in BAR_COLUMNS}, index=pd.DatetimeIndex([], tz="UTC")
            )
            frame[SESSION_COLUMN] = np.zeros(0, dtype="datetime64[s]")
            self._empty = frame
        return self._empty
