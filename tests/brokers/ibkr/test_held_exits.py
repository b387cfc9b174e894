"""A closing sell or a stop that IB holds Inactive is no protection: it is cancelled at once,
the operator is told, and what replaces it goes out only once IB confirms the held one gone.

IB's order status `Inactive` (TWS API docs, "Order Status": the order was accepted but is not
working, e.g. a locate or precautionary hold; `whyHeld` says why) is not always final — a locate
found later can still work and fill it (nautilus_trader#3603, ib_insync#559); a cancel of an
Inactive order may bring no status back at all (ib_insync#363, where the maintainer notes the
remaining window in which it can still fill); IB lists a held order among the open ones, status
Inactive (its openOrder: ib_insync#554, #559). So the held order is taken for dead only when IB
says Cancelled or its open orders, asked after the cancel, no longer list it — never on a timer.
Real loop, real adapter, real ib_async client over loopback against the gateway simulator.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.brokers.ibkr.conftest import Rig, filled, open_position, rig
from tradebot.books.halt import request_halt

# Thursday 2025-07-03 closes at 13:00 New York (17:00 UTC); SPY's weekly expires that day.
DAY = datetime(2025, 7, 3, 16, 30, tzinfo=UTC)
CLOSE = datetime(2025, 7, 3, 17, 0, tzinfo=UTC)


def _journal_order(r: Rig) -> list[tuple[str, str, str]]:
    """(event, order_ref, status) of the order journal's exit lines, in the order written."""
    return [
        (str(x["event"]), str(x["order_ref"]), str(x.get("status", "")))
        for x in r.journal()
        if ".x" in str(x["order_ref"])
    ]


def test_a_held_closing_sell_on_expiry_day_is_replaced_at_the_next_wake_never_beside_it(
    tmp_path: Path,
) -> None:
    """Three minutes before the close of its expiry day, the flatten's market sell is held
    Inactive by IB. At the next wake (15 s later) it is cancelled; IB says nothing back
    (ib_insync#363) but no longer lists it, so a marketable limit replaces it and the position
    is gone long before the close — not four minutes later. The replacement is journaled only
    after the held sell is finished (never two sells at once), and the operator hears of it."""

    async def body(r: Rig) -> None:
        await r.start()
        ref = await open_position(r, "SPY", expiry=DAY.date())
        await filled(r, ref)
        await r.wake()
        r.sim.set_time(CLOSE - timedelta(minutes=3))
        r.sim.faults.inactive_next()  # the closing sell is held (a precaution)
        await r.wake()
        assert r.statuses(f"{ref}.x1") == ["held"]
        assert r.sim.exchange.positions  # still held at IB
        status = r.loop.status()
        assert any("held Inactive by the broker" in line for line in status.urgent)
        await r.advance(timedelta(seconds=15))
        await r.wake()
        assert r.statuses(f"{ref}.x1")[-1] == "inactive"
        assert not r.sim.exchange.positions  # sold at IB within that wake
        await filled(r, f"{ref}.x2")  # its execution and commission have reached the client
        await r.wake()
        assert r.statuses(f"{ref}.x2")[-1] == "filled"
        intent_x2 = next(x for x in r.journal() if x["order_ref"] == f"{ref}.x2")
        assert intent_x2["order_type"] == "LMT"  # a marketable limit after a sell that failed
        lines = _journal_order(r)
        assert lines.index(("status", f"{ref}.x1", "inactive")) < lines.index(
            ("intent", f"{ref}.x2", "")
        )
        held = r.events("exit_held")
        assert len(held) == 1 and held[0]["order_ref"] == f"{ref}.x1"
        assert "not working, so it protects nothing" in held[0]["message"]
        critical = [m for e, m in r.notes if e == "critical" and f"{ref}.x1" in m]
        assert len(critical) == 1
        assert r.now < CLOSE - timedelta(minutes=2)
        assert any(t["trade_id"] == ref for t in r.journal("trades"))

    rig(body, tmp_path, version=178, start=DAY, symbols=("SPY",), limit_s=60)


def test_a_held_sell_ib_goes_on_holding_after_the_cancel_is_never_doubled(
    tmp_path: Path,
) -> None:
    """IB goes on holding (and listing) the closing sell after the cancel — a locate search
    that may still fill it (ib_insync#363). Then nothing replaces it: no second sell and no
    emulated legs that could fire beside it, however many wakes pass; the operator is alerted
    once, and the expiry alerts go on. When IB finally works it, it fills alone."""

    async def body(r: Rig) -> None:
        await r.start()
        ref = await open_position(r, "SPY", expiry=DAY.date())
        await filled(r, ref)
        await r.wake()
        r.loop.exits.confirm_wait_s = 0.2  # each wake waits this long for the cancel's news
        r.sim.set_time(CLOSE - timedelta(minutes=4))
        r.sim.faults.inactive_next()
        r.sim.faults.ignore_held_cancels()
        await r.wake()
        for _ in range(8):
            await r.advance(timedelta(seconds=15))
            await r.wake()
            exits = {x["order_ref"] for x in r.journal() if x["event"] == "intent"}
            assert f"{ref}.x2" not in exits
            assert r.statuses(f"{ref}.x1")[-1] == "held"
            assert ref not in r.loop.oco.legs()
        assert len(r.events("exit_held")) == 1
        assert r.events("expiry_risk")
        r.sim.faults.release_inactive()  # IB works it at last
        await filled(r, f"{ref}.x1")
        await r.wake()
        assert r.statuses(f"{ref}.x1")[-1] == "filled"
        assert sum(1 for o in r.venue_orders() if o.action == "SELL" and o.filled) == 1

    rig(body, tmp_path, version=178, start=DAY, symbols=("SPY",), limit_s=60)


def test_a_held_closing_sell_is_not_a_guard_emulated_legs_follow_once_it_is_gone(
    tmp_path: Path,
) -> None:
    """A closing sell of a position that does not expire today (halt --flatten) is held by IB.
    It does not count as the position's stop: once IB confirms it gone the position gets
    emulated legs at once (and the halt's flatten sells it again), instead of sitting with
    neither a working stop nor a working sell."""

    async def body(r: Rig) -> None:
        await r.start()
        ref = await open_position(r, "SPY", expiry=DAY.date() + timedelta(days=4))
        await filled(r, ref)
        await r.wake()
        r.sim.faults.inactive_next()
        request_halt(
            r.loaded.state_dir, r.loaded.logs_dir, r.now, operator="test", reason="held exit",
            flatten=True, notify=lambda e, m: None,
        )  # fmt: skip
        await r.wake()
        assert r.statuses(f"{ref}.x1") == ["held"]
        assert ref not in r.loop.oco.legs()  # not yet: the held sell may still fill
        await r.advance(timedelta(seconds=15))
        await r.wake()
        assert r.statuses(f"{ref}.x1")[-1] == "inactive"
        protected = [e["order_ref"] for e in r.events("position_protected")]
        assert protected == [ref]
        assert r.events("exit_held")
        await filled(r, f"{ref}.x2")
        await r.wake()
        assert r.statuses(f"{ref}.x2")[-1] == "filled"

    rig(body, tmp_path, version=157, start=DAY, symbols=("SPY",), limit_s=60)


def test_overlapping_open_order_requests_each_get_all_of_ibs_open_orders(
    tmp_path: Path,
) -> None:
    """ib_async keeps one result slot for reqAllOpenOrders ('openOrders'): a second request
    started before the first's openOrderEnd empties the first's list, is resolved by the
    first's end with only part of IB's orders, and leaves the first to time out (ib_async
    wrapper.startReq/openOrder/openOrderEnd). A held sell missing from such an answer would be
    given up and its replacement sent beside it (review of fixes1, finding 3). The
    connection's open-order requests take turns: the held-cancel check, the start-up retry and
    the 1101/1102 resync asked at once each get IB's whole list, the held order in it."""
    import asyncio

    async def body(r: Rig) -> None:
        await r.start()
        ref = await open_position(r, "SPY", expiry=DAY.date())
        await filled(r, ref)
        conn = r.broker.conn
        ib = conn.require()
        what = "the open orders"
        answers = await asyncio.gather(
            *(conn.call(what, conn.open_orders) for _ in range(3)),
            conn._call(ib, what, conn.open_orders(ib)),
        )
        for listed in answers:
            assert {t.order.orderRef for t in listed} >= {f"{ref}.tp", f"{ref}.sl"}

    rig(body, tmp_path, start=DAY, symbols=("SPY",), limit_s=30)


def test_a_held_sell_ib_never_lets_go_of_on_expiry_day_tells_the_operator_to_act_by_hand(
    tmp_path: Path,
) -> None:
    """The closing sell of an option expiring today is held Inactive and IB ignores the cancel
    (ib_insync#363). tradebot rightly sends nothing beside it; then only a person can act, and
    the per-minute alert says so: which order is held, that its cancel is unconfirmed, and to
    cancel it and sell by hand in TWS — not "tradebot keeps retrying the sell", which it is not
    (review of fixes1, finding 4)."""

    async def body(r: Rig) -> None:
        await r.start()
        ref = await open_position(r, "SPY", expiry=DAY.date())
        await filled(r, ref)
        await r.wake()
        r.loop.exits.confirm_wait_s = 0.2
        r.sim.set_time(CLOSE - timedelta(minutes=6))
        r.sim.faults.inactive_next()
        r.sim.faults.ignore_held_cancels()
        await r.wake()
        for _ in range(8):
            await r.advance(timedelta(seconds=30))
            await r.wake()
        last = r.events("expiry_risk")[-1]["message"]
        assert f"cancel {ref}.x1 and sell by hand in TWS now" in last, last
        assert "keeps retrying" not in last
        assert {o for _, o, _ in _journal_order(r)} == {f"{ref}.x1"}  # nothing beside it

    rig(body, tmp_path, version=178, start=DAY, symbols=("SPY",), limit_s=60)
