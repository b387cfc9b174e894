"""The loop's real-time companion, running beside it in the same event loop (never a thread: one
event loop owns the broker):

* notices a `tradebot halt` / `resume` within a second (it watches `state/halt.json` every
  quarter second and wakes the loop, whatever the tick interval);
* writes the heartbeat (`state/heartbeat.json`, atomically, every `monitoring.heartbeat_s`) that
  `tradebot status` reads from another terminal;
* pings systemd's watchdog (`WATCHDOG=1`, every half `WATCHDOG_USEC`) only while the loop makes
  progress: when one wake has been running for longer than the watchdog's period, the pings
  stop and systemd restarts the hung bot;
* feeds the live view at most twice a second.

A simulated clock at full speed has no real time to watch: then the loop checks the halt at each
wake and writes the heartbeat at start and stop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from tradebot.engine.heartbeat import write_heartbeat
from tradebot.engine.status import LoopStatus
from tradebot.notify.systemd import SystemdNotifier

log = logging.getLogger("tradebot.engine")

POLL_S = 0.25
VIEW_EVERY_S = 0.5

View = Callable[[LoopStatus], None]


class Supervised(Protocol):
    """What the supervisor needs of the loop: its published state and a way to wake it."""

    def request_wake(self) -> None: ...
    def stuck_for(self, monotonic_now: float) -> float | None: ...
    def status(self) -> LoopStatus: ...


class Supervisor:
    def __init__(
        self,
        loop: Supervised,
        *,
        state_dir: Path,
        heartbeat_s: float,
        systemd: SystemdNotifier,
        view: View | None = None,
    ) -> None:
        self.loop = loop
        self.heartbeat_s = heartbeat_s
        self.systemd = systemd
        self.view = view
        watchdog = systemd.watchdog_s
        self.ping_every = watchdog / 2 if watchdog else heartbeat_s
        # A wake running longer than this is stuck: stop telling systemd all is well.
        self.stuck_after = watchdog if watchdog else max(30.0, 3 * heartbeat_s)
        self.state_dir = state_dir
        self.halt_path = state_dir / "halt.json"
        self._halt_seen = self._stat()

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.halt_path)
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    async def run(self) -> None:
        # Whatever goes wrong in one round (a full disk for the heartbeat, a view error) is
        # logged and the next round goes on: halt-watching must never stop silently.
        while True:
            try:
                await self._rounds()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the loop's supervisor failed; it starts again")
                await asyncio.sleep(POLL_S)

    async def _rounds(self) -> None:
        next_ping = next_beat = next_view = 0.0
        while True:
            now = time.monotonic()
            seen = self._stat()
            if seen != self._halt_seen:
                self._halt_seen = seen
                self.loop.request_wake()
            stuck = self.loop.stuck_for(now)
            if now >= next_ping:
                next_ping = now + self.ping_every
                if stuck is None or stuck < self.stuck_after:
                    self.systemd.watchdog(self.loop.status().line())
                else:
                    log.error(
                        "the loop has been stuck in one step for %.0f s: no watchdog ping",
                        stuck,
                    )
            if now >= next_beat:
                next_beat = now + self.heartbeat_s
                with contextlib.suppress(OSError):
                    write_heartbeat(self.state_dir, self.loop.status(), running=True)
            if self.view is not None and now >= next_view:
                next_view = now + VIEW_EVERY_S
                self.view(self.loop.status())
            await asyncio.sleep(POLL_S)
