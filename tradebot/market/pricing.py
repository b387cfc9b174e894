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

from tradebot.core.ticks import TickLadder, as_ladder

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
