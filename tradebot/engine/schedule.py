"""When the loop wakes (spec §6), from the exchange calendar: a pure plan per session.

* open: the first look of the session (start-of-day equity is recorded then);
* ticks: every `interval_s` from open + `open_delay_minutes` while before close −
  `close_buffer_minutes` (the entry window, so holidays and 13:00 closes are respected);
* flatten: close − `flatten_minutes_before_close` (scalp positions are closed);
* close: the session is over (end-of-day records, expiries have settled).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from tradebot.books.session_calendar import calendar_sessions
from tradebot.core.trades import session_of


@dataclass(frozen=True)
class SessionPlan:
    session: date
    opens: datetime
    closes: datetime
    window_open: datetime
    window_close: datetime
    flatten_at: datetime
    interval: timedelta

    def tick_at_or_after(self, t: datetime) -> datetime | None:
        """The first tick time ≥ `t`, or None when no tick is left in this session."""
        if t >= self.window_close:
            return None
        if t <= self.window_open:
            return self.window_open if self.window_open < self.window_close else None
        steps = -(-(t - self.window_open) // self.interval)  # ceiling division
        tick = self.window_open + steps * self.interval
        return tick if tick < self.window_close else None

    def tick_at_or_before(self, t: datetime) -> datetime | None:
        """The last tick time ≤ `t`, or None before the first one."""
        if t < self.window_open or self.window_open >= self.window_close:
            return None
        steps = (min(t, self.window_close - timedelta(microseconds=1)) - self.window_open) // (
            self.interval
        )
        return self.window_open + steps * self.interval

    def ticks(self) -> list[datetime]:
        out = []
        t = self.tick_at_or_after(self.window_open)
        while t is not None:
            out.append(t)
            t = self.tick_at_or_after(t + timedelta(microseconds=1))
        return out

    def in_session(self, t: datetime) -> bool:
        return self.opens <= t < self.closes


def session_plan(
    session: date,
    calendar: str,
    *,
    interval_s: int,
    open_delay_minutes: int,
    close_buffer_minutes: int,
    flatten_minutes: int,
    state_dir: Path | None = None,
) -> SessionPlan:
    """The plan of `session` (ValueError when it is not one); with a `state_dir`, from its
    cached copy of the calendar when valid (`tradebot.books.session_calendar`)."""
    opens, closes = calendar_sessions(calendar, state_dir).open_close(session)
    return SessionPlan(
        session=session,
        opens=opens,
        closes=closes,
        window_open=opens + timedelta(minutes=open_delay_minutes),
        window_close=closes - timedelta(minutes=close_buffer_minutes),
        flatten_at=closes - timedelta(minutes=flatten_minutes),
        interval=timedelta(seconds=interval_s),
    )


def current_or_next_session(now: datetime, calendar: str, state_dir: Path | None = None) -> date:
    """The session whose close is after `now` (today's, or the next one)."""
    sessions = calendar_sessions(calendar, state_dir)
    for day in sessions.between(session_of(now), session_of(now) + timedelta(days=10)):
        if sessions.open_close(day)[1] > now:
            return day
    raise ValueError(f"no {calendar} session in the ten days after {session_of(now)}")
