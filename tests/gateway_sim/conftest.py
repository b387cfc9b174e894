"""The gateway simulator tests drive the real ib_async client over a real loopback socket.

* `scenario(version, body)` runs `body(sim)` on a fresh simulator (any free port, a frozen
  clock the test moves) inside one event loop, and checks afterwards that the simulator met no
  request it could not read (`protocol_problems`).
* The autouse `no_decoder_errors` fixture fails a test when ib_async logs a decoding problem:
  anything the `ib_async.Decoder` logger reports at ERROR ("Error handling fields …"), and any
  ERROR of `ib_async.wrapper` other than its relay of an IB error message ("Error 201, reqId
  …"), which tests cause on purpose. A message with a wrong field count only shows up there.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from ib_async import IB, Option, Stock

from tradebot.gateway_sim import GatewaySim, SimClock, SimSettings

VERSIONS = (157, 178)
# Tuesday 2025-07-01, 11:00 New York: a regular session with history behind it.
START = datetime(2025, 7, 1, 15, 0, tzinfo=UTC)
RELAYED_IB_ERROR = re.compile(r"^(Error|Warning) -?\d+, reqId -?\d+: ")


class DecoderWatch(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.bad: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        name = record.name
        decoder = name.lower() == "ib_async.decoder"
        if (
            "Error handling fields" in text
            or (decoder and record.levelno >= logging.ERROR)
            or (
                name == "ib_async.wrapper"
                and record.levelno >= logging.ERROR
                and not RELAYED_IB_ERROR.match(text)
            )
        ):
            self.bad.append(f"{name}: {text}")


@pytest.fixture(autouse=True)
def no_decoder_errors() -> Iterator[DecoderWatch]:
    recorder = DecoderWatch()
    logger = logging.getLogger("ib_async")
    logger.addHandler(recorder)
    try:
        yield recorder
    finally:
        logger.removeHandler(recorder)
    assert recorder.bad == [], "ib_async could not decode what the simulator sent"


@pytest.fixture(params=VERSIONS, ids=[f"v{v}" for v in VERSIONS])
def version(request: pytest.FixtureRequest) -> int:
    return int(request.param)


Body = Callable[[GatewaySim], Awaitable[None]]


def scenario(version: int, body: Body, *, start: datetime = START, **settings: Any) -> None:
    """Run `body(sim)` against a fresh simulator in a new event loop (20 s hard limit)."""

    async def main() -> None:
        sim = GatewaySim(
            SimSettings(port=0, version=version, **settings), clock=SimClock(start, speed=0)
        )
        await sim.start()
        try:
            await body(sim)
        finally:
            await sim.stop()
        assert sim.protocol_problems == []

    asyncio.run(asyncio.wait_for(main(), 20))


async def connect(sim: GatewaySim, client_id: int = 1, **kwargs: Any) -> IB:
    ib = IB()
    kwargs.setdefault("timeout", 2)
    kwargs.setdefault("raiseSyncErrors", True)
    await ib.connectAsync("127.0.0.1", sim.port, clientId=client_id, **kwargs)
    return ib


async def until(predicate: Callable[[], object], timeout: float = 2.0) -> None:
    """Wait for the client to have processed what the simulator sent."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting for the client to see it")
        await asyncio.sleep(0.005)


class Errors:
    """Every errorEvent an IB instance receives: (reqId, code, text)."""

    def __init__(self, ib: IB) -> None:
        self.seen: list[tuple[int, int, str]] = []
        ib.errorEvent += self._on_error

    def _on_error(self, req_id: int, code: int, text: str, contract: object) -> None:
        self.seen.append((req_id, code, text))

    def codes(self) -> list[int]:
        return [code for _, code, _ in self.seen]

    def about(self, req_id: int) -> list[int]:
        return [code for r, code, _ in self.seen if r == req_id]


async def spy_stock(ib: IB) -> Stock:
    spy = Stock("SPY", "SMART", "USD")
    await ib.qualifyContractsAsync(spy)
    return spy


async def near_money_call(ib: IB, sim: GatewaySim, above: float = 0.0) -> Option:
    """The first-expiry SPY call at the strike nearest spot × (1 + above), qualified."""
    spot = sim.market.last_price("SPY", sim.clock.now())
    assert spot is not None
    chain = sim.market.chain("SPY", sim.clock.now().date())
    strike = min(chain.strikes, key=lambda k: abs(float(k) - spot * (1 + above)))
    option = Option("SPY", f"{chain.expiries[0]:%Y%m%d}", float(strike), "C", "SMART")
    [qualified] = await ib.qualifyContractsAsync(option)
    assert qualified is not None
    return option
