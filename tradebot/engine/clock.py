"""The loop's clock: the wall clock, or a simulated one that a whole session runs on in seconds.

Everything in the loop asks the clock for `now()` and waits with `sleep_until`; nothing reads the
system time directly, so a replay at `--speed max` makes exactly the decisions a real-time run
makes at the same simulated moments.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    simulated: bool

    def now(self) -> datetime: ...

    async def sleep_until(self, when: datetime) -> None: ...

    def describe(self) -> str | None:
        """What a person should know about this clock (None: it is this machine's)."""
        ...


class WallClock:
    """Real time (UTC)."""

    simulated = False

    def now(self) -> datetime:
        return datetime.now(UTC)

    async def sleep_until(self, when: datetime) -> None:
        delay = (when - self.now()).total_seconds()
        if delay > 0:
            await asyncio.sleep(delay)

    def describe(self) -> str | None:
        return None


class SimClock:
    """Simulated time from `start`: `speed` simulated seconds per real second, or None for as
    fast as possible (time jumps straight to the next thing the loop waits for)."""

    simulated = True

    def __init__(self, start: datetime, speed: float | None = None) -> None:
        if start.tzinfo is None:
            raise ValueError("the simulated clock needs a timezone-aware start")
        if speed is not None and not (speed > 0 and math.isfinite(speed)):
            raise ValueError("speed must be a positive finite number, or None for max")
        self._now = start.astimezone(UTC)
        self.speed = speed
        self._actions: list[tuple[datetime, int, Callable[[datetime], None]]] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self._now

    def schedule(self, when: datetime, action: Callable[[datetime], None]) -> None:
        """Run `action(when)` at simulated time `when`, as an operator in another terminal
        would (a `tradebot halt`): a sleep that would pass `when` ends there instead, after the
        action, so the loop wakes right then — as the supervisor wakes it in real time."""
        heapq.heappush(self._actions, (when.astimezone(UTC), next(self._order), action))

    async def sleep_until(self, when: datetime) -> None:
        if self._actions and self._actions[0][0] <= when:
            at, _, action = heapq.heappop(self._actions)
            await self._move_to(max(at, self._now))
            action(self._now)
            return
        await self._move_to(when)

    async def _move_to(self, when: datetime) -> None:
        if when <= self._now:
            await asyncio.sleep(0)
            return
        if self.speed is not None:
            await asyncio.sleep((when - self._now).total_seconds() / self.speed)
        else:
            await asyncio.sleep(0)  # let other tasks (signal handlers, watchers) run
        self._now = max(self._now, when)  # another sleeper may have woken later already

    def describe(self) -> str:
        return "simulated, full speed" if self.speed is None else f"simulated, ×{self.speed:g}"

    def set(self, when: datetime) -> None:
        """Move the clock (tests, and the start of a replay); never backwards."""
        if when < self._now:
            raise ValueError("the simulated clock never goes backwards")
        self._now = when
