"""`journal/events.jsonl`: what the loop decided and noticed that is not an order event —
start and stop, reconciliation reports, refused entries with their numbers, unknown orders,
OCO emulation, flattening. One fsynced line per event (the same file as halt/resume)."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from tradebot.books.halt import EVENTS_FILE
from tradebot.storage import JsonlFile

log = logging.getLogger("tradebot.engine")


class EventLog:
    def __init__(self, logs_dir: Path) -> None:
        self.file = JsonlFile(Path(logs_dir) / EVENTS_FILE)

    def record(
        self, now: datetime, event: str, message: str, *, logged: bool = False, **fields: Any
    ) -> None:
        """Journal one event and log its message once (warnings for problems, info otherwise);
        `logged`: its source has already logged it (journal only)."""
        self.file.append({"v": 1, "ts": now, "event": event, "message": message, **fields})
        if logged:
            return
        level = logging.WARNING if event in _WARN else logging.INFO
        # "reconciled: 2 fill(s) …" is logged as written, not as "reconciled: reconciled: …".
        if message.lower().startswith(event.replace("_", " ")):
            log.log(level, "%s", message)
        else:
            log.log(level, "%s: %s", event, message)


_WARN = frozenset(
    {
        "unknown_order",
        "unknown_execution",
        "position_mismatch",
        "bracket_refused",
        "exit_failed",
        "broker_error",
        "ladder_error",
        "error",
    }
)
