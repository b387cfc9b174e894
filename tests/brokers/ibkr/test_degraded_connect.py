"""A Gateway that never answers reqExecutions: connect degraded, never "unreachable".

Some Gateway builds never answer `reqExecutions` at connect (ib-api-reloaded/ib_async#54, #82);
ib_async's own start-up sync with `raiseSyncErrors=True` then fails the connection, and nothing
manages the stops or the flatten. The simulator's fault `leave_executions_unanswered` keeps that
habit; tradebot asks its start-up requests itself, each bounded by broker.timeout_s.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from tests.brokers.ibkr.conftest import (
    Rig,
    ThreadedSim,
    filled,
    make_rig,
    open_position,
    rig,
    until,
)
from tests.brokers.ibkr.test_gateway_test_cmd import _config, _json, _same_clock
from tests.cli.conftest import invoke
from tradebot.books.halt import KillSwitch

DAY = datetime(2025, 7, 3, 16, 30, tzinfo=UTC)  # 12:30 New York; the 13:00 close, weeklies expire
CLOSE = datetime(2025, 7, 3, 17, 0, tzinfo=UTC)


@pytest.mark.parametrize("version", [157, 178])
def test_run_connects_degraded_and_still_closes_an_expiring_position(
    tmp_path: Path, version: int
) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        ref = await open_position(r, "SPY", expiry=date(2025, 7, 3))
        await filled(r, ref)
        await r.ctx.book.sync(r.broker, r.now)
        await r.stop()
        r.sim.faults.leave_executions_unanswered()
        again = make_rig(r.sim, r.loaded)
        try:
            await again.start()  # connects: the executions request times out, noted by name
            assert again.broker.is_connected()
            assert list(again.broker.conn.missing) == ["the executions"]
            paused = again.broker.entries_paused(again.now)
            assert paused is not None and paused.startswith("connected degraded")
            assert "did not answer the executions" in paused
            await again.tick()
            [event] = again.events("entries_paused")
            assert "connected degraded" in event["message"]
            assert [
                o.order_ref for o in again.venue_orders() if o.order_ref.startswith("QQQ")
            ] == []
            # Exits keep working: the expiring position is flattened at the flatten time.
            again.sim.set_time(CLOSE - timedelta(minutes=10))
            await again.wake()
            assert not again.sim.exchange.positions
            # The Gateway answers again: the next account read asks again, the loop reconciles
            # and entries may open.
            again.sim.faults.leave_executions_unanswered(False)
            await again.advance(timedelta(minutes=2))
            generation = again.broker.generation
            await again.broker.account()
            assert again.broker.conn.missing == {}
            assert again.broker.generation > generation
            assert again.broker.entries_paused(again.now) is None
        finally:
            await again.stop()

    rig(body, tmp_path, version=version, start=DAY, symbols=("QQQ",), limit_s=40)


def test_gateway_test_says_degraded_and_exits_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = ThreadedSim()
    try:
        _config(tmp_path, sim.port)
        _same_clock(monkeypatch, sim)
        sim.call(sim.sim.faults.leave_executions_unanswered)
        result = invoke(["gateway", "test", "--json"])
        assert result.exit_code == 4, result.stdout
        doc = _json(result.stdout)
        assert doc["status"] == "degraded" and doc["error"] is None
        [problem] = doc["problems"]
        assert problem.startswith("the gateway did not answer the executions")
        assert "connect degraded" in problem and "ib_async#54" in problem
        assert doc["net_liquidation"] == "10000.00"  # the rest is still reported
    finally:
        sim.stop()


async def _expiring_position_then_restart(r: Rig, silent: str, *, expiry: date) -> tuple[str, Rig]:
    """A bracket bought and filled, tradebot stopped, the Gateway made to leave `silent`
    unanswered, and a new `tradebot run` started against it."""
    await r.start()
    ref = await open_position(r, "SPY", expiry=expiry)
    await filled(r, ref)
    await r.ctx.book.sync(r.broker, r.now)
    await r.stop()
    r.sim.faults.leave_unanswered(silent)
    again = make_rig(r.sim, r.loaded)
    await again.start()
    return ref, again


@pytest.mark.parametrize("version", [157, 178])
def test_unanswered_positions_are_unknown_never_none_held_and_the_expiring_option_is_sold(
    tmp_path: Path, version: int
) -> None:
    """A Gateway that never answers reqPositions (the same habit as the unanswered
    reqExecutions of ib-api-reloaded/ib_async#54, #82; IB API docs: reqPositions answers each
    position, then positionEnd): the silence is not "IB holds nothing". Before, the restart took
    the journal's position for one IB no longer held (a critical alert telling the operator to
    `journal close` a position IB still held), and the flatten cancelled the stop and the
    take-profit, then sold nothing (the sell was capped at the empty position list): the option
    went into its expiry close bare. Now no verdict is drawn from the silence, and the option
    expiring today is sold on the journal's word once its legs' cancels are confirmed."""

    async def body(r: Rig) -> None:
        ref, again = await _expiring_position_then_restart(r, "positions", expiry=DAY.date())
        try:
            assert list(again.broker.conn.missing) == ["the positions"]
            paused = again.broker.entries_paused(again.now)
            assert paused is not None and "did not answer the positions" in paused
            assert again.events("position_mismatch") == []
            assert again.loop.positions.refusal() is None
            assert [m for e, m in again.notes if e == "critical"] == []
            assert again.loop.status().urgent == []
            again.sim.set_time(CLOSE - timedelta(minutes=10))  # the flatten
            await again.wake()
            assert not again.sim.exchange.positions  # sold at IB: nothing left to exercise
            assert again.statuses(f"{ref}.sl")[-1] == "cancelled"
            [closing] = again.events("position_closing")
            assert closing["order_ref"] == f"{ref}.x1"
            await again.advance(timedelta(seconds=5))
            await again.wake()
            [trade] = [t for t in again.journal("trades") if t["trade_id"] == ref]
            assert trade["exit_reason"] == "flatten"
            assert again.events("position_mismatch") == []
        finally:
            await again.stop()

    rig(body, tmp_path, version=version, start=DAY, symbols=("QQQ",), limit_s=40)


def test_while_positions_are_unknown_halt_flatten_keeps_the_legs_until_ib_answers(
    tmp_path: Path,
) -> None:
    """`halt --flatten` of a position that does not expire today, while IB has not answered
    reqPositions: its stop and take-profit are not cancelled for a sell tradebot could not size
    against IB's position (it would leave the position bare, or sell what IB may no longer
    hold); the legs keep guarding it and the operator is told why. Once IB answers (asked
    again in the background), the flatten goes ahead."""

    async def body(r: Rig) -> None:
        ref, again = await _expiring_position_then_restart(r, "positions", expiry=date(2025, 7, 7))
        try:
            KillSwitch(again.loaded.state_dir, again.loaded.logs_dir).halt(
                again.now, operator="test", reason="flatten now", flatten=True
            )
            await again.wake()
            at_ib = {o.order_ref: o.status for o in again.venue_orders()}
            assert at_ib[f"{ref}.sl"] == at_ib[f"{ref}.tp"] == "Submitted"
            assert [p.qty for p in again.sim.exchange.positions.values()] == [1]
            [waiting] = again.events("halt_flatten")
            assert "IB has not answered its positions" in waiting["message"]
            again.sim.faults.leave_unanswered("positions", False)
            await again.advance(timedelta(minutes=2))
            await again.wake()  # the sync asks IB again, in the background
            await until(lambda: not again.broker.conn.missing)
            await again.advance(timedelta(seconds=5))
            await again.wake()
            assert not again.sim.exchange.positions
            assert again.statuses(f"{ref}.sl")[-1] == "cancelled"
        finally:
            await again.stop()

    rig(body, tmp_path, start=DAY, symbols=("QQQ",), limit_s=40)


def _lose_submissions(r: Rig, how: str) -> None:
    """The journal as a crash (or a failed send) left it: the bracket's `submitted` lines are
    gone (`intent`: stopped between the send and the line), or read `unknown` (`unknown`: the
    send raised, its fate unknown)."""
    path = r.loaded.logs_dir / "journal" / "orders.jsonl"
    lines = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record["event"] == "submitted":
            if how == "intent":
                continue
            record = {
                **{k: record[k] for k in ("v", "ts", "order_ref", "role", "session", "mode")},
                "event": "status",
                "status": "unknown",
                "reason": "send failed: IB Gateway did not acknowledge it",
            }
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize(
    ("silent", "how"),
    [("open-orders", "intent"), ("completed-orders", "intent"), ("open-orders", "unknown")],
)
def test_unanswered_order_lists_close_no_intent_and_arm_no_exit_on_top_of_ibs_legs(
    tmp_path: Path, silent: str, how: str
) -> None:
    """A bracket IB holds (entry filled, legs working) that the journal only knows as intents
    (a crash between the send and the `submitted` line) or as sends of unknown fate, and a
    restart against a Gateway that never answers reqAllOpenOrders or reqCompletedOrders (IB API
    docs: each answered by its orders, then openOrderEnd / completedOrdersEnd; the habit of
    ib-api-reloaded/ib_async#54, #82). Before, the orders missing from the unanswered list
    were closed as never sent (`abandoned`) and the position, its stop now "gone", got emulated
    legs on top of IB's working ones: two exits, an oversell. Now nothing is closed on a list
    that did not arrive; the reconciliation after IB answers adopts the orders."""

    async def body(r: Rig) -> None:
        await r.start()
        ref = await open_position(r, "SPY", expiry=date(2025, 7, 7), limit=None)
        await filled(r, ref)
        await r.stop()
        _lose_submissions(r, how)
        r.sim.faults.leave_unanswered(silent)
        again = make_rig(r.sim, r.loaded)
        refs = (ref, f"{ref}.tp", f"{ref}.sl")
        try:
            await again.start()
            assert len(again.broker.conn.missing) == 1
            await again.advance(timedelta(minutes=3))  # past the grace of a failed send
            await again.wake()
            for x in refs:
                assert "abandoned" not in again.statuses(x), x
            assert again.events("position_protected") == []
            assert again.loop.oco.legs() == {}
            at_ib = {o.order_ref: o.status for o in again.venue_orders()}
            assert at_ib[f"{ref}.sl"] == at_ib[f"{ref}.tp"] == "Submitted"
            again.sim.faults.leave_unanswered(silent, False)
            await again.advance(timedelta(minutes=2))
            await again.wake()  # the sync asks IB again, in the background
            await until(lambda: not again.broker.conn.missing)
            await again.wake()  # the reconciliation IB's answer calls for
            assert again.statuses(ref)[-1] == "filled"
            assert again.statuses(f"{ref}.tp")[-1] == again.statuses(f"{ref}.sl")[-1] == "submitted"
            assert again.loop.oco.legs() == {}
            assert again.events("position_protected") == again.events("unknown_order") == []
        finally:
            await again.stop()

    rig(body, tmp_path, start=DAY - timedelta(hours=2), symbols=("QQQ",), limit_s=40)


def test_unanswered_open_orders_after_a_restart_the_legs_are_cancelled_by_order_id(
    tmp_path: Path,
) -> None:
    """A bracket bought and filled (legs working at IB), tradebot restarted, and the Gateway
    never answers reqAllOpenOrders. The option expires today. The legs' order ids are in the
    journal, and IB answers a cancel by order id (same client id) with the order's status even
    without the open-order list (IB API docs, "Cancelling an order": cancelOrder(orderId));
    the legs are cancelled that way and the option is sold before the close (review of
    fixes1, finding 2). Before, the cancel of an order the adapter had not seen listed was
    dropped silently, and the legs blocked the sell forever."""

    async def body(r: Rig) -> None:
        ref, again = await _expiring_position_then_restart(r, "open-orders", expiry=DAY.date())
        try:
            again.loop.exits.confirm_wait_s = 0.2
            again.sim.set_time(CLOSE - timedelta(minutes=10))  # the flatten
            for _ in range(6):
                await again.wake()
                await again.advance(timedelta(seconds=10))
            at_ib = {o.order_ref: o.status for o in again.venue_orders()}
            assert not again.sim.exchange.positions, at_ib
            assert at_ib[f"{ref}.tp"] == at_ib[f"{ref}.sl"] == "Cancelled"
            assert again.statuses(f"{ref}.sl")[-1] == "cancelled"
            assert [e["order_ref"] for e in again.events("position_closing")] == [f"{ref}.x1"]
        finally:
            await again.stop()

    rig(body, tmp_path, start=DAY, symbols=("QQQ",), limit_s=60)


def test_a_leg_ib_no_longer_has_is_settled_by_error_10147_and_the_option_is_sold(
    tmp_path: Path,
) -> None:
    """The legs were cancelled at IB while tradebot was away and IB has forgotten them; after
    the restart IB never answers its open orders. The cancel by order id is answered with error
    10147 "OrderId N that needs to be cancelled is not found" (ib_insync#656; Lean's IB
    brokerage finishes the order on it, QuantConnect/Lean.Brokerages.InteractiveBrokers#248):
    nothing of them can trade, so the option is sold."""

    async def body(r: Rig) -> None:
        await r.start()
        ref = await open_position(r, "SPY", expiry=DAY.date())
        await filled(r, ref)
        await r.ctx.book.sync(r.broker, r.now)
        await r.stop()
        book = r.sim.book
        for key, venue in list(book.venue_ids.items()):
            if r.sim.exchange.orders[venue].order_ref in (f"{ref}.tp", f"{ref}.sl"):
                if r.sim.exchange.orders[venue].working:
                    r.sim.exchange.cancel(venue, r.now)
                del book.venue_ids[key]  # IB no longer knows the id
        r.sim.faults.leave_unanswered("open-orders")
        again = make_rig(r.sim, r.loaded)
        await again.start()
        try:
            again.loop.exits.confirm_wait_s = 0.2
            again.sim.set_time(CLOSE - timedelta(minutes=10))
            for _ in range(6):
                await again.wake()
                await again.advance(timedelta(seconds=10))
            assert not again.sim.exchange.positions
            assert again.statuses(f"{ref}.tp")[-1] == "cancelled"
            assert again.statuses(f"{ref}.sl")[-1] == "cancelled"
        finally:
            await again.stop()

    rig(body, tmp_path, start=DAY, symbols=("QQQ",), limit_s=60)
