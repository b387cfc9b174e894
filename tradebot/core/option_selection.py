"""Which option to buy (spec §5): a pure function over one chain snapshot. Money is Decimal.

Rules, with the choices made where the spec is silent:

* Expiries come from the chain (never a computed calendar): the first expiry, among the quotes of
  the wanted right, with ``min_days_to_expiry ≤ DTE ≤ max_days_to_expiry``, DTE in calendar days
  from `today`. Only that expiry is searched: when nothing in it fits, there is no trade (a later
  expiry costs more, not less).
* "Nearest" strike: the chain strike closest to the underlying's last price, whichever side it is
  on. It can therefore be slightly in the money (underlying 550.40: the 550 call, 0.40 ITM, is
  nearer than the 551 call, 0.60 OTM, and is tried first) — by less than half a strike interval,
  which is what "nearest the last price" says. On an exact tie the out-of-the-money strike wins
  (cheaper, and the direction the search steps anyway). Deeper ITM strikes are never considered.
* From there the search steps out of the money — higher strikes for calls, lower for puts — while
  ``|strike − last| ≤ max_otm_pct % × last``, and takes the first whose one-contract cost
  (premium × multiplier) is within the position cap.
* Premium = the entry limit price: ``mid`` = (bid + ask)/2 rounded to the contract's tick
  (nearest, ties up), or ``ask`` (rounded up to the tick, so it stays marketable). The cap is
  checked on exactly that price, so rounding can never push the order over the cap.
* A quote with bid ≤ 0, ask ≤ 0, a non-finite price, or ask < bid (crossed) cannot be priced: it is
  skipped and counted in the reason. Liquidity (spread, volume) is a separate guard
  (`tradebot.core.sizing.liquidity_check`).
* Nothing fits → `NoContract` naming the cheapest one-contract cost seen in the window and the cap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_CEILING, ROUND_HALF_UP, Decimal
from typing import Literal

from tradebot.core.settings import OptionsSettings
from tradebot.core.ticks import TickLadder
from tradebot.core.trades import Right

PriceRule = Literal["mid", "ask"]
_RIGHT_NAME = {"C": "call", "P": "put"}


@dataclass(frozen=True)
class OptionQuote:
    """One contract of a chain with its quote. Prices are per share; ≤ 0 means no quote."""

    contract_id: str  # what identifies the contract to qualify: IB conId or OCC local symbol
    expiry: date
    strike: Decimal
    right: Right
    bid: Decimal
    ask: Decimal
    last: Decimal | None = None
    volume: int = 0  # contracts traded in the session so far
    multiplier: int = 100
    trading_class: str = ""
    tick: Decimal = Decimal("0.01")  # minimum price increment for this contract's orders
    ladder: TickLadder | None = None  # the increments by price (IB's market rule), if known

    @property
    def grid(self) -> TickLadder:
        return self.ladder if self.ladder is not None else TickLadder.flat(self.tick)

    def __post_init__(self) -> None:
        # A zero multiplier would make every contract "free" and pass any cap: refuse it here.
        if not self.strike.is_finite() or self.strike <= 0:
            raise ValueError(f"{self.contract_id}: strike must be positive, got {self.strike}")
        if self.multiplier <= 0:
            raise ValueError(f"{self.contract_id}: multiplier must be positive")
        if not self.tick.is_finite() or self.tick <= 0:
            raise ValueError(f"{self.contract_id}: tick must be positive, got {self.tick}")
        if self.volume < 0:
            raise ValueError(f"{self.contract_id}: volume must not be negative")

    @property
    def priced(self) -> bool:
        """True when both sides are quoted (> 0, finite) and not crossed."""
        return (
            self.bid.is_finite()
            and self.ask.is_finite()
            and self.bid > 0
            and self.ask > 0
            and self.ask >= self.bid
        )

    @property
    def mid(self) -> Decimal | None:
        """(bid + ask) / 2 in dollars per share, None when not priced."""
        return (self.bid + self.ask) / 2 if self.priced else None

    @property
    def label(self) -> str:
        """Human name: '2024-08-01 555 C'."""
        return f"{self.expiry.isoformat()} {_strike(self.strike)} {self.right}"


@dataclass(frozen=True)
class ChainSnapshot:
    """Every quote of an underlying's chain at one moment."""

    symbol: str
    underlying_last: Decimal
    as_of: datetime
    quotes: tuple[OptionQuote, ...]


@dataclass(frozen=True)
class ContractChoice:
    """The contract to buy, its entry premium (per share, on tick) and one contract's cost ($)."""

    quote: OptionQuote
    premium: Decimal
    cost: Decimal
    dte: int
    reason: str


@dataclass(frozen=True)
class NoContract:
    """No contract fits; `cheapest_cost` ($, one contract) is None when nothing could be priced."""

    reason: str
    cap: Decimal
    cheapest_cost: Decimal | None = None
    cheapest: OptionQuote | None = None
    unpriced: int = 0


def _strike(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _usd(value: Decimal) -> str:
    return f"${value:,.2f}"


def round_to_tick(price: Decimal, tick: Decimal, rounding: str = ROUND_HALF_UP) -> Decimal:
    """`price` on a multiple of `tick` (nearest, ties up, by default), in dollars."""
    if not tick.is_finite() or tick <= 0:
        raise ValueError(f"tick must be positive, got {tick}")
    steps = (price / tick).to_integral_value(rounding=rounding)
    return (steps * tick).quantize(tick)


def round_up_to_tick(price: Decimal, tick: Decimal) -> Decimal:
    """`price` rounded up to a multiple of `tick`."""
    return round_to_tick(price, tick, ROUND_CEILING)


def entry_premium(quote: OptionQuote, rule: PriceRule) -> Decimal | None:
    """The entry limit price per share by `rule`, on the tick; None when the quote is unpriced."""
    if not quote.priced:
        return None
    if rule == "ask":
        # Up, so a limit "at the ask" stays marketable even if the quote was off the tick.
        return quote.grid.up(quote.ask)
    return quote.grid.round((quote.bid + quote.ask) / 2)


def days_to_expiry(expiry: date, today: date) -> int:
    """Calendar days from `today` to `expiry` (0 on expiry day)."""
    return (expiry - today).days


def select_contract(
    chain: ChainSnapshot,
    right: Right,
    today: date,
    cfg: OptionsSettings,
    position_cap_usd: Decimal,
    price_rule: PriceRule | None = None,
) -> ContractChoice | NoContract:
    """The nearest-the-money contract of the first expiry in the DTE window that fits the cap."""
    rule: PriceRule = price_rule or cfg.price
    cap = position_cap_usd
    kind = _RIGHT_NAME[right]
    if not cap.is_finite() or cap < 0:
        raise ValueError(f"position cap must be a non-negative amount, got {cap}")
    spot = chain.underlying_last
    if not spot.is_finite() or spot <= 0:
        return NoContract(f"no usable last price for {chain.symbol} ({spot}): no trade", cap)
    quotes = [q for q in chain.quotes if q.right == right]
    expiries = sorted({q.expiry for q in quotes})
    lo, hi = cfg.min_days_to_expiry, cfg.max_days_to_expiry
    window = [e for e in expiries if lo <= days_to_expiry(e, today) <= hi]
    if not window:
        listed = ", ".join(f"{e} (DTE {days_to_expiry(e, today)})" for e in expiries[:6])
        return NoContract(
            f"no {chain.symbol} {kind} expiry with {lo} ≤ DTE ≤ {hi} on {today} "
            f"(chain has: {listed or 'no ' + kind + 's'}): no trade",
            cap,
        )
    expiry = window[0]
    dte = days_to_expiry(expiry, today)
    in_expiry = [q for q in quotes if q.expiry == expiry]
    call = right == "C"
    # Nearest strike; on a tie the OTM one (higher for calls, lower for puts).
    atm = min((q.strike for q in in_expiry), key=lambda k: (abs(k - spot), -k if call else k))
    reach = spot * cfg.max_otm_pct / 100
    candidates = sorted(
        (
            q
            for q in in_expiry
            if (q.strike >= atm if call else q.strike <= atm) and abs(q.strike - spot) <= reach
        ),
        key=lambda q: q.strike if call else -q.strike,
    )
    bound = spot + reach if call else spot - reach
    where = (
        f"{chain.symbol} {expiry} {kind}s (DTE {dte}) from the {_strike(atm)} strike nearest "
        f"{spot} out to {_strike(cfg.max_otm_pct)} % ({bound:.2f})"
    )
    unpriced = 0
    over: list[str] = []
    cheapest: tuple[Decimal, OptionQuote] | None = None
    for q in candidates:
        premium = entry_premium(q, rule)
        if premium is None:
            unpriced += 1
            continue
        cost = premium * q.multiplier
        if cheapest is None or cost < cheapest[0]:
            cheapest = (cost, q)
        if cost <= cap:
            skipped = f"; nearer strikes over the cap: {', '.join(over)}" if over else ""
            no_quote = f"; {unpriced} unpriced quote(s) skipped" if unpriced else ""
            return ContractChoice(
                quote=q,
                premium=premium,
                cost=cost,
                dte=dte,
                reason=(
                    f"{chain.symbol} {q.label} (DTE {dte}): {rule} {premium} × {q.multiplier} = "
                    f"{_usd(cost)} within the {_usd(cap)} cap{skipped}{no_quote}"
                ),
            )
        over.append(f"{_strike(q.strike)} {_usd(cost)}")
    no_quote = f"; {unpriced} unpriced quote(s) (no bid or ask) skipped" if unpriced else ""
    if not candidates:
        reason = f"no strike within {where}: no trade"
    elif cheapest is None:
        reason = f"no priced quote among {len(candidates)} {where}{no_quote}: no trade"
    else:
        reason = (
            f"nothing fits the {_usd(cap)} cap among {where}: cheapest is "
            f"{_strike(cheapest[1].strike)} {right} at {_usd(cheapest[0])}{no_quote}: no trade"
        )
    return NoContract(
        reason,
        cap,
        cheapest_cost=None if cheapest is None else cheapest[0],
        cheapest=None if cheapest is None else cheapest[1],
        unpriced=unpriced,
    )
