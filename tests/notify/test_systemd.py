"""sd_notify from the loop over a real unix datagram socket, as systemd would receive it."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.engine.harness import config
from tradebot.brokers.sim import SimBroker
from tradebot.config import LoadedConfig
from tradebot.engine.loop import TradingLoop
from tradebot.engine.runner import RunOptions, make_clock, make_context
from tradebot.notify.systemd import SystemdNotifier


class Listener:
    """The receiving end, read by a thread as systemd would (the loop's sends never wait, so a
    receiver that falls behind would lose pings rather than stall the loop)."""

    def __init__(self, address: str | bytes) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(address)
        self.sock.settimeout(0.02)
        self.messages: list[tuple[float, list[str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._pump, daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.messages.append((time.monotonic(), data.decode().split("\n")))

    def drain(self) -> list[tuple[float, list[str]]]:
        with self._lock:
            return list(self.messages)

    def lines(self) -> list[str]:
        time.sleep(0.1)  # what was sent has been read
        return [line for _, lines in self.drain() for line in lines]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    made = Listener(str(tmp_path / "notify.sock"))
    yield made
    made.close()


async def _watch(listener: Listener, seconds: float) -> None:
    """Let the loop run while the listener's thread receives (each datagram gets its arrival
    time there)."""
    del listener
    await asyncio.sleep(seconds)


def _loop(
    loaded: LoadedConfig,
    start: str,
    speed: float,
    systemd: SystemdNotifier,
    *,
    minutes: int = 30,
) -> TradingLoop:
    options = RunOptions(speed=speed, start=datetime.fromisoformat(start), simulated=True)
    clock = make_clock(loaded, options)
    ctx = make_context(loaded, options, clock, lambda e, m: None)
    return TradingLoop(ctx, until=clock.now() + timedelta(minutes=minutes), systemd=systemd)


def test_ready_watchdog_status_and_stopping(tmp_path: Path, listener: Listener) -> None:
    loaded = config(tmp_path)
    notifier = SystemdNotifier(
        {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "200000"}
    )
    # 30 simulated minutes at 1,200× ≈ 1.5 s of real time: several watchdog periods.
    loop = _loop(loaded, "2025-07-01T14:00:00+00:00", 1200, notifier)
    asyncio.run(loop.run())
    lines = listener.lines()
    assert lines[0] == "READY=1" and lines[1].startswith("STATUS=")
    assert lines.count("WATCHDOG=1") >= 3
    assert any(line.startswith("STATUS=ok · experience") for line in lines)
    assert lines[-2:] == ["STOPPING=1", "STATUS=stopping (until)"]
    assert lines.index("READY=1") < lines.index("WATCHDOG=1")


def test_abstract_socket_names_are_supported() -> None:
    name = f"tradebot-test-{uuid.uuid4().hex}"
    listener = Listener(b"\0" + name.encode())
    try:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": f"@{name}"})
        assert notifier.ready("up")
        assert listener.lines() == ["READY=1", "STATUS=up"]
    finally:
        listener.close()


def test_without_notify_socket_nothing_is_sent() -> None:
    notifier = SystemdNotifier({})
    assert not notifier.enabled and not notifier.ready("x")


class StuckBroker(SimBroker):
    """A broker whose next request never returns once `stuck` is set (a hung request). The
    event-driven loop asks the broker only when something can happen, so whichever request
    comes first hangs: the account, the order list or the executions."""

    stuck = False
    hung_at: float | None = None

    async def _hang(self) -> None:
        if self.stuck:
            StuckBroker.hung_at = time.monotonic()
            await asyncio.Event().wait()

    async def account(self):  # type: ignore[no-untyped-def]
        await self._hang()
        return await super().account()

    async def orders(self, since=None):  # type: ignore[no-untyped-def]
        await self._hang()
        return await super().orders(since)

    async def executions(self, since):  # type: ignore[no-untyped-def]
        await self._hang()
        return await super().executions(since)


def test_a_stuck_step_stops_the_watchdog_pings(tmp_path: Path, listener: Listener) -> None:
    loaded = config(tmp_path)
    notifier = SystemdNotifier(
        {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "300000"}
    )
    loop = _loop(loaded, "2025-07-01T14:00:00+00:00", 600, notifier, minutes=360)
    broker = loop.ctx.broker
    assert isinstance(broker, SimBroker)
    broker.__class__ = StuckBroker

    async def scenario() -> tuple[int, int]:
        task = asyncio.create_task(loop.run())
        await _watch(listener, 1.0)  # healthy: pings flow
        healthy_pings = sum(1 for line in listener.lines() if line == "WATCHDOG=1")
        StuckBroker.stuck = True  # the next tick hangs in account()
        for _ in range(600):  # wait for the hang to begin (a loaded machine is slow)
            await _watch(listener, 0.05)
            if StuckBroker.hung_at is not None:
                break
        assert StuckBroker.hung_at is not None
        await _watch(listener, 1.5)
        # Pings stop once the step has run for the watchdog period (0.3 s), checked every
        # quarter second: none may arrive later than that.
        silent_from = StuckBroker.hung_at + 0.3 + 0.25 + 0.1
        pings_after = [
            t for t, lines in listener.drain() if "WATCHDOG=1" in lines and t > silent_from
        ]
        loop.stop.set()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return healthy_pings, len(pings_after)

    try:
        healthy, after = asyncio.run(scenario())
    finally:
        StuckBroker.stuck = False
        StuckBroker.hung_at = None
    assert healthy >= 2
    assert after == 0


def test_a_receiver_that_does_not_read_never_blocks_the_sender(tmp_path: Path) -> None:
    """A full notify socket (systemd busy) drops pings instead of stalling the trading loop."""
    deaf = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    deaf.bind(str(tmp_path / "deaf.sock"))
    try:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "deaf.sock")})
        began = time.monotonic()
        assert notifier.watchdog("ok")  # the first gets through
        # Until the receiver's queue is full (10 datagrams by Linux's default): then dropped.
        dropped = next(i for i in range(100_000) if not notifier.watchdog("ok"))
        assert dropped >= 1 and time.monotonic() - began < 10
    finally:
        deaf.close()
