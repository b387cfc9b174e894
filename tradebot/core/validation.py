"""Strict readers for the values in records and state files, and the bounds they must respect.

A record is data someone may have edited, concatenated, truncated or forged; none of it is
trusted. Each function raises ValueError with a short phrase naming the field, which the caller
turns into `file:line: ...` (CorruptRecordError). The bounds are far outside anything real for
this bot, so they never refuse a genuine record; they stop absurd values (1e400, 1e-30, NaN)
before they reach Decimal arithmetic, where they would raise or mislead. See docs/decisions.md.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation

# A record dated later than now by more than this is "from the future": a clock that stepped
# back (a Raspberry Pi without a real-time clock), or a forged record. Never silently trusted.
FUTURE_TOLERANCE = timedelta(minutes=5)

MIN_YEAR = 1990
MAX_YEAR = 2200
MAX_MONEY = Decimal(1_000_000_000)  # $1e9: any P&L, commission, risk or equity
MAX_PRICE = Decimal(1_000_000)  # an option price or a strike
MIN_RISK = Decimal("0.000001")  # one micro-dollar: a smaller risk makes R multiples absurd
MAX_QTY = 100_000
MAX_MULTIPLIER = 10_000
MAX_R_MULTIPLE = Decimal(1_000_000_000_000)
MAX_ID = 128  # characters in an id (trade_id, transition_id, order_ref)
MAX_NAME = 200  # an operator, a symbol, a contract, a strategy, a phase
MAX_TEXT = 2000  # a reason, a detail, a failure line


def utc_timestamp(value: object, name: str) -> datetime:
    """An ISO-8601 text with a timezone, years MIN_YEAR..MAX_YEAR, as an aware UTC datetime.

    An aware datetime is accepted too (a record checked before it is written).
    """
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name} is not an ISO-8601 time") from None
    else:
        raise ValueError(f"{name} must be an ISO-8601 time as text")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} has no timezone")
    if not MIN_YEAR <= moment.year <= MAX_YEAR:
        raise ValueError(f"{name} is outside the years {MIN_YEAR}-{MAX_YEAR}")
    return moment.astimezone(UTC)


def iso_date(value: object, name: str) -> date:
    """A YYYY-MM-DD text (or a date), years MIN_YEAR..MAX_YEAR."""
    if isinstance(value, date) and not isinstance(value, datetime):
        day = value
    elif isinstance(value, str):
        try:
            day = date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{name} is not a YYYY-MM-DD date") from None
    else:
        raise ValueError(f"{name} must be a YYYY-MM-DD date as text")
    if not MIN_YEAR <= day.year <= MAX_YEAR:
        raise ValueError(f"{name} is outside the years {MIN_YEAR}-{MAX_YEAR}")
    return day


def text(value: object, name: str, *, max_length: int = MAX_NAME, empty: bool = False) -> str:
    """A string of at most `max_length` characters (non-empty unless `empty`)."""
    if not isinstance(value, str):
        raise ValueError(f"{name} must be text")
    if not value and not empty:
        raise ValueError(f"{name} is empty")
    if len(value) > max_length:
        raise ValueError(f"{name} is longer than {max_length} characters")
    return value


def optional_text(value: object, name: str, *, max_length: int = MAX_TEXT) -> str | None:
    """None, or a string of at most `max_length` characters."""
    return None if value is None else text(value, name, max_length=max_length, empty=True)


def boolean(value: object, name: str) -> bool:
    """A JSON true or false (never the text "false", never 0 or 1)."""
    if type(value) is not bool:
        raise ValueError(f"{name} must be true or false")
    return value


def whole_number(value: object, name: str, *, low: int, high: int) -> int:
    """A JSON integer in [low, high] (never true/false, a decimal or text)."""
    if type(value) is not int:
        raise ValueError(f"{name} must be a whole number")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}")
    return value


def decimal_number(value: object, name: str, *, low: Decimal, high: Decimal) -> Decimal:
    """A finite decimal in [low, high], from a decimal string, an integer or a JSON number."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise ValueError(f"{name} must be a decimal number")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise ValueError(f"{name} is not a decimal number") from None
    if not number.is_finite():
        raise ValueError(f"{name} must be a finite number")
    if not low <= number <= high:
        raise ValueError(f"{name} must be between {low} and {high}")
    return number


def in_future(moment: datetime, now: datetime) -> bool:
    """Whether `moment` is later than `now` by more than FUTURE_TOLERANCE."""
    return moment > now + FUTURE_TOLERANCE


# Characters that would move the cursor, recolour or rewrite a terminal, split a log line, or
# reorder text (bidirectional overrides): C0 and C1 controls, DEL, line/paragraph separators.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_control(value: str) -> str:
    """`value` with control characters shown as escapes (a newline becomes the two characters
    backslash-x-0-a), so operator text and file data can never forge a log line or drive the
    terminal. Printable text, brackets included, is unchanged."""
    return _UNSAFE.sub(_escape, value)
