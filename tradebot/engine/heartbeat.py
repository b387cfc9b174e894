"""The heartbeat: the loop's published state (`engine.status.LoopStatus`) written atomically to
`state/heartbeat.json`, which `tradebot status` reads from another terminal."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from tradebot.engine.status import LoopStatus
from tradebot.storage import write_json_state

HEARTBEAT_FILE = "heartbeat.json"


def write_heartbeat(
    state_dir: Path, status: LoopStatus, *, running: bool, crashed: bool = False
) -> None:
    record = status.as_record()
    record["running"] = running
    record["crashed"] = crashed
    record["beat"] = datetime.now(UTC)
    write_json_state(Path(state_dir) / HEARTBEAT_FILE, record)
