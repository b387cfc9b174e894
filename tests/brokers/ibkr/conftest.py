"""The IBKR adapter against the gateway simulator, over loopback, with the real ib_async client.

* `rig(body, ...)` runs `body(rig)` in one event loop: a fresh `GatewaySim` (frozen clock, moved
  by the test), a config in `tmp_path` with broker.kind = "ibkr", the real `IbkrBroker` and the
  real trading loop (`TradingLoop`) on a clock that reads the simulator's. It checks afterwards
  that the simulator met no request it could not read.
* `ThreadedSim` runs a simulator in a background thread, for tests that run the CLI itself
  (`tradebot run --once`, `tradebot gateway test`) in the test's thread.
* Every test fails on an ib_async decoder error (the gateway simulator's autouse fixture).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.gateway_sim.conftest import START, no_decoder_errors, until
from tradebot.brokers.ibkr.broker import IbkrBroker
from tradebot.brokers.ibkr.settings import IbkrSettings
from tradebot.config import LoadedConfig, load_config
from tradebot.engine.context import EngineContext, build_context
from tradebot.engine.loop import TradingLoop
from tradebot.gateway_sim import GatewaySim, SimClock, SimSettings

__all__ = ["START", "no_decoder_errors", "until"]

T = TypeVar("T")
CLIENT_ID = 17
# 11:00 New York on 2025-07-01: with the default seed the scalp strategy buys SPY and TSLA
# options at this tick (SPY's stop 1.245 rounds up to 1.25; TSLA's options have a 0.05 tick).
SYMBOLS = ("SPY", "TSLA")


def config_text(
    port: int,
    symbols: tuple[str, ...] = SYMBOLS,
    extra: str = "",
    *,
    broker: str = "",
    mode: str = "paper",
) -> str:
    return f"""
[broker]
kind = "ibkr"
port = {port}
client_id = {CLIENT_ID}
timeout_s = 2
{broker}

[trading]
mode = "{mode}"
symbols = {json.dumps(list(symbols))}
max_concurrent_symbols = 4

[strategies.whale]
enabled = false

[phase.experience]
position_cap_usd = 500
{extra}
"""


def write_config(tmp_path: Path, port: int, **kwargs: Any) -> LoadedConfig:
    path = tmp_path / "config.toml"
    path.write_text(config_text(port, **kwargs), encoding="utf-8")
    return load_config(path)


class SimTime:
    """The loop's clock in these tests: the simulator's own clock."""

    simulated = True

    def __init__(self, sim: GatewaySim) -> None:
        self.sim = sim

    def now(self) -> datetime:
        return self.sim.clock.now()

    async def sleep_until(self, when: datetime) -> None:
        if when > self.now():
            self.sim.set_time(when)
        await asyncio.sleep(0)


async def filled(r: Rig, *refs: str, timeout: float = 10.0, with_commissions: bool = True) -> None:
    """Wait until IB has said each order `ref` is filled *and* the client holds the fills with
    their commissions: IB sends orderStatus, execDetails and commissionReport as separate
    messages, and a loaded machine can read the status before the rest (a sync in between
    would journal nothing yet). `with_commissions=False` for a test of a commission IB never
    reports."""

    def done() -> bool:
        for ref in refs:
            order = r.broker.tracker.by_order_ref(ref)
            if order is None or order.status != "filled":
                return False
            mine = [
                e
                for e in r.broker.tracker.executions(datetime.min.replace(tzinfo=UTC))
                if e.report.order_ref == ref
            ]
            if sum(e.report.qty for e in mine) < order.filled or (
                with_commissions and any(e.commission is None for e in mine)
            ):
                return False
        return True

    await until(done, timeout=timeout)


@dataclass
class Rig:
    sim: GatewaySim
    loaded: LoadedConfig
    clock: SimTime
    broker: IbkrBroker
    ctx: EngineContext
    loop: TradingLoop
    notes: list[tuple[str, str]] = field(default_factory=list)

    @property
    def now(self) -> datetime:
        return self.clock.now()

    async def start(self) -> None:
        """What `tradebot run` does first: connect, reconcile."""
        await self.broker.connect()
        await self.loop.reconcile(self.now)
        self.loop._generation = self.broker.generation

    async def tick(self) -> None:
        await self.loop.wake(self.now, force_tick=True)

    async def wake(self) -> None:
        await self.loop.wake(self.now)

    async def advance(self, delta: timedelta) -> None:
        self.sim.advance(delta)
        await asyncio.sleep(0.02)  # let the client read what the simulator sent

    async def stop(self) -> None:
        await self.broker.disconnect()

    def journal(self, name: str = "orders") -> list[dict[str, Any]]:
        path = self.loaded.logs_dir / "journal" / f"{name}.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def events(self, event: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.journal("events") if event is None or e["event"] == event]

    def statuses(self, ref: str) -> list[str]:
        return [
            str(r.get("status"))
            for r in self.journal()
            if r["order_ref"] == ref and r["event"] in ("submitted", "status")
        ]

    def entries(self) -> list[dict[str, Any]]:
        return [r for r in self.journal() if r["event"] == "intent" and r["role"] == "entry"]

    def venue_orders(self) -> list[Any]:
        return sorted(self.sim.exchange.orders.values(), key=lambda o: o.order_id)

    def client_order_id(self, ref: str) -> int:
        """Our order id of the simulator's order with this orderRef (the latest one)."""
        for venue_id, order in sorted(self.sim.exchange.orders.items(), reverse=True):
            if order.order_ref == ref:
                return self.sim.book.owners[venue_id][1]
        raise AssertionError(f"no order {ref} at the simulator")


def make_rig(sim: GatewaySim, loaded: LoadedConfig) -> Rig:
    clock = SimTime(sim)
    notes: list[tuple[str, str]] = []

    def notify(event: str, message: str) -> None:
        notes.append((event, message))

    settings = IbkrSettings.from_config(loaded.settings, backoff_initial_s=0.02, backoff_cap_s=0.1)
    broker = IbkrBroker(settings, loaded.state_dir, clock.now, notify=notify)
    ctx = build_context(loaded, broker, clock, notify)
    return Rig(sim, loaded, clock, broker, ctx, TradingLoop(ctx), notes)


Body = Callable[[Rig], Awaitable[None]]


def rig(
    body: Body,
    tmp_path: Path,
    *,
    version: int = 178,
    start: datetime = START,
    symbols: tuple[str, ...] = SYMBOLS,
    extra: str = "",
    broker: str = "",
    mode: str = "paper",
    limit_s: float = 20,
    **sim_settings: Any,
) -> None:
    """Run `body(rig)` against a fresh simulator in a new event loop."""

    async def main() -> None:
        sim = GatewaySim(
            SimSettings(port=0, version=version, **sim_settings), clock=SimClock(start, speed=0)
        )
        await sim.start()
        loaded = write_config(
            tmp_path, sim.port, symbols=symbols, extra=extra, broker=broker, mode=mode
        )
        r = make_rig(sim, loaded)
        try:
            await body(r)
        finally:
            await r.stop()
            await sim.stop()
        assert sim.protocol_problems == []

    with host_zone(zone_of_this_test()):
        asyncio.run(asyncio.wait_for(main(), limit_s))


# The machine's own time zone must never matter: IB sends some times without a zone, which
# ib_async reads in the host's zone (ib_async#230). Every rig test runs under one of these,
# chosen by its name (so the IBKR suite covers them all in one run, at no extra cost);
# `make test-tz` runs the whole IBKR suite under each.
HOST_ZONES = ("UTC", "America/New_York", "Asia/Tokyo")


def zone_of_this_test() -> str:
    forced = os.environ.get("TEST_HOST_TZ")
    if forced:
        return forced
    name = os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0]
    return HOST_ZONES[zlib.crc32(name.encode()) % len(HOST_ZONES)]


@contextmanager
def host_zone(name: str) -> Iterator[None]:
    """Run with the process's local time zone set to `name` (TZ + tzset)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


class ThreadedSim:
    """A gateway simulator on its own event loop in a background thread."""

    def __init__(
        self, start: datetime = START, speed: float = 0, version: int = 178, **settings: Any
    ) -> None:
        # The CLI under test points the "tradebot" loggers at streams it closes when it returns;
        # the simulator's own log lines stay out of them.
        self._logger = logging.getLogger("tradebot.gateway_sim")
        self._propagate = self._logger.propagate
        self._logger.propagate = False
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def make() -> GatewaySim:
            sim = GatewaySim(
                SimSettings(port=0, version=version, **settings),
                clock=SimClock(start, speed=speed),
            )
            await sim.start()
            return sim

        self.sim = self.run(make())

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        async def go() -> T:
            return fn(*args)

        return self.run(go())

    @property
    def port(self) -> int:
        return self.sim.port

    def stop(self) -> None:
        try:
            self.run(self.sim.stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            self.loop.close()
            self._logger.propagate = self._propagate


@pytest.fixture
def threaded_sim() -> Iterator[ThreadedSim]:
    sim = ThreadedSim()
    try:
        yield sim
    finally:
        sim.stop()
    assert sim.sim.protocol_problems == []


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


async def open_position(
    r: Rig,
    symbol: str,
    *,
    expiry: date | None = None,
    qty: int = 1,
    strategy: str = "scalp",
    take_profit_pct: int = 900,
    stop_loss_pct: int = 95,
    limit: Decimal | None = None,
    right: str = "C",
) -> str:
    """A call (or with `right="P"` a put) in the money bought at the ask with wide legs (they
    never trigger in these tests), journaled and sent exactly as the entry pipeline does
    (intents first, then the native bracket), for tests about what happens to a position, not
    about the signals that open one."""
    from tradebot.brokers.base import BracketSpec
    from tradebot.core.instruments import OptionContract
    from tradebot.core.sizing import bracket_prices
    from tradebot.core.trades import session_of
    from tradebot.engine.order_book import TrackedOrder

    now = r.now
    book = r.ctx.book
    chain = await r.broker.option_chain(symbol)
    expiry = expiry or chain.expiries[0]
    spot = r.sim.market.last_price(symbol, now)
    assert spot is not None
    # 2 % in the money: worth its intrinsic value to the close, so the wide legs stay quiet.
    moneyness = 0.98 if right == "C" else 1.02
    strike = min(chain.strikes, key=lambda k: abs(float(k) - spot * moneyness))
    [contract] = await r.broker.qualify([OptionContract(symbol, expiry, strike, right)])
    assert contract is not None
    [quote] = await r.broker.quotes([contract])
    assert quote is not None and quote.ask > 0
    prices = bracket_prices(
        quote.ask, contract.tick, Decimal(take_profit_pct), Decimal(stop_loss_pct)
    )
    ref = book.next_entry_ref(symbol, session_of(now), strategy)
    common: dict[str, Any] = {
        "symbol": symbol,
        "strategy": strategy,
        "contract": contract,
        "session": session_of(now),
        "mode": r.ctx.record_mode,
        "phase": "experience",
        "intent_ts": now,
        "stop_loss_pct": Decimal(stop_loss_pct),
    }
    entry = TrackedOrder(
        ref=ref, role="entry", action="BUY", qty=qty, order_type="LMT", tif="DAY",
        limit=quote.ask if limit is None else limit, **common,
    )  # fmt: skip
    take_profit = TrackedOrder(
        ref=f"{ref}.tp", role="take_profit", action="SELL", qty=qty, order_type="LMT",
        tif="GTC", limit=prices.take_profit, parent_ref=ref, **common,
    )  # fmt: skip
    stop_loss = TrackedOrder(
        ref=f"{ref}.sl", role="stop_loss", action="SELL", qty=qty, order_type="STP",
        tif="GTC", stop=prices.stop_loss, parent_ref=ref, **common,
    )  # fmt: skip
    for order in (entry, take_profit, stop_loss):
        book.add_intent(now, order)
    placed = await r.broker.place_bracket(
        BracketSpec(entry.spec(), take_profit.spec(), stop_loss.spec())
    )
    for p in placed:
        book.mark_submitted(now, p.order_ref, p.order_id, p.perm_id, p.status)
    return ref


FLEX_TOKEN = "1234567890123456789012"  # a made-up Flex Web Service token
FLEX_QUERY = "987654"
DATA = Path(__file__).parent / "data"


class FlexServer:
    """IB's Flex Web Service on loopback, in its two steps: SendRequest answers a reference code
    and the GetStatement URL; GetStatement answers "statement generation in progress" (1019)
    once, then the statement (a fixture file). IB_FLEXREPORT_URL points tradebot at it."""

    def __init__(self, statement: Path) -> None:
        import http.server
        import urllib.parse

        self.statement = statement.read_bytes()
        self.requests: list[dict[str, str]] = []
        self.gate = threading.Event()  # cleared: the statement waits (IB can take minutes)
        self.gate.set()
        self.served = 0  # statements delivered
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(url.query))
                server.requests.append({"path": url.path, **query})
                if query.get("t") != FLEX_TOKEN:
                    body = _flex_error("1012", "Token has expired.")
                elif url.path.endswith("SendRequest"):
                    body = (
                        "<FlexStatementResponse timestamp='02 July, 2025 09:55 AM EDT'>"
                        "<Status>Success</Status><ReferenceCode>4455667788</ReferenceCode>"
                        f"<Url>http://127.0.0.1:{server.port}/GetStatement</Url>"
                        "</FlexStatementResponse>"
                    ).encode()
                elif sum(1 for r in server.requests if r["path"].endswith("GetStatement")) == 1:
                    body = _flex_error(
                        "1019", "Statement generation in progress. Please try again shortly."
                    )
                else:
                    server.gate.wait(30)
                    body = server.statement
                    server.served += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/SendRequest?"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _flex_error(code: str, text: str) -> bytes:
    return (
        "<FlexStatementResponse timestamp='02 July, 2025 09:55 AM EDT'><Status>Warn</Status>"
        f"<ErrorCode>{code}</ErrorCode><ErrorMessage>{text}</ErrorMessage>"
        "</FlexStatementResponse>"
    ).encode()


@pytest.fixture
def flex_server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FlexServer]:
    from tradebot.brokers.ibkr import flex

    server = FlexServer(DATA / "flex-stop-filled.xml")
    monkeypatch.setenv("IB_FLEXREPORT_URL", server.url)
    monkeypatch.setattr(flex, "POLL_WAIT_S", 0.01)
    try:
        yield server
    finally:
        server.close()
