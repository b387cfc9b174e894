"""The loop's clock for a rehearsal against `tradebot gateway sim` (broker.clock = "gateway").

The simulator's clock can start in the past (`--start 2025-07-01`), run at any speed
(`--speed 10`) and jump (`clock +28m`); the loop must see the same "now" as the venue it trades
on, or every quote looks stale or dated in the future. This clock reads the gateway's time
(reqCurrentTime, whole seconds) at every connection and every account read, and — while the
loop sleeps — every few seconds of real time. Between readings it runs at the gateway's pace,
measured from two readings: `now = last anchor + speed × real time since`.

* The speed is measured, not assumed: a reading that the current pace cannot explain (beyond the
  whole-second rounding) starts a new segment. If the segment had one reading the pace was
  wrong (the first guess is real time): it is measured from the two. Otherwise the clock jumped
  (`clock +28m`) or the speed changed: the new segment's pace is measured at the next reading.
* A sleep toward the loop's next wake is cut into slices of at most `slice_s` real seconds with
  a reading after each, so a jump or a new speed is noticed within a slice, and the loop wakes
  at the right simulated moment (the next wake after a jump runs at once).
* It never moves backward (a gateway stepping back is held, not followed).

It can never drive real money by accident: broker.clock = "gateway" is refused by the
configuration with trading.mode = "live", and by the broker at connection unless every account
the gateway manages is a simulator account (DUSIM…). With broker.clock = "local" (the default)
the loop runs on the wall clock and entries wait while the gateway's clock is more than a few
seconds away from it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

log = logging.getLogger("tradebot.brokers.ibkr")

SLICE_S = 5.0  # real seconds between readings while the loop sleeps
ROUNDING_S = 1.0  # reqCurrentTime has whole seconds
MIN_SPAN_S = 1.0  # real seconds between two readings before a pace is measured from them


class GatewayClock:
    simulated = False

    def __init__(
        self,
        wall: Callable[[], datetime] | None = None,
        *,
        slice_s: float = SLICE_S,
    ) -> None:
        self._wall = wall or (lambda: datetime.now(UTC))
        self.slice_s = slice_s
        self.speed = 1.0
        self._segment: list[tuple[datetime, datetime]] = []  # (wall, gateway) readings
        self._last: datetime | None = None
        self.synced = False
        # Reads the gateway's time and calls `follow` (the connection's `refresh_clock`).
        self.source: Callable[[], Awaitable[object]] | None = None

    # -- readings ------------------------------------------------------------------------------
    def follow(self, gateway_time: datetime) -> None:
        """The gateway said it is `gateway_time` now (whole seconds)."""
        wall, moment = self._wall(), gateway_time.astimezone(UTC)
        if not self.synced:
            self._last = None  # the first reading replaces the wall clock read before it
            self._segment = [(wall, moment)]
            self.synced = True
            return
        predicted = self._model(wall)
        error = (moment - predicted).total_seconds()
        span = (wall - self._segment[0][0]).total_seconds()
        if abs(error) <= self._tolerance(wall):
            self._segment.append((wall, moment))
            self._measure()
            return
        if len(self._segment) == 1 and span >= MIN_SPAN_S:
            # One reading so far: the pace guessed for it was wrong; measure it from the two.
            self._segment.append((wall, moment))
            self._measure()
            log.info("the gateway's clock runs at ×%.3g real time", self.speed)
            return
        # A jump (`clock +28m`) or a new speed: start again from this reading.
        log.info(
            "the gateway's clock moved by %+.0f s from where its pace put it; following it",
            error,
        )
        self._segment = [(wall, moment)]

    def _tolerance(self, wall: datetime) -> float:
        """How far a reading may be from the pace's prediction and still fit it: the rounding
        of a reading, plus what the rounding of the two readings the pace was measured from
        makes of the time since (a pace measured over a short span is less sure)."""
        (w0, _), (w1, _) = self._segment[0], self._segment[-1]
        measured = (w1 - w0).total_seconds()
        if measured < MIN_SPAN_S:
            return 2 * ROUNDING_S + 1.0
        since = max(0.0, (wall - w1).total_seconds())
        return ROUNDING_S + 2 * ROUNDING_S * (1 + since / measured) + 1.0

    def _measure(self) -> None:
        (w0, g0), (w1, g1) = self._segment[0], self._segment[-1]
        span = (w1 - w0).total_seconds()
        if span >= MIN_SPAN_S:
            self.speed = max(0.0, (g1 - g0).total_seconds() / span)

    def _model(self, wall: datetime) -> datetime:
        w0, g0 = self._segment[0]
        return g0 + timedelta(seconds=self.speed * (wall - w0).total_seconds())

    # -- the Clock protocol --------------------------------------------------------------------
    def now(self) -> datetime:
        moment = self._model(self._wall()) if self.synced else self._wall()
        if self._last is not None and moment < self._last:
            return self._last  # never backward
        self._last = moment
        return moment

    async def sleep_until(self, when: datetime) -> None:
        """Sleep until the gateway's clock reaches `when`, reading it every `slice_s` seconds."""
        while True:
            remaining = (when - self.now()).total_seconds()
            if remaining <= 0:
                return
            pace = self.speed if self.synced else 1.0
            real = remaining / pace if pace > 0 else math.inf
            await asyncio.sleep(min(real, self.slice_s))
            await self.sync()

    async def sync(self) -> None:
        """Read the gateway's clock now (a failed read keeps the current pace)."""
        if self.source is None:
            return
        try:
            await self.source()
        except Exception as exc:  # disconnected: the loop handles that; time runs on
            log.debug("the gateway's clock was not read: %s", exc)

    def describe(self) -> str:
        pace = "frozen" if self.speed == 0 else f"×{self.speed:.3g}"
        return f"the gateway's clock, {pace}"
