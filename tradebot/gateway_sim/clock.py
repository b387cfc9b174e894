"""The simulator's clock: simulated time that starts somewhere and runs at some speed.

Everything the simulator says about time (fills, bars, quotes, `reqCurrentTime`, execution
times) reads this clock, never the wall clock directly, so an operator can rehearse a morning
from last July at ten times real speed and a test can freeze time and step it exactly.

`speed` is simulated seconds per real second: 1 follows real time, 0 freezes the clock (tests
move it with `set` and `advance`), 60 runs a simulated minute every real second.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

# The years the simulator can serve (calendars, bars, option expiries all live in them): a clock
# set outside is refused, and a fast clock stops at the end instead of overflowing.
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
MAX_SPEED = 1_000_000.0  # simulated seconds per real second (as `tradebot run --speed`)


def check_speed(speed: float) -> float:
    """`speed` when it is a number in 0 … MAX_SPEED; ValueError otherwise."""
    if not 0 <= speed <= MAX_SPEED:  # also false for NaN
        raise ValueError(f"speed must be a number from 0 to {MAX_SPEED:g}, got {speed:g}")
    return float(speed)


def check_moment(moment: datetime) -> datetime:
    """`moment` as UTC when it is within EARLIEST … LATEST; ValueError otherwise."""
    moment = _utc(moment)
    if not EARLIEST <= moment <= LATEST:
        raise ValueError(
            f"{moment:%Y-%m-%dT%H:%MZ} is outside the simulator's years "
            f"{EARLIEST.year}-{LATEST.year - 1}"
        )
    return moment


class SimClock:
    """Simulated UTC time = start + (real seconds since start) × speed."""

    def __init__(
        self,
        start: datetime | None = None,
        speed: float = 1.0,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monotonic = monotonic
        self.speed = check_speed(speed)
        self.follows_wall_clock = start is None and speed == 1.0
        self._anchor = check_moment(start) if start is not None else datetime.now(UTC)
        self._anchor_real = monotonic()

    def now(self) -> datetime:
        elapsed = (self._monotonic() - self._anchor_real) * self.speed
        # A fast clock left running stops at LATEST: never a time no step can handle.
        left = (LATEST - self._anchor).total_seconds()
        return self._anchor + timedelta(seconds=min(elapsed, left))

    def set(self, moment: datetime) -> None:
        """Jump to `moment` (tests, or an operator's `clock` command); the speed is kept.
        ValueError outside EARLIEST … LATEST (nothing changes)."""
        self._anchor = check_moment(moment)
        self._anchor_real = self._monotonic()
        self.follows_wall_clock = False

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock forward by `delta` (never backward) and return the new time."""
        if delta < timedelta(0):
            raise ValueError("the simulated clock never runs backward")
        if delta > LATEST - self.now():
            raise ValueError(f"that step would take the clock past {LATEST:%Y-%m-%d}")
        self.set(self.now() + delta)
        return self.now()

    def set_speed(self, speed: float) -> None:
        check_speed(speed)
        now = self.now()
        self.speed = speed
        self.set(now)

    def describe(self) -> str:
        speed = "frozen" if self.speed == 0 else f"×{self.speed:g}"
        from tradebot.core.market_time import market_datetime

        return f"{market_datetime(self.now(), seconds=True)} {speed}"


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("the simulated clock needs a timezone-aware time")
    return moment.astimezone(UTC)


def parse_moment(text: str, calendar: str) -> datetime:
    """`--start` and `clock set`: an ISO date (that session's open, or 09:30 New York on a day
    without a session) or an ISO date-time with a zone ('Z' for UTC). ValueError otherwise."""
    from tradebot.core.sessions import session_open_close
    from tradebot.core.trades import EXCHANGE_TZ

    text = text.strip()
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            try:
                return session_open_close(day, calendar)[0]
            except ValueError:
                opening = datetime(day.year, day.month, day.day, 9, 30, tzinfo=EXCHANGE_TZ)
                return opening.astimezone(UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{text!r} is not an ISO date or date-time (e.g. 2025-07-01 or 2025-07-01T14:00Z)"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} needs a time zone (e.g. a trailing Z for UTC)")
    return moment.astimezone(UTC)
