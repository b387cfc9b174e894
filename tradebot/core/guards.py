"""Account guards before any new entry (spec §5–6): daily loss, halt, the entry window.

Pure functions of numbers, records and an explicit `now`. The caller reads and writes the
persisted parts (start-of-day equity, the day's trip, the halt) through
`tradebot.books.state_store`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from tradebot.core.market_time import market_datetime, market_span

HUNDRED = Decimal(100)


def _usd(value: Decimal) -> str:
    return f"${value:,.2f}"


@dataclass(frozen=True)
class DailyLoss:
    """The daily-loss guard's verdict for one session."""

    session: date
    start_equity: Decimal | None
    equity: Decimal | None
    loss_pct: Decimal | None  # positive = down on the day
    limit_pct: Decimal
    tripped: bool
    tripped_earlier: bool  # a trip recorded earlier this session (it holds until the next one)
    message: str


def daily_loss_guard(
    *,
    session: date,
    start_equity: Decimal | None,
    equity: Decimal | None,
    limit_pct: Decimal,
    recorded_trip_session: date | None,
) -> DailyLoss:
    """Trips when equity has fallen by ≥ `limit_pct` % of start-of-day equity.

    Once tripped, it stays tripped for the rest of that session (a trip recorded for `session`),
    even if equity recovers. Unknown equity is not a trip by itself: the caller refuses entries
    for that reason separately (fail safe), with its own message.
    """
    earlier = recorded_trip_session == session
    loss_pct = None
    if start_equity is not None and equity is not None and start_equity > 0:
        loss_pct = (start_equity - equity) / start_equity * HUNDRED
    now_tripped = loss_pct is not None and loss_pct >= limit_pct
    tripped = earlier or now_tripped
    if loss_pct is None:
        message = "daily loss unknown: start-of-day or current equity is not known"
    else:
        assert start_equity is not None and equity is not None
        moved = (
            "flat"
            if loss_pct == 0
            else f"{'down' if loss_pct > 0 else 'up'} {abs(loss_pct).quantize(Decimal('0.01'))} %"
        )
        change = (
            f"equity {_usd(equity)} vs start-of-day {_usd(start_equity)}: {moved} "
            f"(limit {limit_pct} %)"
        )
        if now_tripped:
            message = f"{change}: no new entries until the next session"
        elif earlier:
            message = (
                f"tripped earlier in the {session} session; {change}: no new entries until the "
                "next session"
            )
        else:
            message = change
    return DailyLoss(session, start_equity, equity, loss_pct, limit_pct, tripped, earlier, message)


@dataclass(frozen=True)
class EntryWindow:
    """Where `now` stands against the session's entry window [open + delay, close − buffer)."""

    session: date | None  # the session whose regular hours contain `now`, if any
    in_window: bool
    window_open: datetime | None  # of the session containing `now`
    window_close: datetime | None
    next_window_open: datetime | None  # the next time entries may start (None = in window now)
    next_session_open: datetime | None  # the entry window's start in the next session
    message: str


def entry_window(
    now: datetime,
    sessions: list[tuple[date, datetime, datetime]],
    *,
    open_delay_minutes: int,
    close_buffer_minutes: int,
) -> EntryWindow:
    """Entry window at `now`, given upcoming sessions as (date, open, close) in UTC, in order.

    `sessions` must start with the session that contains `now` or the next one after it.
    """
    delay = timedelta(minutes=open_delay_minutes)
    buffer = timedelta(minutes=close_buffer_minutes)
    current = None
    for day, opens, closes in sessions:
        if opens <= now < closes:
            current = (day, opens, closes)
            break
    nxt = next(
        (
            opens + delay
            for _, opens, closes in sessions
            if opens + delay > now and closes - buffer > opens + delay
        ),
        None,
    )
    following = next(
        (
            opens + delay
            for day, opens, _ in sessions
            if (current is None or day > current[0]) and opens + delay > now
        ),
        None,
    )
    if current is not None:
        day, opens, closes = current
        w_open, w_close = opens + delay, closes - buffer
        if w_open <= now < w_close:
            return EntryWindow(
                day,
                True,
                w_open,
                w_close,
                None,
                following,
                f"inside the {day} entry window ({market_span(w_open, w_close)})",
            )
        why = (
            f"within the first {open_delay_minutes} minutes after the open"
            if now < w_open
            else f"within the last {close_buffer_minutes} minutes before the close"
        )
        return EntryWindow(
            day,
            False,
            w_open,
            w_close,
            nxt,
            following,
            f"{why} of the {day} session; next entries from "
            + (market_datetime(nxt) if nxt else "the next session"),
        )
    return EntryWindow(
        None,
        False,
        None,
        None,
        nxt,
        following,
        "the market is closed; next entries from "
        + (market_datetime(nxt) if nxt else "the next session"),
    )


@dataclass(frozen=True)
class Halt:
    """The operator's kill switch as persisted."""

    halted: bool
    since: datetime | None = None
    operator: str | None = None
    reason: str | None = None
    flatten: bool = False

    def message(self) -> str:
        if not self.halted:
            return "not halted"
        since = f" since {market_datetime(self.since)}" if self.since else ""
        who = f" by {self.operator}" if self.operator else ""
        why = f": {self.reason}" if self.reason else ""
        return f"halted{since}{who}{why}; `tradebot resume` lifts it"
