"""Market data: which data type a request gets, and the ticks that describe a quote.

A request's data type follows `reqMarketDataType` (1 live, 2 frozen, 3 delayed, 4
delayed-frozen) and the account's permission for the symbol (a fault; live by default):

| asked | permission live | permission delayed | permission none |
|---|---|---|---|
| live (1/2) | live ticks | error 10167, then delayed ticks | error 354 |
| delayed (3/4) | delayed ticks | delayed ticks | error 354 |

Frozen (2/4) is reported as such outside the session (the last values), live/delayed inside.
Delayed data is the market 15 minutes ago (`MarketModel`), on the delayed tick ids.

Ticks sent: bid and ask with sizes, last, volume, the previous close (stocks), and the quote's
own time as lastTimestamp (tick 45, delayed 88), so a client can tell a stale quote from a
fresh one by its age, not by when the message arrived.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from tradebot.core.instruments import DataType, OptionContract, Quote
from tradebot.core.sessions import session_at
from tradebot.core.trades import session_of
from tradebot.gateway_sim import messages as msg
from tradebot.gateway_sim.contracts import Contract
from tradebot.gateway_sim.faults import Permission
from tradebot.market.model import MarketModel

NOT_SUBSCRIBED = (
    354,
    "Requested market data is not subscribed. Check API status by selecting the Account menu "
    "then under Management choose Market Data Subscription Manager and/or Subscribe.",
)
DISPLAYING_DELAYED = (
    10167,
    "Requested market data is not subscribed. Displaying delayed market data.",
)


@dataclass(frozen=True)
class Entitlement:
    """What a request is served: the wire data type, or an error instead of data."""

    wire_type: int  # 1 live, 2 frozen, 3 delayed, 4 delayed-frozen
    warning: tuple[int, str] | None = None
    refused: tuple[int, str] | None = None

    @property
    def delayed(self) -> bool:
        return self.wire_type in (3, 4)

    @property
    def data_type(self) -> DataType:
        return "delayed" if self.delayed else "live"


def entitlement(asked: int, permission: Permission, market_open: bool) -> Entitlement:
    if permission == "none":
        return Entitlement(asked, refused=NOT_SUBSCRIBED)
    wants_live = asked in (1, 2)
    frozen = asked in (2, 4) and not market_open
    warning = None
    delayed = not wants_live
    if wants_live and permission == "delayed":
        delayed, warning = True, DISPLAYING_DELAYED
    wire = (4 if frozen else 3) if delayed else (2 if frozen else 1)
    return Entitlement(wire, warning=warning)


def market_open(market: MarketModel, now: datetime) -> bool:
    return session_at(now, market.calendar) is not None


@dataclass
class Stream:
    """One streaming subscription and what it last sent (only changes are sent again)."""

    req_id: int
    contract: Contract
    entitlement: Entitlement
    sent: dict[int, tuple[object, ...]] = field(default_factory=dict)


def quote_ticks(
    req_id: int,
    quote: Quote,
    delayed: bool,
    previous_close: Decimal | None,
    sent: dict[int, tuple[object, ...]] | None = None,
) -> list[msg.Fields]:
    """The tick messages for `quote`; with `sent`, only those that changed since (and `sent`
    is updated). Every tick message is laid out `id, version, reqId, tickType, values…`."""
    i = 1 if delayed else 0
    ticks = [
        msg.tick_price(req_id, msg.BID[i], *_side(quote.bid, quote.bid_size)),
        msg.tick_price(req_id, msg.ASK[i], *_side(quote.ask, quote.ask_size)),
    ]
    if quote.last is not None and quote.last > 0:
        ticks.append(msg.tick_price(req_id, msg.LAST[i], quote.last, 1))
    if previous_close is not None:
        ticks.append(msg.tick_price(req_id, msg.CLOSE[i], previous_close, 0))
    ticks.append(msg.tick_size(req_id, msg.VOLUME[i], quote.volume))
    stamp = str(int(quote.time.timestamp()))
    ticks.append(msg.tick_string(req_id, msg.LAST_TIMESTAMP[i], stamp))
    if sent is None:
        return ticks
    changed = []
    for fields in ticks:
        tick, value = int(str(fields[3])), tuple(fields[4:])
        if sent.get(tick) != value:
            sent[tick] = value
            changed.append(fields)
    return changed


def _side(price: Decimal, size: int) -> tuple[Decimal, int]:
    """A quote side; no bid (an option worth nothing) is IB's -1 with size 0."""
    return (price, size) if price > 0 else (Decimal(-1), 0)


def previous_close(market: MarketModel, contract: Contract, now: datetime) -> Decimal | None:
    if isinstance(contract, OptionContract):
        return None
    ref = market.reference_price(contract.symbol, session_of(now))
    return None if ref is None else Decimal(repr(round(ref, 2)))
