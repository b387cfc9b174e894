"""How records become JSON text: Decimal as strings, times as UTC ISO-8601.

One encoder for every file tradebot writes, so money never passes through a float.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any


def json_default(value: Any) -> Any:
    """`json.dumps(default=...)` hook: Decimal → exact string, datetime → UTC ISO, date → ISO."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return utc_iso(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"cannot store a {type(value).__name__} in a record")


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    """CSV with a header; Decimals as exact strings, times in UTC ISO-8601 (as in the records)."""
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(columns)
    plain = (str, int, bool)
    for row in rows:
        cells = [row.get(k) for k in columns]
        writer.writerow(
            [v if type(v) in plain else ("" if v is None else json_default(v)) for v in cells]
        )
    return buffer.getvalue()


def utc_iso(moment: datetime) -> str:
    """Return `moment` as UTC ISO-8601 with a trailing Z; naive datetimes are refused."""
    if moment.tzinfo is None:
        raise ValueError("naive datetime: every stored time must be timezone-aware")
    text = moment.astimezone(UTC).isoformat()
    return text.removesuffix("+00:00") + "Z"


def dumps_record(record: Mapping[str, Any]) -> str:
    """Serialise one record as a single line of compact JSON (no newline)."""
    return json.dumps(record, default=json_default, ensure_ascii=False, separators=(",", ":"))


def _no_constant(name: str) -> Any:
    # json accepts NaN, Infinity and -Infinity by default: no record of ours holds one.
    raise ValueError(f"{name} is not a number a record can hold")


# One decoder for every read: json.loads(parse_float=...) would build a new one per call.
_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_no_constant)


def loads_record(text: str | bytes) -> Any:
    """Parse JSON text; any float is read as an exact Decimal; NaN and Infinity are refused.

    Raises ValueError (or UnicodeDecodeError) for bad text, RecursionError when nested too deeply.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return _DECODER.decode(text)
