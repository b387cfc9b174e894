"""The loop's clock for a rehearsal against `tradebot gateway sim` (broker.clock = "gateway").

The simulator's clock can start in the past (`--start 2025-07-01`) and run at any speed; the
loop must see the same "now" as the venue it trades on, or every quote looks stale. This clock
is the wall clock plus the offset the gateway reported (reqCurrentTime) at the last
connection and at every account read (once per tick); it never moves backward.

It can never drive real money by accident: broker.clock = "gateway" is refused by the
configuration with trading.mode = "live", and by the broker at connection unless every account
the gateway manages is a simulator account (DUSIM…). With broker.clock = "local" (the default)
the loop runs on the wall clock and entries wait while the gateway's clock is more than a few
seconds away from it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta


class GatewayClock:
    simulated = False

    def __init__(self, wall: Callable[[], datetime] | None = None) -> None:
        self._wall = wall or (lambda: datetime.now(UTC))
        self._offset = timedelta(0)
        self._last: datetime | None = None
        self.synced = False

    def follow(self, gateway_time: datetime) -> None:
        """The gateway said it is `gateway_time` now (whole seconds: keep sub-second drift)."""
        offset = gateway_time.astimezone(UTC) - self._wall()
        if not self.synced:
            self._last = None  # the first sync replaces the wall clock read before it
        if not self.synced or abs((offset - self._offset).total_seconds()) >= 1.0:
            self._offset = offset
        self.synced = True

    def now(self) -> datetime:
        moment = self._wall() + self._offset
        if self._last is not None and moment < self._last:
            return self._last  # never backward (a gateway stepping back is held, not followed)
        self._last = moment
        return moment

    async def sleep_until(self, when: datetime) -> None:
        delay = (when - self.now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)
