"""No option expiring today reaches the close: the event-driven flatten, its retries and alerts.

IB's rules (IBKR Knowledge Base, "Expiration & Corporate Action Related Liquidations",
ibkr.info/article/1767): the clearing house exercises a long option in the money by as little
as $0.01 at expiry — 100 shares a contract, far beyond an options account — and IB may liquidate
expiring positions itself before the close. Expiring options stop trading at the close (16:00,
13:00 on an early close). These tests run the real loop, the real IBKR adapter and the real
ib_async client against the gateway simulator at server versions 157 and 178; timings are
measured at the simulator (the real monotonic time it received or sent each order message).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.brokers.ibkr.conftest import CLIENT_ID, Rig, filled, open_position, rig, until
from tests.market_time_text import utc_shown
from tradebot.cli import app
from tradebot.engine.status_view import loop_report

# Thursday 2025-07-03: the session before Independence Day closes at 13:00 New York (17:00 UTC)
# and every symbol's weekly expires that day (SPY, QQQ, IWM list one every session).
DAY = datetime(2025, 7, 3, 16, 30, tzinfo=UTC)  # 12:30 New York
CLOSE = datetime(2025, 7, 3, 17, 0, tzinfo=UTC)
SYMBOLS = ("SPY", "QQQ", "IWM", "AAPL", "TSLA")


def _trades(r: Rig) -> dict[str, dict[str, object]]:
    return {str(t["trade_id"]): t for t in r.journal("trades")}


async def _bought(r: Rig, symbols: tuple[str, ...]) -> list[str]:
    refs = [await open_position(r, s, expiry=DAY.date()) for s in symbols]
    await filled(r, *refs)
    await r.wake()  # the fills are journaled
    assert len(r.ctx.book.open_positions()) == len(symbols)
    return refs


@pytest.mark.parametrize(("version", "minutes_left"), [(157, 1), (178, 1), (157, 2), (178, 3)])
def test_an_expiring_position_is_sold_before_the_close_with_minutes_left(
    tmp_path: Path, version: int, minutes_left: int
) -> None:
    """A loop that reaches the flatten late (reconnected, restarted) with 1–3 minutes left still
    sells before the close: the sell goes out in the same wake as the legs' cancels."""

    async def body(r: Rig) -> None:
        await r.start()
        [ref] = await _bought(r, ("SPY",))
        r.sim.set_time(CLOSE - timedelta(minutes=minutes_left))
        await r.wake()  # one wake: the legs' cancels, their confirmation and the sell
        assert not r.sim.exchange.positions  # sold at the gateway: nothing for IB to exercise
        await r.advance(timedelta(seconds=5))
        await r.wake()  # the fill and its commission are journaled
        trade = _trades(r)[ref]
        assert trade["exit_reason"] == "flatten"
        exit_time = datetime.fromisoformat(str(trade["exit_time"]).replace("Z", "+00:00"))
        assert exit_time < CLOSE

    rig(body, tmp_path, version=version, start=DAY, symbols=("SPY",))


@pytest.mark.parametrize("version", [157, 178])
def test_five_positions_flatten_in_seconds_each_sell_right_after_its_cancels(
    tmp_path: Path, version: int
) -> None:
    """Before: the sell waited for the next sync, a minute after the cancels. Now each sell
    follows the confirmation of its legs' cancels within the same wake: one wake at the flatten
    time (the simulated clock does not move meanwhile) sends all five, each after its own legs'
    Cancelled and never before. Decided by the order of the messages at the simulator, not by
    how fast this machine is; the wait for the confirmations is only bounded against a hang."""

    async def body(r: Rig) -> None:
        await r.start()
        refs = await _bought(r, SYMBOLS)
        r.loop.exits.confirm_wait_s = 60.0  # the product waits 10 s; here only a hang guard
        r.sim.set_time(CLOSE - timedelta(minutes=10))  # the flatten time
        r.sim.wire.clear()
        await r.wake()
        wire = list(r.sim.wire)
        ids = {ref: r.client_order_id(f"{ref}.sl") for ref in refs}
        tp_ids = {ref: r.client_order_id(f"{ref}.tp") for ref in refs}
        for ref in refs:
            confirmed = [
                n
                for n, w in enumerate(wire)
                if w.what == "orderStatus"
                and w.detail == "Cancelled"
                and w.order_id in (ids[ref], tp_ids[ref])
            ]
            sells = [
                n
                for n, w in enumerate(wire)
                if w.what == "placeOrder" and w.detail.endswith(f"{ref}.x1")
            ]
            assert len(confirmed) == 2 and len(sells) == 1, (ref, confirmed, sells)
            assert wire[sells[0]].detail.startswith("SELL MKT")
            assert max(confirmed) < sells[0]  # after both legs are confirmed cancelled
        await r.advance(timedelta(seconds=5))
        await r.wake()
        trades = _trades(r)
        assert {trades[ref]["exit_reason"] for ref in refs} == {"flatten"}
        assert not r.sim.exchange.positions

    rig(body, tmp_path, version=version, start=DAY, symbols=("SPY",), limit_s=120)


@pytest.mark.parametrize("version", [157, 178])
def test_a_refused_sell_is_retried_as_a_marketable_limit_with_a_critical_alert_each_minute(
    tmp_path: Path, version: int
) -> None:
    """IB refuses the closing sell (201) several times: the loop retries every 15 s — a
    marketable limit after the refused market order — alerts `critical` once a minute, shows
    the position first in the loop's status and in `tradebot status`, and sells it before the
    close once IB accepts."""

    async def body(r: Rig) -> None:
        await r.start()
        [ref] = await _bought(r, ("SPY",))
        r.sim.set_time(CLOSE - timedelta(minutes=10))
        r.sim.faults.reject_next_order("order rejected by IB (simulated)", count=9)
        await r.wake()  # the market sell is refused: alert at once
        status = r.loop.status()
        assert status.urgent and status.urgent[0].startswith(f"EXPIRES TODAY: {ref}")
        assert status.line().startswith("URGENT (1): EXPIRES TODAY")
        report = loop_report(r.loaded, r.now)
        assert report["urgent"] and ref in report["urgent"][0]
        shown = CliRunner().invoke(app, ["--config", str(r.loaded.path), "status"])
        first = shown.stdout.splitlines()[0]
        assert first.startswith("! ") and ref in first  # before anything else
        for _ in range(8):  # two simulated minutes, a wake every 15 s
            assert r.loop.next_wake(r.now) <= r.now + timedelta(seconds=15)
            await r.advance(timedelta(seconds=15))
            await r.wake()
        criticals = [m for e, m in r.notes if e == "critical"]
        assert len(criticals) == 3  # at the refusal, one minute later, two minutes later
        assert all(ref in m for m in criticals)
        assert "min before the 13:00 EDT close" in criticals[0]  # the market's clock, zoned
        assert not utc_shown(criticals)
        exits = [o for o in r.journal() if o["event"] == "intent" and o["role"] == "exit"]
        assert exits[0]["order_type"] == "MKT"
        assert {o["order_type"] for o in exits[1:]} == {"LMT"}
        assert len(exits) == 9  # every one refused so far
        await r.advance(timedelta(seconds=15))
        await r.wake()  # the tenth is accepted, and fills at the bid
        await r.advance(timedelta(seconds=15))
        await r.wake()
        assert _trades(r)[ref]["exit_reason"] == "flatten"
        assert r.loop.status().urgent == []
        assert not r.sim.exchange.positions
        assert len(r.events("expiry_risk")) == 3

    rig(body, tmp_path, version=version, start=DAY, symbols=("SPY",), limit_s=30)


def test_a_disconnected_gateway_near_the_close_is_alerted_every_minute(tmp_path: Path) -> None:
    """Nothing can be sold while the Gateway is away: the operator hears it every minute, and
    the sell goes out as soon as the connection is back."""

    async def body(r: Rig) -> None:
        await r.start()
        [ref] = await _bought(r, ("SPY",))
        r.sim.set_time(CLOSE - timedelta(minutes=5))
        # The reconnection waits 30 s: the loop runs without a Gateway meanwhile.
        r.broker.conn.settings = replace(r.broker.conn.settings, backoff_initial_s=30.0)
        r.sim.faults.drop_connections()
        await until(lambda: not r.broker.is_connected())
        await r.wake()
        await r.advance(timedelta(minutes=1))
        await r.wake()
        criticals = [m for e, m in r.notes if e == "critical"]
        assert len(criticals) == 2 and all("disconnected" in m for m in criticals)
        await r.broker.conn.close()
        await r.broker.connect()
        await r.wake()
        await r.advance(timedelta(seconds=5))
        await r.wake()
        assert _trades(r)[ref]["exit_reason"] == "flatten"

    rig(body, tmp_path, start=DAY, symbols=("SPY",))


def test_a_flatten_closer_than_three_minutes_is_a_named_config_error(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text("[trading]\nflatten_minutes_before_close = 2\n", encoding="utf-8")
    result = CliRunner().invoke(app, ["--config", str(path), "config", "check"])
    assert result.exit_code == 3
    assert "trading.flatten_minutes_before_close: must be at least 3" in result.output
    assert "Traceback" not in result.output


def test_the_flatten_cancels_a_partly_filled_entrys_rest_before_it_sells(tmp_path: Path) -> None:
    """An entry partly filled (2 of 3) when the flatten comes: its unfilled rest is cancelled
    with the legs, and the 2 held are sold — the rest can never fill after the sell."""

    async def body(r: Rig) -> None:
        await r.start()
        ref = await open_position(r, "SPY", expiry=DAY.date(), qty=3, limit=Decimal("0.05"))
        assert r.sim.faults.fill_order(CLIENT_ID, r.client_order_id(ref), qty=2)
        await until(lambda: r.broker.tracker.by_order_ref(ref).filled == 2)  # type: ignore[union-attr]
        r.sim.set_time(CLOSE - timedelta(minutes=10))
        await r.wake()
        parent = r.sim.book.order(CLIENT_ID, r.client_order_id(ref))
        assert parent is not None and parent.status == "Cancelled" and parent.filled == 2
        assert not r.sim.exchange.positions
        [sell] = [o for o in r.venue_orders() if o.order_ref == f"{ref}.x1"]
        assert (sell.action, sell.qty, sell.status) == ("SELL", 2, "Filled")

    rig(body, tmp_path, start=DAY, symbols=("SPY",))


def test_after_a_partial_journal_close_the_rest_of_an_expiring_position_is_still_sold(
    tmp_path: Path,
) -> None:
    """2 contracts expiring today; the operator sells 1 in TWS (another API client here) and
    records it with `tradebot journal close REF --qty 1`, as the position_mismatch alert tells
    them to. The recorded exit `REF.r1` is filled, not a sell still working: the flatten sells
    the other contract before the close (review of fixes1, finding 1)."""
    import subprocess
    import sys

    from ib_async import IB, Contract, MarketOrder

    async def body(r: Rig) -> None:
        await r.start()
        ref = await open_position(r, "SPY", expiry=DAY.date(), qty=2)
        await filled(r, ref)
        await r.wake()
        con_id = r.ctx.book.orders[ref].contract.con_id
        other = IB()  # the operator, in TWS
        await other.connectAsync("127.0.0.1", r.sim.port, clientId=5, timeout=2)
        [option] = await other.qualifyContractsAsync(Contract(conId=con_id, exchange="SMART"))
        manual = other.placeOrder(option, MarketOrder("SELL", 1, tif="DAY"))
        for _ in range(200):
            if manual.isDone():
                break
            await r.advance(timedelta(seconds=1))
        other.disconnect()
        assert [p.qty for p in r.sim.exchange.positions.values()] == [1]
        result = subprocess.run(
            [sys.executable, "-m", "tradebot", "--config", str(r.loaded.path), "journal",
             "close", ref, "--qty", "1", "--price", "5", "--reason", "sold 1 in TWS"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        r.loop.exits.confirm_wait_s = 0.2
        r.sim.set_time(CLOSE - timedelta(minutes=10))  # the flatten
        for _ in range(12):
            await r.wake()
            await r.advance(timedelta(seconds=10))
        assert r.ctx.book.orders[f"{ref}.r1"].status == "filled"
        assert not r.sim.exchange.positions, (
            f"the last contract is still held 8 minutes before its expiry close: "
            f"{[(o.order_ref, o.status) for o in r.venue_orders()]}"
        )
        assert _trades(r)[ref]["qty"] == 2

    rig(body, tmp_path, start=DAY - timedelta(minutes=20), symbols=("SPY",), limit_s=90)
