"""Per-symbol parameters of the simulated market: price level, volatility, volumes, and the
price ladder of its options (IB's market rules: SPY, QQQ and IWM trade in pennies at every price,
the penny-program names in pennies below $3 and nickels above, the others in nickels below $3 and
dimes above — `core.ticks`).

Well-known symbols have realistic levels (SPY near 600, QQQ near 520); any other symbol gets a
deterministic profile derived from its name, so every configured symbol can be simulated.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from decimal import Decimal

from tradebot.core.ticks import NON_PENNY, PENNY_ALL, PENNY_PROGRAM, TickLadder

PENNY = Decimal("0.01")
NICKEL = Decimal("0.05")


@dataclass(frozen=True)
class SymbolProfile:
    symbol: str
    base_price: float  # price level the daily walk reverts to
    vol: float  # annualised volatility of the underlying (and the options' base IV)
    daily_volume: float  # shares per regular session
    option_atm_volume: int  # contracts per session in an at-the-money weekly
    option_ladder: TickLadder  # the price increments of its options, by price
    con_id: int  # the underlying's contract id in the simulated universe
    daily_expiries: bool = False  # SPY, QQQ, IWM list an expiry every session; others weekly

    @property
    def option_tick(self) -> Decimal:
        """The smallest increment of its options (what IB reports as minTick)."""
        return self.option_ladder.smallest

    @property
    def strike_step(self) -> Decimal:
        return Decimal(1) if self.base_price >= 25 else Decimal("0.5")


DAILY_EXPIRIES = frozenset({"SPY", "QQQ", "IWM"})
_KNOWN: dict[str, tuple[float, float, float, int, TickLadder, int]] = {
    # symbol: (price, vol, shares/session, ATM option contracts/session, option ladder, conId)
    "SPY": (600.0, 0.16, 60e6, 150_000, PENNY_ALL, 756733),
    "QQQ": (520.0, 0.20, 40e6, 90_000, PENNY_ALL, 320227571),
    "IWM": (220.0, 0.22, 25e6, 50_000, PENNY_ALL, 9579970),
    "DIA": (440.0, 0.15, 3e6, 8_000, PENNY_PROGRAM, 73128548),
    "AAPL": (210.0, 0.26, 50e6, 60_000, PENNY_PROGRAM, 265598),
    "MSFT": (450.0, 0.24, 20e6, 30_000, PENNY_PROGRAM, 272093),
    "TSLA": (300.0, 0.55, 90e6, 120_000, PENNY_PROGRAM, 76792991),
    "NVDA": (140.0, 0.45, 200e6, 150_000, PENNY_PROGRAM, 4815747),
}


def profile(symbol: str) -> SymbolProfile:
    """The profile of `symbol` (derived deterministically from its name when not well known)."""
    symbol = symbol.upper()
    known = _KNOWN.get(symbol)
    if known is not None:
        price, vol, volume, atm, tick, con_id = known
        dailies = symbol in DAILY_EXPIRIES
        return SymbolProfile(symbol, price, vol, volume, atm, tick, con_id, dailies)
    h = zlib.crc32(symbol.encode("utf-8"))
    price = 20.0 + (h % 48_000) / 100.0  # 20 … 500
    vol = 0.20 + (h >> 16) % 30 / 100.0  # 0.20 … 0.49
    return SymbolProfile(symbol, price, vol, 10e6, 20_000, NON_PENNY, 100_000_000 + h % 900_000_000)
