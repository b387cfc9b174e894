"""Reconciliation by positions across IB days, against the gateway simulator (real ib_async).

IB lists executions and completed orders of the current IB day only (IB API docs for
reqExecutions, "since midnight", quoted in erdewit/ib_insync#483; completed orders:
wboayue/rust-ibapi#299): what happened yesterday is, today, only a changed position
(`reqPositions`). The simulator keeps that habit, so these tests fail on a reconciliation that
trusts executions alone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from ib_async import IB, LimitOrder
from typer.testing import CliRunner

from tests.brokers.ibkr.conftest import (
    CLIENT_ID,
    FLEX_QUERY,
    FLEX_TOKEN,
    FlexServer,
    Rig,
    filled,
    make_rig,
    open_position,
    rig,
    until,
)
from tests.gateway_sim.conftest import near_money_call
from tradebot.cli import app


async def _restart(r: Rig) -> Rig:
    """A new `tradebot run` process against the same Gateway and logs directory."""
    again = make_rig(r.sim, r.loaded)
    await again.start()
    return again


@pytest.mark.parametrize("version", [157, 178])
def test_three_restarts_against_a_gateway_that_drops_order_refs_keep_one_position(
    tmp_path: Path, version: int
) -> None:
    """orderRef is not always echoed (the simulator's `drop_order_refs` fault): our orders are
    found by IB's permId (journaled at submission) and by order id + client id (the ids file
    remembers each id's orderRef), so a restart never takes them for someone else's and never
    enters the same symbol again (ib_async itself matches executions by permId first)."""

    async def body(r: Rig) -> None:
        await r.start()
        await r.tick()
        ref = "SPY-250701-s1"
        r.sim.faults.fill_order(CLIENT_ID, r.client_order_id(ref))
        await filled(r, ref)
        await r.advance(timedelta(minutes=1))
        await r.wake()
        await r.stop()
        r.sim.faults.drop_order_refs()
        current = r
        for _ in range(3):
            current = await _restart(current)
            await current.advance(timedelta(minutes=3))
            await current.tick()
            assert [e["order_ref"] for e in current.entries()] == [ref]
            assert current.events("unknown_order") == []
            assert current.events("position_mismatch") == []
            assert [p.qty for p in current.sim.exchange.positions.values()] == [1]
            assert len(current.ctx.book.open_positions()) == 1
            await current.stop()

    rig(body, tmp_path, version=version, symbols=("SPY",), limit_s=40)


NEXT_MORNING = datetime(2025, 7, 2, 14, 0, tzinfo=UTC)  # 10:00 New York, the next IB day


async def _stop_filled_while_away(r: Rig) -> str:
    """A whale position opened on 2025-07-01 whose stop fills at 13:00 while tradebot is
    stopped; the clock then moves to the next IB day (the fill is no longer an execution)."""
    await r.start()
    ref = await open_position(r, "SPY", expiry=date(2025, 7, 7), strategy="whale", stop_loss_pct=50)
    await filled(r, ref)
    await r.ctx.book.sync(r.broker, r.now)
    await r.stop()
    r.sim.advance(timedelta(hours=2))
    assert r.sim.faults.fill_order(CLIENT_ID, r.client_order_id(f"{ref}.sl"))
    r.sim.set_time(NEXT_MORNING)
    return ref


@pytest.mark.parametrize("version", [157, 178])
def test_a_stop_filled_while_stopped_is_closed_from_the_flex_statement_the_next_day(
    tmp_path: Path, version: int, flex_server: FlexServer
) -> None:
    """The restart's reconciliation finds the journal's position gone at IB, no execution to
    explain it (IB's day has turned), and closes the trade from the Flex statement (a recorded
    fixture in IB's format): the stop's price, commission and time, with its source."""

    async def body(r: Rig) -> None:
        ref = await _stop_filled_while_away(r)
        again = await _restart(r)
        try:
            [trade] = [t for t in again.journal("trades") if t["trade_id"] == ref]
            assert trade["exit_reason"] == "stop_loss"
            assert Decimal(trade["exit_price"]) == Decimal("7.57")
            assert Decimal(trade["commission"]) == 2
            assert Decimal(trade["pnl"]) == (Decimal("7.57") - Decimal("15.13")) * 100 - 2
            assert trade["exit_time"] == "2025-07-01T17:00:00Z"
            [fill] = [
                f for f in again.journal() if f["event"] == "fill" and f["order_ref"] == f"{ref}.sl"
            ]
            assert fill["source"] == f"IB Flex query {FLEX_QUERY}"
            assert again.statuses(f"{ref}.tp")[-1] == "cancelled"
            assert again.loop.positions.refusal() is None
            assert again.events("reconciled_exit")
            assert [r["path"] for r in flex_server.requests] == [
                "/SendRequest",
                "/GetStatement",
                "/GetStatement",
            ]
        finally:
            await again.stop()

    flex = f'flex_query_id = "{FLEX_QUERY}"\nflex_token = "{FLEX_TOKEN}"'
    rig(body, tmp_path, version=version, symbols=("QQQ",), broker=flex)


def test_an_option_expiring_today_is_sold_while_a_slow_flex_statement_is_on_its_way(
    tmp_path: Path, flex_server: FlexServer
) -> None:
    """IB can take a minute and more to prepare a Flex statement (Flex Web Service: "statement
    generation in progress", error 1019, asked again until ready). The check that needs it
    waits a moment, then leaves it to the background: the flatten of an option expiring today
    goes out while the statement is still on its way, and the statement closes the other trade
    once it arrives."""

    async def body(r: Rig) -> None:
        ref = await _stop_filled_while_away(r)
        flex_server.gate.clear()  # IB is slow to prepare the statement
        again = make_rig(r.sim, r.loaded)
        again.loop.positions.statement_wait_s = 0.05
        try:
            await again.start()
            assert again.loop.positions.refusal() is not None  # not explained yet
            today = await open_position(again, "SPY", expiry=date(2025, 7, 2))
            await filled(again, today)
            await again.wake()
            again.sim.set_time(datetime(2025, 7, 2, 19, 50, tzinfo=UTC))  # 15:50 New York
            await again.wake()
            assert flex_server.served == 0  # the statement has not come
            assert again.statuses(f"{today}.x1"), "the flatten waited for the statement"
            await until(lambda: not [p for p in again.sim.exchange.positions.values() if p.qty])
            flex_server.gate.set()
            await until(lambda: flex_server.served == 1)
            await until(lambda: again.loop.positions._statement is not None
                        and again.loop.positions._statement.done())  # fmt: skip
            await again.advance(timedelta(seconds=15))
            await again.wake()
            [trade] = [t for t in again.journal("trades") if t["trade_id"] == ref]
            assert trade["exit_reason"] == "stop_loss"
            assert again.loop.positions.refusal() is None
        finally:
            flex_server.gate.set()
            await again.stop()

    flex = f'flex_query_id = "{FLEX_QUERY}"\nflex_token = "{FLEX_TOKEN}"'
    rig(body, tmp_path, version=178, symbols=("QQQ",), broker=flex, limit_s=60)


@pytest.mark.parametrize("version", [157, 178])
def test_without_evidence_entries_are_refused_until_the_operator_records_the_exit(
    tmp_path: Path, version: int
) -> None:
    """No Flex query configured: nothing explains the missing position. Entries are refused
    (rule `reconciliation`) with the exact command to run, a `critical` alert goes out, the
    status shows it first, and no trade is written at $0. `tradebot journal close` records
    the exit (audited), and entries may open again."""

    async def body(r: Rig) -> None:
        ref = await _stop_filled_while_away(r)
        again = await _restart(r)
        try:
            assert [t for t in again.journal("trades") if t["trade_id"] == ref] == []
            step = again.loop.positions.refusal()
            assert step is not None
            assert f"tradebot journal close {ref} --price P --reason TEXT" in step
            assert any(e == "critical" and ref in m for e, m in again.notes)
            assert again.loop.status().urgent[0].startswith(ref)
            await again.advance(timedelta(minutes=5))
            await again.tick()
            blocked = [e for e in again.events("entry_refused") if e["rule"] == "blocked"]
            assert blocked and "reconciliation" in blocked[0]["message"]
            await again.stop()
            result = CliRunner().invoke(
                app,
                [
                    "--config", str(again.loaded.path), "journal", "close", ref,
                    "--price", "7.57", "--reason", "stop filled 07-01 13:00 (IB statement)",
                    "--commission", "1",
                ],
            )  # fmt: skip
            assert result.exit_code == 0, result.output
            [trade] = [t for t in again.journal("trades") if t["trade_id"] == ref]
            assert Decimal(trade["exit_price"]) == Decimal("7.57")
            assert trade["exit_reason"] == "manual"
            [audit] = again.events("journal_close")
            assert audit["reason"].startswith("stop filled") and audit["operator"]
            third = await _restart(again)
            assert third.loop.positions.refusal() is None
            await third.stop()
        finally:
            await again.stop()

    rig(body, tmp_path, version=version, symbols=("QQQ",))


@pytest.mark.parametrize("version", [157, 178])
def test_a_position_the_journal_does_not_know_blocks_entries_on_its_underlying(
    tmp_path: Path, version: int
) -> None:
    """A manual trade in TWS (another client of the same account) leaves IB holding an SPY
    option tradebot never bought: no entry on SPY may add on top of it; a `critical` alert and
    the status say so; tradebot leaves it alone. Other symbols trade on."""

    async def body(r: Rig) -> None:
        other = IB()  # the operator, in TWS
        await other.connectAsync("127.0.0.1", r.sim.port, clientId=5, timeout=2)
        option = await near_money_call(other, r.sim, above=-0.01)
        ask = r.sim.exchange.quote(r.sim.universe.by_con_id[option.conId], r.now)
        assert ask is not None
        manual = other.placeOrder(option, LimitOrder("BUY", 1, float(ask.ask), tif="DAY"))
        await until(lambda: manual.isDone())
        other.disconnect()
        await r.start()
        [mismatch] = r.events("position_mismatch")
        assert (
            "IB holds 1 SPY" in mismatch["message"] and "entries on SPY wait" in mismatch["message"]
        )
        assert [e for e, _ in r.notes].count("critical") == 1
        assert r.loop.status().urgent[0].startswith("IB holds 1 SPY")
        await r.tick()
        [refused] = [e for e in r.events("entry_refused") if e["symbol"] == "SPY"]
        assert refused["rule"] == "position_mismatch"
        assert not [e for e in r.entries() if e["symbol"] == "SPY"]
        assert [e["symbol"] for e in r.entries()] == ["TSLA"]  # the other symbol trades on
        assert r.loop.positions.refusal() is None  # nothing of ours is missing

    rig(body, tmp_path, version=version)


@pytest.mark.parametrize("version", [157, 178])
def test_an_option_exercised_into_shares_is_a_difference_on_both_sides(
    tmp_path: Path, version: int
) -> None:
    """Held through its expiry close (tradebot stopped), the call in the money is exercised into
    100 shares (OCC exercise by exception; no execution is reported: QuantConnect/Lean#5880).
    The restart sees the option gone with nothing to explain it (entries refused, the operator
    step shown) and 100 SPY shares it never bought (SPY blocked)."""

    async def body(r: Rig) -> None:
        await r.start()
        ref = await open_position(r, "SPY", expiry=date(2025, 7, 1), strategy="whale")
        await filled(r, ref)
        await r.ctx.book.sync(r.broker, r.now)
        await r.stop()
        r.sim.set_time(NEXT_MORNING)  # through the close of 2025-07-01: exercised
        again = await _restart(r)
        try:
            texts = [e["message"] for e in again.events("position_mismatch")]
            assert any("IB holds 100 SPY" in t for t in texts)
            assert any(f"tradebot journal close {ref}" in t for t in texts)
            assert "SPY" in again.ctx.blocked_symbols
            assert again.loop.positions.refusal() is not None
            assert [t for t in again.journal("trades") if t["trade_id"] == ref] == []
        finally:
            await again.stop()

    rig(body, tmp_path, version=version, symbols=("QQQ",))


def test_a_put_exercised_into_short_shares_is_an_unknown_position_to_close_by_hand(
    tmp_path: Path,
) -> None:
    """Held through its expiry close, the put in the money is exercised: IB delivers 100 shares
    a contract, leaving the account short 100 SPY (OCC exercise by exception; no execution is
    reported: QuantConnect/Lean#5880). tradebot never opens a short, so it is not "an exit to
    record": the operator is told to close it by hand, naming symbol, quantity and conId;
    entries on SPY are refused with the rule `position_mismatch` naming the short, even once
    the put's own exit is recorded (`tradebot journal close --price 0`)."""

    async def body(r: Rig) -> None:
        await r.start()
        ref = await open_position(r, "SPY", expiry=date(2025, 7, 1), strategy="whale", right="P")
        await filled(r, ref)
        await r.ctx.book.sync(r.broker, r.now)
        await r.stop()
        r.sim.set_time(NEXT_MORNING)  # through the close of 2025-07-01: exercised
        [shares] = [p for p in r.sim.exchange.positions.values() if p.qty < 0]
        assert shares.qty == -100
        again = await _restart(r)
        try:
            texts = [e["message"] for e in again.events("position_mismatch")]
            [short] = [t for t in texts if "short" in t]
            assert "-100 SPY" in short and f"con_id {shares.contract.con_id}" in short
            assert "close it by hand" in short and "journal close" not in short
            assert any(f"tradebot journal close {ref}" in t for t in texts)  # the put itself
            assert any(e == "critical" and "short" in m for e, m in again.notes)
            assert any("short" in line for line in again.loop.status().urgent)
            await again.stop()
            result = CliRunner().invoke(
                app,
                [
                    "--config", str(again.loaded.path), "journal", "close", ref,
                    "--price", "0", "--reason", "exercised 07-01 (IB statement)",
                    "--time", "2025-07-01T16:00:00-04:00",
                ],
            )  # fmt: skip
            assert result.exit_code == 0, result.output
            third = await _restart(again)
            try:
                assert third.loop.positions.refusal() is None  # the put's exit is recorded
                await third.advance(timedelta(minutes=5))
                await third.tick()
                [refused] = [e for e in third.events("entry_refused") if e["symbol"] == "SPY"]
                assert refused["rule"] == "position_mismatch", refused["message"]
                assert "short position" in refused["message"] and "-100 SPY" in refused["message"]
                assert [e["order_ref"] for e in third.entries()] == [ref]  # nothing new
            finally:
                await third.stop()
        finally:
            await again.stop()

    rig(body, tmp_path, version=178, symbols=("SPY",))


@pytest.mark.parametrize("version", [157, 178])
def test_ibs_own_liquidation_of_a_position_is_not_taken_for_a_fill_of_ours(
    tmp_path: Path, version: int
) -> None:
    """IB sells the position itself (ibkr.info/article/1767): an order of no API client, so no
    execution of ours explains it. The loop, running, sees the position gone; after the grace a
    fill needs to arrive, it refuses entries and names the operator's step; nothing is guessed."""

    async def body(r: Rig) -> None:
        await r.start()
        ref = await open_position(r, "SPY", expiry=date(2025, 7, 7), strategy="whale")
        await filled(r, ref)
        await r.wake()
        assert r.sim.faults.liquidate("SPY") == 1
        await until(lambda: not [p for p in r.broker.conn.require().positions() if p.position])
        await r.advance(timedelta(seconds=30))
        await r.wake()
        assert r.loop.positions.refusal() is None  # within the grace: a fill may be on its way
        assert "SPY" in r.ctx.blocked_symbols
        await r.advance(timedelta(minutes=2))
        await r.wake()
        step = r.loop.positions.refusal()
        assert step is not None and f"tradebot journal close {ref}" in step
        assert [t for t in r.journal("trades") if t["trade_id"] == ref] == []

    rig(body, tmp_path, version=version, symbols=("QQQ",))
