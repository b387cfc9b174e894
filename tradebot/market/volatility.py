"""The implied volatility of the simulated market's options, calibrated on real option quotes.

What the market pays for an option is not the volatility the underlying has shown: index options
trade well above it (the variance premium), short-dated ones price the rest of *today's* moves, and
strikes away from the money cost more or less than the at-the-money one (the skew and smile). The
model (docs/backtest-pricing.md, where its fit and its out-of-sample errors are):

* **realized variance**: the squared 1-minute log returns of the regular-session bars completed by
  the quote's minute — today's so far and those of up to `lookback_sessions` earlier sessions —
  over the share of a session's variance they cover. Variance is not spread evenly over a
  session: it follows a U (heavy at the open and the close), `variance_fraction(x, open_close)`
  of it having passed by fraction `x` of the session. Nothing after the quote's minute is read.
* **at-the-money implied volatility**: `premium × realized`, with one premium for index ETFs
  (SPY, QQQ, IWM, DIA: their options carry a larger variance premium) and one for single stocks;
  before a tenth of a session's variance has been seen, the symbol's assumed volatility
  (`profiles.py`);
* **time to expiry** in *trading* years: what is left of today's variance plus one per session
  to the expiry's close (half days by their length), over 252 — so a 0DTE at 15:00 is worth what
  its last hour can move, and nights and weekends add nothing;
* **smile**: ``vol = atm × clip(1 + skew·s·z + smile·z², 0.5, 4)``, with z the strike's distance
  from the spot in standard deviations, ``ln(K/S) / (atm × √years)``, skew and smile per class,
  and s = (sessions to expiry / 5) ** skew_term: the skew of a week-long option, steeper for
  longer ones;
* the option's value is Black–Scholes (`pricing.py`) at that volatility over those trading years,
  discounted over calendar time.

Every function takes floats, or numpy arrays for whole chains or for the calibration
(`tradebot.market.calibration`), with the same formulas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from tradebot.config.broker import SimPricingConfig

SESSIONS_PER_YEAR = 252
SESSION_MINUTES = 390
MIN_WEIGHT = 0.1  # sessions of variance seen before the realized estimate is used
VOL_FLOOR, VOL_CAP = 0.03, 3.0  # at-the-money volatility bounds
SMILE_FLOOR, SMILE_CAP = 0.5, 4.0  # the smile multiplies the at-the-money volatility within
MIN_YEARS = 1.0 / (SESSIONS_PER_YEAR * SESSION_MINUTES)  # one trading minute
SKEW_SESSIONS = 5  # the skew parameters are those of an option a week (5 sessions) from expiry
INDEX_ETFS = frozenset({"SPY", "QQQ", "IWM", "DIA"})

F = TypeVar("F", float, npt.NDArray[np.float64])


@dataclass(frozen=True)
class PricingParams:
    """The calibrated parameters (config `[broker.sim.pricing]`, defaults in
    `tradebot.config.broker.SimPricingConfig`, fitted by `benchmarks/calibrate_pricing.py`)."""

    index_premium: float
    stock_premium: float
    index_skew: float
    index_smile: float
    stock_skew: float
    stock_smile: float
    skew_term: float  # the skew grows as (sessions to expiry / 5) ** skew_term
    open_close: float  # how much more of a session's variance comes at its open and close
    lookback_sessions: int  # earlier sessions whose bars count in the realized variance
    spread: float  # the modelled spread, a fraction of the option's value (≥ one tick)
    rate: float = 0.04

    def premium(self, symbol: str) -> float:
        return self.index_premium if is_index(symbol) else self.stock_premium

    def shape(self, symbol: str) -> tuple[float, float]:
        """(skew, smile) of `symbol`'s class."""
        if is_index(symbol):
            return self.index_skew, self.index_smile
        return self.stock_skew, self.stock_smile


def pricing_params(config: SimPricingConfig | None = None) -> PricingParams:
    """The parameters in `config` (`broker.sim.pricing`), or the calibrated defaults."""
    c = config or SimPricingConfig()
    return PricingParams(
        index_premium=float(c.index_premium),
        stock_premium=float(c.stock_premium),
        index_skew=float(c.index_skew),
        index_smile=float(c.index_smile),
        stock_skew=float(c.stock_skew),
        stock_smile=float(c.stock_smile),
        skew_term=float(c.skew_term),
        open_close=float(c.open_close),
        lookback_sessions=c.lookback_sessions,
        spread=float(c.spread),
    )


def is_index(symbol: str) -> bool:
    return symbol.upper() in INDEX_ETFS


@dataclass(frozen=True)
class Realized:
    """Squared 1-minute log returns seen by a moment, and the sessions of variance they cover."""

    sum_sq: float = 0.0
    weight: float = 0.0

    def plus(self, other: Realized) -> Realized:
        return Realized(self.sum_sq + other.sum_sq, self.weight + other.weight)


def variance_fraction(x: F, open_close: float) -> F:
    """Share of a session's variance that has passed by fraction `x` of it: the integral of a
    U-shaped intensity ``1 + open_close × (2x − 1)²`` (0: evenly spread)."""
    x = np.clip(x, 0.0, 1.0) if isinstance(x, np.ndarray) else min(1.0, max(0.0, x))
    return (x + open_close * ((2 * x - 1) ** 3 + 1) / 6) / (1 + open_close / 3)


def session_weight(elapsed: F, minutes: F, open_close: float) -> F:
    """Sessions of variance in the first `elapsed` fraction of a session of `minutes` minutes."""
    return variance_fraction(elapsed, open_close) * minutes / SESSION_MINUTES


def atm_vol(realized_sum_sq: F, weight: F, prior: F, premium: F) -> F:
    """At-the-money implied volatility: premium × realized once MIN_WEIGHT of a session's
    variance has been seen, the symbol's assumed volatility before that."""
    if isinstance(weight, np.ndarray):
        seen = weight >= MIN_WEIGHT
        rv = np.sqrt(SESSIONS_PER_YEAR * realized_sum_sq / np.where(seen, weight, 1.0))
        out: F = np.clip(np.where(seen, premium * rv, prior), VOL_FLOOR, VOL_CAP)
        return out
    if weight < MIN_WEIGHT:
        vol = prior
    else:
        vol = premium * math.sqrt(SESSIONS_PER_YEAR * realized_sum_sq / weight)
    return min(VOL_CAP, max(VOL_FLOOR, vol))


def trading_years(today_left: F, sessions_after: F) -> F:
    """Trading years to expiry: the share of today's variance still to come (in sessions) plus
    the sessions after today up to the expiry, over 252; at least one trading minute."""
    years = (today_left + sessions_after) / SESSIONS_PER_YEAR
    if isinstance(years, np.ndarray):
        out: F = np.maximum(years, MIN_YEARS)
        return out
    return max(years, MIN_YEARS)


def skew_scale(years: F, skew_term: float) -> F:
    """How the skew grows with time to expiry: (sessions to expiry / 5) ** skew_term."""
    scale: F = (years * (SESSIONS_PER_YEAR / SKEW_SESSIONS)) ** skew_term
    return scale


def smile_vol(atm: F, log_moneyness: F, years: F, skew: F, smile: F, skew_term: float = 0.0) -> F:
    """The strike's volatility: `atm` times the smile in standard deviations from the spot."""
    if isinstance(atm, np.ndarray) or isinstance(log_moneyness, np.ndarray):
        z = log_moneyness / (atm * np.sqrt(years))
        tilt = skew * skew_scale(years, skew_term) * z
        out: F = atm * np.clip(1 + tilt + smile * z * z, SMILE_FLOOR, SMILE_CAP)
        return out
    z = log_moneyness / (atm * math.sqrt(years))
    tilt = skew * skew_scale(years, skew_term) * z
    return atm * min(SMILE_CAP, max(SMILE_FLOOR, 1 + tilt + smile * z * z))
