"""How simulated orders fill against the simulated market. Shared by the simulated broker and the
IB Gateway simulator, so both fill the same order the same way. Pure functions.

Paper must not flatter (README, "How the simulated broker fills"):

* a marketable order fills at the touch: a buy at the ask, a sell at the bid — never at the mid;
* a resting limit fills at its limit price only once the opposite side reaches it (a buy limit
  when the ask is at or below it, a sell limit when the bid is at or above it);
* a sell stop triggers when the bid falls to the stop and fills at that bid (slippage included);
  a buy stop symmetrically at the ask;
* within a minute, the underlying's adverse extreme for the option's holder comes before its
  favourable one (open → adverse → favourable → close), so when a stop and a take-profit could
  both trigger in the same minute, the stop wins;
* commission per order: max(minimum, per-contract rate × contracts) — IBKR's $0.65, $1 minimum.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Literal

Action = Literal["BUY", "SELL"]
OrderType = Literal["LMT", "STP", "MKT"]

# Offsets of the four path points inside a minute (open, adverse, favourable, close).
POINT_OFFSETS = (
    timedelta(seconds=0),
    timedelta(seconds=20),
    timedelta(seconds=40),
    timedelta(seconds=59),
)


@dataclass(frozen=True)
class PathPoint:
    """The option's bid/ask at one moment of a minute."""

    time: datetime
    bid: Decimal
    ask: Decimal


def fill_price(
    action: Action,
    order_type: OrderType,
    *,
    limit: Decimal | None,
    stop: Decimal | None,
    bid: Decimal,
    ask: Decimal,
    resting: bool,
) -> Decimal | None:
    """The price this order fills at against (bid, ask), or None when it does not fill.

    `resting` is False for the check when the order arrives (a marketable limit then fills at
    the touch), True afterwards (a resting limit fills at its own price).
    """
    if order_type == "MKT":
        if action == "BUY":
            return ask if ask > 0 else None
        return bid if bid > 0 else None
    if order_type == "LMT":
        if limit is None:
            raise ValueError("a limit order needs a limit price")
        if action == "BUY":
            if ask > 0 and ask <= limit:
                return limit if resting else ask
            return None
        if bid > 0 and bid >= limit:
            return limit if resting else bid
        return None
    if stop is None:
        raise ValueError("a stop order needs a stop price")
    if action == "SELL":
        return bid if 0 < bid <= stop else None
    return ask if ask >= stop > 0 else None


def holder_path(open_: float, high: float, low: float, close: float, right: str) -> list[float]:
    """Underlying prices of a minute, the adverse extreme first for a long call or put."""
    if right == "C":
        return [open_, low, high, close]
    return [open_, high, low, close]


def commission(qty: int, per_contract: Decimal, minimum: Decimal) -> Decimal:
    """IBKR-style per-order commission for `qty` contracts."""
    if qty <= 0:
        return Decimal(0)
    return max(minimum, per_contract * qty)
