"""Every real option price in ../shared/data with the underlying's price at the same moment, as
calibration records (`tradebot.market.calibration.OptionRecord`) with each source's bars, and
the option prices of the model this one replaced (issue 21's "before").

Five sources (docs/backtest-pricing.md describes each):

* `lean_spy_minute`: QuantConnect/AlgoSeek minute quote bars of SPY 430/470 C/P expiring
  2023-09-01, on 2023-08-03, with that day's SPY minute trade bars;
* `lean_goog_minute`: the full GOOG chain expiring 2015-12-24, minute quote bars on 2015-12-23,
  with that day's GOOG minute trade bars (read by `--options`' own Lean reader);
* `yahoo_chain`: Yahoo's chain snapshot after the close of 2024-07-31 (39 underlyings, nearest
  expiry, bid/ask), no bars: each underlying's price is the one put-call parity gives at the
  strike where call and put mids are closest;
* `lean_universe`: Lean's daily chain files (AAPL 2014-06-10, each option's last trade of the
  day, with AAPL's daily close; SPY 2024-01-03, with the file's own SPY row), no minute bars;
* `alpaca_prints`: Alpaca 1-minute bars (trades) of three SPY $551 options on 2025-04-24/25,
  with the same vendor's SPY minute bars.

Each record's time is when its price was real: the end of a quote or trade bar's minute, the
snapshot, or the close. Loaders skip the test (`shared_data`) when a file is absent.
"""

from __future__ import annotations

import math
import shutil
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from tests.conftest import shared_data
from tests.core import data_loaders as dl
from tradebot.core.sessions import previous_sessions, session_open_close
from tradebot.core.trades import session_of
from tradebot.market import calibration as cal
from tradebot.market.calibration import Features, FrameBars, OptionRecord, SourceErrors
from tradebot.market.model import MarketModel
from tradebot.market.option_quotes import load_option_quotes
from tradebot.market.pricing import black_scholes
from tradebot.market.profiles import profile
from tradebot.market.volatility import PricingParams, pricing_params

NEW_YORK = ZoneInfo("America/New_York")
SOURCES = ("alpaca_prints", "lean_goog_minute", "lean_spy_minute", "lean_universe", "yahoo_chain")
INDEX_ETFS_CLOSING_LATE = ("SPY", "QQQ", "IWM", "DIA")  # their options trade until 16:15
Bars = dict[str, dict[str, pd.DataFrame]]


def calibration_data(tmp: Path) -> tuple[list[OptionRecord], Bars]:
    """Every source's records and bars (`tmp`: a scratch folder for the Lean zips)."""
    records: list[OptionRecord] = []
    bars: Bars = {}
    for load in (_lean_spy, _lean_goog, _yahoo, _universes, _alpaca):
        found, source_bars = load(tmp)
        records.extend(found)
        if found and source_bars:
            bars[found[0].source] = source_bars
    return records, bars


def _market(frames: dict[str, pd.DataFrame]) -> MarketModel:
    return MarketModel(FrameBars(frames))


def _lean_quotes(
    tmp: Path, relative: str, source: str, symbol: str, underlying: pd.DataFrame, tick: Decimal
) -> list[OptionRecord]:
    folder = tmp / source
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(shared_data(relative), folder)
    book = load_option_quotes(folder)
    market = _market({symbol: underlying})
    records = []
    for (sym, expiry, strike, right), series in sorted(book.series.items()):
        for i, ns in enumerate(series.times):
            t = datetime.fromtimestamp(int(ns) / 1e9, UTC)
            spot = market.last_price(sym, t)
            bid, ask = int(series.bid[i]) / 10_000, int(series.ask[i]) / 10_000
            if spot is None or bid <= 0 or t >= market.expiry_close(expiry):
                continue  # no underlying yet, or a one-sided quote: no price to compare
            records.append(
                OptionRecord(
                    source,
                    sym,
                    t,
                    expiry,
                    strike,
                    right,
                    spot,
                    (bid + ask) / 2,
                    bid,
                    ask,
                    tick,  # type: ignore[arg-type]
                )
            )
    return records


def _lean_spy(tmp: Path) -> tuple[list[OptionRecord], dict[str, pd.DataFrame]]:
    spy = dl.lean_minute_bars(dl.LEAN_SPY_20230803, date(2023, 8, 3))
    found = _lean_quotes(
        tmp, dl.LEAN_SPY_OPTION_QUOTES, "lean_spy_minute", "SPY", spy, Decimal("0.01")
    )
    return found, {"SPY": spy}


def _lean_goog(tmp: Path) -> tuple[list[OptionRecord], dict[str, pd.DataFrame]]:
    goog = dl.lean_minute_bars(dl.LEAN_GOOG_UNDERLYING, date(2015, 12, 23))
    # GOOG options were quoted in nickels below $3 and dimes above then.
    found = _lean_quotes(
        tmp, dl.LEAN_GOOG_QUOTES, "lean_goog_minute", "GOOG", goog, Decimal("0.05")
    )
    return found, {"GOOG": goog}


def _yahoo(tmp: Path) -> tuple[list[OptionRecord], dict[str, pd.DataFrame]]:
    del tmp
    frame = pd.read_csv(shared_data(dl.YAHOO_CHAINS), index_col=0)
    parts = frame["contractSymbol"].str.extract(r"^([A-Z]+)(\d{6})([CP])(\d{8})$")
    frame["symbol"], frame["right"] = parts[0], parts[2]
    frame["expiry"] = pd.to_datetime(parts[1], format="%y%m%d").dt.date
    frame["strike"] = parts[3].astype(int) / 1000
    records = []
    for symbol, chain in frame.groupby("symbol"):
        quoted = chain[(chain["bid"] > 0) & (chain["ask"] >= chain["bid"])]
        spot = parity_spot(quoted)
        if spot is None:
            continue
        close = "16:15" if symbol in INDEX_ETFS_CLOSING_LATE else "16:00"
        t = datetime.combine(date(2024, 7, 31), time.fromisoformat(close), NEW_YORK)
        for row in quoted.itertuples(index=False):
            records.append(
                OptionRecord(
                    "yahoo_chain",
                    str(symbol),
                    t.astimezone(UTC),
                    row.expiry,
                    Decimal(str(row.strike)),
                    row.right,
                    spot,
                    (float(row.bid) + float(row.ask)) / 2,
                    float(row.bid),
                    float(row.ask),
                )
            )
    return records, {}


def parity_spot(chain: pd.DataFrame) -> float | None:
    """K + C − P at the strike where the call and put mids are closest (both quoted)."""
    calls = chain[chain["right"] == "C"].set_index("strike")
    puts = chain[chain["right"] == "P"].set_index("strike")
    both = calls.index.intersection(puts.index)
    if not len(both):
        return None
    call = (calls.loc[both, "bid"] + calls.loc[both, "ask"]) / 2
    put = (puts.loc[both, "bid"] + puts.loc[both, "ask"]) / 2
    k = (call - put).abs().idxmin()
    return float(k + call[k] - put[k])


def _universes(tmp: Path) -> tuple[list[OptionRecord], dict[str, pd.DataFrame]]:
    del tmp
    aapl_close = float(dl.lean_daily(dl.LEAN_AAPL_DAILY).loc[date(2014, 6, 10), "close"])
    records = []
    for relative in dl.LEAN_UNIVERSES:
        frame = pd.read_csv(shared_data(relative))
        symbol = Path(relative).parent.name.upper()
        day = datetime.strptime(Path(relative).stem, "%Y%m%d").date()
        spot = aapl_close if symbol == "AAPL" else float(frame.iloc[0]["close"])
        t = session_open_close(day)[1]
        for row in frame.iloc[1:].itertuples(index=False):
            if not row.volume > 0:
                continue  # no trade that day: the "close" is not a price anybody paid
            expiry = datetime.strptime(str(int(row[0])), "%Y%m%d").date()
            # Monthlies then expired on the Saturday after their last trading day.
            while not _is_session(expiry):
                expiry -= timedelta(days=1)
            records.append(
                OptionRecord(
                    "lean_universe",
                    symbol,
                    t,
                    expiry,
                    Decimal(str(row.strike)),
                    row.right,
                    spot,
                    float(row.close),
                )
            )
    return records, {}


def _is_session(day: date) -> bool:
    try:
        session_open_close(day)
    except ValueError:
        return False
    return True


def _alpaca(tmp: Path) -> tuple[list[OptionRecord], dict[str, pd.DataFrame]]:
    del tmp
    spy = dl.dawsh2_spy()[["open", "high", "low", "close", "volume"]]
    market = _market({"SPY": spy})
    records = []
    for relative in dl.DAWSH2_OPTIONS:
        code = Path(relative).name[3:18]  # 250506P00551000
        expiry = datetime.strptime(code[:6], "%y%m%d").date()
        frame = pd.read_csv(shared_data(relative))
        for stamp, close in zip(frame["timestamp"], frame["close"], strict=True):
            t = datetime.fromisoformat(stamp) + timedelta(minutes=1)  # the end of its minute
            spot = market.last_price("SPY", t)
            assert spot is not None
            records.append(
                OptionRecord(
                    "alpaca_prints",
                    "SPY",
                    t.astimezone(UTC),
                    expiry,
                    Decimal(int(code[7:])) / 1000,
                    code[6],  # type: ignore[arg-type]
                    spot,
                    float(close),
                )
            )
    return records, {"SPY": spy}


# -- the model before issue 21 -----------------------------------------------------------------
def previous_model(
    records: list[OptionRecord], bars: Bars, f: Features
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fair, bid, ask) of every record under the model this one replaced: Black–Scholes over
    calendar time at the realized volatility of the previous 5 sessions' 1-minute closes (8 %–
    150 %; the symbol's assumed one without them), a smile vol × (1 + 8 m²), a spread
    max(tick, fair × (3 % + 1.2 |m|))."""
    markets = {s: _market(b) for s, b in bars.items()}
    vols: dict[tuple[str, str, date], float] = {}
    fair = np.zeros(len(records))
    for i, r in enumerate(records):
        key = (r.source, r.symbol, session_of(r.time))
        if key not in vols:
            vols[key] = _previous_vol(markets.get(r.source), r.symbol, key[2])
        m = math.log(float(r.strike) / r.spot)
        fair[i] = black_scholes(
            r.spot, float(r.strike), f.calendar_years[i], vols[key] * (1 + 8 * m * m), r.right
        )
    width = np.maximum(f.tick, fair * (0.03 + 1.2 * np.abs(f.m)))
    bid = np.maximum(np.floor((fair - width / 2) / f.tick + 1e-9) * f.tick, 0.0)
    ask = np.maximum(np.ceil((fair + width / 2) / f.tick - 1e-9) * f.tick, bid + f.tick)
    return fair, bid, np.maximum(ask, f.tick)


def _previous_vol(market: MarketModel | None, symbol: str, session: date) -> float:
    returns = []
    if market is not None:
        for prev in previous_sessions(session, 5):
            closes = market.session_bars(symbol, prev)["close"].to_numpy(dtype=np.float64)
            if len(closes) > 1:
                returns.append(np.diff(np.log(closes)))
    if not returns:
        return profile(symbol).vol
    vol = float(np.std(np.concatenate(returns)) * math.sqrt(252 * 390))
    return min(1.5, max(0.08, vol))


# -- the calibration, as documented --------------------------------------------------------------
@dataclass(frozen=True)
class Calibration:
    """What docs/backtest-pricing.md reports: the parameters fitted on every source, and per
    source the errors before (the previous model), in sample, and out of sample (fitted on the
    other sources), plus subsets of interest."""

    params: PricingParams
    before: dict[str, SourceErrors]
    in_sample: dict[str, SourceErrors]
    out_of_sample: dict[str, tuple[PricingParams, SourceErrors]]
    subsets: dict[str, tuple[SourceErrors, SourceErrors, SourceErrors]]  # before, in, out
    excluded: dict[str, int]  # records out of scope, per source
    scalar_check: float  # the largest |array price − MarketModel.option_value| / price


SUBSETS = {
    "yahoo_chain SPY, QQQ (1 day)": ("yahoo_chain", ("SPY", "QQQ")),
    "yahoo_chain single stocks": ("yahoo_chain", None),
    "lean_spy_minute 430 P, 470 C (out of the money)": ("lean_spy_minute", None),
}


def run_calibration(tmp: Path) -> Calibration:
    everything, bars = calibration_data(tmp)
    records = [r for r in everything if cal.in_scope(r)]
    excluded = Counter(r.source for r in everything if not cal.in_scope(r))
    start = pricing_params()
    by_k = cal.by_open_close(records, bars, start)
    every = np.ones(len(records), dtype=bool)
    params = cal.fit(by_k, every, start)
    f = by_k[params.open_close]
    fair, bid, ask = previous_model(records, bars, f)
    loo = cal.leave_one_out(by_k, start)
    before, in_sample = {}, {}
    for source in SOURCES:
        mask = f.source == source
        before[source] = cal.errors_of(source, fair, bid, ask, f, mask)
        in_sample[source] = cal.measure(params, f, mask, source)
    symbols = np.array([r.symbol for r in records])
    otm = np.where(f.is_call, f.strike > f.spot, f.strike < f.spot)
    subsets = {}
    for name, (source, chosen) in SUBSETS.items():
        mask = f.source == source
        if chosen is not None:
            mask &= np.isin(symbols, chosen)
        elif source == "yahoo_chain":
            mask &= ~f.index
        else:
            mask &= otm
        held_out = loo[source][0]
        subsets[name] = (
            cal.errors_of(name, fair, bid, ask, f, mask),
            cal.measure(params, f, mask, name),
            cal.measure(held_out, by_k[held_out.open_close], mask, name),
        )
    return Calibration(
        params,
        before,
        in_sample,
        loo,
        subsets,
        dict(excluded),
        _scalar_check(records, bars, f, params),
    )


def _scalar_check(
    records: list[OptionRecord], bars: Bars, f: Features, params: PricingParams
) -> float:
    """The array prices the fit uses against the running model's `option_value`, on every 50th
    record: the fitted model is the one the simulated market runs."""
    markets = {s: MarketModel(FrameBars(bars.get(s, {})), params=params) for s in SOURCES}
    prices = cal.model_prices(params, f)
    worst = 0.0
    for i in range(0, len(records), 50):
        r = records[i]
        value = markets[r.source].option_value(cal.contract_of(r), r.spot, r.time)
        worst = max(worst, abs(value - prices[i]) / r.price)
    return worst
