"""The real trading loop on the IBKR adapter against the gateway simulator (in one event loop)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from ib_async import IB, LimitOrder

from tests.brokers.ibkr.conftest import CLIENT_ID, Rig, filled, make_rig, rig, until
from tests.gateway_sim.conftest import near_money_call
from tests.market_time_text import utc_shown


def test_a_fill_becomes_a_journaled_trade_with_commission(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        await r.tick()
        ref = "SPY-250701-s1"
        assert r.statuses(ref)[-1] in ("submitted", "presubmitted")
        entry_id = r.client_order_id(ref)
        r.sim.faults.fill_order(CLIENT_ID, entry_id)  # the entry fills at its limit
        await filled(r, ref)
        r.sim.faults.fill_order(CLIENT_ID, r.client_order_id(f"{ref}.tp"))  # then the target
        await filled(r, f"{ref}.tp")
        await r.advance(timedelta(minutes=2))  # commissions are adopted with their fills
        await r.wake()
        [trade] = [t for t in r.journal("trades") if t["trade_id"] == ref]
        assert trade["exit_reason"] == "take_profit"
        assert Decimal(trade["commission"]) == Decimal("2.00")  # $1 minimum, entry and exit
        entry = Decimal(trade["entry_price"])
        assert Decimal(trade["exit_price"]) == entry * 2
        assert Decimal(trade["pnl"]) == entry * 100 - 2
        assert trade["mode"] == "paper"
        fills = [f for f in r.journal() if f["event"] == "fill"]
        assert {f["order_ref"] for f in fills} >= {ref, f"{ref}.tp"}
        assert all(Decimal(f["commission"]) == 1 for f in fills)

    rig(body, tmp_path, symbols=("SPY",))


def test_a_fill_while_disconnected_is_adopted_after_the_reconnect_and_nothing_doubles(
    tmp_path: Path,
) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        await r.tick()
        ref = "SPY-250701-s1"
        generation = r.broker.generation
        sent = len(r.sim.exchange.orders)
        # The gateway drops us, and the entry fills while we are away.
        assert r.sim.faults.fill_while_disconnected(CLIENT_ID, r.client_order_id(ref))
        await until(lambda: not r.broker.is_connected())
        paused = r.broker.entries_paused(r.now)
        assert paused is not None and "reconnecting" in paused
        await r.wake()  # skipped while disconnected: nothing is decided blind
        await until(lambda: r.broker.generation > generation, timeout=3)
        assert r.broker.entries_paused(r.now) is None
        await r.advance(timedelta(minutes=1))
        await r.wake()  # a new generation: reconciled before anything else
        assert r.statuses(ref)[-1] == "filled"
        assert [f["order_ref"] for f in r.journal() if f["event"] == "fill"] == [ref]
        reconciled = r.events("reconciled")[-1]["message"]
        assert "1 fill(s) adopted" in reconciled and "0 unknown" in reconciled
        await r.tick()  # the next tick: SPY is held, so no second entry
        assert [e["order_ref"] for e in r.entries()] == [ref]
        assert len(r.sim.exchange.orders) == sent
        assert [e for e, _ in r.notes if e in ("disconnect", "reconnect")] == [
            "disconnect",
            "reconnect",
        ]

    rig(body, tmp_path, symbols=("SPY",))


def test_an_informational_error_on_a_live_order_does_not_make_it_cancelled(
    tmp_path: Path,
) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        r.sim.faults.notice_next_order()  # 10349 "TIF was set to DAY" after the next order
        await r.tick()
        ref = "SPY-250701-s1"
        ib = r.broker.conn.ib
        assert ib is not None
        await until(lambda: any(t.orderStatus.status == "Cancelled" for t in ib.trades()))
        # ib_async believes the entry was cancelled; IB never said so, and neither do we.
        [phantom] = [t for t in ib.trades() if t.orderStatus.status == "Cancelled"]
        assert phantom.order.orderRef == ref
        tracked = r.broker.tracker.by_order_ref(ref)
        assert tracked is not None and tracked.status == "submitted"
        assert tracked.notices and tracked.notices[0].startswith("10349")
        assert r.sim.book.order(CLIENT_ID, r.client_order_id(ref)).working  # type: ignore[union-attr]
        await r.wake()
        assert "cancelled" not in r.statuses(ref)
        await r.tick()
        assert len(r.entries()) == 1  # still held: no second entry on a phantom cancel
        assert [o["status"] for o in map(vars, await _orders(r)) if o["order_ref"] == ref] == [
            "submitted"
        ]

    rig(body, tmp_path, symbols=("SPY",))


def test_a_rolled_back_next_valid_id_never_reuses_an_order_id(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        await r.tick()
        ref = "SPY-250701-s1"
        used = {r.client_order_id(x) for x in (ref, f"{ref}.tp", f"{ref}.sl")}
        await r.broker.cancel(ref)  # the bracket finishes (its legs go with it)
        await until(lambda: not any(o.working for o in r.sim.exchange.orders.values()))
        assert r.broker.ids.high == max(used)
        generation = r.broker.generation
        r.sim.faults.roll_back_next_valid_id(to=1)  # as after a gateway restart
        r.sim.faults.drop_connections()
        await until(lambda: r.broker.generation > generation, timeout=3)
        assert r.broker.conn.server_next_id == 1
        # ib_async would number requests from 1 again: they stay above today's order ids, so
        # an error about a request is never read as one about an order.
        ib = r.broker.conn.require()
        assert ib.client.getReqId() > max(used)
        await r.advance(timedelta(minutes=1))
        await r.tick()
        [second] = [e["order_ref"] for e in r.entries()][1:]
        new = {r.client_order_id(x) for x in (second, f"{second}.tp", f"{second}.sl")}
        assert min(new) > max(used)
        ids = sorted(r.sim.book.venue_ids)
        assert len(ids) == 6 and len({oid for _, oid in ids}) == 6
        assert r.statuses(second)[-1] in ("submitted", "presubmitted", "filled")

    rig(body, tmp_path, symbols=("SPY",))


async def _orders(r: Rig) -> list[Any]:
    return list(await r.broker.orders())


def _oco_legs(r: Rig) -> dict[str, Any]:
    path = r.loaded.state_dir / "oco-legs.json"
    return dict(json.loads(path.read_text())["legs"]) if path.exists() else {}


def test_a_refused_bracket_falls_back_to_oco_emulation_with_one_entry(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        r.sim.faults.refuse_brackets(True)  # IB accepts the parent, refuses its legs (201)
        await r.tick()
        ref = "SPY-250701-s1"
        [refused] = r.events("bracket_refused")
        assert "201" in refused["message"]
        assert list(_oco_legs(r)) == [ref]  # the legs are watched by the loop, persisted
        working = [o for o in r.venue_orders() if o.working]
        assert [(o.order_ref, o.parent_id) for o in working] == [(ref, 0)]  # one entry, alone
        # The parent IB accepted was cancelled before the entry went out alone.
        first = r.venue_orders()[0]
        assert (first.order_ref, first.status) == (ref, "Cancelled") and first.filled == 0
        await r.wake()
        assert r.statuses(ref)[-1] == "submitted"  # the cancelled parent does not answer to it
        assert r.statuses(f"{ref}.tp") == ["rejected"]

    rig(body, tmp_path, symbols=("SPY",))


def test_a_rejected_entry_falls_back_then_is_refused_clearly(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        r.sim.faults.reject_next_order("insufficient funds (simulated)", count=2)
        await r.tick()
        ref = "SPY-250701-s1"
        # The bracket's parent is rejected (201), the entry alone too: a clear refusal.
        [refused] = r.events("bracket_refused")
        assert "201" in refused["message"]
        [rejected] = [e for e in r.events("entry_refused") if e["rule"] == "rejected"]
        assert "201" in rejected["message"] and "insufficient funds" in rejected["message"]
        assert r.statuses(ref)[-1] == "rejected"
        assert _oco_legs(r) == {}  # nothing to guard
        assert not [o for o in r.venue_orders() if o.working]

    rig(body, tmp_path, symbols=("SPY",))


def test_delayed_only_market_data_opens_no_live_trade(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        assert r.ctx.trading_mode == "live" and r.broker.conn.account == "U7654321"
        r.sim.faults.market_data_permission("*", "delayed")  # 10167, delayed ticks
        await r.tick()
        refusals = [e for e in r.events("entry_refused") if e["rule"] == "quote"]
        assert refusals and all("delayed, not live" in e["message"] for e in refusals)
        assert r.entries() == [] and r.venue_orders() == []

    # Real money: a live account, trading.mode = "live", the proof phase.
    rig(body, tmp_path, mode="live", account="U7654321", extra='\n[phase]\ninitial = "proof"\n')


def test_a_stale_ticker_opens_no_trade(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        r.sim.faults.stale_quotes("*", since=r.now - timedelta(seconds=45))
        await r.tick()
        refusals = [e for e in r.events("entry_refused") if e["rule"] == "quote"]
        assert refusals and all("45 s old" in e["message"] for e in refusals)
        assert r.entries() == [] and r.venue_orders() == []
        r.sim.faults.fresh_quotes()
        await r.advance(timedelta(minutes=1))
        await r.tick()  # fresh quotes again: the streams resume and entries go out
        assert len(r.entries()) == 2

    rig(body, tmp_path)


def test_a_pacing_violation_backs_off_without_crashing(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        r.sim.faults.pace_historical(1)  # error 162 "pacing violation" on the next request
        await r.tick()
        [error] = r.events("broker_error")
        assert error["message"].startswith("SPY: IB's historical data pacing violation (162)")
        assert re.search(r"backing off until \d\d:\d\d:\d\d EDT$", error["message"])
        assert "SPY-250701-s1" not in [e["order_ref"] for e in r.entries()]
        requests = len(r.sim.exchange.orders)
        await r.advance(timedelta(seconds=10))
        await r.tick()  # inside the backoff: no historical request is sent at all
        paused = [e["message"] for e in r.events("broker_error")][1:]
        assert paused and all("paused after IB's pacing violation" in m for m in paused)
        assert all(re.search(r"until \d\d:\d\d:\d\d EDT; bars for", m) for m in paused)
        # What the operator reads (events, alerts) shows New York time, never UTC.
        assert not utc_shown(e["message"] for e in r.journal("events") if "message" in e)
        assert not utc_shown(message for _, message in r.notes)
        assert len(r.sim.exchange.orders) == requests
        await r.advance(timedelta(seconds=30))
        await r.tick()  # after it: bars again, and SPY's entry goes out
        assert "SPY-250701-s1" in [e["order_ref"] for e in r.entries()]

    rig(body, tmp_path)


def test_orders_that_are_not_tradebots_are_reported_and_left_alone(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        other = IB()  # the operator, in TWS, as client 5
        await other.connectAsync("127.0.0.1", r.sim.port, clientId=5, timeout=2)
        option = await near_money_call(other, r.sim)  # bid far above the limit: it rests
        manual = other.placeOrder(option, LimitOrder("BUY", 1, 0.01, tif="GTC", orderRef="mine"))
        await until(lambda: manual.orderStatus.status == "Submitted")
        await r.start()
        [unknown] = r.events("unknown_order")
        assert "order_ref 'mine'" in unknown["message"] and "left alone" in unknown["message"]
        await r.tick()
        assert r.sim.book.order(5, manual.order.orderId).working  # type: ignore[union-attr]
        other.disconnect()

    rig(body, tmp_path, symbols=("SPY",))


def test_a_bracket_lost_with_the_socket_is_abandoned_not_pending_forever(
    tmp_path: Path,
) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        generation = r.broker.generation
        r.sim.faults.lose_next_order()  # the socket dies with the parent in flight
        await r.tick()
        ref = "SPY-250701-s1"
        assert r.statuses(ref)[-1] == "unknown"  # the send failed: outcome unknown
        await until(lambda: r.broker.generation > generation, timeout=5)
        assert r.venue_orders() == [] and r.sim.book.held == {}  # IB never had it
        # IB's order lists after the reconnection do not have it: it is not "pending" at IB.
        assert ref not in [o.order_ref for o in await r.broker.orders()]
        await r.advance(timedelta(minutes=1))
        await r.wake()  # reconciled: not listed, still within the grace of a failed send
        await r.advance(timedelta(minutes=2))
        await r.wake()
        for leg in (ref, f"{ref}.tp", f"{ref}.sl"):
            assert r.statuses(leg)[-1] == "abandoned", (leg, r.statuses(leg))
        await r.advance(timedelta(minutes=1))
        await r.tick()  # SPY is free again: a new entry, new ids, nothing sent twice
        assert [e["order_ref"] for e in r.entries()] == [ref, "SPY-250701-s2"]
        assert {o.order_ref for o in r.venue_orders()} == {
            "SPY-250701-s2",
            "SPY-250701-s2.tp",
            "SPY-250701-s2.sl",
        }

    rig(body, tmp_path, symbols=("SPY",))


def test_a_bracket_cut_after_its_held_parent_leaves_nothing_at_the_gateway(
    tmp_path: Path,
) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        generation = r.broker.generation
        r.sim.faults.lose_next_order(after=2)  # parent and take-profit arrive, held; stop lost
        await r.tick()
        ref = "SPY-250701-s1"
        assert r.statuses(ref)[-1] == "unknown"
        await until(lambda: r.broker.generation > generation, timeout=5)
        # The held parent and take-profit were cancelled: they can never be transmitted later.
        await until(lambda: r.sim.book.held == {})
        assert r.venue_orders() == []
        await r.advance(timedelta(minutes=3))
        await r.wake()
        await r.advance(timedelta(minutes=1))
        await r.wake()
        for leg in (ref, f"{ref}.tp", f"{ref}.sl"):
            assert r.statuses(leg)[-1] in ("abandoned", "cancelled"), (leg, r.statuses(leg))

    rig(body, tmp_path, symbols=("SPY",))


def test_an_order_lost_in_flight_is_only_forgotten_once_ib_has_sent_its_order_lists(
    tmp_path: Path,
) -> None:
    """The socket dies with the bracket's stop in flight (its parent and take-profit held at
    the Gateway, transmit=False), and the Gateway it reconnects to does not answer
    reqAllOpenOrders (IB API docs: openOrder per order, then openOrderEnd; unanswered start-up
    requests: ib-api-reloaded/ib_async#54, #82). "Not in IB's lists" proves nothing while the
    list has not come: the orders are neither forgotten nor closed as never sent (the stale
    entry is cancelled, as any is: that reduces risk whatever its fate). Once IB answers, they
    are closed, as after any reconnection."""

    async def body(r: Rig) -> None:
        await r.start()
        generation = r.broker.generation
        r.sim.faults.leave_unanswered("open-orders")
        r.sim.faults.lose_next_order(after=2)  # parent and take-profit arrive, held; stop lost
        await r.tick()
        ref = "SPY-250701-s1"
        await until(lambda: r.broker.generation > generation, timeout=10)
        await r.advance(timedelta(minutes=3))  # past the grace of a failed send
        await r.wake()
        for leg in (ref, f"{ref}.tp", f"{ref}.sl"):
            assert r.statuses(leg)[-1] in ("unknown", "pending"), (leg, r.statuses(leg))
        assert r.broker.tracker.by_order_ref(ref) is not None  # not forgotten
        r.sim.faults.leave_unanswered("open-orders", False)
        await r.advance(timedelta(minutes=1))
        await r.wake()  # the sync asks IB again, in the background
        await until(lambda: not r.broker.conn.missing)
        await r.wake()
        for leg in (ref, f"{ref}.tp", f"{ref}.sl"):
            assert r.statuses(leg)[-1] in ("abandoned", "cancelled"), (leg, r.statuses(leg))

    rig(body, tmp_path, symbols=("SPY",), limit_s=40)


def test_an_entry_that_filled_before_its_refused_bracket_was_cancelled_is_protected(
    tmp_path: Path,
) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        r.sim.faults.refuse_brackets(True)  # IB accepts the parent, refuses its legs (201)
        r.sim.faults.fill_before_next_cancel()  # the parent fills before its cancel arrives
        await r.tick()
        ref = "SPY-250701-s1"
        parent = r.sim.book.order(CLIENT_ID, r.client_order_id(ref))
        assert parent is not None and parent.status == "Filled"
        assert not [o for o in r.venue_orders() if o.working]  # no leg at IB
        assert len(r.entries()) == 1  # the entry was not sent a second time
        await r.advance(timedelta(minutes=1))
        await r.wake()
        # A bought position with no stop at IB: the loop must guard it itself.
        assert list(_oco_legs(r)) == [ref]
        intents = {i["order_ref"]: i for i in r.journal() if i["event"] == "intent"}
        legs = _oco_legs(r)[ref]
        assert Decimal(legs["take_profit"]) == Decimal(intents[f"{ref}.tp"]["limit"])
        assert Decimal(legs["stop_loss"]) == Decimal(intents[f"{ref}.sl"]["stop"])
        assert r.events("position_protected")

    rig(body, tmp_path, symbols=("SPY",))


def test_an_unset_commission_is_never_taken_for_an_amount(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        await r.tick()
        ref = "SPY-250701-s1"
        r.sim.faults.unset_next_commission()  # IB reports 1.7976931348623157E308
        r.sim.faults.fill_order(CLIENT_ID, r.client_order_id(ref))
        await filled(r, ref, with_commissions=False)
        [entry_fill] = await r.broker.executions(r.now - timedelta(days=1))
        assert entry_fill.commission is None  # unknown, not a number
        r.sim.faults.fill_order(CLIENT_ID, r.client_order_id(f"{ref}.tp"))
        await filled(r, f"{ref}.tp")
        await r.advance(timedelta(minutes=6))  # past the wait, and executions asked again
        await r.wake()
        fills = {
            f["order_ref"]: Decimal(f["commission"]) for f in r.journal() if f["event"] == "fill"
        }
        assert fills == {ref: Decimal(0), f"{ref}.tp": Decimal(1)}
        [trade] = r.journal("trades")
        assert Decimal(trade["commission"]) == 1
        assert Decimal(trade["pnl"]) == Decimal(trade["entry_price"]) * 100 - 1

    rig(body, tmp_path, symbols=("SPY",))


def test_emulated_legs_survive_a_restart_and_sell_at_ib_when_they_fire(tmp_path: Path) -> None:
    """IB refuses the bracket (201): the loop guards the filled entry itself. A new process
    (a new client of the same gateway) re-arms the persisted legs at reconcile, and when the
    option's bid crosses one of them the loop's sell goes to IB, fills, and closes the trade."""

    async def body(r: Rig) -> None:
        await r.start()
        r.sim.faults.refuse_brackets(True)
        await r.tick()
        ref = "SPY-250701-s1"
        r.sim.faults.fill_order(CLIENT_ID, r.client_order_id(ref))
        await filled(r, ref)
        await r.wake()
        legs = _oco_legs(r)[ref]
        await r.stop()  # the process ends; its legs stay on disk

        again = make_rig(r.sim, r.loaded)
        try:
            await again.start()
            assert again.loop.oco.legs()[ref].stop_loss == Decimal(legs["stop_loss"])
            fired: list[dict[str, Any]] = []
            for _ in range(240):  # until a leg fires (the market is the seeded synthetic one)
                await again.advance(timedelta(minutes=1))
                await again.wake()
                fired = again.events("oco_fired")
                if fired:
                    break
            assert fired, "no emulated leg fired in four hours"
            exit_ref = fired[0]["order_ref"]  # the loop's own sell: <entry>.otp1 or .osl1
            assert exit_ref in (f"{ref}.otp1", f"{ref}.osl1")
            sell = next(o for o in again.venue_orders() if o.order_ref == exit_ref)
            assert (sell.action, sell.qty) == ("SELL", 1)
            for _ in range(5):  # the sell fills at IB within a minute or two
                await again.advance(timedelta(minutes=1))
                await again.wake()
            [trade] = [t for t in again.journal("trades") if t["trade_id"] == ref]
            reason = "take_profit" if ".otp" in exit_ref else "stop_loss"
            assert trade["exit_reason"] == reason
            assert ref not in _oco_legs(again)  # disarmed once the position is closed
            assert not [o for o in again.venue_orders() if o.working]
        finally:
            await again.stop()

    rig(body, tmp_path, symbols=("SPY",), limit_s=60)
