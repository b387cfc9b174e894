"""Loaders for the test data: the synthetic file shipped in tests/data and the real files in
../shared/data (each real loader skips the test, via `shared_data`, when its file is absent).

Every loader returns bar frames in the package's convention: lowercase ``open, high, low, close,
volume`` float columns and a tz-aware index labelled by bar start.
"""

from __future__ import annotations

import io
import zipfile
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from tests.conftest import shared_data
from tradebot.core.option_selection import ChainSnapshot, OptionQuote

DATA = Path(__file__).resolve().parent.parent / "data"
NEW_YORK = "America/New_York"

PRATIK_SPY = "pratikdkale-rl-trade-execution/data/SPY_1min.csv"
DAWSH2_SPY = "dawsh2-admf-trader/data/SPY_1min.csv~"
YAHOO_CHAINS = "watstreet-money-making/projects/options-volatility-model/options_data.csv"
LEAN_GOOG_QUOTES = "quantconnect-lean/Data/option/usa/minute/goog/20151223_quote_american.zip"
LEAN_GOOG_TRADES = "quantconnect-lean/Data/option/usa/minute/goog/20151223_trade_american.zip"
LEAN_GOOG_UNDERLYING = "quantconnect-lean/Data/equity/usa/minute/goog/20151223_trade.zip"
LEAN_SPY_OPTION_QUOTES = "quantconnect-lean/Data/option/usa/minute/spy/20230803_quote_american.zip"
LEAN_SPY_20230803 = "quantconnect-lean/Data/equity/usa/minute/spy/20230803_trade.zip"
LEAN_AAPL_DAILY = "quantconnect-lean/Data/equity/usa/daily/aapl.zip"
LEAN_UNIVERSES = (
    "quantconnect-lean/Data/option/usa/universes/aapl/20140610.csv",
    "quantconnect-lean/Data/option/usa/universes/spy/20240103.csv",
)
DAWSH2_OPTIONS = (  # Alpaca 1-minute bars (sparse trades) of three SPY $551 options
    "dawsh2-admf-trader/data/SPY250506P00551000_1min.csv",
    "dawsh2-admf-trader/data/SPY250507C00551000_1min.csv",
    "dawsh2-admf-trader/data/SPY250508C00551000_1min.csv",
)


def synthetic_minutes() -> pd.DataFrame:
    """tests/data/synthetic_spy_1min.csv: our own seeded random walk (not market data).

    Two days, 2025-07-02 and 2025-07-03, 09:00–16:14 New York time each: pre-market, 09:30–15:59,
    post-market. 2025-07-03 really closed at 13:00, so like the real SPY file its bars from 13:00
    on are after-hours prints; one of them (13:58) has a bad Low of 431.00.
    """
    frame = pd.read_csv(DATA / "synthetic_spy_1min.csv")
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("timestamp"), utc=True)).tz_convert(
        NEW_YORK
    )
    return frame.astype(np.float64)


def pratik_spy() -> pd.DataFrame:
    """The 21-session SPY file (2025-07-01 … 07-30), every row, New York wall clock localized."""
    frame = pd.read_csv(shared_data(PRATIK_SPY))
    stamps = pd.DatetimeIndex(pd.to_datetime(frame.pop("date")))
    frame.index = stamps.tz_localize(NEW_YORK, ambiguous="raise", nonexistent="raise")
    frame.columns = [c.lower() for c in frame.columns]
    return frame.astype(np.float64)


def dawsh2_spy() -> pd.DataFrame:
    """SPY 2025-04-24/25 in UTC, with Alpaca's per-bar trade `vwap` column."""
    frame = pd.read_csv(shared_data(DAWSH2_SPY))
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("timestamp"), utc=True))
    return frame[["open", "high", "low", "close", "volume", "vwap"]].astype(np.float64)


def lean_minute_bars(relative: str, day: date) -> pd.DataFrame:
    """A Lean minute trade-bar zip (ms since midnight New York, prices in 1/10000 $), every row."""
    with zipfile.ZipFile(shared_data(relative)) as archive:
        frame = _lean_rows(
            archive, archive.namelist()[0], ["ms", "open", "high", "low", "close", "volume"]
        )
    midnight = pd.Timestamp(day, tz=NEW_YORK)
    frame.index = pd.DatetimeIndex(midnight + pd.to_timedelta(frame.pop("ms"), unit="ms"))
    frame[["open", "high", "low", "close"]] /= 10_000
    return frame.astype(np.float64)


def lean_daily(relative: str) -> pd.DataFrame:
    """A Lean daily bar zip (`YYYYMMDD 00:00`, prices in 1/10000 $, unadjusted), by date."""
    with zipfile.ZipFile(shared_data(relative)) as archive:
        frame = _lean_rows(
            archive, archive.namelist()[0], ["day", "open", "high", "low", "close", "volume"]
        )
    frame.index = pd.DatetimeIndex(pd.to_datetime(frame.pop("day"), format="%Y%m%d %H:%M")).date
    frame[["open", "high", "low", "close"]] /= 10_000
    return frame.astype(np.float64)


def _dec(value: float) -> Decimal:
    """A CSV number as an exact Decimal (via its shortest repr); NaN → 0 = no quote."""
    return Decimal(0) if np.isnan(value) else Decimal(repr(float(value)))


def yahoo_chain(symbol: str, underlying_last: Decimal) -> ChainSnapshot:
    """One underlying's chain from the Yahoo dump taken after the close of 2024-07-31."""
    frame = pd.read_csv(shared_data(YAHOO_CHAINS), index_col=0)
    rows = frame[frame["contractSymbol"].str.fullmatch(rf"{symbol}\d{{6}}[CP]\d{{8}}")]
    quotes = []
    for row in rows.itertuples(index=False):
        occ = str(row.contractSymbol)
        code = occ[len(symbol) : len(symbol) + 6]
        quotes.append(
            OptionQuote(
                contract_id=occ,
                expiry=date(2000 + int(code[:2]), int(code[2:4]), int(code[4:6])),
                strike=_dec(row.strike),
                right="C" if row.optionType == "C" else "P",
                bid=_dec(row.bid),
                ask=_dec(row.ask),
                last=_dec(row.lastPrice),
                volume=0 if np.isnan(row.volume) else int(row.volume),
                multiplier=100,
                trading_class=symbol,
            )
        )
    return ChainSnapshot(
        symbol=symbol,
        underlying_last=underlying_last,
        as_of=datetime(2024, 7, 31, 20, 15, tzinfo=UTC),
        quotes=tuple(quotes),
    )


def _lean_rows(archive: zipfile.ZipFile, name: str, columns: list[str]) -> pd.DataFrame:
    with archive.open(name) as fh:
        return pd.read_csv(io.TextIOWrapper(fh), header=None, names=columns)


def lean_goog_underlying_close(ms: int) -> Decimal:
    """GOOG's trade-bar close ($) of the minute starting `ms` after midnight on 2015-12-23."""
    with zipfile.ZipFile(shared_data(LEAN_GOOG_UNDERLYING)) as archive:
        bars = _lean_rows(
            archive, archive.namelist()[0], ["ms", "open", "high", "low", "close", "volume"]
        )
    close = int(bars.loc[bars["ms"] == ms, "close"].iloc[0])
    return Decimal(close) / 10_000


def _deci_cents(value: float) -> Decimal:
    """Deci-cents → dollars with cents (option quotes are whole cents); NaN → 0 (no quote)."""
    if np.isnan(value):
        return Decimal(0)
    dollars = Decimal(int(value)) / 10_000
    cents = dollars.quantize(Decimal("0.01"))
    assert cents == dollars, f"sub-cent option quote {dollars}"
    return cents


def lean_goog_chain(ms: int, tick: Decimal = Decimal("0.05")) -> ChainSnapshot:
    """The GOOG weekly chain (expiry 2015-12-24) as quoted in the minute bar starting `ms`.

    Quote rows are ``ms, bid o,h,l,c, bid size, ask o,h,l,c, ask size`` in deci-cents; a side
    with an empty field had no quote that minute and becomes 0 (unpriced). Volume is the
    contracts traded up to and including that minute (trade file). GOOG options were quoted in
    nickels below $3 then, so the tick is 0.05.
    """
    quote_cols = ["ms", "bo", "bh", "bl", "bc", "bs", "ao", "ah", "al", "ac", "as"]
    trade_cols = ["ms", "open", "high", "low", "close", "volume"]
    quotes = []
    with (
        zipfile.ZipFile(shared_data(LEAN_GOOG_QUOTES)) as qz,
        zipfile.ZipFile(shared_data(LEAN_GOOG_TRADES)) as tz,
    ):
        trade_names = set(tz.namelist())
        for name in qz.namelist():
            # 20151223_goog_minute_quote_american_call_7500000_20151224.csv
            parts = name.removesuffix(".csv").split("_")
            right, strike, expiry = parts[5], int(parts[6]), parts[7]
            rows = _lean_rows(qz, name, quote_cols)
            row = rows[rows["ms"] == ms]
            bid = ask = Decimal(0)
            if len(row):
                bid = _deci_cents(row["bc"].iloc[0])
                ask = _deci_cents(row["ac"].iloc[0])
            volume = 0
            trade_name = name.replace("_quote_", "_trade_")
            if trade_name in trade_names:
                trades = _lean_rows(tz, trade_name, trade_cols)
                volume = int(trades.loc[trades["ms"] <= ms, "volume"].sum())
            quotes.append(
                OptionQuote(
                    contract_id=f"GOOG {expiry} {right[0].upper()} {strike / 10_000:g}",
                    expiry=date(int(expiry[:4]), int(expiry[4:6]), int(expiry[6:])),
                    strike=Decimal(strike) / 10_000,
                    right="C" if right == "call" else "P",
                    bid=bid,
                    ask=ask,
                    volume=volume,
                    multiplier=100,
                    trading_class="GOOG",
                    tick=tick,
                )
            )
    as_of = pd.Timestamp("2015-12-23", tz=NEW_YORK) + pd.Timedelta(milliseconds=ms + 60_000)
    return ChainSnapshot(
        symbol="GOOG",
        underlying_last=lean_goog_underlying_close(ms),
        as_of=as_of.to_pydatetime().astimezone(UTC),
        quotes=tuple(quotes),
    )


def minute_frame(
    start: pd.Timestamp,
    closes: np.ndarray,
    *,
    highs: np.ndarray | None = None,
    lows: np.ndarray | None = None,
    volumes: np.ndarray | None = None,
) -> pd.DataFrame:
    """1-minute bars from `start` (tz-aware) with the given closes; open = previous close."""
    closes = np.asarray(closes, dtype=np.float64)
    opens = np.concatenate(([closes[0]], closes[:-1]))
    high = np.maximum(opens, closes) + 0.01 if highs is None else np.asarray(highs, float)
    low = np.minimum(opens, closes) - 0.01 if lows is None else np.asarray(lows, float)
    volume = np.full(len(closes), 1000.0) if volumes is None else np.asarray(volumes, float)
    index = pd.date_range(start, periods=len(closes), freq="1min")
    return pd.DataFrame(
        {"open": opens, "high": high, "low": low, "close": closes, "volume": volume}, index=index
    )
