"""The broker interface the trading loop needs, and the data it exchanges (spec §6).

One asyncio event loop owns a broker (ib_async requires it): every method is a coroutine called
from that loop, never from a thread. Orders are identified by our own `order_ref` (IB's orderRef),
which survives reconnects and gateway restarts where numeric order ids do not.

Statuses are normalised to lowercase words: `presubmitted`, `submitted`, `filled`, `cancelled`,
`inactive`, `pending` (sent, not yet acknowledged), `held` (acknowledged but not working: IB's
`Inactive` is not always final — a locate hold, a precaution — and may turn `Submitted`).
A broker reports an order as cancelled only when its own order status says so; an error
message alone never means cancelled.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from tradebot.core.instruments import OptionChainInfo as OptionChainInfo  # re-exported
from tradebot.core.instruments import OptionContract, Quote
from tradebot.errors import TradebotError

if TYPE_CHECKING:
    import pandas as pd  # type: ignore[import-untyped]

Action = Literal["BUY", "SELL"]
OrderType = Literal["LMT", "STP", "MKT"]
OrderStatus = Literal[
    "pending", "presubmitted", "submitted", "filled", "cancelled", "inactive", "held"
]
FINAL_STATUSES: frozenset[str] = frozenset({"filled", "cancelled", "inactive"})


class BrokerError(TradebotError):
    """The broker could not do what was asked (not connected, timed out, refused a request)."""


class PositionsUnknown(BrokerError):
    """The broker has not said what the account holds (IB Gateway never answered reqPositions):
    an empty list would read as "nothing held", which nobody may conclude from silence."""


class OrderRejected(BrokerError):
    """The broker refused an order; `code` is the broker's error code when it gave one."""

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class BracketRefused(OrderRejected):
    """The broker refused a native bracket: the loop falls back to OCO emulation."""


@dataclass(frozen=True)
class AccountSnapshot:
    net_liquidation: Decimal
    cash: Decimal
    time: datetime
    account: str
    source: str  # e.g. "sim account", "IBKR DU123 NetLiquidation"
    # The price each position was valued at in `net_liquidation`, by conId, when the broker
    # says (the simulated broker does; IB's NetLiquidation uses marks of its own).
    marks: Mapping[int, Decimal] = field(default_factory=dict)


@dataclass(frozen=True)
class OrderSpec:
    """One order the loop wants sent. Prices per share, on the contract's tick."""

    order_ref: str
    contract: OptionContract
    action: Action
    qty: int
    order_type: OrderType
    tif: str
    limit: Decimal | None = None
    stop: Decimal | None = None


@dataclass(frozen=True)
class BracketSpec:
    """Entry with attached take-profit and stop (IB native bracket)."""

    entry: OrderSpec
    take_profit: OrderSpec
    stop_loss: OrderSpec


@dataclass(frozen=True)
class PlacedOrder:
    order_ref: str
    order_id: int
    perm_id: int
    status: OrderStatus


@dataclass(frozen=True)
class BrokerOrder:
    """An order as the broker sees it now (working or finished)."""

    order_ref: str
    order_id: int
    perm_id: int
    parent_id: int
    contract: OptionContract
    action: Action
    qty: int
    order_type: OrderType
    limit: Decimal | None
    stop: Decimal | None
    tif: str
    status: OrderStatus
    filled: int
    avg_fill_price: Decimal
    reason: str = ""
    # When it finished (filled, cancelled), as the broker said: an exit recorded from this
    # status (its executions no longer listed) happened then, not when tradebot read it.
    finished_at: datetime | None = None


@dataclass(frozen=True)
class Execution:
    """One fill. `kind` "expiry" is a settlement at expiration (no order behind it)."""

    exec_id: str
    order_ref: str
    order_id: int
    perm_id: int
    contract: OptionContract
    side: Literal["BOT", "SLD"]
    qty: int
    price: Decimal
    time: datetime
    commission: Decimal | None  # None until the broker has reported it
    kind: Literal["trade", "expiry"] = "trade"


@dataclass(frozen=True)
class BrokerPosition:
    contract: OptionContract
    qty: int
    avg_cost: Decimal  # per share


@dataclass(frozen=True)
class Holding:
    """Any position the account holds: an option (`option` set) or anything else — shares
    from an exercise or an assignment, a manual trade — which tradebot never trades itself."""

    symbol: str
    sec_type: str  # OPT, STK, …
    label: str
    con_id: int
    qty: int
    option: OptionContract | None = None


@dataclass(frozen=True)
class StatementTrade:
    """A trade as the broker's account statement lists it (IB Flex `Trade`): evidence of a fill
    that the API's same-day executions no longer show."""

    exec_id: str
    order_ref: str
    perm_id: int
    contract: OptionContract
    side: Literal["BOT", "SLD"]
    qty: int
    price: Decimal
    commission: Decimal
    time: datetime


@dataclass(frozen=True)
class StatementEvent:
    """An exercise, assignment or expiration (IB Flex `OptionEAE`)."""

    contract: OptionContract
    kind: Literal["Expiration", "Exercise", "Assignment"]
    qty: int  # the option contracts it removed
    day: date


@dataclass(frozen=True)
class Statement:
    source: str  # e.g. "IB Flex query 123456"
    trades: tuple[StatementTrade, ...]
    events: tuple[StatementEvent, ...]


class Broker(Protocol):
    """What the trading loop needs from a broker (simulated or IBKR)."""

    kind: str

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    def is_connected(self) -> bool: ...

    @property
    def generation(self) -> int:
        """Counts successful (re)connections: the loop reconciles again whenever it changes,
        before any new entry (a reconnect may hide fills that happened while away)."""
        ...

    def entries_paused(self, now: datetime) -> str | None:
        """Why new entries must wait now (disconnected, connectivity lost, a gateway restart
        window), or None. Exits are never paused by this."""
        ...

    def order_lists_complete(self) -> bool:
        """Whether `orders()` holds every order the broker has: False while IB Gateway has not
        answered its open-order or completed-order list (an order missing from an incomplete
        list may still be working, or have filled). Nothing is closed as "never sent" then."""
        ...

    async def account(self) -> AccountSnapshot: ...

    async def bars(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Completed regular-session 1-minute bars with start ≤ bar start < end (bar frame)."""
        ...

    async def option_chain(self, symbol: str) -> OptionChainInfo: ...

    async def qualify(self, contracts: Sequence[OptionContract]) -> list[OptionContract | None]:
        """Each contract with its conId and tick, or None when the broker does not know it."""
        ...

    async def quotes(self, contracts: Sequence[OptionContract]) -> list[Quote | None]:
        """A quote per (qualified) contract, with its time and live/delayed/frozen type."""
        ...

    async def place_bracket(self, bracket: BracketSpec) -> list[PlacedOrder]:
        """Entry, take-profit, stop as one native bracket; BracketRefused when not accepted."""
        ...

    async def place_order(self, order: OrderSpec) -> PlacedOrder: ...

    async def cancel(
        self, order_ref: str, *, order_id: int = 0, contract: OptionContract | None = None
    ) -> None:
        """Ask the broker to cancel `order_ref`; `order_id` and `contract` are what the journal
        knows of it, for a broker that has not listed the order since a restart."""
        ...

    async def positions(self) -> list[BrokerPosition]:
        """The account's option positions; PositionsUnknown when the broker has not said."""
        ...

    async def holdings(self) -> list[Holding]:
        """Every position of the account, options and anything else (see `Holding`);
        PositionsUnknown when the broker has not said."""
        ...

    async def statement(self, since: date) -> Statement | None:
        """The account statement's trades and expiry events since `since` (IB's Flex query
        when configured), or None when the broker has none to offer."""
        ...

    async def orders(self, since: datetime | None = None) -> list[BrokerOrder]:
        """Working orders, and those finished since `since` (all it knows when None)."""
        ...

    async def executions(self, since: datetime) -> list[Execution]: ...


@runtime_checkable
class Foresight(Protocol):
    """What a broker that simulates its market can tell the loop ahead of time, so the loop
    wakes only when something can happen (the simulated broker; a real broker cannot). Used
    only to leave out wakes that would provably do nothing: every decision is still made at a
    wake, on what is known then."""

    def session_bars(self, symbol: str, session: date) -> pd.DataFrame:
        """All of `session`'s regular-session 1-minute bars, including those still to come."""
        ...

    def unchanged_since_report(self) -> bool:
        """Nothing changed since the last `orders` answer (no fill, no status): a sync now
        would adopt nothing."""
        ...

    def unchanged_until(self, now: datetime) -> datetime | None:
        """T such that `orders` and `executions` answer at any time up to T (inclusive) what
        they answered at the last `orders` call; `now` when something changed since; None
        when the broker cannot tell. Only within the session around `now`."""
        ...
