"""What a person reads must show New York time with its zone, never UTC (issue 20, item 2):
the patterns the golden screen tests, event messages and alert texts are checked against."""

from __future__ import annotations

import re
from collections.abc import Iterable

# A time a person might read as UTC: a zone-less ISO time, a Z, an offset, the word.
UTC_SHOWN = re.compile(r"\bUTC\b|\+00:00|\d\d:\d\d(:\d\d)?Z\b|\d{4}-\d\d-\d\dT\d\d:\d\d")
# A time of day without its zone after it (a span `09:35–15:45 EDT` shows it once, at its end).
BARE_TIME = re.compile(r"\b\d\d:\d\d(?::\d\d)?+(?![:\d])(?! E[SD]T)(?!–)")


def utc_shown(texts: Iterable[str]) -> list[str]:
    """Each text that shows a time as UTC, or a time of day without its zone ("00:00" aside:
    a duration or a price can look like it)."""
    found = []
    for text in texts:
        bare = [t for t in BARE_TIME.findall(text) if t != "00:00"]
        if UTC_SHOWN.search(text) or bare:
            found.append(text)
    return found
