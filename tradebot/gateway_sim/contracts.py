"""Which contracts the simulator lists, and how they look on the wire.

The simulated Gateway serves a fixed universe: stocks (ETFs) for a list of symbols and their
weekly options as the market model lists them (`MarketModel.chain` / `option`). A request for
anything else is answered like IB answers it: error 200, "no security definition".

A contract request may be partial, as IB allows: an option with no strike or no right matches
every listed one (ib_async's `qualifyContracts` then reports it as ambiguous). Every contract
handed out is remembered by conId, so later requests that carry only the conId resolve too.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation

from tradebot.core.instruments import OptionContract, StockContract
from tradebot.core.sessions import session_open_close, sessions_between
from tradebot.core.ticks import NON_PENNY, PENNY_ALL, PENNY_PROGRAM, TickLadder
from tradebot.core.trades import EXCHANGE_TZ
from tradebot.gateway_sim.requests import ContractSpec
from tradebot.market.model import MarketModel

Contract = OptionContract | StockContract

# Served when no --symbols and no --bars are given: the well-known symbols of the market model.
DEFAULT_SYMBOLS = ("SPY", "QQQ", "IWM", "DIA", "AAPL", "MSFT", "TSLA", "NVDA")
MAX_MATCHES = 2000  # a partial option request never lists more than this
# The simulator's own market-rule ids (IB's are numbers too, listed per exchange in
# `marketRuleIds`): the price increments by price, as `reqMarketRule` answers them.
MARKET_RULES: dict[int, TickLadder] = {
    1001: PENNY_ALL,  # stocks, and SPY / QQQ / IWM options: $0.01 at every price
    1002: PENNY_PROGRAM,  # penny-program options: $0.01 below $3, $0.05 at or above
    1003: NON_PENNY,  # other options: $0.05 below $3, $0.10 at or above
}
EXCHANGE_TZ_NAME = "US/Eastern"


@dataclass(frozen=True)
class WireContract:
    """A contract as the protocol spells it."""

    con_id: int
    symbol: str
    sec_type: str
    expiry: str  # YYYYMMDD, empty for stocks
    strike: Decimal
    right: str
    multiplier: str
    exchange: str
    primary_exchange: str
    currency: str
    local_symbol: str
    trading_class: str

    def short_block(self) -> list[object]:
        """The 11-field block of openOrder, completedOrder, execDetails and position."""
        return [
            self.con_id,
            self.symbol,
            self.sec_type,
            self.expiry,
            self.strike,
            self.right,
            self.multiplier,
            self.exchange,
            self.currency,
            self.local_symbol,
            self.trading_class,
        ]


def wire_contract(contract: Contract, exchange: str = "SMART") -> WireContract:
    if isinstance(contract, OptionContract):
        return WireContract(
            con_id=contract.con_id,
            symbol=contract.symbol,
            sec_type="OPT",
            expiry=f"{contract.expiry:%Y%m%d}",
            strike=contract.strike,
            right=contract.right,
            multiplier=str(contract.multiplier),
            exchange=exchange,
            primary_exchange="",
            currency=contract.currency,
            local_symbol=contract.local_symbol,
            trading_class=contract.klass,
        )
    return WireContract(
        con_id=contract.con_id,
        symbol=contract.symbol,
        sec_type="STK",
        expiry="",
        strike=Decimal(0),
        right="",
        multiplier="",
        exchange=exchange,
        primary_exchange=contract.primary_exchange,
        currency=contract.currency,
        local_symbol=contract.symbol,
        trading_class=contract.symbol,
    )


@dataclass(frozen=True)
class ContractInfo:
    """What contractDetails says beyond the contract itself."""

    contract: WireContract
    min_tick: Decimal
    market_name: str
    long_name: str
    under_con_id: int
    under_symbol: str
    under_sec_type: str
    contract_month: str
    last_trade_time: str  # HH:MM:SS in New York, options only
    trading_hours: str
    market_rule: int
    order_types: str = "LMT,MKT,STP"
    valid_exchanges: str = "SMART"
    time_zone: str = EXCHANGE_TZ_NAME


def market_rule_of(contract: Contract) -> int:
    grid = contract.grid if isinstance(contract, OptionContract) else PENNY_ALL
    for rule, ladder in MARKET_RULES.items():
        if ladder == grid:
            return rule
    rule = max(MARKET_RULES) + 1  # a ladder not seen before gets a rule of its own
    MARKET_RULES[rule] = grid
    return rule


class Universe:
    """The contracts this simulator lists, resolved from requests and remembered by conId."""

    def __init__(self, market: MarketModel, symbols: Iterable[str] | None = None) -> None:
        self.market = market
        listed = market.source.symbols()
        chosen = [s.upper() for s in symbols] if symbols else (listed or list(DEFAULT_SYMBOLS))
        self.symbols = tuple(s for s in chosen if market.supports(s))
        self.by_con_id: dict[int, Contract] = {}
        for symbol in self.symbols:
            self.remember(market.stock(symbol))

    def remember(self, contract: Contract) -> Contract:
        self.by_con_id[contract.con_id] = contract
        return contract

    def serves(self, symbol: str) -> bool:
        return symbol.upper() in self.symbols

    def stock(self, symbol: str) -> StockContract | None:
        return self.market.stock(symbol) if self.serves(symbol) else None

    # -- resolution --------------------------------------------------------------------------
    def matches(self, spec: ContractSpec, day: date) -> list[Contract]:
        """Every listed contract the request describes (none, one, or several)."""
        if spec.con_id:
            known = self.by_con_id.get(spec.con_id)
            if known is not None:
                return [known] if _consistent(spec, known) else []
            # Not handed out by this server yet (a client that kept conIds across a restart):
            # resolve the other fields and keep what carries that conId.
            if not (spec.symbol or spec.local_symbol):
                return []
            bare = replace(spec, con_id=0)
            return [c for c in self.matches(bare, day) if c.con_id == spec.con_id]
        if spec.currency not in ("", "USD"):
            return []
        if spec.sec_type == "STK":
            stock = self.stock(spec.symbol or spec.local_symbol)
            return [stock] if stock is not None else []
        if spec.sec_type == "OPT":
            return [self.remember(o) for o in self._options(spec, day)]
        return []

    def resolve(self, spec: ContractSpec, day: date) -> Contract | None:
        """The one contract the request names, or None (unknown or ambiguous)."""
        found = self.matches(spec, day)
        return found[0] if len(found) == 1 else None

    def _options(self, spec: ContractSpec, day: date) -> list[OptionContract]:
        symbol, expiry, strike, right = spec.symbol, spec.expiry, spec.strike, spec.right
        if spec.local_symbol and not (symbol and expiry and strike and right):
            parsed = parse_occ(spec.local_symbol)
            if parsed is None:
                return []
            symbol, expiry, strike, right = parsed
        if not self.serves(symbol):
            return []
        if spec.trading_class and spec.trading_class != symbol:
            return []
        if spec.multiplier not in ("", "100"):
            return []
        chain = self.market.chain(symbol, day)
        expiries = [e for e in chain.expiries if not expiry or f"{e:%Y%m%d}".startswith(expiry)]
        strikes = [k for k in chain.strikes if strike is None or k == strike]
        rights = [r for r in ("C", "P") if not right or r == right]
        found: list[OptionContract] = []
        for e in expiries:
            for k in strikes:
                for r in rights:
                    option = self.market.option(symbol, e, k, r, day)  # type: ignore[arg-type]
                    if option is not None:
                        found.append(option)
                    if len(found) >= MAX_MATCHES:
                        return found
        return found

    # -- details -----------------------------------------------------------------------------
    def info(self, contract: Contract, exchange: str, now: datetime) -> ContractInfo:
        wire = wire_contract(contract, exchange or "SMART")
        hours = trading_hours(self.market.calendar, now)
        if isinstance(contract, OptionContract):
            under = self.market.stock(contract.symbol)
            close = session_open_close(contract.expiry, self.market.calendar)[1]
            return ContractInfo(
                contract=wire,
                min_tick=contract.tick,
                market_name=contract.klass,
                long_name=f"{contract.symbol} {contract.label[len(contract.symbol) + 1 :]}",
                under_con_id=under.con_id,
                under_symbol=contract.symbol,
                under_sec_type="STK",
                contract_month=f"{contract.expiry:%Y%m}",
                last_trade_time=f"{close.astimezone(EXCHANGE_TZ):%H:%M:%S}",
                trading_hours=hours,
                market_rule=market_rule_of(contract),
                valid_exchanges="SMART,CBOE,ISE,PHLX,AMEX,BOX",
            )
        return ContractInfo(
            contract=wire,
            min_tick=contract.tick,
            market_name=contract.symbol,
            long_name=f"{contract.symbol} (simulated)",
            under_con_id=0,
            under_symbol="",
            under_sec_type="",
            contract_month="",
            last_trade_time="",
            trading_hours=hours,
            market_rule=market_rule_of(contract),
            valid_exchanges="SMART,ARCA,NYSE,NASDAQ",
        )


def _consistent(spec: ContractSpec, contract: Contract) -> bool:
    """A conId request may also carry other fields; they must not contradict the conId."""
    wire = wire_contract(contract)
    return (
        spec.sec_type in ("", wire.sec_type)
        and spec.symbol in ("", wire.symbol)
        and (not spec.expiry or wire.expiry.startswith(spec.expiry))
        and (spec.strike is None or spec.strike == wire.strike)
        and spec.right in ("", wire.right)
    )


def parse_occ(local_symbol: str) -> tuple[str, str, Decimal, str] | None:
    """'SPY   250703C00620000' → ('SPY', '20250703', 620, 'C'); None when malformed."""
    text = local_symbol.strip()
    if len(text) < 16:
        return None
    root, tail = text[:-15].strip().upper(), text[-15:]
    yymmdd, right, thousandths = tail[:6], tail[6], tail[7:]
    if not (yymmdd.isdigit() and right in "CP" and thousandths.isdigit() and root):
        return None
    try:
        strike = Decimal(int(thousandths)) / 1000
    except InvalidOperation:
        return None
    return root, "20" + yymmdd, strike.normalize(), right


def trading_hours(calendar: str, now: datetime) -> str:
    """IB's hours string ('20250701:0930-20250701:1600;20250704:CLOSED;…') for a week ahead."""
    today = now.astimezone(EXCHANGE_TZ).date()
    sessions = set(sessions_between(today, today + timedelta(days=6), calendar))
    parts = []
    for offset in range(7):
        day = today + timedelta(days=offset)
        if day not in sessions:
            parts.append(f"{day:%Y%m%d}:CLOSED")
            continue
        opens, closes = session_open_close(day, calendar)
        o, c = opens.astimezone(EXCHANGE_TZ), closes.astimezone(EXCHANGE_TZ)
        parts.append(f"{o:%Y%m%d:%H%M}-{c:%Y%m%d:%H%M}")
    return ";".join(parts)
