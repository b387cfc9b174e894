"""The connection's life against the gateway simulator: 326, 1100/1101/1102, the restart
window, clock skew, and the checks that keep real money safe at connect."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from ib_async import IB

from tests.brokers.ibkr.conftest import CLIENT_ID, Rig, filled, rig, until
from tests.market_time_text import utc_shown
from tradebot.brokers.ibkr.broker import IbkrBroker
from tradebot.brokers.ibkr.settings import IbkrSettings
from tradebot.core.market_time import market_clock
from tradebot.errors import GatewayUnreachableError, RefusedError


def test_a_client_id_in_use_is_a_clear_error(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        other = IB()
        await other.connectAsync("127.0.0.1", r.sim.port, clientId=CLIENT_ID, timeout=2)
        with pytest.raises(GatewayUnreachableError) as refused:
            await r.broker.connect()
        message = refused.value.message
        assert f"refused client id {CLIENT_ID}" in message and "(error 326)" in message
        assert "set broker.client_id to a free number" in message
        assert refused.value.exit_code == 5
        other.disconnect()
        await r.broker.connect()  # the id is free again
        assert r.broker.is_connected()

    rig(body, tmp_path)


def test_reconnect_retries_while_the_client_id_is_still_held(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        generation = r.broker.generation
        r.sim.faults.drop_connections()
        await until(lambda: not r.broker.is_connected())
        # Another program grabs the id before we are back (as a half-dead socket would).
        other = IB()
        await other.connectAsync("127.0.0.1", r.sim.port, clientId=CLIENT_ID, timeout=2)
        await until(lambda: "326" in r.broker.conn.last_problem, timeout=3)
        paused = r.broker.entries_paused(r.now)
        assert paused is not None and f"refused client id {CLIENT_ID}" in paused
        # When it was lost, as an operator reads it in the status, the events and alerts.
        lost = r.broker.conn.lost_at
        assert lost is not None
        assert f"was lost at {market_clock(lost, seconds=True)}; reconnecting" in paused
        assert not utc_shown([paused]), paused
        other.disconnect()
        await until(lambda: r.broker.generation > generation, timeout=3)  # same id, back
        assert r.broker.entries_paused(r.now) is None

    rig(body, tmp_path)


def test_connectivity_lost_pauses_entries_and_data_lost_resubscribes(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        await r.tick()  # quotes are subscribed for the candidates
        session = r.sim.sessions[CLIENT_ID]
        lines = len(session.streams)
        assert lines > 0
        generation = r.broker.generation
        r.sim.faults.connectivity_lost()
        await until(lambda: r.broker.conn.outage_since is not None)
        paused = r.broker.entries_paused(r.now)
        assert paused is not None and "(error 1100)" in paused
        outage = r.broker.conn.outage_since
        assert outage is not None
        assert f"(error 1100) at {market_clock(outage, seconds=True)};" in paused
        assert not utc_shown([paused]), paused
        await r.tick()  # the loop journals the pause: its message is what the operator reads
        [event] = r.events("entries_paused")
        assert "(error 1100)" in event["message"] and not utc_shown([event["message"]])
        assert not utc_shown(message for _, message in r.notes)
        r.sim.faults.connectivity_restored(data_lost=True)  # 1101: subscriptions are gone
        await until(lambda: r.broker.generation > generation)
        assert len(session.streams) == lines  # requested again
        assert r.broker.entries_paused(r.now) is None
        await r.wake()  # a new generation: reconciled again
        generation = r.broker.generation
        r.sim.faults.connectivity_lost()
        r.sim.faults.connectivity_restored()  # 1102: kept; orders re-read, reconcile again
        await until(lambda: r.broker.generation > generation)
        assert len(session.streams) == lines
        await r.wake()
        assert len(r.events("reconciled")) == 3

    rig(body, tmp_path)


def test_entries_wait_inside_the_gateway_restart_window(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        paused = r.broker.entries_paused(r.now)
        assert paused is not None and "10:55–11:10 America/New_York" in paused
        await r.tick()
        assert r.entries() == [] and r.venue_orders() == []
        [blocked, *_] = r.events("entry_refused")
        assert "broker: inside the gateway's daily restart window" in blocked["message"]
        assert r.broker.entries_paused(r.now + timedelta(minutes=10)) is None

    rig(body, tmp_path, broker='restart_window = "10:55-11:10"')


def test_a_clock_far_from_the_gateways_pauses_entries(tmp_path: Path) -> None:
    async def body(r: Rig) -> None:
        settings = IbkrSettings.from_config(r.loaded.settings)
        broker = IbkrBroker(settings, r.loaded.state_dir, lambda: r.now + timedelta(hours=1))
        await broker.connect()
        try:
            paused = broker.entries_paused(r.now)
            assert paused is not None and "differs from tradebot's by -3600 s" in paused
            assert "broker.clock = 'gateway'" in paused  # the simulator: say how to rehearse
        finally:
            await broker.disconnect()

    rig(body, tmp_path)


@pytest.mark.parametrize(
    ("account", "mode", "broker", "message"),
    [
        ("U7654321", "paper", "", "a live account (real money)"),
        ("DU7654321", "live", "", "logged in to the paper account DU7654321"),
        ("DU7654321", "paper", 'clock = "gateway"', "broker.clock = 'gateway' only follows"),
    ],
    ids=["paper-on-live", "live-on-paper", "gateway-clock-on-ib"],
)
def test_the_account_must_match_the_mode_and_the_clock(
    tmp_path: Path, account: str, mode: str, broker: str, message: str
) -> None:
    async def body(r: Rig) -> None:
        with pytest.raises(RefusedError) as refused:
            await r.broker.connect()
        assert message in refused.value.message
        assert not r.broker.is_connected()
        await until(lambda: r.sim.sessions == {})  # the connection was closed

    extra = ""
    if mode == "live":
        extra = '\n[phase]\ninitial = "proof"\n'
    rig(body, tmp_path, account=account, mode=mode, broker=broker, extra=extra)


def test_while_reconnecting_the_loop_reads_what_is_known_and_sends_nothing(
    tmp_path: Path,
) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        r.sim.faults.refuse_brackets(True)  # the entry goes alone, its legs are emulated
        await r.tick()
        ref = "SPY-250701-s1"
        r.sim.faults.fill_order(CLIENT_ID, r.client_order_id(ref))
        await filled(r, ref)
        await r.advance(timedelta(minutes=1))
        await r.wake()
        before = await r.broker.account()
        held = await r.broker.positions()
        assert [p.qty for p in held] == [1]
        # The gateway goes away for good (a weekly re-login waiting on the phone).
        r.sim.faults.drop_connections()
        await until(lambda: not r.broker.is_connected())
        await r.sim.stop()
        now = r.now
        # Everything the loop may call mid-wake answers without raising: the last known
        # state, no quote, and a cancel that is not sent.
        assert [o.order_ref for o in await r.broker.orders()] == [ref]
        assert len(await r.broker.executions(now - timedelta(days=1))) == 1
        assert await r.broker.positions() == held
        assert await r.broker.account() == before  # with its own (older) time
        entry = r.ctx.book.orders[ref]
        assert await r.broker.quotes([entry.contract]) == [None]
        await r.broker.cancel(ref)
        await r.loop.oco.poll(now)  # the emulated legs wait for a quote
        await r.wake()  # skipped: not connected
        assert "the connection to IB Gateway" in (r.broker.entries_paused(now) or "")

    rig(body, tmp_path, symbols=("SPY",))


def test_the_account_summary_fallback_never_runs_out_of_subscriptions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without NetLiquidation in the account updates, equity comes from an account summary;
    IB allows two open summary subscriptions per client (error 322 beyond), so each one is
    cancelled once read, and the fifth reading is as fresh as the first."""

    async def body(r: Rig) -> None:
        await r.broker.connect()
        ib = r.broker.conn.require()
        try:
            for _ in range(5):
                ib.wrapper.accountValues.clear()  # as if IB had sent no account updates
                snapshot = await r.broker.account()
                assert snapshot.net_liquidation == 10000
                assert snapshot.time == r.now  # read now, not an older reading reused
                await r.advance(timedelta(minutes=1))
            await until(lambda: all(s.summaries == {} for s in r.sim.sessions.values()))
        finally:
            await r.broker.disconnect()

    rig(body, tmp_path)
    assert "account not read" not in caplog.text


def test_a_reconnection_to_another_account_is_refused(tmp_path: Path) -> None:
    """The Gateway logged in to another paper account while tradebot was reconnecting: this
    run's journal and positions belong to the first account; it never trades the other."""

    async def body(r: Rig) -> None:
        await r.start()
        first = r.broker.conn.account
        generation = r.broker.generation
        r.sim.exchange.account = "DU7654321"
        r.sim.faults.drop_connections()
        await until(lambda: "DU7654321" in (r.broker.conn.last_problem or ""), timeout=10)
        assert not r.broker.is_connected()
        assert r.broker.generation == generation
        assert f"this run trades {first}" in (r.broker.conn.last_problem or "")
        r.sim.exchange.account = first  # logged back in: trading resumes
        await until(r.broker.is_connected, timeout=10)
        await r.stop()

    rig(body, tmp_path)  # the rig reconnects within 0.1 s
