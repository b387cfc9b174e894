"""IB's Flex Web Service: the account statement, evidence of what the API has forgotten.

IB's API returns executions and completed orders of the current IB day only: a stop that filled
while tradebot was stopped yesterday is, today, only a changed position. A Flex query (Account
Management → Reports → Flex Queries, with the sections Trades and Option Exercises, Assignments
and Expirations; a token from "Configure Flex Web Service") lists those trades and expiries, so
the reconciliation can close the journal's trade with its real price instead of guessing.

The download follows IB's two steps (SendRequest → a reference code; GetStatement → the XML,
or "statement generation in progress" while IB prepares it), each HTTP request bounded by
`broker.timeout_s`, a few polls at most. The XML is read with ib_async's `FlexReport`. The token
is a secret: it is never logged, and neither is any URL that carries it.
"""

from __future__ import annotations

import logging
import os
import time
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal
from urllib.error import URLError
from urllib.parse import urlencode
from urllib.request import urlopen

from ib_async.flexreport import FLEXREPORT_URL, FlexReport

from tradebot.brokers.base import (
    BrokerError,
    Statement,
    StatementEvent,
    StatementTrade,
)
from tradebot.brokers.ibkr.flex_settings import FlexSettings
from tradebot.core.instruments import OptionContract
from tradebot.core.trades import EXCHANGE_TZ

log = logging.getLogger("tradebot.ibkr")

POLLS = 6  # GetStatement attempts while IB says the statement is being generated
POLL_WAIT_S = 2.0
IN_PROGRESS = "1019"  # "Statement generation in progress. Please try again shortly."


def service_url() -> str:
    """IB's SendRequest endpoint (IB_FLEXREPORT_URL overrides it, as in ib_async)."""
    return os.environ.get("IB_FLEXREPORT_URL") or FLEXREPORT_URL


def download(flex: FlexSettings, *, sleep: Any = time.sleep) -> bytes:
    """The statement's XML; BrokerError (without the token) when IB does not deliver it."""
    query = urlencode({"t": flex.token, "q": flex.query_id, "v": "3"})
    first = _get(service_url() + query, flex.timeout_s, "the Flex request")
    root = _xml(first, "the Flex request")
    if (root.findtext("Status") or "") != "Success":
        raise BrokerError(
            f"IB refused Flex query {flex.query_id}: {root.findtext('ErrorCode') or '?'} "
            f"{root.findtext('ErrorMessage') or ''}".strip()
        )
    code = root.findtext("ReferenceCode") or ""
    base = root.findtext("Url") or ""
    if not code or not base:
        raise BrokerError(f"IB's answer to Flex query {flex.query_id} had no reference code")
    for attempt in range(POLLS):
        if attempt:
            sleep(POLL_WAIT_S)
        data = _get(
            f"{base}?{urlencode({'q': code, 't': flex.token, 'v': '3'})}",
            flex.timeout_s,
            "the Flex statement",
        )
        answer = _xml(data, "the Flex statement")
        if answer.tag == "FlexQueryResponse":
            return data
        error = answer.findtext("ErrorCode") or ""
        if error != IN_PROGRESS:
            raise BrokerError(
                f"IB did not deliver Flex query {flex.query_id}: {error} "
                f"{answer.findtext('ErrorMessage') or ''}".strip()
            )
    raise BrokerError(
        f"IB was still preparing Flex query {flex.query_id} after {POLLS} attempts; tried "
        "again later"
    )


def _get(url: str, timeout: float, what: str) -> bytes:
    try:
        with urlopen(url, timeout=timeout) as response:
            data: bytes = response.read(20_000_000)
            return data
    except (URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or type(exc).__name__
        raise BrokerError(f"{what} failed: {reason}") from None


def _xml(data: bytes, what: str) -> ET.Element:
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise BrokerError(f"{what} is not XML ({exc})") from None


def parse(data: bytes, source: str, since: date) -> Statement:
    """The option trades and expiry events of a Flex statement on or after `since`."""
    report = FlexReport()  # type: ignore[no-untyped-call]
    report.data = data
    report.root = _xml(data, "the Flex statement")
    trades = []
    for row in report.extract("Trade", parseNumbers=False):
        trade = _trade(vars(row))
        if trade is not None and trade.time.astimezone(EXCHANGE_TZ).date() >= since:
            trades.append(trade)
    events = []
    for row in report.extract("OptionEAE", parseNumbers=False):
        event = _event(vars(row))
        if event is not None and event.day >= since:
            events.append(event)
    return Statement(source, tuple(trades), tuple(events))


def _option(a: dict[str, str]) -> OptionContract | None:
    if a.get("assetCategory", "OPT") != "OPT":
        return None
    expiry = _day(a.get("expiry", ""))
    strike = _dec(a.get("strike"))
    right = (a.get("putCall") or "")[:1].upper()
    symbol = a.get("underlyingSymbol") or (a.get("symbol") or "").split(" ")[0]
    if expiry is None or strike is None or strike <= 0 or right not in ("C", "P") or not symbol:
        return None
    try:
        multiplier = int(Decimal(a.get("multiplier") or "100"))
        con_id = int(a.get("conid") or 0)
    except (InvalidOperation, ValueError):
        return None
    return OptionContract(
        symbol=symbol,
        expiry=expiry,
        strike=strike,
        right="C" if right == "C" else "P",
        multiplier=max(1, multiplier),
        con_id=con_id,
    )


def _trade(a: dict[str, str]) -> StatementTrade | None:
    contract = _option(a)
    qty = _dec(a.get("quantity"))
    price = _dec(a.get("tradePrice"))
    when = _moment(a.get("dateTime") or a.get("tradeDate") or "")
    if contract is None or qty is None or qty == 0 or price is None or when is None:
        return None
    side: Literal["BOT", "SLD"] = "BOT" if (a.get("buySell") or "").upper() == "BUY" else "SLD"
    if not a.get("buySell"):
        side = "BOT" if qty > 0 else "SLD"
    perm = a.get("ibOrderID") or ""
    return StatementTrade(
        exec_id=a.get("ibExecID") or f"flex:{a.get('tradeID') or a.get('transactionID')}",
        order_ref=a.get("orderReference") or "",
        perm_id=int(perm) if perm.isdigit() else 0,
        contract=contract,
        side=side,
        qty=int(abs(qty)),
        price=price,
        commission=abs(_dec(a.get("ibCommission")) or Decimal(0)),
        time=when,
    )


def _event(a: dict[str, str]) -> StatementEvent | None:
    contract = _option(a)
    kind = a.get("transactionType") or ""
    day = _day(a.get("date") or "")
    qty = _dec(a.get("quantity"))
    if contract is None or day is None or qty is None:
        return None
    if kind not in ("Expiration", "Exercise", "Assignment"):
        return None
    return StatementEvent(contract, kind, int(abs(qty)), day)  # type: ignore[arg-type]


def _dec(text: str | None) -> Decimal | None:
    if text is None or text.strip() == "":
        return None
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _day(text: str) -> date | None:
    text = text.strip().replace("-", "")[:8]
    try:
        return datetime.strptime(text, "%Y%m%d").date()
    except ValueError:
        return None


def _moment(text: str) -> datetime | None:
    """Flex times: '20250701;153000' or '2025-07-01;15:30:00' (the query's zone: IB's default,
    New York), or a bare date (its close is unknown: noon New York)."""
    text = text.strip()
    day_part, _, time_part = text.partition(";")
    day = _day(day_part)
    if day is None:
        return None
    digits = time_part.replace(":", "")
    try:
        clock = datetime.strptime(digits, "%H%M%S").time() if digits else None
    except ValueError:
        return None
    local = datetime.combine(day, clock or datetime.min.time().replace(hour=12))
    return local.replace(tzinfo=EXCHANGE_TZ).astimezone(UTC)
