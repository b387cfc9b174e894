"""Unit tests of the adapter's pure parts: reading IB's error codes, the order-id high-water
mark, the order tracker's rules, the expiry clamp, the restart window, the gateway clock."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from ib_async import Contract, Execution

from tradebot.brokers.base import OrderSpec
from tradebot.brokers.ibkr import codes
from tradebot.brokers.ibkr.clock import GatewayClock
from tradebot.brokers.ibkr.ids import OrderIds
from tradebot.brokers.ibkr.mapping import exec_report
from tradebot.brokers.ibkr.settings import RestartWindow, is_paper_account
from tradebot.brokers.ibkr.tracker import ExecReport, OrderReport, OrderTracker, StatusReport
from tradebot.config import load_config
from tradebot.core.instruments import OptionContract
from tradebot.errors import ConfigError, CorruptRecordError

NOW = datetime(2025, 7, 1, 15, 0, tzinfo=UTC)
NY = ZoneInfo("America/New_York")
CALL = OptionContract("SPY", date(2025, 7, 3), Decimal(620), "C", con_id=42)


# -- codes -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("code", "text", "kind"),
    [
        (
            1100,
            "Connectivity between IB and Trader Workstation has been lost.",
            "connectivity_lost",
        ),
        (2110, "Connectivity between TWS and server is broken.", "connectivity_lost"),
        (1101, "restored - data lost.", "restored_data_lost"),
        (1102, "restored - data maintained.", "restored_data_kept"),
        (2104, "Market data farm connection is OK:usfarm", "farm_ok"),
        (2103, "Market data farm connection is broken:usfarm", "farm_broken"),
        (326, "Unable to connect as the client id is already in use.", "client_id_in_use"),
        (504, "Not connected", "not_connected"),
        (162, "Historical data request pacing violation", "pacing"),
        (162, "HMDS query returned no data: SPY@SMART Trades", "no_data"),
        (162, "API historical data query cancelled: 4", "info"),
        (100, "Max rate of messages per second has been exceeded", "pacing"),
        (200, "No security definition has been found for the request", "no_definition"),
        (201, "Order rejected - reason: insufficient margin", "order_rejected"),
        (110, "The price does not conform to the minimum price variation", "order_rejected"),
        (202, "Order Canceled - reason:", "order_info"),
        (10349, "Order TIF was set to DAY based on order preset.", "order_info"),
        (
            10148,
            "OrderId 7 that needs to be cancelled cannot be cancelled, state: Filled",
            "order_info",
        ),
        (10147, "OrderId 7 that needs to be cancelled is not found.", "order_info"),
        (404, "Shares for this order are not immediately available for short sale.", "order_info"),
        (354, "Requested market data is not subscribed.", "market_data"),
        (10167, "Displaying delayed market data.", "market_data"),
        (2158, "Sec-def data farm connection is OK:secdefnj", "farm_ok"),
        (2137, "The closing order quantity is greater than your current position.", "info"),
        (9999, "Something IB added last week", "error"),
    ],
)
def test_error_codes_are_read_by_code(code: int, text: str, kind: str) -> None:
    assert codes.classify(code, text) == kind


def test_only_listed_codes_reject_a_new_order() -> None:
    assert all(codes.rejects_new_order(c) for c in (103, 110, 200, 201, 203, 321))
    # Information, and codes we do not know, never count as a refusal: taking a live order for
    # a refused one could send it twice.
    assert not any(codes.rejects_new_order(c) for c in (202, 399, 404, 10147, 10148, 10349, 9999))
    assert codes.refuses_market_data(354) and not codes.refuses_market_data(10167)


# -- order ids -------------------------------------------------------------------------------
def test_order_ids_stay_above_the_servers_and_our_own_high_water_mark(tmp_path: Path) -> None:
    ids = OrderIds(tmp_path, 17)
    assert ids.high == 0
    assert ids.reserve(3, server_next=1) == [1, 2, 3]
    assert ids.reserve(1, server_next=10) == [10]  # the server is ahead: follow it
    assert ids.reserve(2, server_next=1) == [11, 12]  # rolled back to 1: never reused
    again = OrderIds(tmp_path, 17)  # a restart reads the mark from disk
    assert again.high == 12 and again.reserve(1, server_next=1) == [13]
    other = OrderIds(tmp_path, 5)  # another client id has its own numbering
    assert other.reserve(1, server_next=1) == [1]
    state = json.loads((tmp_path / "ibkr-order-ids.json").read_text())
    assert state == {"v": 1, "clients": {"17": 13, "5": 1}, "refs": {}}
    again.observe(40)  # an open order of ours from before a restart
    assert again.reserve(1, server_next=1) == [41]


def test_the_mark_is_on_disk_before_the_ids_are_returned(tmp_path: Path) -> None:
    written: list[int] = []
    ids = OrderIds(tmp_path, 17, persist=lambda path, state: written.append(state["clients"]["17"]))
    assert ids.reserve(3, server_next=7) == [7, 8, 9] and written == [9]

    def full(path: Path, state: object) -> None:
        raise OSError(28, "No space left on device")

    failing = OrderIds(tmp_path, 17, persist=full)
    with pytest.raises(OSError):
        failing.reserve(1, server_next=1)  # no id handed out that was not recorded
    assert failing.high == 0


def test_a_damaged_id_file_is_named_not_guessed(tmp_path: Path) -> None:
    (tmp_path / "ibkr-order-ids.json").write_text('{"v": 1, "clients": {"17": "many"}}')
    with pytest.raises(CorruptRecordError, match=r"ibkr-order-ids\.json"):
        OrderIds(tmp_path, 17)


# -- the tracker -----------------------------------------------------------------------------
def _sent(t: OrderTracker, ref: str = "SPY-250701-s1", order_id: int = 5) -> None:
    spec = OrderSpec(ref, CALL, "BUY", 1, "LMT", "DAY", limit=Decimal("1.20"))
    t.sent(spec, order_id, parent_id=0, account="DU1", now=NOW)


def _status(order_id: int, status: str, perm: int = 900, filled: int = 0) -> StatusReport:
    return StatusReport(order_id, 17, perm, 0, status, filled, Decimal("1.20") if filled else 0)  # type: ignore[arg-type]


def _open(order_id: int, ref: str, status: str, perm: int, **kw: object) -> OrderReport:
    values: dict[str, object] = {
        "order_id": order_id,
        "client_id": 17,
        "perm_id": perm,
        "parent_id": 0,
        "order_ref": ref,
        "contract": CALL,
        "label": CALL.label,
        "action": "BUY",
        "qty": 1,
        "order_type": "LMT",
        "limit": Decimal("1.20"),
        "stop": None,
        "tif": "DAY",
        "account": "DU1",
        "status": status,
    }
    values.update(kw)
    return OrderReport(**values)  # type: ignore[arg-type]


def test_an_error_never_cancels_a_working_order() -> None:
    t = OrderTracker(17)
    _sent(t)
    t.on_status(_status(5, "Submitted"), NOW)
    outcome = t.on_error(5, 10349, "Order TIF was set to DAY based on order preset.", NOW)
    assert outcome is not None and outcome.effect == "notice"
    for code in (201, 202, 10148, 10147, 404, 9999):  # even a 201 (a failed modify) or 202
        t.on_error(5, code, "text", NOW)
    order = t.by_order_ref("SPY-250701-s1")
    assert order is not None and order.status == "submitted" and order.working
    t.on_status(_status(5, "PendingCancel"), NOW)  # asked, not done
    assert order.status == "submitted"
    t.on_status(_status(5, "Cancelled"), NOW + timedelta(seconds=1))  # IB says so: now it is
    assert order.status == "cancelled" and order.finished_at == NOW + timedelta(seconds=1)


def test_a_new_order_refused_before_any_acknowledgement_is_inactive() -> None:
    t = OrderTracker(17)
    _sent(t)
    assert t.on_error(5, 10349, "preset", NOW).effect == "notice"  # type: ignore[union-attr]
    outcome = t.on_error(5, 201, "Order rejected - reason: margin", NOW)
    assert outcome is not None and outcome.effect == "rejected"
    order = t.by_order_ref("SPY-250701-s1")
    assert (
        order is not None
        and order.status == "inactive"
        and order.rejected
        == (
            201,
            "Order rejected - reason: margin",
        )
    )
    assert t.on_error(99, 201, "not ours", NOW) is None  # a request id, not an order of ours


def test_a_fill_after_a_cancel_is_adopted_and_filled_is_final() -> None:
    t = OrderTracker(17)
    _sent(t)
    t.on_status(_status(5, "Submitted"), NOW)
    t.on_status(_status(5, "Cancelled"), NOW)
    t.on_status(_status(5, "Submitted"), NOW)  # a stale message cannot revive it
    order = t.by_order_ref("SPY-250701-s1")
    assert order is not None and order.status == "cancelled"
    t.on_status(_status(5, "Filled", filled=1), NOW)  # the fill raced the cancel (10148)
    assert order.status == "filled" and order.filled == 1
    t.on_status(_status(5, "Cancelled"), NOW)
    assert order.status == "filled"


def test_orders_are_found_by_perm_id_not_by_a_reused_order_id() -> None:
    t = OrderTracker(17)
    _sent(t, order_id=5)
    t.on_order(_open(5, "SPY-250701-s1", "Submitted", 900), NOW)
    t.new_connection()  # a gateway restart: order id 5 may now mean another order
    t.on_order(_open(5, "", "Submitted", 901, qty=3), NOW)  # someone else's order 5
    t.on_status(_status(5, "Filled", perm=901, filled=3), NOW)
    ours = t.by_order_ref("SPY-250701-s1")
    assert ours is not None and ours.status == "submitted" and ours.perm_id == 900
    t.on_status(_status(5, "Cancelled", perm=900), NOW)
    assert ours.status == "cancelled"
    assert sorted(o.perm_id for o in t.orders(None)) == [900, 901]


def test_one_order_answers_to_a_reused_order_ref() -> None:
    t = OrderTracker(17)  # a restart sees a refused bracket's parent and the entry sent alone
    t.on_order(_open(5, "SPY-250701-s1", "Cancelled", 900), NOW, completed=True)
    t.on_order(_open(8, "SPY-250701-s1", "Submitted", 903), NOW)
    [answer] = [o for o in t.orders(None) if o.order_ref == "SPY-250701-s1"]
    assert answer.perm_id == 903 and answer.status == "submitted"


def test_commissions_join_their_executions_in_any_order() -> None:
    t = OrderTracker(17)
    fill = ExecReport(
        "E1", 5, 17, 900, "SPY-250701-s1", CALL, CALL.label, "BOT", 1, Decimal("1.2"), NOW
    )
    t.on_commission("E1", Decimal("1.00"))  # before its execution
    assert t.on_execution(fill) and not t.on_execution(fill)  # once
    assert t.executions(NOW)[0].commission == Decimal("1.00")
    t.on_execution(ExecReport("E2", 6, 17, 901, "x", CALL, CALL.label, "SLD", 1, Decimal(2), NOW))
    assert t.executions(NOW)[1].commission is None  # not reported yet
    t.on_commission("E2", Decimal("1.05"))
    assert t.executions(NOW)[1].commission == Decimal("1.05")


# -- mapping -----------------------------------------------------------------------------------
def _option_contract() -> Contract:
    return Contract(
        secType="OPT",
        conId=42,
        symbol="SPY",
        lastTradeDateOrContractMonth="20250703",
        strike=620.0,
        right="C",
        multiplier="100",
        currency="USD",
        tradingClass="SPY",
    )


def test_an_expiry_stamped_on_saturday_belongs_to_its_expiry_session() -> None:
    saturday = datetime(2025, 7, 5, 4, 0, tzinfo=UTC)  # 2025-07-03 expiry (Friday is a holiday)
    execution = Execution(execId="exp1", time=saturday, side="SLD", shares=1.0, price=0.0)
    report = exec_report(_option_contract(), execution, None, NY, "XNYS", NOW)
    assert report.kind == "expiry" and report.qty == 1 and report.side == "SLD"
    assert report.time == datetime(2025, 7, 3, 17, 0, tzinfo=UTC)  # the 13:00 early close
    trade = Execution(
        execId="E9", time=NOW, side="BOT", shares=2.0, price=1.25, permId=7, orderId=5,
        orderRef="SPY-250701-s1",
    )  # fmt: skip
    report = exec_report(_option_contract(), trade, None, NY, "XNYS", NOW)
    assert (report.kind, report.time, report.price, report.qty) == (
        "trade",
        NOW,
        Decimal("1.25"),
        2,
    )


def test_an_execution_time_without_a_zone_is_the_gateways() -> None:
    naive = datetime(2025, 7, 1, 11, 0)  # 11:00 at the gateway (New York)
    execution = Execution(execId="E1", time=naive, side="BOT", shares=1.0, price=1.0, permId=3)
    report = exec_report(_option_contract(), execution, None, NY, "XNYS", NOW)
    assert report.time == NOW


# -- settings and clock ------------------------------------------------------------------------
def test_an_execution_without_a_time_is_dated_by_the_connections_clock() -> None:
    """Not by the machine's: under the gateway simulator the clock says 2025, and a fill
    dated today would land in today's session (and pass today's expiry check)."""
    execution = Execution(execId="E2", time=None, side="BOT", shares=1.0, price=1.0, permId=4)
    report = exec_report(_option_contract(), execution, None, NY, "XNYS", NOW)
    assert (report.kind, report.time) == ("trade", NOW)


def test_the_restart_window_may_cross_midnight() -> None:
    window = RestartWindow.parse("23:45-00:15", NY)
    at = lambda h, m: datetime(2025, 7, 1, h, m, tzinfo=NY)  # noqa: E731
    assert window.contains(at(23, 50)) and window.contains(at(0, 10))
    assert not window.contains(at(0, 15)) and not window.contains(at(12, 0))
    assert window.describe() == "23:45–00:15 America/New_York"
    assert RestartWindow.parse("11:58-12:05", NY).contains(at(12, 0))
    with pytest.raises(ValueError):
        RestartWindow.parse("late", NY)


def test_paper_accounts_start_with_d() -> None:
    assert is_paper_account("DU1234567") and is_paper_account("DUSIM0001")
    assert not is_paper_account("U1234567") and not is_paper_account("F1234567")


def test_the_gateway_clock_follows_and_never_steps_back() -> None:
    wall = [datetime(2026, 1, 5, 12, 0, tzinfo=UTC)]
    clock = GatewayClock(lambda: wall[0])
    before = clock.now()  # before any sync: the wall clock
    assert before == wall[0]
    clock.follow(NOW)  # the simulator says 2025-07-01 15:00
    assert clock.now() == NOW  # the first sync replaces the wall clock
    wall[0] += timedelta(seconds=30)
    assert clock.now() == NOW + timedelta(seconds=30)
    clock.follow(NOW)  # the simulator is frozen at 15:00: held, never backward
    assert clock.now() == NOW + timedelta(seconds=30)
    wall[0] += timedelta(seconds=5)
    assert clock.now() == NOW + timedelta(seconds=30)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[broker]\nkind = "ibkr"\nclock = "gateway"\n[trading]\nmode = "live"\n',
            "refused with trading.mode = 'live'",
        ),
        ('[broker]\nclock = "gateway"\n', "broker.clock = 'gateway' needs broker.kind = 'ibkr'"),
        ('[broker]\nrestart_window = "23:45"\n', "broker.restart_window: must be a daily window"),
        ('[broker]\ntimezone = "Mars/Olympus"\n', "is not a time zone name"),
    ],
)
def test_config_refuses_unsafe_or_unreadable_broker_keys(  # type: ignore[no-untyped-def]
    write_config, body: str, message: str
) -> None:
    path = write_config(body)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert message in "\n".join([error.value.message, *error.value.details])
