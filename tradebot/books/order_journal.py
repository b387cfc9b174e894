"""`journal/orders.jsonl`: order intents, submissions, status changes and fills (spec §7).

The trading loop appends here (an intent always before the order is sent); the phase ladder and
the risk check count the session's entries from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Any

from tradebot.core.orders import OrderEvent
from tradebot.errors import CorruptRecordError
from tradebot.storage import JsonlContents, JsonlFile
from tradebot.storage.jsonl import LockedJsonl

ORDERS_FILE = Path("journal") / "orders.jsonl"


def parse_order_events(path: Path, contents: JsonlContents) -> list[OrderEvent]:
    """Typed events from a read of the order journal (under a lock or not)."""
    events = []
    for record, line in zip(contents.records, contents.line_numbers, strict=True):
        try:
            events.append(OrderEvent.from_record(record))
        except (ValueError, TypeError) as exc:
            raise CorruptRecordError(path, line, f"not a valid order event ({exc})") from None
    return events


class OrderJournal:
    def __init__(self, logs_dir: Path) -> None:
        self.file = JsonlFile(Path(logs_dir) / ORDERS_FILE)
        self._held: LockedJsonl | None = None

    @contextmanager
    def hold(self) -> Iterator[LockedJsonl]:
        """Hold the journal's inter-process lock: what this object reads and appends meanwhile
        goes through it, so no other process (the loop, `journal close`) writes between a
        decision and what it writes. Re-entrant within one object."""
        if self._held is not None:
            yield self._held
            return
        with self.file.locked() as locked:
            self._held = locked
            try:
                yield locked
            finally:
                self._held = None

    @property
    def path(self) -> Path:
        return self.file.path

    def read_events(self) -> list[OrderEvent]:
        """Every event; a malformed line raises CorruptRecordError naming file and line."""
        contents = self._held.read() if self._held is not None else self.file.read()
        return parse_order_events(self.path, contents)

    def session_events(self, session: date) -> list[OrderEvent]:
        """The events of one exchange session (what the per-session entry count needs)."""
        return [e for e in self.read_events() if e.session == session]

    def locked_session_events(self, locked: LockedJsonl, session: date) -> list[OrderEvent]:
        """`session_events` through a file held under its exclusive lock."""
        return [e for e in parse_order_events(self.path, locked.read()) if e.session == session]

    def append(self, record: dict[str, Any]) -> None:
        """Record one event durably (must carry v, ts, event, order_ref, role, session, mode)."""
        OrderEvent.from_record(record)  # refuse to write what could not be read back
        if self._held is not None:
            self._held.append(record)
        else:
            self.file.append(record)
