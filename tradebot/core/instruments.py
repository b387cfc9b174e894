"""What is traded and what a quote says about it: value types shared by the market model, the
brokers, the engine and the gateway simulator. Pure data, Decimal money, UTC times.

* `StockContract` / `OptionContract`: identity as IB knows it (symbol, expiry, strike, right,
  multiplier, trading class, exchange). `con_id` is 0 until the broker has qualified the contract;
  `tick` is the contract's minimum price increment (IB's minTick), `ladder` the increments by
  price (IB's market rule, `core.ticks`), and `grid` the one to price orders on.
* `Quote`: bid/ask/last/volume with the time the quote is *as of* and whether it is live, delayed
  or frozen. Deciding whether a quote may open a trade is the engine's job (`quote_problem`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from tradebot.core.market_time import market_clock
from tradebot.core.ticks import TickLadder
from tradebot.core.trades import Right

DataType = Literal["live", "delayed", "frozen"]
_RIGHT_WORD = {"C": "call", "P": "put"}


def strike_text(strike: Decimal) -> str:
    """620 → '620', 620.5 → '620.5' (no exponent, no trailing zeros)."""
    text = f"{strike.normalize():f}"
    return text


@dataclass(frozen=True)
class StockContract:
    symbol: str
    exchange: str = "SMART"
    primary_exchange: str = "ARCA"
    currency: str = "USD"
    con_id: int = 0
    tick: Decimal = Decimal("0.01")

    @property
    def label(self) -> str:
        return self.symbol


@dataclass(frozen=True)
class OptionContract:
    """An equity option. `label` is what operators read: 'SPY 2025-07-03 620 C'."""

    symbol: str
    expiry: date
    strike: Decimal
    right: Right
    multiplier: int = 100
    trading_class: str = ""
    exchange: str = "SMART"
    currency: str = "USD"
    con_id: int = 0
    tick: Decimal = Decimal("0.01")
    ladder: TickLadder | None = None  # None: `tick` at every price

    def __post_init__(self) -> None:
        if self.right not in ("C", "P"):
            raise ValueError(f"right must be C or P, got {self.right!r}")
        if not self.strike.is_finite() or self.strike <= 0:
            raise ValueError(f"strike must be positive, got {self.strike}")
        if self.multiplier <= 0:
            raise ValueError("multiplier must be positive")

    @property
    def grid(self) -> TickLadder:
        """The prices an order may carry: the market rule's ladder, else the flat tick."""
        return self.ladder if self.ladder is not None else TickLadder.flat(self.tick)

    @property
    def klass(self) -> str:
        """The trading class (defaults to the symbol, as for SPY or QQQ weeklies)."""
        return self.trading_class or self.symbol

    @property
    def local_symbol(self) -> str:
        """OCC symbol: root padded to 6, yymmdd, C/P, strike × 1000 in 8 digits."""
        thousandths = int((self.strike * 1000).to_integral_value())
        return f"{self.klass:<6}{self.expiry:%y%m%d}{self.right}{thousandths:08d}"

    @property
    def label(self) -> str:
        return f"{self.symbol} {self.expiry.isoformat()} {strike_text(self.strike)} {self.right}"

    @property
    def kind(self) -> str:
        return _RIGHT_WORD[self.right]

    def same_option(self, other: OptionContract) -> bool:
        """Same listed option, whether or not either side has been qualified."""
        return (
            self.symbol == other.symbol
            and self.expiry == other.expiry
            and self.strike == other.strike
            and self.right == other.right
            and self.multiplier == other.multiplier
        )

    def qualified(
        self,
        con_id: int,
        tick: Decimal,
        trading_class: str | None = None,
        ladder: TickLadder | None = None,
    ) -> OptionContract:
        return replace(
            self,
            con_id=con_id,
            tick=tick,
            trading_class=trading_class or self.trading_class,
            ladder=ladder if ladder is not None else self.ladder,
        )

    def as_record(self) -> dict[str, Any]:
        """The contract as stored in journal records (`ladder` only when it has one)."""
        record: dict[str, Any] = {
            "symbol": self.symbol,
            "expiry": self.expiry,
            "strike": self.strike,
            "right": self.right,
            "multiplier": self.multiplier,
            "trading_class": self.klass,
            "exchange": self.exchange,
            "currency": self.currency,
            "con_id": self.con_id,
            "tick": self.tick,
            "local_symbol": self.local_symbol,
        }
        if self.ladder is not None:
            record["ladder"] = [[edge, inc] for edge, inc in self.ladder.steps]
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> OptionContract:
        """Inverse of `as_record`; ValueError naming the problem."""
        try:
            return cls(
                symbol=str(record["symbol"]),
                expiry=date.fromisoformat(str(record["expiry"])),
                strike=Decimal(str(record["strike"])),
                right=record["right"],
                multiplier=int(record.get("multiplier", 100)),
                trading_class=str(record.get("trading_class") or ""),
                exchange=str(record.get("exchange") or "SMART"),
                currency=str(record.get("currency") or "USD"),
                con_id=int(record.get("con_id") or 0),
                tick=Decimal(str(record.get("tick") or "0.01")),
                ladder=TickLadder.of(record["ladder"]) if record.get("ladder") else None,
            )
        except (KeyError, TypeError, ArithmeticError) as exc:
            raise ValueError(f"not a contract record ({exc})") from None


@dataclass(frozen=True)
class Quote:
    """A quote as of `time` (UTC). Prices per share; a side ≤ 0 means no quote on that side."""

    bid: Decimal
    ask: Decimal
    time: datetime
    data_type: DataType = "live"
    last: Decimal | None = None
    volume: int = 0  # contracts (or shares) traded in the session so far
    bid_size: int = 0
    ask_size: int = 0

    @property
    def mid(self) -> Decimal | None:
        if self.bid > 0 and self.ask > 0 and self.ask >= self.bid:
            return (self.bid + self.ask) / 2
        return None

    def as_record(self) -> dict[str, Any]:
        return {
            "bid": self.bid,
            "ask": self.ask,
            "last": self.last,
            "volume": self.volume,
            "time": self.time,
            "data_type": self.data_type,
        }


def quote_problem(quote: Quote | None, now: datetime, max_age_s: float) -> str | None:
    """Why this quote may not open a trade (missing, delayed, frozen, non-finite, stale), or None.

    A quote that cannot be trusted to be the market *now* never opens a position: paper results
    must mean what live results would (spec §5, "delayed or missing quotes never open a live
    trade"; tradebot applies it to paper too, see docs/decisions.md).
    """
    if quote is None:
        return "no quote was received"
    if quote.data_type != "live":
        return f"the quote is {quote.data_type}, not live market data"
    for name, value in (("bid", quote.bid), ("ask", quote.ask)):
        if not value.is_finite():
            return f"the {name} is not a number ({value})"
    age = (now - quote.time).total_seconds()
    if age > max_age_s:
        return (
            f"the quote is {age:.0f} s old (as of {market_clock(quote.time, seconds=True)}), "
            f"over {max_age_s:g} s"
        )
    if age < -max_age_s:
        return (
            f"the quote is dated {-age:.0f} s in the future (as of "
            f"{market_clock(quote.time, seconds=True)}; clock trouble?)"
        )
    return None


@dataclass(frozen=True)
class OptionChainInfo:
    """An underlying's listed options: expiries (sorted) and strikes, as a broker's chain lists
    them (IB's reqSecDefOptParams; the market model answers the same for the simulators)."""

    symbol: str
    trading_class: str
    multiplier: int
    expiries: tuple[date, ...]
    strikes: tuple[Decimal, ...]
    exchange: str = "SMART"
