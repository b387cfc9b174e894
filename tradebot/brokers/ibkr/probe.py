"""`tradebot gateway test`: connect read-only and report what works.

Read-only: no order lists, no orders, a client id of its own (broker.client_id + 1 unless told
otherwise, so it can run next to `tradebot run`). It reports the server version, the accounts
and whether each is paper (DU…) or live, the net liquidation, the market data type IB actually
sent for a symbol, whether an option chain is listed, and the clock skew. The verdict:

It also checks what stops the first order, without placing one: a quote for one option of the
chain (an account without the OPRA subscription has stock quotes but none for options), and a
what-if order (a margin preview IB never executes) on that option, which a Gateway whose API is
Read-Only refuses with error 321 (IbcAlpha/IBC#341) — as it would refuse every order.

* `ok` (exit 0): everything the bot needs is there;
* `degraded` (exit 4): connected, but something is missing (each problem is named);
* `unreachable` (exit 5): no API connection (the host and port tried, the usual causes).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

from ib_async import Contract, LimitOrder, Option, Ticker

from tradebot.brokers.base import OptionChainInfo
from tradebot.brokers.ibkr import codes, mapping
from tradebot.brokers.ibkr.connection import IbConnection
from tradebot.brokers.ibkr.market_data import choose_chain
from tradebot.brokers.ibkr.settings import (
    MAX_CLOCK_SKEW_S,
    IbkrSettings,
    is_paper_account,
    is_simulator_account,
)
from tradebot.brokers.ibkr.tracker import OrderTracker
from tradebot.core.trades import session_of
from tradebot.errors import GatewayUnreachableError, TradebotError

Verdict = Literal["ok", "degraded", "unreachable"]
CAUSES = (
    "IB Gateway (or TWS) is not running, or not logged in yet (2FA waiting on the phone)",
    "its API is not enabled: Configure → Settings → API → Enable ActiveX and Socket Clients",
    "wrong port: IB Gateway 4002 paper / 4001 live (TWS 7497 / 7496); broker.port",
    "this machine is not in the gateway's Trusted IPs (keep it on 127.0.0.1 / loopback)",
    "the client id is in use by another program (error 326): --client-id another number",
)


@dataclass
class ProbeReport:
    status: Verdict
    host: str
    port: int
    client_id: int
    server_version: int | None = None
    accounts: list[dict[str, str]] = field(default_factory=list)
    account: str | None = None
    net_liquidation: str | None = None
    market_data: dict[str, Any] | None = None
    option_chain: dict[str, Any] | None = None
    option_market_data: dict[str, Any] | None = None
    orders: dict[str, Any] | None = None
    clock: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    error: str | None = None
    causes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return {"ok": 0, "degraded": 4, "unreachable": 5}[self.status]

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _wall() -> datetime:
    return datetime.now(UTC)


async def probe(
    settings: IbkrSettings,
    symbol: str,
    *,
    wall: Callable[[], datetime] | None = None,
) -> ProbeReport:
    clock = wall or _wall
    s = replace(settings, readonly=True, clock="local")
    report = ProbeReport("ok", s.host, s.port, s.client_id)
    conn = IbConnection(s, OrderTracker(s.client_id), None, clock, wall=clock)
    try:
        await conn.connect()
    except GatewayUnreachableError as exc:
        report.status = "unreachable"
        report.error = exc.message
        report.causes = list(CAUSES)
        return report
    except TradebotError as exc:
        report.status = "degraded"
        report.problems.append(exc.message)
        await conn.close()
        return report
    try:
        await _inspect(conn, settings, symbol, report, clock)
    finally:
        await conn.close()
    report.status = "degraded" if report.problems else "ok"
    return report


async def _inspect(
    conn: IbConnection,
    settings: IbkrSettings,
    symbol: str,
    report: ProbeReport,
    clock: Callable[[], datetime],
) -> None:
    problems = report.problems
    report.server_version = conn.server_version
    for what, why in conn.missing.items():
        problems.append(
            f"the gateway did not answer {what} ({why}): `tradebot run` would connect degraded "
            "(entries wait, exits keep working); some Gateway builds never answer executions "
            "requests (ib_async#54, #82): restart or update IB Gateway"
        )
    report.accounts = [
        {
            "id": a,
            "kind": "simulator"
            if is_simulator_account(a)
            else ("paper" if is_paper_account(a) else "live"),
        }
        for a in conn.accounts
    ]
    report.account = conn.account or None
    if not conn.account:
        problems.append(
            f"the gateway manages several accounts ({', '.join(conn.accounts)}); set "
            "broker.account to the one to trade"
        )
    elif settings.trading_mode in ("paper", "live"):
        paper = is_paper_account(conn.account)
        if settings.trading_mode == "paper" and not paper:
            problems.append(
                f"trading.mode = 'paper' but {conn.account} is a live account: `tradebot run` "
                "will refuse it"
            )
        if settings.trading_mode == "live" and paper:
            problems.append(
                f"trading.mode = 'live' but {conn.account} is a paper account: `tradebot run` "
                "will refuse it"
            )

    # Clock.
    if conn.gateway_time is not None and conn.skew_s is not None:
        simulator = bool(conn.accounts) and all(is_simulator_account(a) for a in conn.accounts)
        # A rehearsal (broker.clock = 'gateway' against the simulator): the loop takes the
        # gateway's clock, so a skew is expected and no problem.
        follows = settings.clock == "gateway" and simulator
        report.clock = {
            "gateway": conn.gateway_time.isoformat(),
            "local": clock().isoformat(),
            "skew_s": round(conn.skew_s, 1),
            "follows_gateway": follows,
        }
        if settings.clock == "gateway" and not simulator:
            problems.append(
                "broker.clock = 'gateway' follows only `tradebot gateway sim`; with an IB account "
                "`tradebot run` refuses it: set broker.clock = 'local'"
            )
        elif not follows and abs(conn.skew_s) > MAX_CLOCK_SKEW_S:
            problems.append(
                f"the gateway's clock is {conn.skew_s:+.0f} s from this machine's (more than "
                f"{MAX_CLOCK_SKEW_S:g} s): entries would wait; fix the clock (NTP)"
                + (", or rehearse with broker.clock = 'gateway'" if simulator else "")
            )

    # Net liquidation.
    try:
        await conn.call("the account summary", lambda ib: ib.reqAccountSummaryAsync())
        ib = conn.require()
        # The wrapper's table, never ib.accountSummary(): that one runs its own event loop.
        for value in ib.wrapper.acctSummary.values():
            if (
                value.account == conn.account
                and value.tag == "NetLiquidation"
                and value.currency in ("USD", "BASE")
            ):
                report.net_liquidation = value.value
                break
    except TradebotError as exc:
        problems.append(f"account summary: {exc.message}")
    if report.net_liquidation is None:
        problems.append("no net liquidation value: equity would be unknown (entries refused)")

    # Market data for one symbol.
    await _market_data(conn, settings, symbol, report)

    # Option chain, then one option's quote and a what-if order on it.
    chain = None
    try:
        con_id = await _stock_con_id(conn, symbol)
        chains = await conn.call(
            f"the option chain of {symbol}",
            lambda ib: ib.reqSecDefOptParamsAsync(symbol, "", "STK", con_id),
        )
        # Listings are dated by the gateway's clock (this machine's may be off: reported above).
        chain = choose_chain(symbol, list(chains), session_of(conn.gateway_time or clock()))
        if chain is None:
            report.option_chain = {"symbol": symbol, "available": False}
            problems.append(f"no SMART option chain listed for {symbol}")
        else:
            report.option_chain = {
                "symbol": symbol,
                "available": True,
                "trading_class": chain.trading_class,
                "expiries": len(chain.expiries),
                "strikes": len(chain.strikes),
                "first_expiry": chain.expiries[0].isoformat(),
            }
    except TradebotError as exc:
        report.option_chain = {"symbol": symbol, "available": False}
        problems.append(f"option chain of {symbol}: {exc.message}")
    if chain is not None:
        option = await _near_money_option(conn, symbol, chain, report)
        if option is not None:
            await _option_market_data(conn, settings, option, report)
            await _read_only_check(conn, option, report)


async def _near_money_option(
    conn: IbConnection, symbol: str, chain: OptionChainInfo, report: ProbeReport
) -> Option | None:
    """The first expiry's call at the strike nearest the stock's last price, qualified."""
    md = report.market_data or {}
    spot = next((Decimal(v) for v in (md.get("last"), md.get("bid"), md.get("ask")) if v), None)
    strikes = chain.strikes
    strike = min(strikes, key=lambda k: abs(k - spot)) if spot else strikes[len(strikes) // 2]
    option = Option(
        symbol, f"{chain.expiries[0]:%Y%m%d}", float(strike), "C", "SMART",
        tradingClass=chain.trading_class,
    )  # fmt: skip
    try:
        details = await conn.call(
            f"the {symbol} option", lambda ib: ib.reqContractDetailsAsync(option)
        )
    except TradebotError as exc:
        report.problems.append(f"option {option.localSymbol or symbol}: {exc.message}")
        return None
    found = [d.contract for d in details if d.contract is not None]
    if len(found) != 1 or found[0] is None:
        report.problems.append(
            f"IB does not list one {symbol} {chain.expiries[0]} {strike} call to check option "
            "market data with"
        )
        return None
    contract = found[0]
    return Option(
        contract.symbol, contract.lastTradeDateOrContractMonth, contract.strike, "C", "SMART",
        tradingClass=contract.tradingClass, conId=contract.conId,
        multiplier=contract.multiplier, currency=contract.currency,
    )  # fmt: skip


async def _option_market_data(
    conn: IbConnection, settings: IbkrSettings, option: Option, report: ProbeReport
) -> None:
    label = mapping.label_of(option)
    info: dict[str, Any] = {"contract": label, "received": "none"}
    report.option_market_data = info
    ticker, error = await _watch_quote(conn, settings, option)
    if ticker is None or ticker.time is None or (math.isnan(ticker.bid) and math.isnan(ticker.ask)):
        why = f" (IB error {error[0]}: {error[1]})" if error else ""
        report.problems.append(
            f"no market data for the option {label}{why}: tradebot could not price any option; "
            "subscribe to OPRA (US options) — and share it with the paper account"
        )
        return
    kind = mapping.data_type_of(ticker)
    info.update(received=kind, bid=_num(ticker.bid), ask=_num(ticker.ask))
    if kind != "live":
        report.problems.append(
            f"IB sent {kind} market data for the option {label}: the bot never opens a trade "
            "on it; subscribe to OPRA (US options) and share it with the paper account"
        )


async def _read_only_check(conn: IbConnection, option: Option, report: ProbeReport) -> None:
    """A what-if order (IB previews margin and commission, never executes it): a Gateway
    whose API is Read-Only refuses it with 321, as it would refuse every real order. ib_async
    takes 321 for a warning and never ends the request, so the answer is watched here."""
    ib = conn.require()
    order = LimitOrder("BUY", 1, 0.05, tif="DAY", account=conn.account, whatIf=True)
    req_id = ib.client.getReqId()
    future = ib.wrapper.startReq(req_id, option)  # type: ignore[no-untyped-call]
    ib.client.placeOrder(req_id, option, order)  # type: ignore[no-untyped-call]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + conn.settings.timeout_s
    error: tuple[int, str] | None = None
    while not future.done() and loop.time() < deadline:
        error = conn.request_errors.get(req_id)
        if error is not None:
            break
        await asyncio.sleep(0.01)
    if not future.done():
        future.cancel()
    if error is not None:
        code, text = error
        read_only = code == codes.READ_ONLY and "read-only" in text.lower()
        report.orders = {"checked": True, "read_only": read_only, "error": str(code)}
        if read_only:
            report.problems.append(
                "the Gateway's API is Read-Only (error 321 on a what-if order): `tradebot run` "
                "could not place any order; untick Configure → Settings → API → Settings → "
                "Read-Only API (IBC: ReadOnlyApi=no; the Docker image: READ_ONLY_API=no)"
            )
        return
    if future.done() and not future.cancelled() and future.exception() is None:
        report.orders = {"checked": True, "read_only": False, "error": None}
        return
    report.orders = {"checked": False, "read_only": None, "error": "no answer to a what-if order"}


async def _stock_con_id(conn: IbConnection, symbol: str) -> int:
    details = await conn.call(
        f"the contract of {symbol}", lambda ib: ib.reqContractDetailsAsync(mapping.stock(symbol))
    )
    stocks = [d.contract for d in details if d.contract is not None]
    if len(stocks) != 1 or stocks[0] is None:
        raise TradebotError(f"IB does not list {symbol} as one stock on SMART/USD")
    return int(stocks[0].conId)


async def _market_data(
    conn: IbConnection, settings: IbkrSettings, symbol: str, report: ProbeReport
) -> None:
    requested = settings.market_data_type
    info: dict[str, Any] = {"symbol": symbol, "requested": requested, "received": "none"}
    report.market_data = info
    try:
        con_id = await _stock_con_id(conn, symbol)
    except TradebotError as exc:
        report.problems.append(f"market data for {symbol}: {exc.message}")
        return
    contract = mapping.stock(symbol)
    contract.conId = con_id
    found, error = await _watch_quote(conn, settings, contract)
    assert found is not None
    ticker = found
    received = ticker.time is not None and not (math.isnan(ticker.bid) and math.isnan(ticker.last))
    if not received:
        why = f" (IB error {error[0]}: {error[1]})" if error else ""
        report.problems.append(
            f"no market data for {symbol}{why}: check the market data subscriptions (US "
            "securities and OPRA for options), or broker.market_data_type"
        )
        return
    kind = mapping.data_type_of(ticker)
    info.update(
        received=kind,
        bid=_num(ticker.bid),
        ask=_num(ticker.ask),
        last=_num(ticker.last),
    )
    if kind != "live":
        report.problems.append(
            f"IB sent {kind} market data for {symbol} ({requested} requested): the bot never "
            "opens a trade on it; subscribe to live data (and share it with the paper account)"
        )


async def _watch_quote(
    conn: IbConnection, settings: IbkrSettings, contract: Contract
) -> tuple[Ticker | None, tuple[int, str] | None]:
    """A quote stream for a moment: the ticker, and IB's error about it (if any)."""
    ib = conn.require()
    ticker = ib.reqMktData(contract, "", False, False)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + min(settings.timeout_s, 3.0)
    req_id = ib.wrapper.ticker2ReqId["mktData"].get(ticker, 0)
    while loop.time() < deadline:
        refused = conn.request_errors.get(req_id)
        if refused is not None and codes.refuses_market_data(refused[0]):
            break
        if not math.isnan(ticker.bid) and not math.isnan(ticker.ask):
            break
        await asyncio.sleep(0.01)
    ib.cancelMktData(contract)
    return ticker, conn.request_errors.get(req_id)


def _num(value: float) -> str | None:
    parsed = mapping.dec(value)
    return None if parsed is None else str(parsed)
