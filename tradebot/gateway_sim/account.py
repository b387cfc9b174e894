"""The account as IB reports it: account values, the account summary, portfolio and positions.

A cash account (no margin): buying power is the cash, margin requirements are zero. Values are
computed from the venue at the simulated time; options are marked at the mid (intrinsic value
without a quote), like `SimExchange.net_liquidation`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from tradebot.gateway_sim.contracts import WireContract, wire_contract
from tradebot.market.exchange import SimExchange, multiplier_of

CENT = Decimal("0.01")


def money(value: Decimal) -> str:
    return f"{value.quantize(CENT):f}"


@dataclass(frozen=True)
class PortfolioRow:
    contract: WireContract
    qty: int
    market_price: Decimal
    market_value: Decimal
    avg_cost: Decimal  # per contract, as IB reports it (× multiplier for options)
    unrealized: Decimal


def portfolio(exchange: SimExchange, now: datetime) -> list[PortfolioRow]:
    rows = []
    for pos in exchange.positions.values():
        mult = multiplier_of(pos.contract)
        mark = exchange.mark(pos.contract, now)
        value = mark * pos.qty * mult
        rows.append(
            PortfolioRow(
                contract=wire_contract(pos.contract),
                qty=pos.qty,
                market_price=mark,
                market_value=value.quantize(CENT),
                avg_cost=pos.avg_cost * mult,
                unrealized=(value - pos.avg_cost * pos.qty * mult).quantize(CENT),
            )
        )
    return rows


def values(exchange: SimExchange, now: datetime) -> list[tuple[str, str, str]]:
    """(key, value, currency) as updateAccountValue / accountUpdateMulti send them."""
    rows = portfolio(exchange, now)
    gross = sum((abs(r.market_value) for r in rows), Decimal(0))
    unrealized = sum((r.unrealized for r in rows), Decimal(0))
    net = exchange.net_liquidation(now)
    cash = exchange.cash
    out = [
        ("AccountCode", exchange.account, ""),
        ("AccountType", "INDIVIDUAL", ""),
        ("AccountReady", "true", ""),
        ("Currency", "USD", "USD"),
        ("NetLiquidation", money(net), "USD"),
        ("TotalCashValue", money(cash), "USD"),
        ("SettledCash", money(cash), "USD"),
        ("CashBalance", money(cash), "USD"),
        ("CashBalance", money(cash), "BASE"),
        ("AvailableFunds", money(cash), "USD"),
        ("BuyingPower", money(cash), "USD"),
        ("ExcessLiquidity", money(cash), "USD"),
        ("EquityWithLoanValue", money(net), "USD"),
        ("GrossPositionValue", money(gross), "USD"),
        ("InitMarginReq", "0.00", "USD"),
        ("MaintMarginReq", "0.00", "USD"),
        ("RealizedPnL", money(exchange.realized_pnl - exchange.commissions), "USD"),
        ("UnrealizedPnL", money(unrealized), "USD"),
        ("OptionMarketValue", money(_options_value(rows)), "USD"),
    ]
    return out


def _options_value(rows: Sequence[PortfolioRow]) -> Decimal:
    return sum((r.market_value for r in rows if r.contract.sec_type == "OPT"), Decimal(0))


SUMMARY_TAGS = {
    "AccountType": "AccountType",
    "NetLiquidation": "NetLiquidation",
    "TotalCashValue": "TotalCashValue",
    "SettledCash": "SettledCash",
    "BuyingPower": "BuyingPower",
    "EquityWithLoanValue": "EquityWithLoanValue",
    "GrossPositionValue": "GrossPositionValue",
    "InitMarginReq": "InitMarginReq",
    "MaintMarginReq": "MaintMarginReq",
    "AvailableFunds": "AvailableFunds",
    "ExcessLiquidity": "ExcessLiquidity",
    "FullInitMarginReq": "InitMarginReq",
    "FullMaintMarginReq": "MaintMarginReq",
    "FullAvailableFunds": "AvailableFunds",
    "FullExcessLiquidity": "ExcessLiquidity",
}


def summary(
    exchange: SimExchange, now: datetime, tags: Sequence[str]
) -> list[tuple[str, str, str]]:
    """(tag, value, currency) for the requested account-summary tags the simulator knows.

    `$LEDGER` / `$LEDGER:ALL` / `$LEDGER:USD` add the cash ledger (CashBalance,
    NetLiquidationByCurrency …) in USD (and BASE for ALL)."""
    known = {(k, c): v for k, v, c in values(exchange, now)}
    out = []
    for tag in tags:
        source = SUMMARY_TAGS.get(tag)
        if source is not None:
            currency = "" if source == "AccountType" else "USD"
            out.append((tag, known.get((source, currency), "0.00"), currency))
        elif tag.upper().startswith("$LEDGER"):
            currencies = ["BASE", "USD"] if tag.upper() == "$LEDGER:ALL" else ["USD"]
            net = known[("NetLiquidation", "USD")]
            cash = known[("TotalCashValue", "USD")]
            for currency in currencies:
                out += [
                    ("CashBalance", cash, currency),
                    ("TotalCashBalance", cash, currency),
                    ("NetLiquidationByCurrency", net, currency),
                    ("RealizedPnL", known[("RealizedPnL", "USD")], currency),
                    ("UnrealizedPnL", known[("UnrealizedPnL", "USD")], currency),
                ]
    return out


def pnl(exchange: SimExchange, realized_today: Decimal, now: datetime) -> tuple[Decimal, ...]:
    """reqPnL's (daily, unrealized, realized): today's realized P&L plus the open positions'
    unrealized one (the simulator's day P&L of positions held overnight counts from their
    cost, not from the last close)."""
    unrealized = sum((r.unrealized for r in portfolio(exchange, now)), Decimal(0))
    realized = realized_today.quantize(CENT)
    return ((unrealized + realized).quantize(CENT), unrealized.quantize(CENT), realized)


def position_pnl(exchange: SimExchange, con_id: int, now: datetime) -> tuple[int, Decimal, Decimal]:
    """reqPnLSingle's (position, unrealized P&L, value) for one contract (0s when flat)."""
    for row in portfolio(exchange, now):
        if row.contract.con_id == con_id:
            return row.qty, row.unrealized, row.market_value
    return 0, Decimal(0), Decimal(0)
