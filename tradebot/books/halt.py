"""The kill switch: set, lift and read the halt, each change journaled (`journal/events.jsonl`).

The halt lives in `state/halt.json` so it survives restarts; the loop checks it at least every
few seconds and stops new entries within one second of noticing. Lifting it never touches open
positions; flattening (closing positions, cancelling working orders) is the loop's job when
`flatten` is set.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from tradebot.books.state_store import HALT_FILE, StateStore
from tradebot.core.guards import Halt
from tradebot.errors import CorruptRecordError
from tradebot.storage import JsonlFile

EVENTS_FILE = Path("journal") / "events.jsonl"
log = logging.getLogger(__name__)


class KillSwitch:
    def __init__(self, state_dir: Path, logs_dir: Path) -> None:
        self.state = StateStore(state_dir)
        self.events = JsonlFile(Path(logs_dir) / EVENTS_FILE)

    def status(self) -> Halt:
        return self.state.halt()

    def _current(self, now: datetime) -> Halt:
        """The halt as stored; a damaged file is kept aside (never silently lost) and counts as
        not halted, so the operator's new halt or resume can always be written."""
        try:
            return self.state.halt()
        except CorruptRecordError:
            path = self.state.path(HALT_FILE)
            aside = path.with_name(f"{path.name}.damaged-{now:%Y%m%dT%H%M%SZ}")
            with contextlib.suppress(OSError):
                os.replace(path, aside)
            log.warning("%s was damaged; kept as %s and replaced", path, aside)
            return Halt(False)

    def halt(
        self, now: datetime, *, operator: str, reason: str | None, flatten: bool = False
    ) -> Halt:
        """Persist a halt (idempotent: an existing halt keeps its time, gains --flatten)."""
        current = self._current(now)
        halt = Halt(
            True,
            current.since if current.halted else now,
            operator if not current.halted else current.operator,
            reason if not current.halted or reason else current.reason,
            flatten or current.flatten,
        )
        self.state.write_halt(halt)
        self.events.append(
            {
                "v": 1,
                "ts": now,
                "event": "halt",
                "operator": operator,
                "reason": reason,
                "flatten": flatten,
            }
        )
        log.info(
            "halt by %s%s: %s",
            operator,
            " with flatten" if flatten else "",
            reason or "no reason given",
        )
        return halt

    def resume(self, now: datetime, *, operator: str, reason: str | None) -> Halt:
        """Lift the halt; returns what was lifted (not halted: nothing to do, nothing written)."""
        current = self._current(now)
        if not current.halted:
            return current
        self.state.write_halt(Halt(False))
        self.events.append(
            {
                "v": 1,
                "ts": now,
                "event": "resume",
                "operator": operator,
                "reason": reason,
                "was_halted": current.halted,
            }
        )
        log.info("resumed by %s: %s", operator, reason or "no reason given")
        return current


def halt_alert(operator: str, reason: str | None, flatten: bool) -> str:
    return f"HALT by {operator}{' with flatten' if flatten else ''}: {reason or 'no reason'}"


def request_halt(
    state_dir: Path,
    logs_dir: Path,
    now: datetime,
    *,
    operator: str,
    reason: str | None,
    flatten: bool,
    notify: Callable[[str, str], None],
) -> Halt:
    """`tradebot halt [--flatten]`, from a terminal or from the phone (`tradebot remote`): the
    same `halt.json`, the same journal line, the same alert; a running loop reacts at its next
    wake, whoever asked."""
    state = KillSwitch(state_dir, logs_dir).halt(
        now, operator=operator, reason=reason, flatten=flatten
    )
    notify("halt", halt_alert(operator, reason, flatten))
    return state
