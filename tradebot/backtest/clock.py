"""The backtest's clock: the loop's simulated clock with a place to act between two wakes.

`TradingLoop` sleeps on its clock between wakes; at full speed `SimClock.sleep_until` simply
moves time to the wake the loop asked for. `BacktestClock` first runs its hooks at the moment
the wake ended (the progress bar), and counts the wakes. Which wakes the loop leaves out is the
loop's own decision (`tradebot.engine.wake_plan`), the same in `tradebot run`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Protocol

from tradebot.engine.clock import SimClock


class Skipper(Protocol):
    def target(self, now: datetime, when: datetime) -> datetime:
        """Where the clock may jump instead of `when` (≥ `when`)."""
        ...


class BacktestClock(SimClock):
    """As fast as possible, with hooks between wakes and an optional skipper."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start, None)
        self.between_wakes: list[Callable[[datetime], None]] = []
        self.skipper: Skipper | None = None
        self.sleeps = 0

    async def sleep_until(self, when: datetime) -> None:
        now = self.now()
        self.sleeps += 1
        for hook in self.between_wakes:
            hook(now)
        if self.skipper is not None and when > now:
            when = max(when, self.skipper.target(now, when))
        await super().sleep_until(when)
