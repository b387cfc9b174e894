"""Option prices for the simulated market: Black–Scholes, a spread that widens away from the money,
and a volume model. Pure functions of floats; quotes come out on the contract's tick.

Documented in README ("How the simulated market prices options"):

* fair value: Black–Scholes (no dividends) on the underlying's last price, the time to the
  expiry's close in calendar years, a rate of `RATE`, and a volatility with a mild smile
  ``vol × (1 + SMILE × m²)``, m = ln(strike / spot);
* spread: ``max(tick, fair × (BASE_SPREAD + WING_SPREAD × |m|))``, bid rounded down and ask rounded
  up to the tick, so cheap far-from-the-money options are wide (the liquidity guard refuses them);
* volume: ``atm_volume × exp(−(m / 0.03)²) × the fraction of the day's underlying volume traded
  so far`` contracts.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from tradebot.core.ticks import TickLadder, as_ladder

FloatArray = npt.NDArray[np.float64]

RATE = 0.04
SMILE = 8.0
BASE_SPREAD = 0.03
WING_SPREAD = 1.2
YEAR_SECONDS = 365.0 * 24 * 3600
MIN_T = 60.0 / YEAR_SECONDS  # one minute: the value at the bell is close to intrinsic


def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def black_scholes(spot: float, strike: float, t_years: float, vol: float, right: str) -> float:
    """European option value per share (no dividends); intrinsic when t ≤ 0."""
    if spot <= 0 or strike <= 0:
        raise ValueError("spot and strike must be positive")
    call = right == "C"
    intrinsic = max(0.0, spot - strike) if call else max(0.0, strike - spot)
    if t_years <= 0:
        return intrinsic
    t = max(t_years, MIN_T)
    sd = vol * math.sqrt(t)
    d1 = (math.log(spot / strike) + (RATE + 0.5 * vol * vol) * t) / sd
    d2 = d1 - sd
    disc = strike * math.exp(-RATE * t)
    if call:
        value = spot * _norm_cdf(d1) - disc * _norm_cdf(d2)
    else:
        value = disc * _norm_cdf(-d2) - spot * _norm_cdf(-d1)
    return max(value, intrinsic if call else 0.0)


def smile_vol(vol: float, spot: float, strike: float) -> float:
    m = math.log(strike / spot)
    return vol * (1.0 + SMILE * m * m)


def bid_ask(
    fair: float, spot: float, strike: float, tick: Decimal | TickLadder
) -> tuple[Decimal, Decimal]:
    """(bid, ask) on the contract's price ladder around `fair` (at least one increment apart);
    bid 0 when the option is worth less than its lowest price."""
    grid = as_ladder(tick)
    step = grid.increment(Decimal(repr(max(fair, 0.0))))
    m = abs(math.log(strike / spot))
    width = max(float(step), fair * (BASE_SPREAD + WING_SPREAD * m))
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


# -- the same prices over many points at once (numpy), for searching a range -------------------
# Float results agree with the scalar functions above to ~1e-13 relative (same formulas; numpy's
# exp/log/sqrt may differ from math's by an ulp), so a search uses them as a conservative
# filter with a margin far wider than that and far narrower than a tick; the exact Decimal price
# at a candidate point is always the scalar one.
_erfc = np.frompyfunc(math.erfc, 1, 1)


def _norm_cdf_array(x: FloatArray) -> FloatArray:
    out: FloatArray = 0.5 * np.asarray(_erfc(-x / math.sqrt(2.0)), dtype=np.float64)
    return out


def black_scholes_array(
    spot: FloatArray, strike: float, t_years: FloatArray, vol: FloatArray, right: str
) -> FloatArray:
    """`black_scholes` at each point (arrays of equal length, spot > 0)."""
    call = right == "C"
    intrinsic = np.maximum(0.0, spot - strike) if call else np.maximum(0.0, strike - spot)
    t = np.maximum(t_years, MIN_T)
    sd = vol * np.sqrt(t)
    d1 = (np.log(spot / strike) + (RATE + 0.5 * vol * vol) * t) / sd
    d2 = d1 - sd
    disc = strike * np.exp(-RATE * t)
    if call:
        value = spot * _norm_cdf_array(d1) - disc * _norm_cdf_array(d2)
        value = np.maximum(value, intrinsic)
    else:
        value = disc * _norm_cdf_array(-d2) - spot * _norm_cdf_array(-d1)
        value = np.maximum(value, 0.0)
    out: FloatArray = np.where(t_years <= 0, intrinsic, value)
    return out


def smile_vol_array(vol: float, spot: FloatArray, strike: float) -> FloatArray:
    m = np.log(strike / spot)
    out: FloatArray = vol * (1.0 + SMILE * m * m)
    return out


def bid_ask_bounds(
    fair: FloatArray, spot: FloatArray, strike: float, tick: Decimal | TickLadder
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """What `bid_ask` rounds onto the ladder, bounded: (the most and the least the bid's
    unrounded value `fair − width/2` can be, the least and the most the ask's `fair + width/2`
    can be), taking the spread's floor at the ladder's smallest and largest increment (the
    scalar takes the one at `fair`). The bid is the first rounded down (≥ 0), the ask the second
    rounded up."""
    grid = as_ladder(tick)
    small = float(grid.smallest)
    large = float(max(increment for _, increment in grid.steps))
    m = np.abs(np.log(strike / spot))
    spread = fair * (BASE_SPREAD + WING_SPREAD * m)
    narrow, wide = np.maximum(small, spread), np.maximum(large, spread)
    return fair - narrow / 2, fair - wide / 2, fair + narrow / 2, fair + wide / 2
