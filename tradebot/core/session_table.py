"""An exchange calendar's sessions as plain data: the same answers as `tradebot.core.sessions`,
without pandas, numpy or exchange_calendars (issue 19, item 6).

A `SessionTable` is a copy of one exchange_calendars schedule (sessions from
`sessions.CALENDAR_START` to the calendar's last session): session dates as proleptic ordinals,
open/close (and lunch-break) times in seconds from the day's 00:00 UTC, queried with `bisect`.
It is built from exchange_calendars (`sessions.session_table`) and handed around as data; this
module does no I/O (the edge keeps a copy on disk: `tradebot.books.session_calendar`).

It answers only what its copy decides. A question that reaches past its last session raises
`NotCovered`, and the caller asks exchange_calendars instead: a newer calendar knows sessions
the copy never saw, so the copy never guesses. Days before its first session need no such care:
exchange_calendars is built from the same fixed start, so it knows nothing earlier either.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property

DEFAULT_CALENDAR = "XNYS"
# Sessions before this date are not needed by a bot trading today; a fixed start keeps the
# calendar deterministic (it does not move with the clock).
CALENDAR_START = "1990-01-01"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.date().toordinal()
_DAY_S = 86_400
_SECOND = timedelta(seconds=1)


class NotCovered(LookupError):
    """The table cannot answer: the question reaches past its last session."""


@dataclass(frozen=True, eq=False)
class SessionTable:
    """Sessions of calendar `name`, ascending, with their open and close.

    Times are seconds after 00:00 UTC of the session's date (the same few numbers recur, which
    keeps the copy on disk small and quick to read); `open_close` turns them into UTC instants.
    `break_starts`/`break_ends` hold a lunch break per session (None for a session without one)
    where the calendar has breaks at all, else they are None.
    """

    name: str
    days: Sequence[int]  # date.toordinal() of each session, strictly ascending
    opens: Sequence[int]
    closes: Sequence[int]
    break_starts: Sequence[int | None] | None = None
    break_ends: Sequence[int | None] | None = None

    def __post_init__(self) -> None:
        n = len(self.days)
        if n == 0:
            raise ValueError("a session table needs at least one session")
        if len(self.opens) != n or len(self.closes) != n:
            raise ValueError("days, opens and closes must have one entry per session")
        if (self.break_starts is None) != (self.break_ends is None):
            raise ValueError("break starts and ends go together")
        if self.break_starts is not None and (
            len(self.break_starts) != n or len(self.break_ends or ()) != n
        ):
            raise ValueError("break starts and ends need one entry per session")

    @property
    def first(self) -> date:
        return date.fromordinal(self.days[0])

    @property
    def last(self) -> date:
        return date.fromordinal(self.days[-1])

    def epoch_s(self, i: int, offset: int) -> int:
        """UTC epoch seconds of `offset` seconds after 00:00 UTC of session `i`'s date."""
        return (self.days[i] - _EPOCH_ORDINAL) * _DAY_S + offset

    @cached_property
    def _open_epochs(self) -> list[int]:
        # Built the first time `session_at` needs them: commands only ask by date.
        return [self.epoch_s(i, o) for i, o in enumerate(self.opens)]

    # -- the questions, as tradebot.core.sessions answers them ------------------------------
    def is_session(self, day: date) -> bool:
        """True when `day` is a session (NotCovered past the last session)."""
        n = self._ordinal(day)
        i = bisect.bisect_left(self.days, n)
        return i < len(self.days) and self.days[i] == n

    def open_close(self, day: date) -> tuple[datetime, datetime]:
        """(open, close) of session `day` as UTC datetimes; ValueError when it is not a session."""
        n = self._ordinal(day)
        i = bisect.bisect_left(self.days, n)
        if i >= len(self.days) or self.days[i] != n:
            raise ValueError(f"{day} is not a {self.name} session")
        return _utc(self.epoch_s(i, self.opens[i])), _utc(self.epoch_s(i, self.closes[i]))

    def between(self, start: date, end: date) -> list[date]:
        """The sessions from `start` to `end`, both inclusive, in order."""
        hi_day = self._ordinal(end)
        lo = bisect.bisect_left(self.days, _plain(start).toordinal())
        hi = bisect.bisect_right(self.days, hi_day)
        return [date.fromordinal(d) for d in self.days[lo:hi]]

    def previous(self, day: date, count: int) -> list[date]:
        """The `count` sessions strictly before `day` (oldest first); fewer near the start."""
        hi = bisect.bisect_left(self.days, self._ordinal(day))
        return [date.fromordinal(d) for d in self.days[max(0, hi - count) : hi]]

    def next_session(self, day: date) -> date:
        """The first session strictly after `day`."""
        i = bisect.bisect_right(self.days, self._ordinal(day))
        if i >= len(self.days):
            raise NotCovered(f"no {self.name} session after {day} in the table")
        return date.fromordinal(self.days[i])

    def session_at(self, moment: datetime) -> date | None:
        """The session whose [open, close) holds `moment` (tz-aware), or None outside RTH."""
        if moment.tzinfo is None:
            raise ValueError("moment must be timezone-aware")
        # Opens and closes are whole seconds, so the floor of `moment` compares exactly.
        t = (moment - _EPOCH) // _SECOND
        last = len(self.days) - 1
        if t < self._open_epochs[0] or t >= self.epoch_s(last, self.closes[last]):
            raise NotCovered(f"{moment} is outside the table's sessions")
        i = bisect.bisect_right(self._open_epochs, t) - 1
        if not t < self.epoch_s(i, self.closes[i]):
            return None
        if self.break_starts is not None and self.break_ends is not None:
            start, end = self.break_starts[i], self.break_ends[i]
            if (
                start is not None
                and end is not None
                and (self.epoch_s(i, start) <= t < self.epoch_s(i, end))
            ):
                return None
        return date.fromordinal(self.days[i])

    def _ordinal(self, day: date) -> int:
        n = _plain(day).toordinal()
        if n > self.days[-1]:
            raise NotCovered(f"{day} is after the table's last {self.name} session ({self.last})")
        return n


def _plain(day: date) -> date:
    if isinstance(day, datetime):
        raise ValueError("a session is a date, not a datetime")
    return day


def _utc(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)
