"""Price ladders: the valid price increments of a contract, which depend on the price.

IB's `ContractDetails.minTick` is only the smallest increment on any exchange. The increment
an order must respect comes from the contract's *market rule* (`marketRuleIds` +
`reqMarketRule`): a list of (low edge, increment) pairs, each increment applying from its low
edge up to the next (interactivebrokers.github.io/tws-api/minimum_increment.html). US options:

* penny-program options (AAPL, MSFT, TSLA, …): $0.01 below $3, $0.05 at or above;
* SPY, QQQ, IWM: $0.01 at every price;
* other options: $0.05 below $3, $0.10 at or above.

A price off its ladder is refused by IB with error 110. Pure, Decimal money.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

_ZERO = Decimal(0)


@dataclass(frozen=True)
class TickLadder:
    """(low edge, increment) pairs, low edges ascending from 0."""

    steps: tuple[tuple[Decimal, Decimal], ...]

    def __post_init__(self) -> None:
        if not self.steps:
            raise ValueError("a price ladder needs at least one increment")
        edges = [edge for edge, _ in self.steps]
        if edges[0] != 0 or edges != sorted(set(edges)):
            raise ValueError(f"ladder edges must start at 0 and rise: {edges}")
        for _, increment in self.steps:
            if not increment.is_finite() or increment <= 0:
                raise ValueError(f"a price increment must be positive, got {increment}")

    @classmethod
    def flat(cls, tick: Decimal) -> TickLadder:
        return cls(((_ZERO, tick),))

    @classmethod
    def of(cls, pairs: Iterable[tuple[Decimal | float | str, Decimal | float | str]]) -> TickLadder:
        steps = sorted((_plain(edge), _plain(inc)) for edge, inc in pairs)
        if steps and steps[0][0] > 0:
            steps.insert(0, (_ZERO, steps[0][1]))
        return cls(tuple(steps))

    @property
    def smallest(self) -> Decimal:
        return min(increment for _, increment in self.steps)

    def increment(self, price: Decimal) -> Decimal:
        """The increment that applies at `price` (IB: the rule whose low edge is the highest
        at or below it)."""
        found = self.steps[0][1]
        for edge, increment in self.steps:
            if price >= edge:
                found = increment
        return found

    def contains(self, price: Decimal) -> bool:
        """Whether `price` is a valid, positive price on this ladder."""
        return price.is_finite() and price > 0 and price % self.increment(price) == 0

    def round(self, price: Decimal, rounding: str = ROUND_HALF_UP) -> Decimal:
        """`price` on the ladder: nearest (ties up) by default, or ROUND_FLOOR / ROUND_CEILING.
        A price rounded across an edge is checked again on the other side."""
        increment = self.increment(price)
        steps = (price / increment).to_integral_value(rounding=rounding)
        candidate = (steps * increment).quantize(increment)
        if candidate > 0 and not self.contains(candidate):
            # Rounded up into a coarser band: up to that band's grid; down: already valid,
            # since a finer band's edge is on the coarser grid as IB's rules are written.
            candidate = self.round(candidate, ROUND_CEILING)
        return candidate

    def up(self, price: Decimal) -> Decimal:
        return self.round(price, ROUND_CEILING)

    def down(self, price: Decimal) -> Decimal:
        return self.round(price, ROUND_FLOOR)

    def next_above(self, price: Decimal) -> Decimal:
        """The smallest valid price strictly above `price`."""
        return self.up(price + self.increment(price))

    def describe(self) -> str:
        return ", ".join(f"{inc} from {edge}" if edge else f"{inc}" for edge, inc in self.steps)


def _plain(value: Decimal | float | str) -> Decimal:
    """3.0 → 3, 0.050 → 0.05 (no exponent): as journaled and compared."""
    number = Decimal(str(value))
    if number == number.to_integral_value():
        return number.quantize(Decimal(1))
    return number.normalize()


def as_ladder(tick: Decimal | TickLadder) -> TickLadder:
    return tick if isinstance(tick, TickLadder) else TickLadder.flat(tick)


PENNY_ALL = TickLadder.of([(0, "0.01")])
PENNY_PROGRAM = TickLadder.of([(0, "0.01"), (3, "0.05")])
NON_PENNY = TickLadder.of([(0, "0.05"), (3, "0.10")])
