"""Historical bars (reqHistoricalData) from the market model: 1 minute, 1 hour and 1 day, RTH.

The bars are the market model's own 1-minute bars, the same ones the built-in simulated broker
and the strategies see; hourly bars are session-anchored (09:30–10:29 …, 15:30–close), built by
the core's `hourly_bars`; daily bars are one per session. Only bars that have completed by the
simulated clock are returned (the current hour or day is returned as far as it has got, as IB
does), so a rehearsal can never see the future.

Durations follow IB: 'N S' seconds, 'N D' trading sessions, 'N W' weeks, 'N M' months,
'N Y' years back from the end time ('' = now).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd  # type: ignore[import-untyped]

from tradebot.core.indicators import hourly_bars
from tradebot.core.sessions import (
    is_session,
    previous_sessions,
    session_open_close,
    sessions_between,
)
from tradebot.core.trades import EXCHANGE_TZ, session_of
from tradebot.gateway_sim.messages import WireBar
from tradebot.gateway_sim.requests import HistoricalRequest
from tradebot.gateway_sim.timeparse import parse_ib_time
from tradebot.market.model import MarketModel

BAR_SIZES = {
    "1 min": "min",
    "1 mins": "min",
    "1 hour": "hour",
    "1 hours": "hour",
    "60 mins": "hour",
    "1 day": "day",
    "1 days": "day",
}
SERVED_WHAT = ("TRADES", "MIDPOINT", "BID", "ASK", "BID_ASK", "ADJUSTED_LAST")
MAX_SPAN = timedelta(days=366)  # far beyond IB's own limits for these bar sizes


class BarsRefused(Exception):
    """The request is answered with error 162 and this text."""


@dataclass(frozen=True)
class BarsAnswer:
    start: str
    end: str
    bars: list[WireBar]


def answer(req: HistoricalRequest, market: MarketModel, symbol: str, now: datetime) -> BarsAnswer:
    kind = BAR_SIZES.get(" ".join(req.bar_size.lower().split()))
    if kind is None:
        raise BarsRefused(
            f"Historical Market Data Service error message:bar size {req.bar_size!r} is not "
            "served by the simulator (1 min, 1 hour and 1 day are)"
        )
    if req.what_to_show not in SERVED_WHAT:
        raise BarsRefused(
            f"Historical Market Data Service error message:HMDS query returned no data: "
            f"{req.what_to_show} is not served by the simulator"
        )
    end = now
    if req.end.strip():
        try:
            end = min(now, parse_ib_time(req.end))
        except ValueError:
            raise BarsRefused(
                f"Historical Market Data Service error message:end time {req.end!r} is not "
                "a time IB understands"
            ) from None
    start = window_start(req.duration, end, market.calendar)
    # Whole sessions are loaded so hourly and daily bars are anchored on the session open.
    first_open = _open_of_session_at_or_after(start, market.calendar)
    minutes = market.bars_between(symbol, min(first_open, start), end)
    if kind == "min":
        frame = minutes[minutes.index >= start]
        starts = list(frame.index)
    elif kind == "hour":
        frame = hourly_bars(minutes, market.calendar) if len(minutes) else minutes
        if len(frame):
            frame = frame[frame["end"] > start]
        starts = list(frame.index)
    else:
        frame = _daily(minutes)
        if len(frame):
            frame = frame[frame["close_time"] > start]
        starts = list(frame.index)
    bars = [
        _wire_bar(t, row, kind, req.format_date)
        for t, (_, row) in zip(starts, frame.iterrows(), strict=True)
    ]
    return BarsAnswer(_stamp(start), _stamp(end), bars)


def window_start(duration: str, end: datetime, calendar: str) -> datetime:
    parts = duration.upper().split()
    if len(parts) != 2 or not parts[0].isdigit() or parts[1] not in ("S", "D", "W", "M", "Y"):
        raise BarsRefused(
            f"Historical Market Data Service error message:duration {duration!r} is not like "
            "'2 D' (S, D, W, M or Y)"
        )
    count, unit = int(parts[0]), parts[1]
    if count <= 0:
        raise BarsRefused("Historical Market Data Service error message:duration must be > 0")
    if unit == "D":
        day = session_of(end)
        days = previous_sessions(day, count, calendar)
        if is_session(day, calendar) and session_open_close(day, calendar)[0] <= end:
            days = [*days, day][-count:]
        return session_open_close(days[0], calendar)[0] if days else end
    seconds = {"S": 1, "W": 7 * 86400, "M": 30 * 86400, "Y": 365 * 86400}[unit]
    span = timedelta(seconds=count * seconds)
    return end - min(span, MAX_SPAN)


def _open_of_session_at_or_after(moment: datetime, calendar: str) -> datetime:
    day = session_of(moment)
    following = sessions_between(day, day + timedelta(days=10), calendar)
    for d in following:
        opens, closes = session_open_close(d, calendar)
        if moment < closes:
            return min(opens, moment)
    return moment


def _daily(minutes: pd.DataFrame) -> pd.DataFrame:
    if minutes.empty:
        return minutes
    grouped = minutes.groupby("session", sort=True)
    ends = pd.Series(minutes.index, index=minutes.index).groupby(minutes["session"].to_numpy())
    return pd.DataFrame(
        {
            "open": grouped["open"].first(),
            "high": grouped["high"].max(),
            "low": grouped["low"].min(),
            "close": grouped["close"].last(),
            "volume": grouped["volume"].sum(),
            "close_time": ends.last().to_numpy() + pd.Timedelta(minutes=1),
        }
    )


def _wire_bar(start: object, row: pd.Series, kind: str, format_date: int) -> WireBar:
    o, h, lo, c = (float(row[k]) for k in ("open", "high", "low", "close"))
    volume = float(row["volume"])
    if kind == "day":
        day = pd.Timestamp(start).date() if not isinstance(start, datetime) else start.date()
        label = f"{day:%Y%m%d}"
    else:
        moment = pd.Timestamp(start).to_pydatetime()
        if format_date == 2:
            label = str(int(moment.timestamp()))
        else:
            label = f"{moment.astimezone(EXCHANGE_TZ):%Y%m%d %H:%M:%S} US/Eastern"
    return WireBar(
        date=label,
        open=round(o, 4),
        high=round(h, 4),
        low=round(lo, 4),
        close=round(c, 4),
        volume=round(volume),
        wap=round((h + lo + c) / 3, 4),
        count=max(1, int(volume) // 100),
    )


def _stamp(moment: datetime) -> str:
    return f"{moment.astimezone(UTC):%Y%m%d %H:%M:%S}"
