"""Conversions between ib_async's objects and tradebot's types (contracts, orders, quotes,
bars, executions). Money becomes Decimal, times become UTC, IB's "unset" values become None.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd  # type: ignore[import-untyped]
from ib_async import (
    BarData,
    Contract,
    LimitOrder,
    MarketOrder,
    Option,
    Order,
    OrderState,
    Stock,
    StopOrder,
    Ticker,
)
from ib_async import Execution as IbExecutionMsg

from tradebot.brokers.base import OrderSpec
from tradebot.brokers.ibkr.tracker import ExecReport, OrderReport, StatusReport
from tradebot.core.instruments import DataType, OptionContract, Quote
from tradebot.core.sessions import (
    BAR_COLUMNS,
    SESSION_COLUMN,
    previous_sessions,
    rth_bars,
    session_open_close,
)

UNSET = 1e300  # IB's "unset double" is sys.float_info.max; anything this large is unset
_DATA_TYPES: dict[int, DataType] = {1: "live", 2: "frozen", 3: "delayed", 4: "delayed"}


def dec(value: float | int | str | Decimal | None, places: int = 6) -> Decimal | None:
    """A price or amount as Decimal (None for IB's unset values and non-numbers)."""
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or abs(number) >= UNSET:
        return None
    return Decimal(repr(round(number, places))).normalize() + Decimal(0)


def quote_price(value: float) -> Decimal:
    """A quote side: NaN stays NaN (not received), -1 stays -1 (no quote on that side)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return Decimal("NaN")
    parsed = dec(value)
    return Decimal("NaN") if parsed is None else parsed


def whole(value: float | int | Decimal | None) -> int:
    if value is None:
        return 0
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0
    if not math.isfinite(number) or abs(number) >= UNSET:
        return 0
    return round(number)


def parse_ib_time(text: str, zone: ZoneInfo) -> datetime | None:
    """An IB time, never read in this machine's zone: '20250701 15:00:00 UTC',
    '20250701 11:00:00 America/New_York', '20250701-15:00:00' (UTC: IB's zone-less form of
    execution times, ib_async#230), '20250701  11:00:00' (the gateway's zone, `zone`), or epoch
    seconds; None when unreadable."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        if text.isdigit() and len(text) > 8:
            return datetime.fromtimestamp(int(text), UTC)
        if "-" in text and " " not in text:
            return datetime.strptime(text, "%Y%m%d-%H:%M:%S").replace(tzinfo=UTC)
        parts = text.split()
        moment = datetime.strptime(parts[0] + " " + parts[1], "%Y%m%d %H:%M:%S")
        tz: ZoneInfo = zone
        if len(parts) > 2:
            name = parts[2]
            tz = ZoneInfo("UTC") if name.upper() in ("UTC", "GMT", "Z") else ZoneInfo(name)
        return moment.replace(tzinfo=tz).astimezone(UTC)
    except (ValueError, IndexError, ZoneInfoNotFoundError):
        return None


def aware(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC)


# -- contracts -------------------------------------------------------------------------------
def stock(symbol: str) -> Stock:
    return Stock(symbol, "SMART", "USD")


def option_from_ib(c: Contract, tick: Decimal | None = None) -> OptionContract | None:
    """tradebot's option for an IB contract; None for anything that is not a plain option."""
    if c.secType != "OPT":
        return None
    try:
        expiry = datetime.strptime((c.lastTradeDateOrContractMonth or "")[:8], "%Y%m%d").date()
    except ValueError:
        return None
    strike = dec(c.strike)
    right = (c.right or "")[:1].upper()
    if strike is None or strike <= 0 or right not in ("C", "P"):
        return None
    try:
        multiplier = int(float(c.multiplier or 100))
    except ValueError:
        multiplier = 100
    return OptionContract(
        symbol=c.symbol,
        expiry=expiry,
        strike=strike,
        right="C" if right == "C" else "P",
        multiplier=max(1, multiplier),
        trading_class=c.tradingClass or "",
        exchange="SMART",
        currency=c.currency or "USD",
        con_id=c.conId or 0,
        tick=tick if tick is not None else Decimal("0.01"),
    )


def ib_option(c: OptionContract) -> Option:
    """The IB contract of an option (with its conId once qualified)."""
    return Option(
        c.symbol,
        f"{c.expiry:%Y%m%d}",
        float(c.strike),
        c.right,
        "SMART",
        multiplier=str(c.multiplier),
        currency=c.currency,
        tradingClass=c.trading_class,
        conId=c.con_id,
    )


def label_of(c: Contract) -> str:
    option = option_from_ib(c)
    if option is not None:
        return option.label
    return c.localSymbol or c.symbol or f"conId {c.conId}"


# -- orders ----------------------------------------------------------------------------------
def ib_order(
    spec: OrderSpec, order_id: int, *, parent_id: int, transmit: bool, account: str
) -> Order:
    """An IB order for `spec`: explicit tif, our orderRef, never outside regular hours."""
    common = {
        "orderId": order_id,
        "tif": spec.tif,
        "orderRef": spec.order_ref,
        "transmit": transmit,
        "parentId": parent_id,
        "account": account,
        "outsideRth": False,
    }
    if spec.order_type == "LMT":
        assert spec.limit is not None
        return LimitOrder(spec.action, spec.qty, float(spec.limit), **common)
    if spec.order_type == "STP":
        assert spec.stop is not None
        return StopOrder(spec.action, spec.qty, float(spec.stop), **common)
    return MarketOrder(spec.action, spec.qty, **common)


def order_report(
    contract: Contract,
    order: Order,
    state: OrderState,
    tick: Decimal | None,
    zone: ZoneInfo,
    *,
    completed: bool = False,
) -> OrderReport:
    order_type = order.orderType or ""
    filled = whole(order.filledQuantity) if completed else None
    reason = state.completedStatus if completed else (state.warningText or "")
    return OrderReport(
        order_id=order.orderId or 0,
        client_id=order.clientId or 0,
        perm_id=order.permId or 0,
        parent_id=order.parentId or 0,
        order_ref=order.orderRef or "",
        contract=option_from_ib(contract, tick),
        label=label_of(contract),
        action=order.action,
        qty=whole(order.totalQuantity),
        order_type=order_type,
        limit=dec(order.lmtPrice) if order_type in ("LMT", "STP LMT") else None,
        stop=dec(order.auxPrice) if order_type in ("STP", "STP LMT") else None,
        tif=order.tif or "",
        account=order.account or "",
        status=state.status,
        filled=filled,
        reason=reason or "",
        completed_at=parse_ib_time(state.completedTime, zone) if completed else None,
    )


def status_report(
    order_id: int,
    status: str,
    filled: float,
    avg_fill_price: float,
    perm_id: int,
    parent_id: int,
    client_id: int,
) -> StatusReport:
    return StatusReport(
        order_id=order_id,
        client_id=client_id,
        perm_id=perm_id,
        parent_id=parent_id,
        status=status,
        filled=whole(filled),
        avg_fill_price=dec(avg_fill_price) or Decimal(0),
    )


def exec_report(
    contract: Contract,
    execution: IbExecutionMsg,
    tick: Decimal | None,
    zone: ZoneInfo,
    calendar: str,
    now: datetime,
    *,
    raw_time: str | None = None,
) -> ExecReport:
    """`raw_time` is the time as IB wrote it, read here whatever this machine's zone
    (`parse_ib_time`); without it, ib_async's reading. `now` (the connection's clock, the
    gateway's under broker.clock = 'gateway') dates an execution that arrives without a time."""
    option = option_from_ib(contract, tick)
    parsed = parse_ib_time(raw_time, zone) if raw_time else None
    time = parsed or aware(execution.time, zone) or now
    side: Literal["BOT", "SLD"] = "BOT" if execution.side.upper() in ("BOT", "BUY") else "SLD"
    kind: Literal["trade", "expiry"] = "trade"
    if (
        option is not None
        and not execution.permId
        and execution.orderId in (0, None)
        and not execution.orderRef
        and option.expiry <= time.date()
    ):
        # A settlement at expiration has no order behind it. IB may stamp it on the Saturday
        # after: the option belongs to its expiry session, so the time is its close.
        kind = "expiry"
        time = min(time, expiry_close(option.expiry, calendar))
    return ExecReport(
        exec_id=execution.execId,
        order_id=execution.orderId or 0,
        client_id=execution.clientId or 0,
        perm_id=execution.permId or 0,
        order_ref=execution.orderRef or "",
        contract=option,
        label=label_of(contract),
        side=side,
        qty=whole(execution.shares),
        price=dec(execution.price) or Decimal(0),
        time=time,
        kind=kind,
    )


def expiry_close(expiry: date, calendar: str) -> datetime:
    """The close of the session an option expiring on `expiry` belongs to (the expiry date,
    or the last session before it when that date is not a session)."""
    try:
        return session_open_close(expiry, calendar)[1]
    except ValueError:
        before = previous_sessions(expiry, 1, calendar)
        if not before:
            return datetime.combine(expiry, datetime.min.time(), UTC) + timedelta(hours=21)
        return session_open_close(before[-1], calendar)[1]


# -- market data -----------------------------------------------------------------------------
def data_type_of(ticker: Ticker) -> DataType:
    if getattr(ticker, "delayedLastTimestamp", None) is not None:
        return "delayed"
    return _DATA_TYPES.get(int(ticker.marketDataType or 1), "delayed")


def quote_from_ticker(ticker: Ticker, received: datetime | None) -> Quote | None:
    """The ticker as a Quote, timed by the ticker's own time (IB's lastTimestamp, tick 45 or
    88 when delayed) or, without one, when its last tick arrived; None if nothing arrived."""
    data_type = data_type_of(ticker)
    stamp = getattr(ticker, "delayedLastTimestamp", None) if data_type == "delayed" else None
    stamp = stamp or ticker.lastTimestamp
    time = stamp.astimezone(UTC) if stamp is not None else received
    if time is None:
        return None
    last = dec(ticker.last)
    return Quote(
        bid=quote_price(ticker.bid),
        ask=quote_price(ticker.ask),
        time=time,
        data_type=data_type,
        last=last if last is not None and last > 0 else None,
        volume=whole(ticker.volume),
        bid_size=whole(ticker.bidSize),
        ask_size=whole(ticker.askSize),
    )


def bars_frame(bars: Sequence[BarData], calendar: str) -> pd.DataFrame:
    """IB's bars (formatDate=2: UTC epoch starts) as a bar frame of RTH bars."""
    if not bars:
        return empty_bars()
    index = pd.DatetimeIndex([_bar_start(b.date) for b in bars]).as_unit("ns")
    frame = pd.DataFrame(
        {
            "open": [float(b.open) for b in bars],
            "high": [float(b.high) for b in bars],
            "low": [float(b.low) for b in bars],
            "close": [float(b.close) for b in bars],
            "volume": [max(0.0, float(b.volume)) for b in bars],
        },
        index=index,
    )
    frame = frame[~frame.index.duplicated(keep="last")].sort_index()
    return rth_bars(frame, calendar)


def empty_bars() -> pd.DataFrame:
    frame = pd.DataFrame(
        {c: pd.Series(dtype="float64") for c in BAR_COLUMNS},
        index=pd.DatetimeIndex([], tz=UTC).as_unit("ns"),
    )
    frame[SESSION_COLUMN] = pd.Series(dtype="datetime64[s]")
    return frame


def _bar_start(value: date | datetime | str) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime.combine(value, datetime.min.time(), UTC)
    try:
        return datetime.fromtimestamp(int(value), UTC)
    except (TypeError, ValueError, InvalidOperation):
        raise ValueError(f"unreadable bar time {value!r}") from None
