"""The loop's questions before an order: may a new position open (and how big), reserved
atomically with the entry's intent; exits are never blocked."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from tradebot.books.ladder.evaluation import Equity, LadderReader
from tradebot.core.orders import OrderEvent
from tradebot.core.phase_rules import (
    EntryDecision,
    Refusal,
    entry_decision,
)
from tradebot.core.trades import session_of
from tradebot.errors import CorruptRecordError, StorageError


class EntryLimits(LadderReader):
    """Phase limits on entries, and the reservation of proof's one entry a session."""

    def check_entry(
        self,
        now: datetime,
        mode: str,
        *,
        equity: Equity = None,
        next_session_open: datetime | None = None,
    ) -> EntryDecision:
        """May a new position be opened now? Every refusal names its rule and numbers."""
        try:
            snap = self.snapshot(now, equity=equity)
        except CorruptRecordError as exc:
            return EntryDecision(False, [Refusal("journal_unreadable", exc.message)], None)
        if snap.evaluation is None:
            return EntryDecision(
                False,
                [Refusal("phase_unknown", f"the phase cannot be determined: {snap.error}")],
                None,
            )
        return entry_decision(snap.evaluation, mode=mode, next_session_open=next_session_open)

    def reserve_entry(
        self,
        now: datetime,
        mode: str,
        intent: dict[str, Any],
        *,
        equity: Equity = None,
        next_session_open: datetime | None = None,
        recheck: Callable[[EntryDecision], list[Refusal]] | None = None,
    ) -> EntryDecision:
        """`check_entry` and, when allowed, append the entry `intent` — atomically.

        `recheck`, called under the lock once the phase rules allow the entry, may refuse it
        for what can change between a tick's guards and this moment (a halt written meanwhile,
        the daily-loss trip, a position cap lowered by a phase change).

        Both happen under the order journal's exclusive lock, so two symbols (or two processes)
        can never both take proof's one entry of the session. An order journal that cannot be
        read or written refuses the entry (`phase_unknown` / `journal_unwritable`): an intent
        must be journaled before its order is sent.
        """
        try:
            with self.orders.file.locked() as locked:
                events = self.orders.locked_session_events(locked, session_of(now))
                snap = self.snapshot(now, equity=equity, order_events=events)
                if snap.evaluation is None:
                    refusal = Refusal("phase_unknown", f"the phase is unknown: {snap.error}")
                    return EntryDecision(False, [refusal], None)
                decision = entry_decision(
                    snap.evaluation, mode=mode, next_session_open=next_session_open
                )
                if decision.allowed and recheck is not None:
                    late = recheck(decision)
                    if late:
                        return EntryDecision(False, late, decision.position_cap_usd)
                if decision.allowed:
                    OrderEvent.from_record(intent)  # never write what could not be read back
                    locked.append(intent)
                return decision
        except CorruptRecordError as exc:
            return EntryDecision(False, [Refusal("phase_unknown", exc.message)], None)
        except StorageError as exc:
            return EntryDecision(False, [Refusal("journal_unwritable", exc.message)], None)

    @staticmethod
    def check_exit() -> EntryDecision:
        """Exits, stop-losses, end-of-day flattening and `halt --flatten` are never blocked."""
        return EntryDecision(True, [], None)
