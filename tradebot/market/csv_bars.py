"""1-minute bars from CSV files (`--bars DIR`): one file per symbol.

Format (documented in README, "Bars from CSV files"):

* file name `<SYMBOL>.csv` or `<SYMBOL>_<anything>.csv` (e.g. `SPY_1min.csv`), symbol upper-cased;
* a header row; column names are case-insensitive: a time column named `timestamp`, `datetime`,
  `date` or `time`, and `open, high, low, close, volume`; other columns are ignored;
* times are ISO-8601; with an offset or `Z` they are taken as given, without one they are
  America/New_York wall-clock times; each bar is labelled by its START;
* rows sorted by time, no duplicate times, prices finite and positive, volume ≥ 0.

Only regular-session bars are kept (by the exchange calendar), so pre/post-market prints and the
after-hours bars of early-close days never reach a signal. Any problem is a `BarsError` naming the
file and the first offending row (exit 3).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from tradebot.core.sessions import BAR_COLUMNS, DEFAULT_CALENDAR, SESSION_COLUMN, rth_bars
from tradebot.errors import ConfigError

TIME_COLUMNS = ("timestamp", "datetime", "date", "time")
EXCHANGE_TZ = "America/New_York"
_SYMBOL = re.compile(r"^[A-Za-z][A-Za-z0-9.]*$")


class BarsError(ConfigError):
    """A bars directory or file that cannot be used (exit 3, names the file and row)."""


@dataclass(frozen=True)
class BarFile:
    symbol: str
    path: Path


def discover(directory: Path) -> dict[str, BarFile]:
    """Symbol → file for every usable CSV in `directory`; BarsError when there is none."""
    directory = Path(directory)
    if not directory.exists():
        raise BarsError(
            f"--bars {directory}: no such directory; give a folder of <SYMBOL>.csv files"
        )
    if not directory.is_dir():
        raise BarsError(f"--bars {directory}: not a directory; give a folder of <SYMBOL>.csv files")
    found: dict[str, BarFile] = {}
    for path in sorted(directory.iterdir()):
        if path.suffix.lower() != ".csv" or not path.is_file():
            continue
        symbol = path.stem.split("_")[0].upper()
        if not _SYMBOL.match(symbol):
            continue
        if symbol in found:
            raise BarsError(
                f"--bars {directory}: two files for {symbol} ({found[symbol].path.name}, "
                f"{path.name}); keep one"
            )
        found[symbol] = BarFile(symbol, path)
    if not found:
        raise BarsError(
            f"--bars {directory}: no <SYMBOL>.csv files in it; see README, 'Bars from CSV files'"
        )
    return found


def load_bar_file(path: Path, calendar: str = DEFAULT_CALENDAR) -> pd.DataFrame:
    """The file's RTH bars as a bar frame (UTC index of bar starts, `session` column)."""
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise BarsError(f"{path}: cannot be read as CSV ({_short(exc)})") from None
    columns = {c.strip().lower(): c for c in raw.columns}
    time_col = next((columns[c] for c in TIME_COLUMNS if c in columns), None)
    missing = [c for c in BAR_COLUMNS if c not in columns]
    if time_col is None or missing:
        need = ", ".join(([] if time_col else ["a time column (timestamp)"]) + missing)
        raise BarsError(
            f"{path}: missing column(s) {need}; the header needs timestamp, open, high, low, "
            "close, volume"
        )
    if raw.empty:
        raise BarsError(f"{path}: no rows")
    times = _parse_times(path, raw[time_col])
    values: dict[str, np.ndarray] = {}
    for name in BAR_COLUMNS:
        series = pd.to_numeric(raw[columns[name]].str.strip(), errors="coerce")
        arr = series.to_numpy(dtype=np.float64)
        bad = ~np.isfinite(arr) | (arr < 0 if name == "volume" else arr <= 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise BarsError(
                f"{path}, row {row + 2}: {name} {raw[columns[name]].iat[row]!r} is not a "
                f"{'non-negative' if name == 'volume' else 'positive'} number"
            )
        values[name] = arr
    ns = times.asi8
    order = np.diff(ns)
    if (order == 0).any():
        row = int(np.flatnonzero(order == 0)[0]) + 1
        raise BarsError(f"{path}, row {row + 2}: duplicate time {times[row]}; remove one of them")
    if (order < 0).any():
        row = int(np.flatnonzero(order < 0)[0]) + 1
        raise BarsError(
            f"{path}, row {row + 2}: time {times[row]} is before the row above; sort the file "
            "by time (oldest first)"
        )
    high_low = values["high"] < values["low"]
    if high_low.any():
        row = int(np.flatnonzero(high_low)[0])
        raise BarsError(f"{path}, row {row + 2}: high is below low")
    # Nanoseconds like every bar frame: the model compares `index.asi8` with epoch ns.
    frame = pd.DataFrame(values, index=times.as_unit("ns"))
    try:
        return rth_bars(frame, calendar)
    except ValueError as exc:
        raise BarsError(f"{path}: {exc}") from None


def _parse_times(path: Path, column: pd.Series) -> pd.DatetimeIndex:
    text = column.str.strip()
    try:
        aware = text.str.contains(r"(?:Z|[+-]\d\d:?\d\d)$", regex=True)
        if aware.all():
            parsed = pd.to_datetime(text, utc=True, format="ISO8601")
            return pd.DatetimeIndex(parsed)
        if aware.any():
            row = int(np.flatnonzero(~aware.to_numpy())[0])
            raise BarsError(
                f"{path}, row {row + 2}: time {text.iat[row]!r} has no UTC offset while others "
                "do; write every time the same way"
            )
        naive = pd.DatetimeIndex(pd.to_datetime(text, format="ISO8601"))
        return naive.tz_localize(EXCHANGE_TZ, ambiguous="raise", nonexistent="raise").tz_convert(
            "UTC"
        )
    except BarsError:
        raise
    except (ValueError, TypeError) as exc:
        raise BarsError(
            f"{path}: a time cannot be read ({_short(exc)}); use ISO-8601 like "
            "2025-07-01 09:30:00 (New York) or 2025-07-01T13:30:00Z"
        ) from None


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


class CsvBars:
    """Bar source over a directory of CSV files; each file is read once, on first use."""

    kind = "csv"

    def __init__(self, directory: Path, calendar: str = DEFAULT_CALENDAR) -> None:
        self.directory = Path(directory)
        self.calendar = calendar
        self.files = discover(self.directory)
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
