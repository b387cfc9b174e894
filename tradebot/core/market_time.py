"""Times as a person reads them: New York time (the exchange's) with its zone, ISO dates.

Inside, every time is UTC, and so are the journals, CSV files and `--json`. Whatever a person
reads — a table, a message, a log line, an alert — shows the market's clock with its zone
(`2025-07-01 11:03 EDT`), so an operator never has to convert, and a winter time says EST.
"""

from __future__ import annotations

from datetime import datetime

from tradebot.core.trades import EXCHANGE_TZ


def market(moment: datetime) -> datetime:
    """`moment` in New York time (a naive time is refused: it could be anything)."""
    if moment.tzinfo is None:
        raise ValueError("a time without a zone cannot be shown in market time")
    return moment.astimezone(EXCHANGE_TZ)


def market_datetime(moment: datetime, *, seconds: bool = False) -> str:
    """`2025-07-01 11:03 EDT` (with `seconds`: `2025-07-01 11:03:20 EDT`)."""
    return market(moment).strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def market_clock(moment: datetime, *, seconds: bool = False) -> str:
    """`11:03 EDT` (with `seconds`: `11:03:20 EDT`): a time of day when the date is plain."""
    return market(moment).strftime("%H:%M:%S %Z" if seconds else "%H:%M %Z")


def market_span(start: datetime, end: datetime) -> str:
    """`09:35–15:45 EDT`: two times of one day, the zone written once when it is the same."""
    a, b = market(start), market(end)
    if a.tzname() == b.tzname():
        return f"{a:%H:%M}–{b:%H:%M} {b:%Z}"
    return f"{a:%H:%M %Z}–{b:%H:%M %Z}"
