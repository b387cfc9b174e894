"""Small, atomically replaced state files under `paths.state_dir` (spec §7).

Each file is one JSON object with `"v": 1`. Read-modify-write cycles hold `state_lock`, so the
loop and an operator's command in another terminal never lose each other's update.

| file | contents |
|---|---|
| `override-password.json` | the salted scrypt hash of the phase override password |
| `start-of-day-equity.json` | equity at each session's first look, keyed by session date |
| `equity.json` | the last equity the loop read from the broker |
| `phase-notices.json` | which "next phase eligible" notices were already sent |
| `halt.json` | the operator's kill switch (`tradebot halt` / `resume`) |
| `daily-loss.json` | the session in which the daily-loss guard last tripped, with its numbers |

Why one module: every small state file's schema, reader and writer sit side by side under the one
state lock, so a reader sees at a glance what each file holds and who may write it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from tradebot.core.guards import Halt
from tradebot.core.market_time import market_datetime
from tradebot.core.override_password import is_valid_hash
from tradebot.core.trades import session_of
from tradebot.core.validation import (
    MAX_MONEY,
    MAX_NAME,
    MAX_TEXT,
    boolean,
    decimal_number,
    in_future,
    iso_date,
    optional_text,
    utc_timestamp,
)
from tradebot.errors import CorruptRecordError
from tradebot.storage import read_json_state, state_lock, write_json_state
from tradebot.storage.watch import Watched

PASSWORD_FILE = "override-password.json"
START_OF_DAY_FILE = "start-of-day-equity.json"
EQUITY_FILE = "equity.json"
NOTICES_FILE = "phase-notices.json"
HALT_FILE = "halt.json"
DAILY_LOSS_FILE = "daily-loss.json"
WHALE_FILE = "whale-debounce.json"  # written by tradebot.books.whale_debounce
# A recorded equity below a cent (zero, negative, 1e-30) is not a number to size or guard with:
# the reading is refused, so entries stop until the loop records a real one.
MIN_EQUITY = Decimal("0.01")
# Start-of-day records kept: the loop reads today's (daily loss) and those of sessions it closes
# (session metrics); every tick reads and checks the whole file, so it stays small.
KEEP_SESSIONS = 10
# Parsed state files shared by every StateStore of a directory in this process, each re-read
# only when a stat shows it changed (`tradebot.storage.watch`): the loop asks many times a
# minute, another process writes once in a while.
_SHARED: dict[Path, dict[str, Any]] = {}  # per file: a Watched; per derived value: (version, …)
_SHARED_DIRS_KEPT = 64


@dataclass(frozen=True)
class EquityReading:
    amount: Decimal
    source: str
    ts: datetime


class StateStore:
    """Typed access to the files in the state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = Path(state_dir)
        watches = _SHARED.get(self.dir)
        if watches is None:
            if len(_SHARED) >= _SHARED_DIRS_KEPT:
                _SHARED.clear()
            watches = _SHARED.setdefault(self.dir, {})
        self._watches = watches

    def path(self, name: str) -> Path:
        return self.dir / name

    def watched(self, name: str) -> Watched[Any]:
        """The parsed contents of state file `name` (None when missing), re-read on change."""
        watch: Watched[Any] | None = self._watches.get(name)
        if watch is None:
            path = self.path(name)
            watch = self._watches.setdefault(name, Watched(path, lambda: read_json_state(path)))
        return watch

    def reads(self, name: str) -> tuple[int, int]:
        """(reads, stats) of state file `name` by this process so far (tests count them)."""
        watch = self.watched(name)
        return watch.reads, watch.stats

    def _derived(self, name: str, what: str, derive: Any) -> Any:
        """`derive(contents)` of state file `name`, recomputed only when the file is re-read
        (the file itself is stat'ed once for all its derived values)."""
        base = self.watched(name)
        state = base.get()
        key = f"{name}:{what}"
        cached = self._watches.get(key)
        if cached is None or cached[0] != base.version:
            try:
                value: tuple[int, Any, CorruptRecordError | None] = (
                    base.version,
                    derive(state),
                    None,
                )
            except CorruptRecordError as exc:
                value = (base.version, None, exc)
            self._watches[key] = cached = value
        if cached[2] is not None:
            raise cached[2]
        return cached[1]

    # -- override password ---------------------------------------------------------------------
    def password_hash(self) -> str | None:
        state = read_json_state(self.path(PASSWORD_FILE))
        if state is None:
            return None
        value = state.get("hash")
        if not isinstance(value, str) or not value:
            raise CorruptRecordError(self.path(PASSWORD_FILE), None, "no 'hash' string")
        if not is_valid_hash(value):
            raise CorruptRecordError(
                self.path(PASSWORD_FILE),
                None,
                "'hash' is not a hash written by `tradebot phase set-password`",
                action="delete the file and set a new password with `tradebot phase set-password`",
            )
        return value

    def set_password_hash(self, encoded: str, now: datetime) -> None:
        write_json_state(self.path(PASSWORD_FILE), {"v": 1, "hash": encoded, "set_at": now})

    # -- start-of-day equity ----------------------------------------------------------------
    def start_of_day_equity(self, session: date) -> EquityReading | None:
        """The equity recorded at the first look of `session`, if any."""
        readings: dict[str, EquityReading | None] = self._derived(
            START_OF_DAY_FILE, "readings", lambda state: {}
        )
        key = session.isoformat()
        if key not in readings:
            entry = self._sessions().get(key)
            readings[key] = None if entry is None else self._reading(START_OF_DAY_FILE, entry)
        return readings[key]

    def record_start_of_day(
        self, session: date, amount: Decimal, source: str, now: datetime
    ) -> EquityReading:
        """Record `amount` for `session` unless already recorded; return the recorded value."""
        path = self.path(START_OF_DAY_FILE)
        with state_lock(path):
            sessions = dict(self._sessions())
            key = session.isoformat()
            if key not in sessions:
                sessions[key] = {"equity": str(amount), "source": source, "ts": now}
                kept = dict(sorted(sessions.items())[-KEEP_SESSIONS:])
                write_json_state(path, {"v": 1, "sessions": kept})
                return EquityReading(amount, source, now)
            return self._reading(START_OF_DAY_FILE, sessions[key])

    def _sessions(self) -> dict[str, Any]:
        """The checked `sessions` object (shared: copy before changing it)."""
        sessions: dict[str, Any] = self._derived(
            START_OF_DAY_FILE, "sessions", self._check_sessions
        )
        return sessions

    def _check_sessions(self, state: dict[str, Any] | None) -> dict[str, Any]:
        path = self.path(START_OF_DAY_FILE)
        state = state or {}
        sessions = state.get("sessions", {})
        if not isinstance(sessions, dict):
            raise CorruptRecordError(path, None, "'sessions' not an object")
        for key, entry in sessions.items():
            try:
                iso_date(key, "a session key")
            except ValueError as exc:
                raise CorruptRecordError(path, None, f"bad session {key[:20]!r} ({exc})") from None
            if not isinstance(entry, dict):
                raise CorruptRecordError(path, None, f"session {key}: not an object")
        return sessions

    # -- last broker equity --------------------------------------------------------------------
    def equity_snapshot(self) -> EquityReading | None:
        reading: EquityReading | None = self._derived(
            EQUITY_FILE,
            "reading",
            lambda state: None if state is None else self._reading(EQUITY_FILE, state),
        )
        return reading

    def record_equity(self, amount: Decimal, source: str, now: datetime) -> None:
        write_json_state(
            self.path(EQUITY_FILE), {"v": 1, "equity": str(amount), "source": source, "ts": now}
        )

    # -- notices already sent ------------------------------------------------------------------
    def notice_sent(self, key: str) -> bool:
        state = self.watched(NOTICES_FILE).get() or {}
        return key in state.get("sent", [])

    def mark_notice_sent(self, key: str) -> None:
        path = self.path(NOTICES_FILE)
        with state_lock(path):
            state = read_json_state(path) or {}
            sent = [k for k in state.get("sent", []) if k != key][-50:]
            write_json_state(path, {"v": 1, "sent": [*sent, key]})

    # -- halt ----------------------------------------------------------------------------------
    def halt(self) -> Halt:
        """The kill switch; a missing file means not halted.

        A file that cannot be read, or whose `halted` is not true or false, raises
        CorruptRecordError (the caller then treats the bot as halted).
        """
        halt: Halt = self._derived(HALT_FILE, "halt", self._parse_halt)
        return halt

    def _parse_halt(self, state: dict[str, Any] | None) -> Halt:
        path = self.path(HALT_FILE)
        if state is None:
            return Halt(False)
        try:
            halted = boolean(state.get("halted", False), "halted")
            operator = optional_text(state.get("operator"), "operator", max_length=MAX_NAME)
            reason = optional_text(state.get("reason"), "reason", max_length=MAX_TEXT)
            flatten = boolean(state.get("flatten", False), "flatten")
            if not halted and state.get("since") is not None:
                # A "not halted" whose time cannot be trusted (no timezone, not a time) is not
                # trusted either: a named error, and the callers treat the bot as halted.
                utc_timestamp(state["since"], "since")
        except ValueError as exc:
            raise CorruptRecordError(path, None, f"bad halt state ({exc})") from None
        if not halted:
            return Halt(False)
        try:
            since: datetime | None = utc_timestamp(state.get("since"), "since")
        except ValueError:
            # Unreadable details must not lift a halt: keep it, without the time.
            since = None
        return Halt(True, since, operator, reason, flatten)

    def write_halt(self, halt: Halt) -> None:
        write_json_state(
            self.path(HALT_FILE),
            {
                "v": 1,
                "halted": halt.halted,
                "since": halt.since,
                "operator": halt.operator,
                "reason": halt.reason,
                "flatten": halt.flatten,
            },
        )

    # -- daily-loss trip ------------------------------------------------------------------------
    def daily_loss_trip(self) -> tuple[date, dict[str, Any]] | None:
        """(session, details) of the last recorded trip, if any."""
        trip: tuple[date, dict[str, Any]] | None = self._derived(
            DAILY_LOSS_FILE, "trip", self._parse_trip
        )
        return trip

    def _parse_trip(self, state: dict[str, Any] | None) -> tuple[date, dict[str, Any]] | None:
        if state is None:
            return None
        try:
            if "session" not in state:
                raise ValueError("missing field session")
            session = iso_date(state["session"], "session")
            if "tripped_at" in state:
                utc_timestamp(state["tripped_at"], "tripped_at")
            return session, state
        except ValueError as exc:
            raise CorruptRecordError(
                self.path(DAILY_LOSS_FILE), None, f"bad trip ({exc})"
            ) from None

    def record_daily_loss_trip(
        self,
        session: date,
        now: datetime,
        start_equity: Decimal,
        equity: Decimal,
        loss_pct: Decimal,
        inputs: dict[str, Any] | None = None,
    ) -> bool:
        """Persist the session's trip (once); True when this call recorded it. `inputs`: every
        number the trip was decided on (cash, marks, realized P&L today)."""
        path = self.path(DAILY_LOSS_FILE)
        with state_lock(path):
            existing = self.daily_loss_trip()
            if existing is not None and existing[0] == session:
                return False
            write_json_state(
                path,
                {
                    "v": 1,
                    "session": session,
                    "tripped_at": now,
                    "start_equity": start_equity,
                    "equity": equity,
                    "loss_pct": loss_pct.quantize(Decimal("0.000001")),
                    **({"inputs": inputs} if inputs is not None else {}),
                },
            )
            return True

    def _reading(self, name: str, entry: dict[str, Any]) -> EquityReading:
        try:
            if "equity" not in entry or "ts" not in entry:
                raise ValueError("needs 'equity' and 'ts'")
            return EquityReading(
                decimal_number(entry["equity"], "equity", low=MIN_EQUITY, high=MAX_MONEY),
                optional_text(entry.get("source"), "source", max_length=MAX_NAME) or "",
                utc_timestamp(entry["ts"], "ts"),
            )
        except ValueError as exc:
            raise CorruptRecordError(self.path(name), None, f"bad equity entry ({exc})") from None

    # -- clock trouble --------------------------------------------------------------------------
    def future_dated(self, now: datetime) -> list[str]:
        """One line per state file holding a time (or a session) later than `now` allows.

        A clock that stepped back (a Raspberry Pi without a real-time clock) or an edited file:
        never trusted silently. Files that cannot be read are skipped here; reading them for
        their own purpose reports them. The broker equity snapshot is judged by the equity
        view (a future reading is unknown equity).
        """
        today = session_of(now)
        problems: list[str] = []
        for name in (START_OF_DAY_FILE, HALT_FILE, DAILY_LOSS_FILE, PASSWORD_FILE, WHALE_FILE):
            try:
                stamps: list[_Stamp] = self._derived(name, "stamps", _STAMPS[name])
            except CorruptRecordError:
                continue
            for field, value, when in stamps:
                late = when > today if type(when) is date else in_future(when, now)  # type: ignore[arg-type]
                if late:
                    problems.append(
                        f"{self.path(name)}: {field} {value} is after now "
                        f"({market_datetime(now)}); is the system clock right? Fix the clock or "
                        "the file"
                    )
        return problems


# (field, value as written, parsed session date or UTC time) of the stamps a file holds.
_Stamp = tuple[str, object, date | datetime]


def _stamp(out: list[_Stamp], field: str, value: object, *, is_session: bool = False) -> None:
    try:
        out.append(
            (field, value, iso_date(value, field) if is_session else utc_timestamp(value, field))
        )
    except ValueError:
        return  # unreadable values are reported by the file's own reader


def _sessions_stamps(state: dict[str, Any] | None) -> list[_Stamp]:
    out: list[_Stamp] = []
    sessions = (state or {}).get("sessions")
    if isinstance(sessions, dict):
        for key, entry in sessions.items():
            _stamp(out, "session", key, is_session=True)
            if isinstance(entry, dict):
                _stamp(out, f"sessions.{key}.ts", entry.get("ts"))
    return out


def _halt_stamps(state: dict[str, Any] | None) -> list[_Stamp]:
    out: list[_Stamp] = []
    if state and state.get("since") is not None:
        _stamp(out, "since", state["since"])
    return out


def _trip_stamps(state: dict[str, Any] | None) -> list[_Stamp]:
    out: list[_Stamp] = []
    if state:
        _stamp(out, "session", state.get("session"), is_session=True)
        _stamp(out, "tripped_at", state.get("tripped_at"))
    return out


def _password_stamps(state: dict[str, Any] | None) -> list[_Stamp]:
    out: list[_Stamp] = []
    if state:
        _stamp(out, "set_at", state.get("set_at"))
    return out


def _whale_stamps(state: dict[str, Any] | None) -> list[_Stamp]:
    out: list[_Stamp] = []
    symbols = (state or {}).get("symbols")
    if isinstance(symbols, dict):
        for symbol, entry in symbols.items():
            if isinstance(entry, dict):
                _stamp(out, f"symbols.{symbol}.ts", entry.get("ts"))
    return out


_STAMPS = {
    START_OF_DAY_FILE: _sessions_stamps,
    HALT_FILE: _halt_stamps,
    DAILY_LOSS_FILE: _trip_stamps,
    PASSWORD_FILE: _password_stamps,
    WHALE_FILE: _whale_stamps,
}
