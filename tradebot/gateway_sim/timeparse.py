"""Times as the protocol writes them in requests (bar end times, execution filters)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

NEW_YORK = ZoneInfo("America/New_York")


def parse_ib_time(text: str) -> datetime:
    """A request's time as UTC; ValueError when unreadable or outside the years 1900–2200
    (a date IB would refuse must never overflow a computation later)."""
    try:
        moment = _parse(text)
    except OverflowError:
        raise ValueError(f"time {text[:40]!r} is out of range") from None
    if not 1900 <= moment.year <= 2200:
        raise ValueError(f"time {text[:40]!r} is outside the years 1900-2200")
    return moment


def _parse(text: str) -> datetime:
    """'20250701 15:30:00 UTC', '20250701 11:30:00 US/Eastern', '20250701-15:30:00' (UTC),
    '20250701 11:30:00' (no zone: New York, the simulated TWS's local time) or '20250701'
    (the end of that day in New York). ValueError when unreadable."""
    text = text.strip()
    if len(text) == 8 and text.isdigit():
        day = datetime.strptime(text, "%Y%m%d")
        return day.replace(hour=23, minute=59, second=59, tzinfo=NEW_YORK).astimezone(UTC)
    if "-" in text and " " not in text:
        moment = datetime.strptime(text, "%Y%m%d-%H:%M:%S")
        return moment.replace(tzinfo=UTC)
    parts = text.split()
    if len(parts) < 2:
        raise ValueError(f"unreadable time {text!r}")
    moment = datetime.strptime(parts[0] + " " + parts[1], "%Y%m%d %H:%M:%S")
    zone_name = parts[2] if len(parts) > 2 else ""
    if not zone_name:
        zone = NEW_YORK
    elif zone_name.upper() in ("UTC", "GMT", "Z"):
        zone = ZoneInfo("UTC")
    else:
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {zone_name!r}") from None
    return moment.replace(tzinfo=zone).astimezone(UTC)
