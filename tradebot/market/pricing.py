"""Option prices for the simulated market: Black–Scholes, the spread, and a volume model. Pure
functions of floats (and, for whole chains and the calibration, of numpy arrays); quotes come out
on the contract's price ladder (its market rule: pennies, or 0.05/0.10 above $3, …).

Documented in README ("How the simulated market prices options") and docs/backtest-pricing.md:

* fair value: Black–Scholes (no dividends) on the underlying's last price, at the volatility of
  `tradebot.market.volatility` over *trading* years to the expiry's close, discounted at `rate`
  over calendar years;
* spread: ``max(one increment, fair × spread)`` (fitted on real bid/ask), bid rounded down and
  ask rounded up on the ladder, so options worth a few increments are wide in relative terms
  (the liquidity guard refuses them);
* volume: ``atm_volume × exp(−(m / 0.03)²) × the fraction of the day's underlying volume traded
  so far`` contracts, m = ln(strike / spot).
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from tradebot.core.ticks import TickLadder, as_ladder

FloatArray = npt.NDArray[np.float64]

RATE = 0.04
YEAR_SECONDS = 365.0 * 24 * 3600
MIN_T = 60.0 / YEAR_SECONDS  # one minute: the value at the bell is close to intrinsic
Array = npt.NDArray[np.float64]


def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def black_scholes(
    spot: float,
    strike: float,
    t_years: float,
    vol: float,
    right: str,
    *,
    rate_years: float | None = None,
    rate: float = RATE,
) -> float:
    """European option value per share (no dividends); intrinsic when t ≤ 0. The volatility
    applies over `t_years`, the rate over `rate_years` (calendar time; default `t_years`)."""
    if spot <= 0 or strike <= 0:
        raise ValueError("spot and strike must be positive")
    call = right == "C"
    intrinsic = max(0.0, spot - strike) if call else max(0.0, strike - spot)
    if t_years <= 0:
        return intrinsic
    t = max(t_years, MIN_T)
    r_t = t if rate_years is None else max(rate_years, 0.0)
    sd = vol * math.sqrt(t)
    d1 = (math.log(spot / strike) + rate * r_t) / sd + 0.5 * sd
    d2 = d1 - sd
    disc = strike * math.exp(-rate * r_t)
    if call:
        value = spot * _norm_cdf(d1) - disc * _norm_cdf(d2)
    else:
        value = disc * _norm_cdf(-d2) - spot * _norm_cdf(-d1)
    return max(value, intrinsic if call else 0.0)


def norm_cdf(x: Array) -> Array:
    """The standard normal CDF of an array (erfc by Chebyshev fit, relative error < 1.2e-7:
    Numerical Recipes' erfcc)."""
    z = np.abs(x) / math.sqrt(2.0)
    t = 1.0 / (1.0 + 0.5 * z)
    poly = -1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))
    poly = 0.09678418 + t * (-0.18628806 + t * (0.27886807 + t * poly))
    poly = -1.26551223 + t * (1.00002368 + t * (0.37409196 + t * poly))
    erfc = t * np.exp(-z * z + poly)
    out: Array = np.where(x >= 0, 1.0 - 0.5 * erfc, 0.5 * erfc)
    return out


def black_scholes_array(
    spot: Array,
    strike: Array,
    t_years: Array,
    vol: Array,
    is_call: npt.NDArray[np.bool_],
    rate_years: Array,
    rate: float = RATE,
) -> Array:
    """`black_scholes` for arrays (t_years > 0), the same formula."""
    t = np.maximum(t_years, MIN_T)
    r_t = np.maximum(rate_years, 0.0)
    sd = vol * np.sqrt(t)
    d1 = (np.log(spot / strike) + rate * r_t) / sd + 0.5 * sd
    d2 = d1 - sd
    disc = strike * np.exp(-rate * r_t)
    call = spot * norm_cdf(d1) - disc * norm_cdf(d2)
    put = disc * norm_cdf(-d2) - spot * norm_cdf(-d1)
    intrinsic = np.maximum(spot - strike, 0.0)
    out: Array = np.where(is_call, np.maximum(call, intrinsic), np.maximum(put, 0.0))
    return out


def bid_ask(fair: float, tick: Decimal | TickLadder, spread: float) -> tuple[Decimal, Decimal]:
    """(bid, ask) on the contract's price ladder around `fair`, `spread × fair` wide (at least
    one increment apart); bid 0 when the option is worth less than its lowest price."""
    grid = as_ladder(tick)
    step = grid.increment(Decimal(repr(max(fair, 0.0))))
    width = max(float(step), fair * spread)
    low = Decimal(repr(fair - width / 2))
    bid = grid.down(low) if low > 0 else Decimal(0)
    ask = grid.up(Decimal(repr(fair + width / 2)))
    if ask <= bid:
        ask = grid.next_above(bid)
    lowest = grid.steps[0][1]
    if ask < lowest:
        ask = lowest
    return bid, ask


def option_volume(atm_volume: int, spot: float, strike: float, day_fraction: float) -> int:
    """Contracts traded so far today in one option (a bell curve around the money)."""
    m = math.log(strike / spot)
    return int(atm_volume * math.exp(-((m / 0.03) ** 2)) * max(0.0, min(1.0, day_fraction)))


# -- the same prices over many points, exactly enough to search a range -----------------------
# `black_scholes_array` above is the calibration's (its erfc is a 1.2e-7 fit). The venue's fill
# search needs the scalar price to ~1e-13 (it filters with a 1e-6 dollar margin, far below a
# tick), so this one takes math.erfc at each point: the same formula as `black_scholes`.
_erfc = np.frompyfunc(math.erfc, 1, 1)


def _norm_cdf_exact(x: FloatArray) -> FloatArray:
    out: FloatArray = 0.5 * np.asarray(_erfc(-x / math.sqrt(2.0)), dtype=np.float64)
    return out


def black_scholes_exact(
    spot: FloatArray,
    strike: float,
    t_years: FloatArray,
    vol: FloatArray,
    right: str,
    rate_years: FloatArray,
    rate: float = RATE,
) -> FloatArray:
    """`black_scholes` at each point (arrays of equal length, spot > 0; intrinsic where
    t_years ≤ 0), to the scalar's rounding."""
    call = right == "C"
    intrinsic = np.maximum(0.0, spot - strike) if call else np.maximum(0.0, strike - spot)
    t = np.maximum(t_years, MIN_T)
    r_t = np.maximum(rate_years, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        sd = vol * np.sqrt(t)
        d1 = (np.log(spot / strike) + rate * r_t) / sd + 0.5 * sd
        d2 = d1 - sd
        disc = strike * np.exp(-rate * r_t)
        if call:
            value = np.maximum(spot * _norm_cdf_exact(d1) - disc * _norm_cdf_exact(d2), intrinsic)
        else:
            value = np.maximum(disc * _norm_cdf_exact(-d2) - spot * _norm_cdf_exact(-d1), 0.0)
    out: FloatArray = np.where(t_years <= 0, intrinsic, value)
    return out


def bid_ask_bounds(
    fair: FloatArray, tick: Decimal | TickLadder, spread: float
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """What `bid_ask` rounds onto the ladder, bounded: (the most and the least the bid's
    unrounded value `fair − width/2` can be, the least and the most the ask's `fair + width/2`
    can be), taking the width's floor at the ladder's smallest and largest increment (the
    scalar takes the one at `fair`). The bid is the first rounded down (≥ 0), the ask the second
    rounded up."""
    grid = as_ladder(tick)
    small = float(grid.smallest)
    large = float(max(increment for _, increment in grid.steps))
    wide_part = fair * spread
    narrow, wide = np.maximum(small, wide_part), np.maximum(large, wide_part)
    return fair - narrow / 2, fair - wide / 2, fair + narrow / 2, fair + wide / 2
