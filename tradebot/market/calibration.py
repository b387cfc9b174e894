"""Fitting the option-pricing model (`volatility`, `pricing`) to real option prices, and
measuring it out of sample.

Input: `OptionRecord`s — a real price of an option (the mid of a bid/ask, or a trade print) at a
moment, with the underlying's price at that moment — grouped by the source they came from, and
each source's 1-minute bars of the underlyings (none for a chain snapshot without bars). Each
record's model inputs are computed by the running `MarketModel` itself (`realized`,
`clock_parts`), on the bars completed by the record's minute: the fit sees exactly what a
backtest would. Then, in closed form, no optimiser:

1. **smile** per class (index ETFs, single stocks): the implied volatilities of out-of-the-money
   options against their own chain's at-the-money level (a free level per chain and moment),
   least squares on ``vol / atm − 1 = skew·z + smile·z²`` (smile ≥ 0);
2. **premium** per class: the at-the-money implied volatility over the realized volatility of
   the bars so far, the median per source, the sources' geometric mean (a class without bars
   in the training sources takes the other class's premium);
3. **spread**: the median relative spread of real quotes of index ETFs (mid ≥ $0.50), per
   source, then the median of the sources (the single-stock quotes here — GOOG in 2015, a
   snapshot after the close — are far wider than today's intraday large-cap quotes:
   docs/backtest-pricing.md shows them against the model);
4. **open_close** (how much more of a session's variance comes at its open and close): the value
   of `OPEN_CLOSE_GRID` whose model prices the training records best (mean |relative error|,
   each source weighing the same).

`leave_one_out` fits on every source but one and measures on that one, each in turn
(docs/backtest-pricing.md; `benchmarks/calibrate_pricing.py` prints the table and the defaults
for `config.toml`).

Why one module: one fit in closed form, its steps in order (smile, premium, spread, open and
close) over shared intermediate arrays; split, the arrays would be passed between files step by
step.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]

from tradebot.core.instruments import OptionContract
from tradebot.core.sessions import DEFAULT_CALENDAR, rth_bars
from tradebot.core.trades import Right
from tradebot.market.model import MarketModel, floor_minute
from tradebot.market.pricing import YEAR_SECONDS, black_scholes_array
from tradebot.market.profiles import profile
from tradebot.market.volatility import (
    MIN_WEIGHT,
    SESSIONS_PER_YEAR,
    PricingParams,
    Realized,
    atm_vol,
    is_index,
    skew_scale,
    smile_vol,
    trading_years,
)

Array = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
OPEN_CLOSE_GRID = (2.5, 5.0, 10.0)
SKEW_TERM_GRID = (0.0, 0.5)
MIN_PRICE = 0.10  # below this a tick is a large share of the price: relative errors mean little
MAX_MONEYNESS = 0.05  # |ln(strike / spot)|: the strikes a bot buying near the money trades
MAX_DAYS = 45  # calendar days to expiry (the simulated chain's horizon)
MAX_SPREAD = 0.20  # a real quote wider than this share of its mid does not say what it is worth
SPREAD_MIN_MID = 0.50  # the spread is fitted on quotes in scope whose mid is at least this


@dataclass(frozen=True)
class OptionRecord:
    """A real price of one option at one moment, and the underlying's price then."""

    source: str
    symbol: str
    time: datetime  # UTC
    expiry: date  # the last trading session (an exchange session)
    strike: Decimal
    right: Right
    spot: float
    price: float  # mid of bid/ask, or a trade
    bid: float | None = None
    ask: float | None = None
    tick: Decimal = Decimal("0.01")


def in_scope(record: OptionRecord) -> bool:
    """Whether the model is measured (and fitted) on `record`: priced at least MIN_PRICE,
    within MAX_MONEYNESS of the money, at most MAX_DAYS to expiry, and, for a quote, no wider
    than MAX_SPREAD of its mid (docs/backtest-pricing.md)."""
    days = (record.expiry - record.time.date()).days
    spread_ok = (
        record.ask is None
        or record.bid is None
        or (record.ask - record.bid <= MAX_SPREAD * record.price)
    )
    return (
        record.price >= MIN_PRICE
        and abs(math.log(float(record.strike) / record.spot)) <= MAX_MONEYNESS
        and 0 <= days <= MAX_DAYS
        and spread_ok
    )


class FrameBars:
    """A bar source over 1-minute bar frames in memory (tz-aware index, open … volume)."""

    kind = "csv"

    def __init__(self, frames: dict[str, pd.DataFrame], calendar: str = DEFAULT_CALENDAR) -> None:
        self._frames = {s.upper(): rth_bars(f, calendar) for s, f in frames.items()}
        self._by_session: dict[str, dict[date, pd.DataFrame]] = {}
        for symbol, frame in self._frames.items():
            days = pd.DatetimeIndex(frame["session"]).date
            self._by_session[symbol] = {d: frame[days == d] for d in sorted(set(days))}

    def describe(self) -> str:
        return f"bars in memory ({', '.join(sorted(self._frames))})"

    def symbols(self) -> list[str]:
        return sorted(self._frames)

    def has_session(self, symbol: str, session: date) -> bool:
        return session in self._by_session.get(symbol.upper(), {})

    def session_bars(self, symbol: str, session: date) -> pd.DataFrame:
        found = self._by_session.get(symbol.upper(), {}).get(session)
        if found is not None:
            return found
        empty = pd.DataFrame(
            {c: np.zeros(0) for c in ("open", "high", "low", "close", "volume")},
            index=pd.DatetimeIndex([], tz="UTC"),
        )
        return empty


@dataclass(frozen=True)
class Features:
    """Every record's model inputs as arrays (one `open_close`), plus what is known of it."""

    source: npt.NDArray[np.str_]
    index: Mask  # an index ETF
    is_call: Mask
    spot: Array
    strike: Array
    price: Array
    bid: Array  # NaN: no bid/ask (a trade print)
    ask: Array
    tick: Array
    m: Array  # ln(strike / spot)
    sum_sq: Array  # realized: squared 1-minute returns seen
    weight: Array  # ... and the sessions of variance they cover
    prior: Array  # the symbol's assumed volatility
    left: Array  # sessions of today's variance still to come
    after: Array  # sessions after today up to the expiry
    calendar_years: Array
    chain: npt.NDArray[np.int64]  # same source, symbol, expiry and moment

    @property
    def years(self) -> Array:
        return trading_years(self.left, self.after)


def features(
    records: Sequence[OptionRecord],
    bars: dict[str, dict[str, pd.DataFrame]],
    params: PricingParams,
    calendar: str = DEFAULT_CALENDAR,
) -> Features:
    """Each record's inputs, computed by a `MarketModel` over its source's bars."""
    markets = {
        source: MarketModel(FrameBars(bars.get(source, {}), calendar), calendar, params)
        for source in sorted({r.source for r in records})
    }
    n = len(records)
    sum_sq, weight, left, after, years = (np.zeros(n) for _ in range(5))
    chains: dict[tuple[str, str, date, datetime], int] = {}
    chain = np.zeros(n, dtype=np.int64)
    realized: dict[tuple[str, str, datetime], Realized] = {}
    clock: dict[tuple[str, datetime, date], tuple[float, float, float]] = {}
    for i, r in enumerate(records):  # a chain's records share one moment: computed once
        market = markets[r.source]
        key = (r.source, r.symbol, floor_minute(r.time))
        seen = realized.get(key)
        if seen is None:
            seen = realized[key] = market.realized(r.symbol, key[2])
        sum_sq[i], weight[i] = seen.sum_sq, seen.weight
        when = (r.source, r.time, r.expiry)
        parts = clock.get(when)
        if parts is None:
            close = market.expiry_close(r.expiry)
            parts = clock[when] = (
                *market.clock_parts(r.time, r.expiry),
                (close - r.time).total_seconds() / YEAR_SECONDS,
            )
        left[i], after[i], years[i] = parts
        chain[i] = chains.setdefault((r.source, r.symbol, r.expiry, r.time), len(chains))
    spot = np.array([r.spot for r in records])
    strike = np.array([float(r.strike) for r in records])
    return Features(
        source=np.array([r.source for r in records]),
        index=np.array([is_index(r.symbol) for r in records]),
        is_call=np.array([r.right == "C" for r in records]),
        spot=spot,
        strike=strike,
        price=np.array([r.price for r in records]),
        bid=np.array([np.nan if r.bid is None else r.bid for r in records]),
        ask=np.array([np.nan if r.ask is None else r.ask for r in records]),
        tick=np.array([float(r.tick) for r in records]),
        m=np.log(strike / spot),
        sum_sq=sum_sq,
        weight=weight,
        prior=np.array([profile(r.symbol).vol for r in records]),
        left=left,
        after=after,
        calendar_years=years,
        chain=chain,
    )


# -- the model on arrays -----------------------------------------------------------------------
def _by_class(f: Features, index_value: float, stock_value: float) -> Array:
    out: Array = np.where(f.index, index_value, stock_value)
    return out


def model_prices(params: PricingParams, f: Features) -> Array:
    """The model's fair value of every record (what `MarketModel.option_value` gives)."""
    atm = atm_vol(
        f.sum_sq, f.weight, f.prior, _by_class(f, params.index_premium, params.stock_premium)
    )
    years = f.years
    vol = smile_vol(
        atm,
        f.m,
        years,
        _by_class(f, params.index_skew, params.stock_skew),
        _by_class(f, params.index_smile, params.stock_smile),
        params.skew_term,
    )
    return black_scholes_array(
        f.spot, f.strike, years, vol, f.is_call, f.calendar_years, params.rate
    )


def model_bid_ask(params: PricingParams, f: Features, fair: Array) -> tuple[Array, Array]:
    """`pricing.bid_ask` on arrays: max(tick, spread × fair) wide, outward to the tick."""
    width = np.maximum(f.tick, fair * params.spread)
    # A hair of slack so that a value already on the tick is not pushed a tick out by float error.
    bid = np.maximum(np.floor((fair - width / 2) / f.tick + 1e-9) * f.tick, 0.0)
    ask = np.maximum(np.ceil((fair + width / 2) / f.tick - 1e-9) * f.tick, bid + f.tick)
    return bid, np.maximum(ask, f.tick)


def implied_vols(params: PricingParams, f: Features, mask: Mask) -> Array:
    """The volatility over trading years at which Black–Scholes gives each record's price
    (NaN where none does: a price below intrinsic, or outside 0.5 %–500 %)."""
    idx = np.flatnonzero(mask)
    years, cal = f.years[idx], f.calendar_years[idx]
    args = (f.spot[idx], f.strike[idx], years)
    lo, hi = np.full(len(idx), 0.005), np.full(len(idx), 5.0)
    price = f.price[idx]

    def value(vol: Array) -> Array:
        return black_scholes_array(*args, vol, f.is_call[idx], cal, params.rate)

    ok = (value(lo) < price) & (price < value(hi))
    for _ in range(50):
        mid = (lo + hi) / 2
        below = value(mid) < price
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    out = np.full(len(f.price), np.nan)
    out[idx] = np.where(ok, (lo + hi) / 2, np.nan)
    return out


# -- the fit -----------------------------------------------------------------------------------
def _source_weights(f: Features, mask: Mask) -> Array:
    """1 / (records of the same source in `mask`): every source weighs the same."""
    counts = pd.Series(f.source[mask]).value_counts()
    out: Array = 1.0 / pd.Series(f.source).map(counts).fillna(np.inf).to_numpy(dtype=np.float64)
    return out


def _fit_smile(f: Features, iv: Array, mask: Mask, skew_term: float) -> tuple[float, float]:
    """(skew, smile) from out-of-the-money implied vols in chains of two or more."""
    otm = np.where(f.is_call, f.strike >= f.spot, f.strike <= f.spot)
    use = mask & otm & np.isfinite(iv)
    sizes = pd.Series(f.chain[use]).value_counts()
    use &= pd.Series(f.chain).map(sizes).fillna(0).to_numpy() >= 2
    if use.sum() < 3:
        return 0.0, 0.0
    chain, m, vol = f.chain[use], f.m[use], iv[use]
    root = np.sqrt(f.years[use])
    scale = skew_scale(f.years[use], skew_term)
    w = np.sqrt(_source_weights(f, use)[use])
    log_vol = pd.Series(np.log(vol))
    level = np.exp(log_vol.groupby(chain).transform("mean").to_numpy())
    skew = smile = 0.0
    for _ in range(30):
        z = m / (level * root)
        shape = np.clip(1 + skew * scale * z + smile * z * z, 0.5, 4.0)
        level = np.exp(pd.Series(np.log(vol / shape)).groupby(chain).transform("mean").to_numpy())
        z = m / (level * root)
        tilt, y = scale * z, vol / level - 1
        (skew, smile), *_ = np.linalg.lstsq(np.c_[tilt, z * z] * w[:, None], y * w, rcond=None)
        if smile < 0:  # the smile is convex: far strikes never cheaper than near ones
            smile = 0.0
            skew = float(np.sum(w * w * tilt * y) / np.sum(w * w * tilt * tilt))
    return float(skew), float(smile)


def _fit_premium(
    f: Features, iv: Array, mask: Mask, skew: float, smile: float, skew_term: float
) -> float | None:
    """exp(mean over sources of the median ln(at-the-money implied / realized))."""
    otm = np.where(f.is_call, f.strike >= f.spot, f.strike <= f.spot)
    use = mask & otm & np.isfinite(iv) & (f.weight >= MIN_WEIGHT)
    if not use.any():
        return None
    vol, m, root = iv[use], f.m[use], np.sqrt(f.years[use])
    scale = skew_scale(f.years[use], skew_term)
    atm = vol.copy()
    for _ in range(30):  # the at-the-money level whose smile gives the strike's vol
        z = m / (atm * root)
        atm = vol / np.clip(1 + skew * scale * z + smile * z * z, 0.5, 4.0)
    realized = np.sqrt(SESSIONS_PER_YEAR * f.sum_sq[use] / f.weight[use])
    ratio = pd.Series(np.log(atm / realized)).groupby(f.source[use]).median()
    return float(np.exp(ratio.mean()))


def _fit_spread(f: Features, mask: Mask) -> float | None:
    quoted = mask & np.isfinite(f.bid) & (f.bid > 0)
    use = quoted & (f.price >= SPREAD_MIN_MID)
    if not use.any():
        return None
    rel = pd.Series((f.ask[use] - f.bid[use]) / f.price[use])
    return float(rel.groupby(f.source[use]).median().median())


def relative_errors(params: PricingParams, f: Features) -> Array:
    out: Array = model_prices(params, f) / f.price - 1
    return out


def score(params: PricingParams, f: Features, mask: Mask) -> float:
    """Mean |relative error| of `mask`'s records, each source weighing the same."""
    err = np.abs(relative_errors(params, f))[mask]
    return float(pd.Series(err).groupby(f.source[mask]).mean().mean())


def fit(by_open_close: dict[float, Features], train: Mask, start: PricingParams) -> PricingParams:
    """Every fitted parameter of `start` from the records in `train` (see the module doc);
    `by_open_close`: the features computed with each value of OPEN_CLOSE_GRID."""
    best: tuple[float, PricingParams] | None = None
    ivs = {
        k: implied_vols(replace(start, open_close=k), f, train) for k, f in by_open_close.items()
    }
    for (open_close, f), skew_term in itertools.product(
        sorted(by_open_close.items()), SKEW_TERM_GRID
    ):
        params = replace(start, open_close=open_close, skew_term=skew_term)
        iv = ivs[open_close]
        shapes: dict[bool, tuple[float, float]] = {}
        premiums: dict[bool, float | None] = {}
        for cls in (True, False):
            in_class = train & (f.index == cls)
            shapes[cls] = _fit_smile(f, iv, in_class, skew_term)
            premiums[cls] = _fit_premium(f, iv, in_class, *shapes[cls], skew_term)
        # A class without records to fit on keeps the other class's premium (or the start's).
        index_premium = premiums[True] or premiums[False] or start.index_premium
        params = replace(
            params,
            index_premium=round(index_premium, 3),
            stock_premium=round(premiums[False] or index_premium, 3),
            index_skew=round(shapes[True][0], 3),
            index_smile=round(shapes[True][1], 3),
            stock_skew=round(shapes[False][0], 3),
            stock_smile=round(shapes[False][1], 3),
            spread=round(_fit_spread(f, train & f.index) or start.spread, 3),
        )
        total = score(params, f, train)
        if best is None or total < best[0]:
            best = (total, params)
    assert best is not None
    return best[1]


# -- measuring ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class SourceErrors:
    """How far the model is from one source's real prices (records in scope)."""

    source: str
    records: int
    mean_abs: float  # mean |model / real − 1|
    median_abs: float
    bias: float  # mean (model / real − 1): its sign is the model's direction
    mean_abs_usd: float
    inside: float  # share of real prices within the modelled bid/ask
    width_ratio: float | None  # median modelled / real spread (real bid/ask only)


def measure(params: PricingParams, f: Features, mask: Mask, source: str) -> SourceErrors:
    fair = model_prices(params, f)
    return errors_of(source, fair, *model_bid_ask(params, f, fair), f, mask)


def errors_of(
    source: str, fair: Array, bid: Array, ask: Array, f: Features, mask: Mask
) -> SourceErrors:
    """The errors of given model prices and quotes (the calibrated model's, or another's)."""
    rel = fair[mask] / f.price[mask] - 1
    real = f.price[mask]
    quoted = mask & np.isfinite(f.ask) & (f.ask > f.bid)
    width = None
    if quoted.any():
        width = float(np.median((ask[quoted] - bid[quoted]) / (f.ask[quoted] - f.bid[quoted])))
    return SourceErrors(
        source=source,
        records=int(mask.sum()),
        mean_abs=float(np.mean(np.abs(rel))),
        median_abs=float(np.median(np.abs(rel))),
        bias=float(np.mean(rel)),
        mean_abs_usd=float(np.mean(np.abs(fair[mask] - real))),
        inside=float(np.mean((bid[mask] <= real + 1e-9) & (real <= ask[mask] + 1e-9))),
        width_ratio=width,
    )


def by_open_close(
    records: Sequence[OptionRecord],
    bars: dict[str, dict[str, pd.DataFrame]],
    start: PricingParams,
    grid: Iterable[float] = OPEN_CLOSE_GRID,
) -> dict[float, Features]:
    return {k: features(records, bars, replace(start, open_close=k)) for k in grid}


def leave_one_out(
    by_k: dict[float, Features], start: PricingParams
) -> dict[str, tuple[PricingParams, SourceErrors]]:
    """For each source: the parameters fitted on all the others, and its errors under them."""
    f = next(iter(by_k.values()))
    out = {}
    for source in sorted(set(f.source.tolist())):
        held_out = f.source == source
        params = fit(by_k, ~held_out, start)
        out[source] = (params, measure(params, by_k[params.open_close], held_out, source))
    return out


def contract_of(record: OptionRecord) -> OptionContract:
    return OptionContract(
        record.symbol, record.expiry, record.strike, record.right, tick=record.tick
    )
