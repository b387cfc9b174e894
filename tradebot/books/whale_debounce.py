"""The whale debounce, persisted: the last whale signal per symbol survives restarts (spec §4).

State file ``<state_dir>/whale-debounce.json``, replaced atomically by `tradebot.storage`::

    {"v": 1, "symbols": {"SPY": {"session": "2025-07-01", "signal": "BUY_CALL",
                                 "ts": "2025-07-01T14:30:00Z"}}}

The decision itself is pure (`tradebot.core.strategies.whale_debounce`); this module only reads
and writes the state. A damaged file raises `CorruptRecordError` (fail safe: the caller must not
guess that no signal happened).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tradebot.core.session_table import DEFAULT_CALENDAR
from tradebot.core.validation import iso_date, utc_timestamp
from tradebot.errors import CorruptRecordError
from tradebot.storage import read_json_state, state_lock, write_json_state
from tradebot.storage.watch import Watched

if TYPE_CHECKING:
    from tradebot.core.strategies import DebounceCheck

STATE_FILE = "whale-debounce.json"
VERSION = 1
WhaleEntry = Literal["BUY_CALL", "BUY_PUT"]


@dataclass(frozen=True)
class LastWhaleSignal:
    """The most recent whale signal of one symbol: its session, direction and time (UTC)."""

    session: date
    signal: WhaleEntry
    ts: datetime


def state_path(state_dir: Path) -> Path:
    """Path of the debounce state file under `state_dir`."""
    return Path(state_dir) / STATE_FILE


# Parsed once per version of the file (a stat decides): the loop asks at every tick.
_WATCHED: dict[Path, Watched[dict[str, LastWhaleSignal]]] = {}


def read_last_signals(state_dir: Path) -> dict[str, LastWhaleSignal]:
    """Every symbol's last whale signal; empty when the file does not exist yet."""
    path = state_path(state_dir)
    watch = _WATCHED.get(path)
    if watch is None:
        if len(_WATCHED) >= 64:
            _WATCHED.clear()
        watch = _WATCHED.setdefault(
            path, Watched(path, lambda: _parse(path, read_json_state(path)))
        )
    return dict(watch.get())


def last_signal(state_dir: Path, symbol: str) -> LastWhaleSignal | None:
    """The last whale signal recorded for `symbol`, or None."""
    return read_last_signals(state_dir).get(symbol)


def record_signal(
    state_dir: Path, symbol: str, *, session: date, signal: WhaleEntry, now: datetime
) -> LastWhaleSignal:
    """Persist a whale signal for `symbol` (read-modify-write under the state lock).

    An older session never replaces a newer one, so a late or replayed write cannot shorten a
    running debounce. Returns the entry now stored.
    """
    if signal not in ("BUY_CALL", "BUY_PUT"):
        raise ValueError(f"only entry signals are recorded, not {signal}")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    path = state_path(state_dir)
    entry = LastWhaleSignal(session=session, signal=signal, ts=now.astimezone(UTC))
    with state_lock(path):
        current = _parse(path, read_json_state(path))
        previous = current.get(symbol)
        if previous is not None and previous.session > session:
            return previous
        current[symbol] = entry
        write_json_state(
            path,
            {
                "v": VERSION,
                "symbols": {
                    name: {"session": e.session, "signal": e.signal, "ts": e.ts}
                    for name, e in sorted(current.items())
                },
            },
        )
    return entry


def debounce_check(
    state_dir: Path,
    symbol: str,
    current_session: date,
    debounce_days: int,
    calendar: str = DEFAULT_CALENDAR,
) -> DebounceCheck:
    """Whether whale signals for `symbol` are suppressed in `current_session` (reads the state)."""
    # Imported here: `risk check` reads this module's state without the strategies' pandas.
    from tradebot.books.session_calendar import calendar_sessions
    from tradebot.core.strategies import whale_debounce

    last = last_signal(state_dir, symbol)
    if last is None:
        return whale_debounce(None, current_session, [], debounce_days)
    sessions = (
        calendar_sessions(calendar, Path(state_dir)).between(last.session, current_session)
        if last.session <= current_session
        else []
    )
    return whale_debounce(last.session, current_session, sessions, debounce_days)


def _parse(path: Path, state: dict[str, Any] | None) -> dict[str, LastWhaleSignal]:
    if state is None:
        return {}
    if state.get("v") != VERSION or not isinstance(state.get("symbols"), dict):
        raise CorruptRecordError(path, None, f'expected {{"v": {VERSION}, "symbols": {{...}}}}')
    out: dict[str, LastWhaleSignal] = {}
    for symbol, raw in state["symbols"].items():
        try:
            signal = raw["signal"]
            if signal not in ("BUY_CALL", "BUY_PUT"):
                raise ValueError(f"unknown signal {signal!r}")
            out[str(symbol)] = LastWhaleSignal(
                session=iso_date(raw["session"], "session"),
                signal=signal,
                ts=utc_timestamp(raw["ts"], "ts"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptRecordError(path, None, f"bad entry for {symbol}: {exc}") from None
    return out
