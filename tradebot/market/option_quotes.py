"""Historical option quotes (`tradebot backtest --options DIR`): real bid/ask where the operator
has them, used instead of the model for that contract and minute.

Two formats, any number of files of each in the folder (documented in README, "Real option
quotes"):

* **Lean minute quote zips** (QuantConnect/AlgoSeek: `YYYYMMDD_quote_american.zip`), each member
  `YYYYMMDD_<symbol>_minute_quote_american_<call|put>_<strike × 10000>_<expiry YYYYMMDD>.csv`
  with rows ``ms since midnight New York, bid open, high, low, close, bid size, ask open, high,
  low, close, ask size``, prices in 1/10000 $. A row is the quote *bar* of the minute starting
  at `ms`: its closing bid and ask are the quote from the end of that minute. An empty ask means
  no quote that minute; an empty bid, no bid (an option nobody bids for).
* **CSV** (`*.csv`): a header ``time, contract, bid, ask`` and optionally ``bid_size,
  ask_size`` (any order, any case; other columns are ignored). `time` is ISO-8601, with an offset
  taken as given, without one a New York time; `contract` an OCC symbol (``SPY250507C00551000``,
  the root may be padded with spaces to six); bid ≥ 0, ask > 0, bid ≤ ask, at most 4 decimals.

A quote stamped T is the contract's quote from T until the next one, for at most one minute:
at a moment with none in the last minute the model prices the option. Every file is read and
checked when the backtest is prepared; the first problem is an `OptionQuotesError` naming the
file (and member) and the row (exit 3), before anything is written.
"""

from __future__ import annotations

import io
import re
import zipfile
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped]

from tradebot.core.instruments import OptionContract
from tradebot.errors import ConfigError
from tradebot.market.csv_bars import BarsError, _parse_times

MINUTE_NS = 60_000_000_000
SCALE = 10_000  # prices are kept as whole 1/10000 $ (Lean's unit): exact, and compact
NEW_YORK = "America/New_York"
_OCC = re.compile(r"^([A-Z][A-Z0-9.]{0,5}) *(\d{6})([CP])(\d{8})$")
_LEAN_MEMBER = re.compile(
    r"^(\d{8})_([a-z0-9.]+)_minute_quote_american_(call|put)_(\d+)_(\d{8})\.csv$"
)
LEAN_COLUMNS = ["ms", "bo", "bh", "bl", "bc", "bs", "ao", "ah", "al", "ac", "as"]
_LEAN_ROW = re.compile(r"\d{1,9}(?:,\d{0,12}){10}")
_EMPTY_FIELD = re.compile(r"(?<=,)(?=,|$)", re.MULTILINE)
CSV_REQUIRED = ("time", "contract", "bid", "ask")
CSV_SIZES = ("bid_size", "ask_size")

ContractKey = tuple[str, date, Decimal, str]  # symbol, expiry, strike, right


class OptionQuotesError(ConfigError):
    """An option quote file that cannot be used (exit 3, names the file and row)."""


@dataclass(frozen=True)
class RealQuote:
    bid: Decimal
    ask: Decimal
    time: datetime
    bid_size: int | None
    ask_size: int | None


@dataclass(frozen=True)
class QuoteSeries:
    """One contract's quotes, oldest first: times (UTC ns), prices in 1/10000 $, sizes (-1:
    not given)."""

    times: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    bid_size: np.ndarray
    ask_size: np.ndarray


@dataclass
class _Rows:
    """Parsed rows of one file (or Lean member), before they are merged by contract."""

    source: str  # what an error names: the file, or "zip: member"
    keys: list[ContractKey]
    times: np.ndarray
    bid: np.ndarray
    ask: np.ndarray
    bid_size: np.ndarray
    ask_size: np.ndarray
    rows: np.ndarray  # the file's row number of each quote (for messages)


class OptionQuoteBook:
    """Real option quotes by contract; `at(contract, t)` is the one in force at `t`."""

    def __init__(self, series: dict[ContractKey, QuoteSeries], directory: Path) -> None:
        self.series = series
        self.directory = directory
        self.count = sum(len(s.times) for s in series.values())

    def at(self, contract: OptionContract, t: datetime) -> RealQuote | None:
        """The latest quote stamped at or before `t` and less than a minute before it."""
        found = self.series.get(
            (contract.symbol.upper(), contract.expiry, contract.strike, contract.right)
        )
        if found is None:
            return None
        t_ns = int(t.timestamp() * 1_000_000) * 1000
        i = int(np.searchsorted(found.times, t_ns, side="right")) - 1
        if i < 0 or t_ns - int(found.times[i]) >= MINUTE_NS:
            return None
        bid_size, ask_size = int(found.bid_size[i]), int(found.ask_size[i])
        return RealQuote(
            bid=_dollars(int(found.bid[i])),
            ask=_dollars(int(found.ask[i])),
            time=datetime.fromtimestamp(int(found.times[i]) / 1e9, UTC),
            bid_size=None if bid_size < 0 else bid_size,
            ask_size=None if ask_size < 0 else ask_size,
        )

    def symbols(self) -> set[str]:
        return {key[0] for key in self.series}

    def days(self, symbol: str) -> set[date]:
        """New York dates on which `symbol` has quotes."""
        stamps = [s.times for key, s in self.series.items() if key[0] == symbol.upper()]
        if not stamps:
            return set()
        index = pd.DatetimeIndex(np.concatenate(stamps), tz=UTC).tz_convert(NEW_YORK)
        return {d.date() for d in index.normalize().unique()}

    def describe(self) -> str:
        return (
            f"{self.count:,} real option quotes of {len(self.series):,} contracts from "
            f"{self.directory}"
        )


def _dollars(units: int) -> Decimal:
    value = Decimal(units).scaleb(-4)
    cents = value.quantize(Decimal("0.01"))
    return cents if cents == value else value.normalize()


def load_option_quotes(directory: Path) -> OptionQuoteBook:
    """Every Lean quote zip and quote CSV in `directory`, checked; OptionQuotesError else."""
    directory = Path(directory)
    if not directory.is_dir():
        what = "no such directory" if not directory.exists() else "not a directory"
        raise OptionQuotesError(
            f"--options {directory}: {what}; give a folder of Lean quote zips or quote CSVs"
        )
    parts: list[_Rows] = []
    for path in sorted(directory.iterdir()):
        if not path.is_file():
            continue
        suffix = path.suffix.lower()
        if suffix == ".zip":
            parts.extend(_lean_zip(path))
        elif suffix == ".csv":
            parts.append(_csv_file(path))
    if not parts or not any(len(p.times) for p in parts):
        raise OptionQuotesError(
            f"--options {directory}: no option quotes in it (Lean *_quote_american.zip files "
            "or CSVs with time, contract, bid, ask)"
        )
    return OptionQuoteBook(_merge(parts), directory)


# -- Lean --------------------------------------------------------------------------------------
def _lean_zip(path: Path) -> list[_Rows]:
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise OptionQuotesError(f"{path}: cannot be read as a zip file ({exc})") from None
    out = []
    with archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        if not names:
            raise OptionQuotesError(f"{path}: the zip file is empty")
        for name in names:
            match = _LEAN_MEMBER.match(name.rsplit("/", 1)[-1])
            if match is None:
                raise OptionQuotesError(
                    f"{path}: {name} is not a Lean minute option quote file "
                    "(YYYYMMDD_<symbol>_minute_quote_american_<call|put>_<strike×10000>_"
                    "<expiry>.csv)"
                )
            try:
                with archive.open(name) as member:
                    text = io.TextIOWrapper(member, encoding="ascii").read()
            except (OSError, UnicodeDecodeError, zipfile.BadZipFile) as exc:
                raise OptionQuotesError(f"{path}: {name} cannot be read ({exc})") from None
            out.append(_lean_rows(f"{path}: {name}", match, text))
    return out


def _lean_rows(source: str, match: re.Match[str], text: str) -> _Rows:
    day_text, symbol, right, strike_units, expiry_text = match.groups()
    try:
        day = datetime.strptime(day_text, "%Y%m%d").date()
        expiry = datetime.strptime(expiry_text, "%Y%m%d").date()
    except ValueError:
        raise OptionQuotesError(f"{source}: the date in the name is not a date") from None
    strike = Decimal(int(strike_units)).scaleb(-4).normalize()
    if strike <= 0:
        raise OptionQuotesError(f"{source}: the strike in the name is not positive")
    key: ContractKey = (symbol.upper(), expiry, strike, "C" if right == "call" else "P")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if _LEAN_ROW.fullmatch(line) is None:
            raise OptionQuotesError(
                f"{source}, row {i + 1}: {line[:60]!r} is not a Lean quote row (11 fields: ms, "
                "bid open/high/low/close, bid size, ask open/high/low/close, ask size, whole "
                "non-negative numbers or empty)"
            )
    # An empty field (no quote on that side) becomes -1, then all rows parse at once.
    filled = _EMPTY_FIELD.sub("-1", "\n".join(lines))
    table = np.array(re.split(r"[,\n]", filled), dtype=np.int64).reshape(-1, len(LEAN_COLUMNS))
    numbers = {name: table[:, LEAN_COLUMNS.index(name)] for name in ("ms", "bc", "bs", "ac", "as")}
    ms = numbers["ms"]
    late = ms >= 86_400_000
    if late.any():
        i = int(np.flatnonzero(late)[0])
        raise OptionQuotesError(f"{source}, row {i + 1}: {ms[i]} ms is past midnight")
    keep = numbers["ac"] >= 0  # no ask this minute: no quote
    bid = np.maximum(numbers["bc"], 0)  # no bid: nobody bids (0)
    ask = numbers["ac"]
    bad = keep & ((ask <= 0) | (bid > ask))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise OptionQuotesError(
            f"{source}, row {i + 1}: bid {bid[i] / SCALE:g} and ask {ask[i] / SCALE:g} are not a "
            "quote (need 0 < ask and bid ≤ ask)"
        )
    bid_size = np.where(numbers["bc"] >= 0, np.maximum(numbers["bs"], 0), 0)
    # The bar's close is the quote at the end of its minute.
    midnight = int(pd.Timestamp(day, tz=NEW_YORK).value)
    times = midnight + (ms + 60_000) * 1_000_000
    rows = np.arange(1, len(lines) + 1)
    return _Rows(
        source,
        [key] * int(keep.sum()),
        times[keep],
        bid[keep],
        ask[keep],
        bid_size[keep],
        numbers["as"][keep],
        rows[keep],
    )


# -- CSV ---------------------------------------------------------------------------------------
def _csv_file(path: Path) -> _Rows:
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise OptionQuotesError(f"{path}: cannot be read as CSV ({_first_line(exc)})") from None
    columns = {str(c).strip().lower(): str(c) for c in raw.columns}
    missing = [c for c in CSV_REQUIRED if c not in columns]
    if missing:
        raise OptionQuotesError(
            f"{path}: missing column(s) {', '.join(missing)}; the header needs time, contract, "
            "bid, ask (and optionally bid_size, ask_size)"
        )
    if raw.empty:
        raise OptionQuotesError(f"{path}: no rows")
    try:
        times, _ = _parse_times(path, raw[columns["time"]])
    except BarsError as exc:  # the bars' own time rules and messages (file, row)
        raise OptionQuotesError(exc.message) from None
    ns = pd.DatetimeIndex(times).as_unit("ns").asi8
    keys = [_occ_key(path, i, text) for i, text in enumerate(raw[columns["contract"]])]
    bid = _units(path, raw[columns["bid"]], "bid")
    ask = _units(path, raw[columns["ask"]], "ask")
    bad = (ask <= 0) | (bid < 0) | (bid > ask)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise OptionQuotesError(
            f"{path}, row {i + 2}: bid {raw[columns['bid']].iat[i].strip()!r} and ask "
            f"{raw[columns['ask']].iat[i].strip()!r} are not a quote (need 0 ≤ bid ≤ ask and "
            "ask > 0)"
        )
    sizes = []
    for name in CSV_SIZES:
        if name in columns:
            sizes.append(_sizes(path, raw[columns[name]], name))
        else:
            sizes.append(np.full(len(raw), -1, dtype=np.int64))
    return _Rows(str(path), keys, ns, bid, ask, sizes[0], sizes[1], np.arange(2, len(raw) + 2))


def _occ_key(path: Path, i: int, text: str) -> ContractKey:
    match = _OCC.match(text.strip().upper())
    if match is not None:
        root, code, right, thousandths = match.groups()
        try:
            expiry = datetime.strptime(code, "%y%m%d").date()
        except ValueError:
            expiry = None
        if expiry is not None and int(thousandths) > 0:
            strike = (Decimal(int(thousandths)) / 1000).normalize()
            return root, expiry, strike, right
    raise OptionQuotesError(
        f"{path}, row {i + 2}: contract {text.strip()!r} is not an OCC option symbol; write it "
        "like SPY250507C00551000 (root, yymmdd, C or P, strike × 1000 in 8 digits)"
    )


def _units(path: Path, column: pd.Series, name: str) -> np.ndarray:
    """A price column in whole 1/10000 $ (at most 4 decimals)."""
    text = column.str.strip()
    values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64)
    scaled = np.round(values * SCALE)
    bad = ~np.isfinite(values) | (np.abs(values * SCALE - scaled) > 1e-6 * np.maximum(1, scaled))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise OptionQuotesError(
            f"{path}, row {i + 2}: {name} {text.iat[i]!r} is not a price (a number with at most "
            "4 decimals)"
        )
    out: np.ndarray = scaled.astype(np.int64)
    return out


def _sizes(path: Path, column: pd.Series, name: str) -> np.ndarray:
    text = column.str.strip()
    values = pd.to_numeric(text.replace("", "-1"), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(values) | (values < -1) | (values != np.round(values))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise OptionQuotesError(
            f"{path}, row {i + 2}: {name} {text.iat[i]!r} is not a whole number of contracts"
        )
    out: np.ndarray = values.astype(np.int64)
    return out


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


# -- merging -----------------------------------------------------------------------------------
def _merge(parts: list[_Rows]) -> dict[ContractKey, QuoteSeries]:
    """One time-sorted series per contract; the same contract quoted twice at one time (in one
    file or two) is an error naming both places."""
    by_key: dict[ContractKey, list[tuple[_Rows, np.ndarray]]] = {}
    for part in parts:
        if not len(part.times):
            continue
        # Group row indices by contract (a CSV mixes contracts; a Lean member holds one).
        groups: dict[ContractKey, list[int]] = {}
        for i, key in enumerate(part.keys):
            groups.setdefault(key, []).append(i)
        for key, rows in groups.items():
            by_key.setdefault(key, []).append((part, np.asarray(rows)))
    out: dict[ContractKey, QuoteSeries] = {}
    for key, pieces in by_key.items():
        times = np.concatenate([p.times[r] for p, r in pieces])
        order = np.argsort(times, kind="stable")
        times = times[order]
        same = np.flatnonzero(np.diff(times) == 0)
        if len(same):
            where = [(p.source, int(row)) for p, r in pieces for row in p.rows[r]]
            first, second = where[int(order[same[0]])], where[int(order[same[0] + 1])]
            stamp = pd.Timestamp(int(times[same[0]]), tz=UTC).tz_convert(NEW_YORK)
            raise OptionQuotesError(
                f"{second[0]}, row {second[1]}: {key[0]} {key[1]} {key[3]} {key[2]} is quoted "
                f"twice at {stamp:%Y-%m-%d %H:%M:%S} New York (also {first[0]}, row {first[1]}); "
                "keep one"
            )

        columns = [
            np.concatenate([getattr(p, name)[r] for p, r in pieces])[order]
            for name in ("bid", "ask", "bid_size", "ask_size")
        ]
        out[key] = QuoteSeries(times, *columns)
    return out
