"""Account guards before any new entry (spec §5–6): daily loss, halt, the entry window.

Pure functions of numbers, records and an explicit `now`. The caller reads and writes the
persisted parts (start-of-day equity, the day's trip, the halt) through
`tradebot.books.state_store`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext
from typing import Any

from tradebot.core.market_time import market_datetime, market_span

HUNDRED = Decimal(100)
CENT = Decimal("0.01")
SHOWN_MARKS = 5  # positions whose marks a message lists (all of them are in the record)


def _usd(value: Decimal) -> str:
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def pct_text(value: Decimal, against: Decimal, places: int = 2) -> str:
    """`value` % with at least `places` decimals, and as many more as it takes not to read the
    same as `against` (a loss of 5.0004 % shows as "5.0004 %" beside a 5 % limit, never as
    "5.00 % > 5 %"). Rounding never puts the shown number on the other side of `against`."""
    shown = value.quantize(Decimal(1).scaleb(-places))
    if value != against:
        for p in range(places, 13):
            q = Decimal(1).scaleb(-p)
            shown = value.quantize(q)
            if shown != against.quantize(q):
                break
    return f"{shown} %"


@dataclass(frozen=True)
class PositionMark:
    """An open position as an equity reading valued it."""

    ref: str  # the entry's order ref
    contract: str
    qty: int
    multiplier: int
    entry_price: Decimal  # average fill price per share
    mark: Decimal | None  # the price it was valued at (None: no quote, valued at 0)

    @property
    def value(self) -> Decimal:
        return (self.mark or Decimal(0)) * self.qty * self.multiplier

    @property
    def unrealized(self) -> Decimal | None:
        """Against the entry price, before commissions."""
        if self.mark is None:
            return None
        return (self.mark - self.entry_price) * self.qty * self.multiplier

    def as_record(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "contract": self.contract,
            "qty": self.qty,
            "multiplier": self.multiplier,
            "entry_price": self.entry_price,
            "mark": self.mark,
            "value": self.value,
            "unrealized": self.unrealized,
        }


@dataclass(frozen=True)
class MarkedEquity:
    """The broker's equity at one moment and what it is made of: cash plus every open position
    at its mark (for the simulated broker exactly the marks its net liquidation used)."""

    equity: Decimal
    source: str
    cash: Decimal | None = None
    positions: tuple[PositionMark, ...] = ()
    at: datetime | None = None


@dataclass(frozen=True)
class DayLoss:
    """Today's equity change against the session's start-of-day equity, with every input, so
    that a decision made on it (the daily-loss guard, the automatic downgrade) can be recomputed
    by hand: loss = start-of-day equity − equity; loss % = loss ÷ start-of-day equity × 100.

    The equity is marked (open positions at their quote) when it is the broker's reading."""

    start_equity: Decimal
    current_equity: Decimal
    start_source: str = ""
    equity_source: str = ""
    realized_today: Decimal | None = None  # closed trades of today's session (the journal)
    cash: Decimal | None = None
    positions: tuple[PositionMark, ...] = ()
    at: datetime | None = None  # when the equity was read

    @classmethod
    def of(
        cls,
        start_equity: Decimal,
        start_source: str,
        reading: MarkedEquity,
        realized_today: Decimal | None,
    ) -> DayLoss:
        return cls(
            start_equity,
            reading.equity,
            start_source,
            reading.source,
            realized_today,
            reading.cash,
            reading.positions,
            reading.at,
        )

    @property
    def loss_usd(self) -> Decimal:
        return self.start_equity - self.current_equity

    @property
    def loss_pct(self) -> Decimal:
        """Loss as a percent of start-of-day equity (negative when up on the day), exact to 28
        significant digits."""
        if self.start_equity <= 0:
            return Decimal(0)
        with localcontext() as ctx:
            ctx.prec = 28
            return self.loss_usd * HUNDRED / self.start_equity

    def breakdown(self) -> str:
        """What the equity is made of, e.g. "cash $9,300.00 + 1 position marked at $199.00;
        realized today -$421.00" (empty when nothing is known beyond the figure)."""
        parts = []
        if self.cash is not None:
            held = len(self.positions)
            marked = sum((p.value for p in self.positions), Decimal(0))
            each = ", ".join(
                f"{p.ref} {p.qty} × {'no quote' if p.mark is None else p.mark}"
                for p in self.positions[:SHOWN_MARKS]
            )
            if held > SHOWN_MARKS:
                each += f", {held - SHOWN_MARKS} more in the record"
            parts.append(
                f"cash {_usd(self.cash)} + {held} position{'' if held == 1 else 's'} marked at "
                f"{_usd(marked)}" + (f" ({each})" if each else "")
            )
        if self.realized_today is not None:
            parts.append(f"realized today {_usd(self.realized_today)}")
        return "; ".join(parts)

    def describe(self, limit_pct: Decimal) -> str:
        """E.g. "$501.00 = 5.01 % of start-of-day equity $10,000.00 (equity $9,499.00: cash
        $9,300.00 + 1 position marked at $199.00; realized today -$421.00)"."""
        detail = self.breakdown()
        return (
            f"{_usd(self.loss_usd)} = {pct_text(self.loss_pct, limit_pct)} of start-of-day equity "
            f"{_usd(self.start_equity)} (equity {_usd(self.current_equity)}"
            + (f": {detail})" if detail else ")")
        )

    def as_record(self) -> dict[str, Any]:
        """The inputs as journaled (money exact; the % to 6 decimal places)."""
        return {
            "start_of_day_equity": self.start_equity,
            "start_source": self.start_source,
            "equity": self.current_equity,
            "equity_source": self.equity_source,
            "equity_at": self.at,
            "cash": self.cash,
            "positions": [p.as_record() for p in self.positions],
            "realized_pnl_today": self.realized_today,
            "loss_usd": self.loss_usd,
            "loss_pct": self.loss_pct.quantize(Decimal("0.000001")),
        }


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
    inputs: DayLoss | None = None  # every number the verdict used, when known


def daily_loss_guard(
    *,
    session: date,
    start_equity: Decimal | None,
    equity: Decimal | None,
    limit_pct: Decimal,
    recorded_trip_session: date | None,
    inputs: DayLoss | None = None,
) -> DailyLoss:
    """Trips when equity has fallen by ≥ `limit_pct` % of start-of-day equity.

    Once tripped, it stays tripped for the rest of that session (a trip recorded for `session`),
    even if equity recovers. Unknown equity is not a trip by itself: the caller refuses entries
    for that reason separately (fail safe), with its own message. `inputs` (the same start and
    equity, with what the equity is made of) puts every number into the message.
    """
    earlier = recorded_trip_session == session
    loss_pct = None
    if start_equity is not None and equity is not None and start_equity > 0:
        loss_pct = DayLoss(start_equity, equity).loss_pct
    now_tripped = loss_pct is not None and loss_pct >= limit_pct
    tripped = earlier or now_tripped
    if loss_pct is None:
        message = "daily loss unknown: start-of-day or current equity is not known"
    else:
        assert start_equity is not None and equity is not None
        moved = (
            "flat"
            if loss_pct == 0
            else f"{'down' if loss_pct > 0 else 'up'} {pct_text(abs(loss_pct), limit_pct)}"
        )
        detail = inputs.breakdown() if inputs is not None else ""
        change = (
            f"equity {_usd(equity)} vs start-of-day {_usd(start_equity)}: {moved} "
            f"(limit {limit_pct} %)" + (f"; {detail}" if detail else "")
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
    return DailyLoss(
        session, start_equity, equity, loss_pct, limit_pct, tripped, earlier, message, inputs
    )


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
