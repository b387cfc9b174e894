"""The gateway simulator's control and decoder are bounded (issue 18, item 7).

The audit: `clock set 9999-12-31T23:59Z` or `clock speed 1e308` made every time step raise;
`clock set 0001-01-01T00:00Z` was accepted and disconnected the clients; `clock +99999999999d`
dropped the control connection; fuzzed fields (`inf`, `1e400`, 5,000-digit numbers, out-of-range
dates) gave 40 unhandled-exception tracebacks and dropped connections instead of an API error;
each half-sent 4 MiB frame was buffered with no limit on connections (60 connections →
+241 MiB). Now every control value is range-checked, a request whose fields cannot be read is
answered with error 321 ("Error validating request", as IB answers a request it cannot
validate — TWS API error codes, https://interactivebrokers.github.io/tws-api/message_codes.html)
on a connection that stays up, and frames, their completion time and connections are capped.
Other clients are unaffected throughout.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from ib_async import ExecutionFilter, LimitOrder

from tests.gateway_sim.conftest import (
    START,
    Errors,
    connect,
    near_money_call,
    scenario,
    spy_stock,
    until,
)
from tradebot.gateway_sim import GatewaySim, SimClock, SimSettings, framing
from tradebot.gateway_sim import requests as rq
from tradebot.gateway_sim import server as server_module
from tradebot.gateway_sim.control import execute, serve_control

GREETING = framing.HELLO + len(b"v157..178").to_bytes(4, "big") + b"v157..178"
BAD_CONTROL = [
    "clock set 9999-12-31T23:59Z",
    "clock set 0001-01-01T00:00Z",
    "clock speed 1e308",
    "clock speed inf",
    "clock speed nan",
    "clock speed -1",
    "clock +99999999999d",
    "clock +" + "9" * 5000 + "s",
    "pacing 99999999999999999999999",
    "cancel-race " + "9" * 5000,
    "rollback-ids 99999999999999",
    "notice 1e400 text",
    "notice 99999999999999999999 text",
    "fill 99999999999999999999 1",
    "error 1 1 " + "9" * 5000 + " text",
    "drop 99999999999999999999999",
]


@pytest.mark.parametrize("line", BAD_CONTROL, ids=range(len(BAD_CONTROL)))
def test_a_control_value_out_of_range_is_an_error_line_and_changes_nothing(line: str) -> None:
    sim = GatewaySim(SimSettings(port=0), clock=SimClock(START, speed=0))
    before = sim.clock.now(), sim.clock.speed
    reply = execute(sim, line)
    assert reply.text.startswith("error: "), reply.text
    assert len(reply.text) < 300
    assert (sim.clock.now(), sim.clock.speed) == before
    sim.step()  # time still steps
    assert "faults: none armed" in execute(sim, "status").text


def test_the_clock_stops_at_its_bounds_instead_of_overflowing() -> None:
    """The fastest allowed speed, run for a long real time, never leaves the years tradebot
    reads: every step still works."""
    real = [0.0]
    clock = SimClock(START, speed=1_000_000, monotonic=lambda: real[0])
    real[0] = 10**9  # a million simulated seconds per second, for 30 years of real time
    assert clock.now().year <= 2200
    sim = GatewaySim(SimSettings(port=0), clock=clock)
    sim.step()


def test_the_control_connection_survives_bad_commands_and_a_client_is_unaffected() -> None:
    async def body(sim: GatewaySim) -> None:
        ib = await connect(sim)
        control = await serve_control(sim, 0, lambda: None)
        port = control.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for line in BAD_CONTROL:
                writer.write(line.encode() + b"\n")
                await writer.drain()
                reply = await asyncio.wait_for(reader.readline(), 5)
                assert reply.startswith(b"error: "), (line, reply)
            writer.write(b"clock\n")
            await writer.drain()
            assert (await reader.readline()).startswith(b"clock 2025-07-01")
            assert sim.clock.now() == START
        finally:
            writer.close()
            control.close()
            await control.wait_closed()
        sim.step()
        assert ib.isConnected()
        assert (await ib.reqCurrentTimeAsync()).year == 2025
        ib.disconnect()

    scenario(178, body)


FUZZ = ["inf", "-inf", "nan", "1e400", "9" * 5000, "-" + "9" * 30, "99991231 23:59:59",
        "00010101 00:00:00", "20250701 25:61:61", ""]  # fmt: skip


def test_fuzzed_fields_are_answered_with_an_api_error_and_the_connection_stays(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def body(sim: GatewaySim) -> None:
        good = await connect(sim, 1)
        bad = await connect(sim, 2)
        errors = Errors(bad)
        ids = sorted(set(sim._handlers) - {rq.START_API})
        for value in FUZZ:
            for msg_id in ids:
                for width in (3, 12, 40):
                    bad.client.send(msg_id, *([value] * width))
            await asyncio.sleep(0.02)
            assert bad.isConnected(), f"dropped after {value[:20]!r}"
        await asyncio.sleep(0.1)
        assert bad.isConnected() and good.isConnected()
        assert 321 in errors.codes()
        assert (await good.reqCurrentTimeAsync()).year == 2025  # the other client: unaffected
        assert (await bad.reqCurrentTimeAsync()).year == 2025  # and this one still served
        sim.protocol_problems.clear()  # expected: every one of them was a bad request
        good.disconnect()
        bad.disconnect()

    with caplog.at_level(logging.WARNING, logger="tradebot.gateway_sim"):
        scenario(178, body)
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert tracebacks == [], tracebacks[0].getMessage() if tracebacks else ""


async def _raw_client(sim: GatewaySim, client_id: int) -> tuple[asyncio.StreamReader, Any]:
    """A bare TWS API connection (no ib_async pacing): hello, version, startApi."""
    reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
    writer.write(GREETING)
    await framing.read_frame(reader)
    writer.write(framing.encode([rq.START_API, 2, client_id, ""]))
    await writer.drain()
    return reader, writer


async def _drain(reader: asyncio.StreamReader, seen: list[list[str]]) -> None:
    while (payload := await framing.read_frame(reader)) is not None:
        seen.append(framing.split_payload(payload))


def test_each_field_of_real_requests_fuzzed_gets_an_api_error_never_a_dropped_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Real requests as ib_async sends them (recorded at the simulator), then each field in
    turn replaced by each hostile value and sent again on a bare connection."""

    async def body(sim: GatewaySim) -> None:
        recorded: list[list[str]] = []
        dispatch = sim._dispatch

        def recording(session: Any, fields: list[str]) -> None:
            recorded.append(list(fields))
            dispatch(session, fields)

        sim._dispatch = recording  # type: ignore[method-assign]
        good = await connect(sim, 1)
        spy = await spy_stock(good)
        call = await near_money_call(good, sim)
        await good.reqSecDefOptParamsAsync("SPY", "", "STK", spy.conId)
        await good.reqHistoricalDataAsync(spy, "", "1800 S", "1 min", "TRADES", True)
        ticker = good.reqMktData(call)
        await until(lambda: ticker.bid == ticker.bid and ticker.bid > 0)
        trade = good.placeOrder(call, LimitOrder("BUY", 1, 0.05, orderRef="fz-1"))
        await until(lambda: trade.orderStatus.status in ("Submitted", "PreSubmitted"))
        good.cancelOrder(trade.order)
        await good.reqExecutionsAsync(ExecutionFilter(time="20250701 00:00:00"))
        await good.accountSummaryAsync()
        await good.reqCompletedOrdersAsync(False)
        sim._dispatch = dispatch  # type: ignore[method-assign]
        requests = [r for r in recorded if int(r[0]) != rq.START_API]
        assert len({r[0] for r in requests}) >= 8
        reader, writer = await _raw_client(sim, 2)
        replies: list[list[str]] = []
        drain = asyncio.create_task(_drain(reader, replies))
        sent = 0
        for fields in requests:
            for i in range(1, len(fields)):
                for value in FUZZ:
                    mutated = [*fields[:i], value, *fields[i + 1 :]]
                    writer.write(framing.encode(mutated))
                    sent += 1
            await writer.drain()
            await asyncio.sleep(0)
        writer.write(framing.encode([rq.REQ_CURRENT_TIME, 1]))  # answered after all the rest
        await until(lambda: drain.done() or any(r[:1] == ["49"] for r in replies), 15)
        assert not drain.done(), "the fuzzed connection was dropped"
        assert any(r[:1] == ["4"] and "321" in r for r in replies)  # error messages came back
        assert (await good.reqCurrentTimeAsync()).year == 2025  # the other client: unaffected
        assert sent > 500
        drain.cancel()
        writer.close()
        sim.protocol_problems.clear()
        good.disconnect()

    with caplog.at_level(logging.WARNING, logger="tradebot.gateway_sim"):
        scenario(178, body)
    tracebacks = [r for r in caplog.records if r.exc_info]
    assert tracebacks == [], tracebacks[0].getMessage() if tracebacks else ""


async def _closed_by_server(reader: asyncio.StreamReader) -> None:
    """Read until the server closes (an end of stream, or a reset when it left data unread)."""
    try:
        while await asyncio.wait_for(reader.read(1 << 16), 3):
            pass
    except ConnectionResetError:
        pass


def test_frames_and_connections_are_capped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(framing, "FRAME_TIMEOUT", 0.5)
    monkeypatch.setattr(framing, "HELLO_TIMEOUT", 0.5)
    monkeypatch.setattr(server_module, "MAX_CONNECTIONS", 8)

    async def body(sim: GatewaySim) -> None:
        good = await connect(sim, 1)
        # A frame larger than the cap closes its connection at once.
        r1, w1 = await asyncio.open_connection("127.0.0.1", sim.port)
        w1.write(GREETING)
        w1.write((framing.MAX_FRAME + 1).to_bytes(4, "big") + b"x" * 1000)
        await w1.drain()
        await _closed_by_server(r1)
        # Silent and half-sent connections: the ones past the cap are closed at once, the rest
        # when they have not finished their frame (or said hello) in time.
        conns = []
        for i in range(40):
            r, w = await asyncio.open_connection("127.0.0.1", sim.port)
            if i % 2:
                w.write(GREETING)
                w.write((framing.MAX_FRAME).to_bytes(4, "big") + b"y" * 100)
                await w.drain()
            conns.append((r, w))
        assert (await good.reqCurrentTimeAsync()).year == 2025  # unaffected meanwhile
        for r, _w in conns:
            await _closed_by_server(r)
        for _r, w in conns:
            w.close()
        w1.close()
        other = await connect(sim, 3)  # slots are free again
        assert other.isConnected() and good.isConnected()
        sim.protocol_problems.clear()
        other.disconnect()
        good.disconnect()

    scenario(178, body)


def test_the_frame_cap_is_far_below_the_old_4_mib() -> None:
    assert framing.MAX_FRAME <= 256 * 1024
    assert server_module.MAX_CONNECTIONS <= 64
