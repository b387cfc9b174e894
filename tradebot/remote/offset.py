"""The update offset, persisted so that a restart never handles a command twice.

`state/remote-offset.json`: `{"v": 1, "bot_id": ..., "offset": ..., "seen": ...}`. The offset
(last update id + 1) is written, fsynced, **before** the update is acted on: a crash in between
loses that one command (the operator sees no reply and sends it again; a halt is idempotent)
rather than running it twice.

Two cases where the saved offset must not be sent to Telegram:

* another bot (a new token for a different bot): its update ids have nothing to do with ours;
* no update for about a week: Telegram then picks the next update id at random ("If there are no
  new updates for at least a week, then identifier of the next update will be chosen randomly",
  Bot API, getUpdates), so an old offset could hide every new message. Polling without an offset
  returns only unconfirmed updates, and the 60 s age rule ignores anything stale among them.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from tradebot.core.market_time import market_datetime
from tradebot.errors import CorruptRecordError
from tradebot.storage import read_json_state, write_json_state

OFFSET_FILE = "remote-offset.json"
TRUST_FOR = timedelta(days=6)  # Telegram's "at least a week", with a day of margin
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Loaded:
    offset: int | None
    note: str | None  # why the saved offset is not used, for the journal
    seen: datetime | None = None  # when the update before it was handled


class OffsetStore:
    def __init__(self, state_dir: Path, bot_id: int) -> None:
        self.path = Path(state_dir) / OFFSET_FILE
        self.bot_id = bot_id

    def load(self, now: datetime) -> Loaded:
        try:
            saved = read_json_state(self.path)
        except CorruptRecordError as exc:
            # Never a reason to keep the phone from halting: keep the file aside, start afresh
            # (what is older than 60 s is ignored anyway).
            aside = self.path.with_name(f"{self.path.name}.damaged-{now:%Y%m%dT%H%M%SZ}")
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            return Loaded(None, f"{exc.message}; kept as {aside.name}, starting without it")
        if saved is None:
            return Loaded(None, None)
        try:
            bot_id = int(saved["bot_id"])
            offset = int(saved["offset"])
            seen = datetime.fromisoformat(str(saved["seen"]).replace("Z", "+00:00"))
            if seen.tzinfo is None:
                raise ValueError("naive time")
        except (KeyError, TypeError, ValueError):
            return Loaded(None, f"{self.path} is not an offset record; starting without it")
        if bot_id != self.bot_id:
            return Loaded(None, f"the saved offset belongs to bot {bot_id}, not {self.bot_id}")
        if now - seen > TRUST_FOR:
            return Loaded(
                None,
                f"the last update was seen {market_datetime(seen)} (Telegram numbers updates "
                "afresh after a week without any); polling without the old offset",
            )
        return Loaded(offset, None, seen)

    def save(self, offset: int, now: datetime) -> None:
        write_json_state(self.path, {"v": 1, "bot_id": self.bot_id, "offset": offset, "seen": now})
