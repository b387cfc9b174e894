"""Order states as IB sends them, through the real loop and adapter (server versions 157, 178).

* `Inactive` is not always final: a locate hold or a precaution reports it, and the order may
  still start working (nautilus_trader#3603; a transmit=False parent, ib_insync#559); a cancel
  of an Inactive order may bring no status at all (ib_insync#363).
* Partial fills: a bracket's legs work for what the parent filled; the rest of the entry is
  cancelled at its deadline.
* New order ids exceed every id reqAllOpenOrders returned (TWS API docs, "Order Submission").
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from ib_async import IB, LimitOrder

from tests.brokers.ibkr.conftest import CLIENT_ID, Rig, open_position, rig, until
from tests.gateway_sim.conftest import near_money_call
from tradebot.brokers.ibkr.orders import HELD_WATCH

REF = "SPY-250701-s1"


@pytest.mark.parametrize("version", [157, 178])
def test_inactive_then_submitted_is_live_and_never_entered_twice(
    tmp_path: Path, version: int
) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        r.sim.faults.inactive_next()  # the bracket is held Inactive (a precaution, a locate)
        await r.tick()
        order = r.broker.tracker.by_order_ref(REF)
        assert order is not None and order.status == "held"
        await r.wake()
        assert r.statuses(REF)[-1] == "held" and "cancelled" not in r.statuses(REF)
        await r.advance(timedelta(minutes=1))
        await r.tick()  # still SPY's: no second entry while IB holds the first
        assert [e["order_ref"] for e in r.entries()] == [REF]
        r.sim.faults.release_inactive()
        await until(lambda: order.status == "submitted")
        await r.wake()
        assert r.statuses(REF)[-1] == "submitted"
        assert r.statuses(f"{REF}.tp")[-1] == "presubmitted"

    rig(body, tmp_path, version=version, symbols=("SPY",))


@pytest.mark.parametrize("version", [157, 178])
def test_an_order_held_inactive_too_long_is_cancelled_and_finished_once_ib_no_longer_lists_it(
    tmp_path: Path, version: int
) -> None:
    """A cancel of an Inactive order may bring no status at all (ib_insync#363); IB lists a
    held order among its open orders, status Inactive (its openOrder: ib_insync#554, #559). So
    the order is finished when IB's open orders, asked after the cancel, no longer list it."""

    async def body(r: Rig) -> None:
        await r.start()
        r.sim.faults.inactive_next()
        await r.tick()
        order = r.broker.tracker.by_order_ref(REF)
        assert order is not None and order.status == "held"
        await r.advance(HELD_WATCH - timedelta(seconds=1))
        await r.wake()
        assert order.held_cancel_at is None and order.status == "held"
        await r.advance(timedelta(seconds=2))
        await r.wake()  # cancelled at IB; IB says nothing back (ib_insync#363)
        assert order.held_cancel_at is not None
        assert r.sim.book.inactive == []
        await until(lambda: order.status == "inactive")  # no longer listed: finished
        await r.wake()
        assert r.statuses(REF)[-1] == "inactive"
        await r.advance(timedelta(minutes=1))
        await r.tick()  # SPY is free again: a new entry
        assert [e["order_ref"] for e in r.entries()] == [REF, "SPY-250701-s2"]

    rig(body, tmp_path, version=version, symbols=("SPY",))


def test_a_held_order_ib_still_lists_after_the_cancel_stays_held(tmp_path: Path) -> None:
    """IB may go on holding an Inactive order after the cancel (a locate search that may still
    fill it: ib_insync#363): while its open orders list it, it is never taken for finished —
    nothing may be sent in its place — however long that lasts; once IB works it, it is live."""

    async def body(r: Rig) -> None:
        await r.start()
        r.sim.faults.inactive_next()
        r.sim.faults.ignore_held_cancels()
        await r.tick()
        order = r.broker.tracker.by_order_ref(REF)
        assert order is not None
        for _ in range(6):
            await r.advance(HELD_WATCH)
            await r.wake()
            await r.broker.exec.confirm_held_cancels()
            assert order.status == "held" and order.held_cancel_at is not None
        assert [e["order_ref"] for e in r.entries()] == [REF]
        r.sim.faults.release_inactive()
        await until(lambda: order.status == "submitted")

    rig(body, tmp_path, version=178, symbols=("SPY",))


@pytest.mark.parametrize("version", [157, 178])
def test_an_entry_partly_filled_gets_legs_for_the_filled_quantity_and_its_rest_cancelled(
    tmp_path: Path, version: int
) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        ref = await open_position(r, "SPY", qty=3, limit=Decimal("0.05"), strategy="whale")
        assert r.sim.faults.fill_order(CLIENT_ID, r.client_order_id(ref), qty=2)
        await until(lambda: r.broker.tracker.by_order_ref(ref).filled == 2)  # type: ignore[union-attr]
        await r.advance(timedelta(seconds=30))
        await r.wake()
        legs = [o for o in r.venue_orders() if o.parent_id]
        assert {(o.qty, o.status) for o in legs} == {(2, "Submitted")}  # legs for what filled
        assert r.sim.book.order(CLIENT_ID, r.client_order_id(ref)).working  # type: ignore[union-attr]
        await r.advance(timedelta(minutes=3))  # the entry's deadline (trading.interval_s)
        await r.wake()
        await r.advance(timedelta(seconds=5))
        await r.wake()
        parent = r.sim.book.order(CLIENT_ID, r.client_order_id(ref))
        assert parent is not None and parent.status == "Cancelled" and parent.filled == 2
        assert r.statuses(ref)[-1] == "cancelled"
        assert [p.open_qty for p in r.ctx.book.open_positions()] == [2]
        assert r.sim.faults.fill_order(CLIENT_ID, r.client_order_id(f"{ref}.tp"))
        await r.advance(timedelta(minutes=1))
        await r.wake()
        [trade] = [t for t in r.journal("trades") if t["trade_id"] == ref]
        assert trade["qty"] == 2 and trade["exit_reason"] == "take_profit"
        assert r.ctx.book.open_positions() == []
        assert not r.sim.exchange.positions

    rig(body, tmp_path, version=version, symbols=("QQQ",))


@pytest.mark.parametrize("version", [157, 178])
def test_new_order_ids_are_above_every_id_of_all_open_orders(tmp_path: Path, version: int) -> None:
    async def body(r: Rig) -> None:
        other = IB()  # another program of the same account, numbering its orders high
        await other.connectAsync("127.0.0.1", r.sim.port, clientId=5, timeout=2)
        other.client.updateReqId(500)
        option = await near_money_call(other, r.sim, above=-0.02)
        manual = other.placeOrder(option, LimitOrder("BUY", 1, 0.05, tif="GTC"))
        await until(lambda: manual.orderStatus.status == "Submitted")
        assert manual.order.orderId >= 500
        other.disconnect()
        await r.start()
        await r.tick()
        ids = [r.client_order_id(x) for x in (REF, f"{REF}.tp", f"{REF}.sl")]
        assert min(ids) > manual.order.orderId

    rig(body, tmp_path, version=version, symbols=("SPY",))
