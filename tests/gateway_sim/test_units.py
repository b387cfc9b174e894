"""The simulator's pieces on their own: framing, the clock, text commands, protocol problems."""

from __future__ import annotations

import asyncio
import struct
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tests.gateway_sim.conftest import START, connect, scenario
from tradebot.gateway_sim import GatewaySim, GatewaySimError, SimClock, SimSettings
from tradebot.gateway_sim.clock import parse_moment
from tradebot.gateway_sim.control import execute, parse_step
from tradebot.gateway_sim.framing import (
    Fields,
    Hello,
    ProtocolError,
    encode,
    field_text,
    negotiate,
    split_payload,
)


# -- framing ---------------------------------------------------------------------------------
def test_frames_are_length_prefixed_nul_terminated_fields() -> None:
    frame = encode([9, 1, "abc", None, True, Decimal("1.50"), 2.0])
    (length,) = struct.unpack(">I", frame[:4])
    assert length == len(frame) - 4
    assert frame[4:] == b"9\x001\x00abc\x00\x001\x001.5\x002\x00"
    assert split_payload(frame[4:]) == ["9", "1", "abc", "", "1", "1.5", "2"]


def test_field_text_writes_numbers_plainly() -> None:
    assert field_text(Decimal("620")) == "620"
    assert field_text(Decimal("1E+2")) == "100"
    assert field_text(0.1) == "0.1" and field_text(float("inf")) == "Infinite"
    assert field_text(float("nan")) == "" and field_text(False) == "0"


def test_negotiation_takes_the_highest_common_version() -> None:
    assert negotiate(Hello(157, 178, ""), range(157, 179)) == 178
    assert negotiate(Hello(157, 178, ""), range(157, 158)) == 157
    assert negotiate(Hello(100, 170, ""), range(157, 179)) == 170
    assert negotiate(Hello(180, 190, ""), range(157, 179)) is None


def test_fields_cursor_names_the_request_when_it_ends_early() -> None:
    f = Fields(["1", "", "2.5"], "reqThing")
    assert f.integer() == 1 and f.number() is None and f.number() == Decimal("2.5")
    with pytest.raises(ProtocolError, match="reqThing: the request ended early"):
        f.text()


def test_a_stranger_on_the_port_is_noted_and_the_simulator_carries_on() -> None:
    async def body(sim: GatewaySim) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
        writer.write(b"GET / HTTP/1.1\r\n\r\n")
        await writer.drain()
        assert await reader.read() == b""  # closed on us
        writer.close()
        assert (
            len(sim.protocol_problems) == 1 and "not a TWS API client" in (sim.protocol_problems[0])
        )
        sim.protocol_problems.clear()
        ib = await connect(sim)  # still serving
        ib.client.send(104, 1)  # reqUserInfo: not something the simulator answers
        await asyncio.sleep(0.05)
        assert sim.protocol_problems == ["client 1: request 104 is not supported by the simulator"]
        sim.protocol_problems.clear()
        ib.disconnect()

    scenario(178, body)


# -- clock -----------------------------------------------------------------------------------
def test_clock_runs_at_its_speed_and_can_be_set() -> None:
    now = [100.0]
    clock = SimClock(START, speed=60, monotonic=lambda: now[0])
    now[0] += 2
    assert clock.now() == START + timedelta(minutes=2)
    clock.set_speed(0)
    now[0] += 50
    assert clock.now() == START + timedelta(minutes=2)
    assert clock.advance(timedelta(hours=1)) == START + timedelta(hours=1, minutes=2)
    with pytest.raises(ValueError, match="backward"):
        clock.advance(timedelta(seconds=-1))
    assert not clock.follows_wall_clock and SimClock().follows_wall_clock


def test_start_times_are_a_session_date_or_a_zoned_time() -> None:
    assert parse_moment("2025-07-01", "XNYS") == datetime(2025, 7, 1, 13, 30, tzinfo=UTC)
    assert parse_moment("2025-07-04", "XNYS") == datetime(2025, 7, 4, 13, 30, tzinfo=UTC)
    assert parse_moment("2025-07-01T14:00Z", "XNYS") == datetime(2025, 7, 1, 14, 0, tzinfo=UTC)
    with pytest.raises(ValueError, match="time zone"):
        parse_moment("2025-07-01T14:00", "XNYS")
    with pytest.raises(ValueError, match="ISO"):
        parse_moment("yesterday", "XNYS")
    assert parse_step("90s") == timedelta(seconds=90) and parse_step("2h") == timedelta(hours=2)


def test_settings_are_checked() -> None:
    with pytest.raises(GatewaySimError, match="156"):
        GatewaySim(SimSettings(version=156))

    async def refused() -> None:
        sim = GatewaySim(SimSettings(host="192.0.2.1", port=0), clock=SimClock(START, speed=0))
        with pytest.raises(GatewaySimError, match="--unsafe-bind"):
            await sim.start()

    asyncio.run(refused())


# -- text commands ---------------------------------------------------------------------------
def test_commands_arm_faults_and_answer_in_one_line() -> None:
    sim = GatewaySim(SimSettings(port=0), clock=SimClock(START, speed=0))
    assert execute(sim, "reject no buying power").text.endswith("no buying power")
    assert sim.faults.take_reject(1) == "no buying power"
    assert execute(sim, "md qqq none").text == "market data for QQQ: none"
    assert sim.faults.permission_for("QQQ") == "none"
    assert sim.faults.permission_for("SPY") == "live"
    execute(sim, "pacing 2")
    execute(sim, "rollback-ids 3")
    execute(sim, "notice")
    execute(sim, "cancel-race")
    execute(sim, "stale SPY")
    assert execute(sim, "positions silent").text == "reqPositions is left unanswered"
    assert execute(sim, "open-orders silent").text.startswith("reqAllOpenOrders")
    assert execute(sim, "completed-orders answer").text.endswith("answered again")
    assert not sim.faults.answers("positions") and sim.faults.answers("completed-orders")
    assert execute(sim, "positions sometimes").text == "error: usage: positions silent|answer"
    status = execute(sim, "status").text
    assert "positions requests left unanswered" in status
    assert "pacing violation for 2" in status and "nextValidId 3" in status
    assert "10349" in status and "stale since 2025-07-01 11:00:00 EDT" in status
    assert execute(sim, "clock +30m").text == "clock 2025-07-01 11:30:00 EDT frozen"
    assert execute(sim, "clock set 2025-07-02").text.startswith("clock 2025-07-02 09:30:00 EDT")
    assert execute(sim, "brackets refuse").text.endswith("refused (201)")
    assert sim.exchange.refuse_brackets
    assert execute(sim, "clear").text == "every fault disarmed"
    assert sim.faults.describe() == [] and not sim.exchange.refuse_brackets
    assert execute(sim, "fill 1 2").text == "error: client 1 has no working order 2"
    assert execute(sim, "md SPY sometimes").text.startswith("error: usage")
    assert execute(sim, "frobnicate").text.startswith("error: unknown command")
    assert execute(sim, "drop").text == "dropped 0 connection(s)"
    assert execute(sim, "quit").quit
