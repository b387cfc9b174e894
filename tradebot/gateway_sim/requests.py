"""Client → server: the requests the simulator understands, decoded from their fields.

Layouts follow what ib_async 2.1's `Client` sends at server versions 157 and 178. Only the
fields the simulator acts on are kept; the rest are read past (so a layout mistake shows up as a
`ProtocolError` naming the request, not as a silently shifted field).

Why one module: one small decoder per client request, the layouts side by side as ib_async's client
writes them; it holds no logic to split.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from tradebot.gateway_sim.framing import Fields, ProtocolError

# Message ids (client → server) the simulator answers or accepts.
REQ_MKT_DATA = 1
CANCEL_MKT_DATA = 2
PLACE_ORDER = 3
CANCEL_ORDER = 4
REQ_OPEN_ORDERS = 5
REQ_ACCOUNT_UPDATES = 6
REQ_EXECUTIONS = 7
REQ_IDS = 8
REQ_CONTRACT_DETAILS = 9
SET_SERVER_LOG_LEVEL = 14
REQ_AUTO_OPEN_ORDERS = 15
REQ_ALL_OPEN_ORDERS = 16
REQ_MANAGED_ACCOUNTS = 17
REQ_HISTORICAL_DATA = 20
CANCEL_HISTORICAL_DATA = 25
REQ_CURRENT_TIME = 49
REQ_GLOBAL_CANCEL = 58
REQ_MARKET_DATA_TYPE = 59
REQ_POSITIONS = 61
REQ_ACCOUNT_SUMMARY = 62
CANCEL_ACCOUNT_SUMMARY = 63
CANCEL_POSITIONS = 64
START_API = 71
REQ_POSITIONS_MULTI = 74
CANCEL_POSITIONS_MULTI = 75
REQ_ACCOUNT_UPDATES_MULTI = 76
CANCEL_ACCOUNT_UPDATES_MULTI = 77
REQ_SEC_DEF_OPT_PARAMS = 78
REQ_MARKET_RULE = 91
REQ_COMPLETED_ORDERS = 99
REQ_PNL = 92
CANCEL_PNL = 93
REQ_PNL_SINGLE = 94
CANCEL_PNL_SINGLE = 95


@dataclass(frozen=True)
class ContractSpec:
    """The 12-field contract block as the client sent it (empty strings for unset)."""

    con_id: int
    symbol: str
    sec_type: str
    expiry: str
    strike: Decimal | None
    right: str
    multiplier: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str

    @property
    def label(self) -> str:
        parts = [self.sec_type or "?", self.symbol or self.local_symbol or f"conId {self.con_id}"]
        if self.sec_type == "OPT":
            strike = "" if self.strike is None else f"{self.strike.normalize():f}"
            parts += [self.expiry, strike, self.right]
        return " ".join(p for p in parts if p)


def read_contract(f: Fields) -> ContractSpec:
    con_id = f.integer()
    symbol = f.text().upper()
    sec_type = f.text().upper()
    expiry = f.text()
    strike = f.number()
    right = f.text().upper()
    multiplier = f.text()
    exchange = f.text()
    primary = f.text()
    currency = f.text()
    local = f.text()
    klass = f.text()
    return ContractSpec(
        con_id=con_id,
        symbol=symbol,
        sec_type=sec_type,
        expiry=expiry,
        strike=strike if strike is not None and strike != 0 else None,
        right={"CALL": "C", "PUT": "P"}.get(right, right),
        multiplier=multiplier,
        exchange=exchange,
        primary_exchange=primary,
        currency=currency,
        local_symbol=local,
        trading_class=klass.upper(),
    )


def _skip_combo_legs(f: Fields, per_leg: int) -> None:
    count = f.integer()
    f.skip(count * per_leg)


@dataclass(frozen=True)
class StartApi:
    client_id: int


def start_api(f: Fields) -> StartApi:
    f.integer()  # version
    client_id = f.integer(default=-1)
    if len(f):
        f.text()  # optional capabilities
    return StartApi(client_id)


@dataclass(frozen=True)
class ContractDetailsRequest:
    req_id: int
    contract: ContractSpec


def contract_details(f: Fields) -> ContractDetailsRequest:
    f.integer()  # version
    req_id = f.integer()
    contract = read_contract(f)
    return ContractDetailsRequest(req_id, contract)  # includeExpired, secIdType... unused


@dataclass(frozen=True)
class MarketDataRequest:
    req_id: int
    contract: ContractSpec
    generic_ticks: str
    snapshot: bool


def market_data(f: Fields) -> MarketDataRequest:
    f.integer()  # version
    req_id = f.integer()
    contract = read_contract(f)
    if contract.sec_type == "BAG":
        _skip_combo_legs(f, 4)
    if f.flag():  # delta-neutral contract
        f.skip(3)
    generic = f.text()
    snapshot = f.flag()
    return MarketDataRequest(req_id, contract, generic, snapshot)


@dataclass(frozen=True)
class HistoricalRequest:
    req_id: int
    contract: ContractSpec
    end: str
    bar_size: str
    duration: str
    use_rth: bool
    what_to_show: str
    format_date: int
    keep_up_to_date: bool


def historical_data(f: Fields) -> HistoricalRequest:
    req_id = f.integer()
    contract = read_contract(f)
    f.text()  # includeExpired
    end = f.text()
    bar_size = f.text()
    duration = f.text()
    use_rth = f.flag()
    what = f.text()
    format_date = f.integer(default=1)
    if contract.sec_type == "BAG":
        _skip_combo_legs(f, 4)
    keep = f.flag() if len(f) else False
    return HistoricalRequest(
        req_id, contract, end, bar_size, duration, use_rth, what.upper(), format_date, keep
    )


@dataclass(frozen=True)
class PlaceOrderRequest:
    """The parts of an order the simulated venue acts on."""

    order_id: int
    contract: ContractSpec
    action: str
    quantity: Decimal
    order_type: str
    limit: Decimal | None
    aux: Decimal | None
    tif: str
    oca_group: str
    account: str
    order_ref: str
    transmit: bool
    parent_id: int
    outside_rth: bool
    oca_type: int
    what_if: bool
    has_conditions: bool


def place_order(f: Fields, version: int) -> PlaceOrderRequest:
    order_id = f.integer()
    contract = read_contract(f)
    f.skip(2)  # secIdType, secId
    action = f.text().upper()
    quantity = f.number() or Decimal(0)
    order_type = f.text().upper()
    limit = f.number()
    aux = f.number()
    tif = f.text().upper()
    oca_group = f.text()
    account = f.text()
    f.skip(2)  # openClose, origin
    order_ref = f.text()
    transmit = f.flag()
    parent_id = f.integer()
    f.skip(4)  # blockOrder, sweepToFill, displaySize, triggerMethod
    outside_rth = f.flag()
    f.text()  # hidden
    if contract.sec_type == "BAG":
        _skip_combo_legs(f, 8)
        _skip_combo_legs(f, 1)
        _skip_combo_legs(f, 2)
    # "", discretionaryAmt, goodAfterTime, goodTillDate, faGroup, faMethod, faPercentage
    f.skip(7)
    if version < 177:
        f.text()  # faProfile
    f.skip(4)  # modelCode, shortSaleSlot, designatedLocation, exemptCode
    oca_type = f.integer()
    f.skip(17)  # rule80A … volatilityType
    delta_neutral_type = f.text()
    f.text()  # deltaNeutralAuxPrice
    if delta_neutral_type:
        f.skip(8)
    f.skip(6)  # continuousUpdate … scaleSubsLevelSize
    increment = f.number()
    if increment is not None and increment > 0:
        f.skip(7)
    f.skip(3)  # scaleTable, activeStartTime, activeStopTime
    if f.text():  # hedgeType
        f.text()
    f.skip(4)  # optOutSmartRouting, clearingAccount, clearingIntent, notHeld
    if f.flag():  # delta-neutral contract
        f.skip(3)
    if f.text():  # algoStrategy
        f.skip(2 * f.integer())
    f.text()  # algoId
    what_if = f.flag()
    f.skip(4)  # orderMiscOptions, solicited, randomizeSize, randomizePrice
    if order_type in ("PEG BENCH", "PEGBENCH"):
        f.skip(5)
    has_conditions = f.integer() > 0
    if not has_conditions and len(f) < _order_tail(version):
        raise ProtocolError(f"{f.what}: {len(f)} trailing fields, expected {_order_tail(version)}")
    return PlaceOrderRequest(
        order_id=order_id,
        contract=contract,
        action=action,
        quantity=quantity,
        order_type=order_type,
        limit=limit,
        aux=aux,
        tif=tif or "DAY",
        oca_group=oca_group,
        account=account,
        order_ref=order_ref,
        transmit=transmit,
        parent_id=parent_id,
        outside_rth=outside_rth,
        oca_type=oca_type,
        what_if=what_if,
        has_conditions=has_conditions,
    )


def _order_tail(version: int) -> int:
    """Fields after the (empty) conditions list: adjustedOrderType … usePriceMgmtAlgo (19),
    then one each for duration (158), postToAts (160), autoCancelParent (162),
    advancedErrorOverride (166) and manualOrderTime (169)."""
    return 19 + sum(version >= v for v in (158, 160, 162, 166, 169))


def cancel_order(f: Fields) -> int:
    f.integer()  # version
    return f.integer()


@dataclass(frozen=True)
class ExecutionFilter:
    req_id: int
    client_id: int
    account: str
    time: str
    symbol: str
    sec_type: str
    exchange: str
    side: str


def executions(f: Fields) -> ExecutionFilter:
    f.integer()  # version
    return ExecutionFilter(
        req_id=f.integer(),
        client_id=f.integer(),
        account=f.text(),
        time=f.text(),
        symbol=f.text().upper(),
        sec_type=f.text().upper(),
        exchange=f.text().upper(),
        side=f.text().upper(),
    )


@dataclass(frozen=True)
class OptionParamsRequest:
    req_id: int
    symbol: str
    sec_type: str
    con_id: int


def option_params(f: Fields) -> OptionParamsRequest:
    req_id = f.integer()
    symbol = f.text().upper()
    f.text()  # futFopExchange
    sec_type = f.text().upper()
    con_id = f.integer()
    return OptionParamsRequest(req_id, symbol, sec_type, con_id)


@dataclass(frozen=True)
class AccountSummaryRequest:
    req_id: int
    group: str
    tags: tuple[str, ...]


def account_summary(f: Fields) -> AccountSummaryRequest:
    f.integer()  # version
    req_id = f.integer()
    group = f.text()
    tags = tuple(t.strip() for t in f.text().split(",") if t.strip())
    return AccountSummaryRequest(req_id, group, tags)


@dataclass(frozen=True)
class AccountUpdatesRequest:
    subscribe: bool
    account: str


def account_updates(f: Fields) -> AccountUpdatesRequest:
    f.integer()  # version
    subscribe = f.flag()
    return AccountUpdatesRequest(subscribe, f.text())


@dataclass(frozen=True)
class MultiRequest:
    """reqAccountUpdatesMulti / reqPositionsMulti: a request id, an account, a model code."""

    req_id: int
    account: str
    model_code: str


def multi_request(f: Fields) -> MultiRequest:
    f.integer()  # version
    req_id = f.integer()
    account = f.text()
    model = f.text()
    return MultiRequest(req_id, account, model)


@dataclass(frozen=True)
class PnlRequest:
    req_id: int
    account: str
    model_code: str
    con_id: int = 0  # reqPnLSingle only


def pnl_request(f: Fields, *, single: bool) -> PnlRequest:
    """reqPnL `reqId, account, modelCode` / reqPnLSingle `… , conId` (no version field)."""
    req_id = f.integer()
    account = f.text()
    model = f.text()
    con_id = f.integer() if single else 0
    return PnlRequest(req_id, account, model, con_id)


def versioned_int(f: Fields) -> int:
    """The common shape `id, version, value` (reqIds, cancels, reqMarketDataType …)."""
    f.integer()  # version
    return f.integer()


def plain_int(f: Fields) -> int:
    """`id, value` without a version field (reqMarketRule, reqCompletedOrders)."""
    return f.integer()
