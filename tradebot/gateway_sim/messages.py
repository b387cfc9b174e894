"""Server → client: every message the simulator sends, as field lists, at versions 157 and 178.

Each function returns the fields of one message (message id first); `framing.encode` turns
them into a frame. Layouts are the ones ib_async 2.1's `Decoder` reads. Where its decoder
unpacks a fixed number of fields (tickPrice, position, commissionReport, updatePortfolio …) the
count here is exact: one field more or less and the client drops the message with a logged
error. Values the simulator does not model are sent empty, which ib_async reads as its
defaults ("unset").

Version differences (server version ≥ …): error +advancedOrderRejectJson (166); contractDetails
drops its version field and mdSizeMultiplier and gains three size fields (164); openOrder and
completedOrder lose faProfile (177) and gain duration (159), postToAts (160), autoCancelParent
(162) and five peg fields (170); execDetails gains pendingPriceRevision (178).

Why one module: one small function per server message, the layouts of each server version side by
side so a difference from ib_async's decoder is visible; it holds no logic to split.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from tradebot.core.ticks import TickLadder
from tradebot.gateway_sim.contracts import ContractInfo, WireContract

Fields = list[object]
UNSET_DOUBLE = "1.7976931348623157E308"  # IB's "no value" for a double, as TWS sends it

# Tick types: (live, delayed).
BID, ASK, LAST, HIGH, LOW, CLOSE = (1, 66), (2, 67), (4, 68), (6, 72), (7, 73), (9, 75)
VOLUME = (8, 74)
LAST_TIMESTAMP = (45, 88)


def ib_time(moment: datetime) -> str:
    """'20250701 14:35:20 UTC': a time ib_async parses with its zone."""
    return f"{moment.astimezone(UTC):%Y%m%d %H:%M:%S} UTC"


def ib_exec_time(moment: datetime) -> str:
    """'20250701-14:35:20': UTC without a zone, as IB writes execution times (ib_async#230,
    ib_insync#671; nautilus_trader#2359 runs its Gateways in UTC because of it). ib_async reads
    it in the client machine's zone unless told otherwise."""
    return f"{moment.astimezone(UTC):%Y%m%d-%H:%M:%S}"


@dataclass(frozen=True)
class OrderView:
    """An order as one client sees it: that client's order id, IB's status word."""

    order_id: int
    client_id: int
    perm_id: int
    parent_id: int
    parent_perm_id: int
    contract: WireContract
    action: str
    quantity: int
    order_type: str
    limit: Decimal | None
    aux: Decimal | None
    tif: str
    oca_group: str
    oca_type: int
    account: str
    order_ref: str
    outside_rth: bool
    status: str
    filled: int
    remaining: int
    avg_fill_price: Decimal
    last_fill_price: Decimal
    why_held: str = ""
    finished_at: datetime | None = None
    reason: str = ""  # why it finished, in words (completedStatus)
    what_if: bool = False
    what_if_cost: Decimal | None = None  # margin and equity impact of a what-if order
    commission: Decimal | None = None


@dataclass(frozen=True)
class ExecView:
    order_id: int
    client_id: int
    perm_id: int
    contract: WireContract
    exec_id: str
    time: datetime
    account: str
    side: str  # BOT / SLD
    shares: int
    price: Decimal
    cum_qty: int
    avg_price: Decimal
    order_ref: str
    exchange: str = "SMART"
    liquidity: int = 2  # 1 added, 2 removed: the simulator's fills take liquidity
    liquidation: bool = False  # IB's own liquidation of the position, not the client's order


# -- connection ------------------------------------------------------------------------------
def server_hello(version: int, now: datetime) -> Fields:
    """The handshake reply: exactly two fields (the client recognises it by that)."""
    return [version, ib_time(now)]


def managed_accounts(accounts: Sequence[str]) -> Fields:
    return [15, 1, ",".join(accounts)]


def next_valid_id(order_id: int) -> Fields:
    return [9, 1, order_id]


def error(version: int, req_id: int, code: int, text: str) -> Fields:
    fields: Fields = [4, 2, req_id, code, text]
    if version >= 166:
        fields.append("")  # advancedOrderRejectJson
    return fields


def current_time(moment: datetime) -> Fields:
    return [49, 1, int(moment.timestamp())]


# -- contracts -------------------------------------------------------------------------------
def contract_details(version: int, req_id: int, info: ContractInfo) -> Fields:
    c = info.contract
    last = f"{c.expiry} {info.last_trade_time} {info.time_zone}" if c.expiry else ""
    fields: Fields = [10, 8] if version < 164 else [10]
    fields += [
        req_id,
        c.symbol,
        c.sec_type,
        last,
        c.strike,
        c.right,
        c.exchange,
        c.currency,
        c.local_symbol,
        info.market_name,
        c.trading_class,
        c.con_id,
        info.min_tick,
    ]
    if version < 164:
        fields.append(1)  # mdSizeMultiplier
    fields += [
        c.multiplier,
        info.order_types,
        info.valid_exchanges,
        1,  # priceMagnifier
        info.under_con_id,
        info.long_name,
        c.primary_exchange,
        info.contract_month,
        "",  # industry
        "",  # category
        "",  # subcategory
        info.time_zone,
        info.trading_hours,
        info.trading_hours,  # liquidHours: RTH only in the simulator
        "",  # evRule
        "",  # evMultiplier
        0,  # no secIds
        1,  # aggGroup
        info.under_symbol,
        info.under_sec_type,
        ",".join([str(info.market_rule)] * len(info.valid_exchanges.split(","))),
        c.expiry,  # realExpirationDate
        "ETF" if c.sec_type == "STK" else "",
    ]
    if version == 163:
        fields.append(1)
    if version >= 164:
        fields += [1, 1, 1 if c.sec_type == "OPT" else 100]  # minSize, sizeIncrement, suggested
    return fields


def contract_details_end(req_id: int) -> Fields:
    return [52, 1, req_id]


def option_parameters(
    req_id: int,
    exchange: str,
    under_con_id: int,
    trading_class: str,
    multiplier: int,
    expiries: Sequence[str],
    strikes: Sequence[Decimal],
) -> Fields:
    return [
        75,
        req_id,
        exchange,
        under_con_id,
        trading_class,
        multiplier,
        len(expiries),
        *expiries,
        len(strikes),
        *strikes,
    ]


def option_parameters_end(req_id: int) -> Fields:
    return [76, req_id]


def market_rule(rule_id: int, ladder: TickLadder) -> Fields:
    fields: Fields = [93, rule_id, len(ladder.steps)]
    for low_edge, increment in ladder.steps:
        fields += [low_edge, increment]
    return fields


# -- market data -----------------------------------------------------------------------------
def market_data_type(req_id: int, data_type: int) -> Fields:
    return [58, 1, req_id, data_type]


def tick_price(req_id: int, tick: int, price: Decimal | float, size: int = 0) -> Fields:
    """Exactly seven fields: ib_async unpacks this message without a rest."""
    return [1, 6, req_id, tick, price, size, 0]


def tick_size(req_id: int, tick: int, size: int) -> Fields:
    return [2, 6, req_id, tick, size]


def tick_string(req_id: int, tick: int, value: str) -> Fields:
    return [46, 6, req_id, tick, value]


def tick_snapshot_end(req_id: int) -> Fields:
    return [57, 1, req_id]


@dataclass(frozen=True)
class WireBar:
    date: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    wap: float
    count: int


def historical_data(req_id: int, start: str, end: str, bars: Sequence[WireBar]) -> Fields:
    fields: Fields = [17, req_id, start, end, len(bars)]
    for b in bars:
        fields += [b.date, b.open, b.high, b.low, b.close, b.volume, b.wap, b.count]
    return fields


# -- orders ----------------------------------------------------------------------------------
def open_order(version: int, o: OrderView) -> Fields:
    fields: Fields = [5, o.order_id, *o.contract.short_block(), *_order_head(o)]
    fields += [
        o.client_id,
        o.perm_id,
        o.outside_rth,
        0,  # hidden
        0,  # discretionaryAmt
        "",  # goodAfterTime
        "",  # sharesAllocation (deprecated)
        *_allocation_block(version),
        0,  # auctionStrategy
        "",  # startingPrice
        "",  # stockRefPrice
        "",  # delta
        "",  # stockRangeLower
        "",  # stockRangeUpper
        "",  # displaySize
        0,  # blockOrder
        0,  # sweepToFill
        0,  # allOrNone
        "",  # minQty
        o.oca_type,
        0,  # eTradeOnly
        0,  # firmQuoteOnly
        "",  # nbboPriceCap
        o.parent_id,
        0,  # triggerMethod
        "",  # volatility
        "",  # volatilityType
        "",  # deltaNeutralOrderType (none: no delta-neutral block follows)
        "",  # deltaNeutralAuxPrice
        0,  # continuousUpdate
        "",  # referencePriceType
        "",  # trailStopPrice
        "",  # trailingPercent
        "",  # basisPoints
        "",  # basisPointsType
        "",  # comboLegsDescrip
        0,  # combo legs
        0,  # order combo legs
        0,  # smart combo routing params
        "",  # scaleInitLevelSize
        "",  # scaleSubsLevelSize
        "",  # scalePriceIncrement (unset: no scale block follows)
        "",  # hedgeType (none: no hedge param follows)
        0,  # optOutSmartRouting
        "",  # clearingAccount
        "",  # clearingIntent
        0,  # notHeld
        0,  # no delta-neutral contract
        "",  # algoStrategy (none: no algo params follow)
        0,  # solicited
        o.what_if,
        o.status,
        *_margins(o),
        "" if o.commission is None else o.commission,
        "",  # minCommission
        "",  # maxCommission
        "USD" if o.commission is not None else "",
        "",  # warningText
        0,  # randomizeSize
        0,  # randomizePrice
        0,  # conditions
        "",  # adjustedOrderType
        "",  # triggerPrice
        "",  # trailStopPrice
        "",  # lmtPriceOffset
        "",  # adjustedStopPrice
        "",  # adjustedStopLimitPrice
        "",  # adjustedTrailingAmount
        0,  # adjustableTrailingUnit
        "",  # softDollarTier name
        "",  # softDollarTier value
        "",  # softDollarTier display name
        "",  # cashQty
        0,  # dontUseAutoPriceForHedge
        0,  # isOmsContainer
        0,  # discretionaryUpToLimitPrice
        0,  # usePriceMgmtAlgo
    ]
    if version >= 159:
        fields.append("")  # duration
    if version >= 160:
        fields.append("")  # postToAts
    if version >= 162:
        fields.append(0)  # autoCancelParent
    if version >= 170:
        fields += ["", "", "", "", ""]  # minTradeQty … midOffsetAtHalf
    return fields


def _order_head(o: OrderView) -> Fields:
    """What openOrder and completedOrder both start with after the contract."""
    return [
        o.action,
        o.quantity,
        o.order_type,
        o.limit,
        o.aux,
        o.tif,
        o.oca_group,
        o.account,
        "O",  # openClose
        0,  # origin: customer
        o.order_ref,
    ]


def _allocation_block(version: int) -> Fields:
    """faGroup … exemptCode, shared by openOrder and completedOrder (faProfile below 177)."""
    fields: Fields = ["", "", ""]  # faGroup, faMethod, faPercentage
    if version < 177:
        fields.append("")  # faProfile
    fields += [
        "",  # modelCode
        "",  # goodTillDate
        "",  # rule80A
        "",  # percentOffset
        "",  # settlingFirm
        0,  # shortSaleSlot
        "",  # designatedLocation
        -1,  # exemptCode
    ]
    return fields


def _margins(o: OrderView) -> list[object]:
    """initMargin/maintMargin/equityWithLoan before, change, after (what-if orders only)."""
    if not o.what_if or o.what_if_cost is None:
        return [""] * 9
    cost = o.what_if_cost
    return [0, 0, 0, cost, cost, -cost, cost, cost, -cost]


def order_status(o: OrderView) -> Fields:
    return [
        3,
        o.order_id,
        o.status,
        o.filled,
        o.remaining,
        o.avg_fill_price,
        o.perm_id,
        o.parent_id,
        o.last_fill_price,
        o.client_id,
        o.why_held,
        0,  # mktCapPrice
    ]


def open_order_end() -> Fields:
    return [53, 1]


def completed_order(version: int, o: OrderView) -> Fields:
    fields: Fields = [101, *o.contract.short_block(), *_order_head(o)]
    fields += [
        o.perm_id,
        o.outside_rth,
        0,  # hidden
        0,  # discretionaryAmt
        "",  # goodAfterTime
        *_allocation_block(version),
        "",  # startingPrice
        "",  # stockRefPrice
        "",  # delta
        "",  # stockRangeLower
        "",  # stockRangeUpper
        "",  # displaySize
        0,  # sweepToFill
        0,  # allOrNone
        "",  # minQty
        o.oca_type,
        0,  # triggerMethod
        "",  # volatility
        "",  # volatilityType
        "",  # deltaNeutralOrderType
        "",  # deltaNeutralAuxPrice
        0,  # continuousUpdate
        "",  # referencePriceType
        "",  # trailStopPrice
        "",  # trailingPercent
        "",  # comboLegsDescrip
        0,  # combo legs
        0,  # order combo legs
        0,  # smart combo routing params
        "",  # scaleInitLevelSize
        "",  # scaleSubsLevelSize
        "",  # scalePriceIncrement
        "",  # hedgeType
        "",  # clearingAccount
        "",  # clearingIntent
        0,  # notHeld
        0,  # no delta-neutral contract
        "",  # algoStrategy
        0,  # solicited
        o.status,
        0,  # randomizeSize
        0,  # randomizePrice
        0,  # conditions
        "",  # trailStopPrice
        "",  # lmtPriceOffset
        "",  # cashQty
        0,  # dontUseAutoPriceForHedge
        0,  # isOmsContainer
        "",  # autoCancelDate
        o.filled,  # filledQuantity
        0,  # refFuturesConId
        0,  # autoCancelParent
        "",  # shareholder
        0,  # imbalanceOnly
        0,  # routeMarketableToBbo
        o.parent_perm_id,
        "" if o.finished_at is None else ib_time(o.finished_at),
        o.reason or o.status,  # completedStatus: why it finished, in words
    ]
    if version >= 170:
        fields += ["", "", "", "", ""]
    return fields


def completed_orders_end() -> Fields:
    return [102]


# -- executions ------------------------------------------------------------------------------
def exec_details(version: int, req_id: int, e: ExecView) -> Fields:
    fields: Fields = [
        11,
        req_id,
        e.order_id,
        *e.contract.short_block(),
        e.exec_id,
        ib_exec_time(e.time),
        e.account,
        e.exchange,
        e.side,
        e.shares,
        e.price,
        e.perm_id,
        e.client_id,
        1 if e.liquidation else 0,
        e.cum_qty,
        e.avg_price,
        e.order_ref,
        "",  # evRule
        "",  # evMultiplier
        "",  # modelCode
        e.liquidity,
    ]
    if version >= 178:
        fields.append(0)  # pendingPriceRevision
    return fields


def exec_details_end(req_id: int) -> Fields:
    return [55, 1, req_id]


def commission_report(exec_id: str, commission: Decimal | None, realized: Decimal | None) -> Fields:
    """Exactly eight fields; an opening fill has no realized P&L (IB's unset double), and a
    commission IB does not know is its unset double too."""
    return [
        59,
        1,
        exec_id,
        UNSET_DOUBLE if commission is None else commission,
        "USD",
        UNSET_DOUBLE if realized is None else realized,
        "",  # yield
        "",  # yieldRedemptionDate
    ]


# -- account ---------------------------------------------------------------------------------
def position(account: str, c: WireContract, qty: int, avg_cost: Decimal) -> Fields:
    return [61, 3, account, *c.short_block(), qty, avg_cost]


def position_end() -> Fields:
    return [62, 1]


def position_multi(
    req_id: int, account: str, model: str, c: WireContract, qty: int, avg_cost: Decimal
) -> Fields:
    return [71, 1, req_id, account, *c.short_block(), qty, avg_cost, model]


def position_multi_end(req_id: int) -> Fields:
    return [72, 1, req_id]


def account_value(key: str, value: str, currency: str, account: str) -> Fields:
    return [6, 2, key, value, currency, account]


def portfolio_value(
    c: WireContract,
    qty: int,
    market_price: Decimal,
    market_value: Decimal,
    avg_cost: Decimal,
    unrealized: Decimal,
    realized: Decimal,
    account: str,
) -> Fields:
    """Exactly twenty fields (note primaryExchange where other blocks have exchange)."""
    return [
        7,
        8,
        c.con_id,
        c.symbol,
        c.sec_type,
        c.expiry,
        c.strike,
        c.right,
        c.multiplier,
        c.primary_exchange,
        c.currency,
        c.local_symbol,
        c.trading_class,
        qty,
        market_price,
        market_value,
        avg_cost,
        unrealized,
        realized,
        account,
    ]


def account_time(moment: datetime) -> Fields:
    return [8, 1, f"{moment:%H:%M}"]


def account_download_end(account: str) -> Fields:
    return [54, 1, account]


def account_update_multi(
    req_id: int, account: str, model: str, key: str, value: str, currency: str
) -> Fields:
    return [73, 1, req_id, account, model, key, value, currency]


def account_update_multi_end(req_id: int) -> Fields:
    return [74, 1, req_id]


def account_summary(req_id: int, account: str, tag: str, value: str, currency: str) -> Fields:
    return [63, 1, req_id, account, tag, value, currency]


def pnl(req_id: int, daily: Decimal, unrealized: Decimal, realized: Decimal) -> Fields:
    return [94, req_id, daily, unrealized, realized]


def pnl_single(
    req_id: int, qty: int, daily: Decimal, unrealized: Decimal, realized: Decimal, value: Decimal
) -> Fields:
    return [95, req_id, qty, daily, unrealized, realized, value]


def account_summary_end(req_id: int) -> Fields:
    return [64, 1, req_id]
