"""Reading IB's Flex statement (brokers/ibkr/flex.py): IB's two-step web service and its XML.

Formats from IB's Flex Web Service documentation (interactivebrokers.com/campus, "Flex Web
Service": SendRequest → ReferenceCode + Url; GetStatement → the statement, or error 1019
"Statement generation in progress") and Flex statements as published by users of
ibflex / ib-edavki (Trade and OptionEAE attributes, `dateTime` "YYYYMMDD;HHMMSS" or
"YYYY-MM-DD;HH:MM:SS")."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from tests.brokers.ibkr.conftest import DATA, FLEX_QUERY, FLEX_TOKEN, FlexServer
from tradebot.brokers.base import BrokerError
from tradebot.brokers.ibkr import flex
from tradebot.brokers.ibkr.flex_settings import FlexSettings


def test_the_fixture_reads_as_trades_and_expiries() -> None:
    st = flex.parse(
        (DATA / "flex-stop-filled.xml").read_bytes(), "IB Flex query 1", date(2025, 6, 1)
    )
    stop = next(t for t in st.trades if t.order_ref == "SPY-250701-w1.sl")
    assert (stop.side, stop.qty, stop.price, stop.commission) == ("SLD", 1, Decimal("7.57"), 1)
    assert stop.time == datetime(2025, 7, 1, 17, 0, tzinfo=UTC)  # 13:00 New York
    assert stop.perm_id == 1000004 and stop.contract.con_id == 1719996764
    assert stop.contract.label == "SPY 2025-07-07 634 C"
    [expiry] = st.events
    assert (expiry.kind, expiry.qty, expiry.day) == ("Expiration", 1, date(2025, 6, 30))
    later = flex.parse((DATA / "flex-stop-filled.xml").read_bytes(), "x", date(2025, 7, 1))
    assert later.events == ()  # before `since`


def test_dashed_dates_and_times_are_read_too() -> None:
    xml = (
        b"<FlexQueryResponse><FlexStatements><FlexStatement><Trades>"
        b'<Trade assetCategory="OPT" symbol="QQQ   250703P00520000" conid="7" '
        b'underlyingSymbol="QQQ" multiplier="100" strike="520" expiry="2025-07-03" putCall="P" '
        b'dateTime="2025-07-02;15:59:58" quantity="-2" tradePrice="1,234.5" ibCommission="-1.3" '
        b'buySell="SELL" ibOrderID="" ibExecID="" tradeID="t1" />'
        b'<Trade assetCategory="STK" symbol="QQQ" quantity="100" tradePrice="520" '
        b'dateTime="20250702;100000" />'
        b"</Trades></FlexStatement></FlexStatements></FlexQueryResponse>"
    )
    [t] = flex.parse(xml, "x", date(2025, 7, 1)).trades
    assert t.time == datetime(2025, 7, 2, 19, 59, 58, tzinfo=UTC)
    assert (t.qty, t.price, t.commission, t.exec_id) == (
        2,
        Decimal("1234.5"),
        Decimal("1.3"),
        "flex:t1",
    )


def test_an_expired_token_is_named_without_the_token(monkeypatch: pytest.MonkeyPatch) -> None:
    server = FlexServer(DATA / "flex-stop-filled.xml")
    monkeypatch.setenv("IB_FLEXREPORT_URL", server.url)
    try:
        with pytest.raises(BrokerError) as caught:
            flex.download(FlexSettings("not-the-token", FLEX_QUERY, 2.0), sleep=lambda s: None)
        assert "1012" in caught.value.message and FLEX_QUERY in caught.value.message
        assert "not-the-token" not in caught.value.message
        data = flex.download(FlexSettings(FLEX_TOKEN, FLEX_QUERY, 2.0), sleep=lambda s: None)
        assert data.startswith(b"<?xml")
        assert FLEX_TOKEN not in repr(FlexSettings(FLEX_TOKEN, FLEX_QUERY, 2.0))
    finally:
        server.close()


def test_an_unreachable_service_is_a_broker_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IB_FLEXREPORT_URL", "http://127.0.0.1:9/SendRequest?")
    with pytest.raises(BrokerError, match="the Flex request failed"):
        flex.download(FlexSettings(FLEX_TOKEN, FLEX_QUERY, 1.0))
