"""The phase ladder as the loop and the commands use it (spec §3).

Reads the journal (trades and order events), the phase history and the state, evaluates the pure
rules in `tradebot.core.phase_rules`, and makes every transition one durable append under the
history file's exclusive lock, so `tradebot run` and `tradebot phase advance` in another terminal
can never interleave. Nothing is kept in memory between calls: a restart loses nothing.

Loop-facing calls:

* `check_entry(now, mode)` before each entry: allowed, or refused with each rule and its numbers,
  plus the position cap. A history file that cannot be read refuses every entry (fail safe).
* `check_exit()` always allows: exits, stops, flattening and `halt --flatten` are never blocked.
* `on_tick(now)` after each closed trade and at every tick: downgrades one step when a trigger
  holds (at most once per session), writes closed sessions to `session-metrics.jsonl`, and sends
  the "next phase eligible" notice once per phase.
"""

from __future__ import annotations

import contextlib
import getpass
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from tradebot.books.equity import EquityView, equity_view
from tradebot.books.order_journal import OrderJournal
from tradebot.books.phase_records import HistoryRead, PhaseRecords, parse_attempts, parse_history
from tradebot.books.state_store import PASSWORD_FILE, StateStore
from tradebot.books.trade_journal import TradeJournal
from tradebot.config import LoadedConfig
from tradebot.core.metrics import TradeSeries, from_micros, summarize
from tradebot.core.orders import OrderEvent
from tradebot.core.override_password import (
    MAX_LENGTH,
    MIN_LENGTH,
    Attempt,
    hash_password,
    lockout_until,
    verify_password,
)
from tradebot.core.phase_history import (
    PHASES,
    PhaseTransition,
    Trigger,
    current_phase,
    previous_phase,
)
from tradebot.core.phase_rules import (
    DayLoss,
    EntryDecision,
    PhaseEvaluation,
    Refusal,
    entry_decision,
    evaluate,
    future_transitions,
    metrics_record,
)
from tradebot.core.trades import PhaseName, session_of
from tradebot.core.validation import in_future
from tradebot.errors import CorruptRecordError, RefusedError, StorageError, UsageError
from tradebot.storage.jsonl import LockedJsonl

log = logging.getLogger(__name__)

Notify = Callable[[str, str], None]
_UNSET: Any = object()  # "argument not given" where None is a meaningful value


def _log_notify(event: str, message: str) -> None:
    log.warning("[%s] %s", event, message)


def default_operator() -> str:
    """The OS user running the command."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True)
class LadderSnapshot:
    """The ladder at one moment, or why it cannot be known."""

    evaluation: PhaseEvaluation | None
    error: str | None
    equity: EquityView | None
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class TickResult:
    transition: PhaseTransition | None
    snapshot: LadderSnapshot
    sessions_recorded: int = 0


def _transition(
    ev: PhaseEvaluation,
    now: datetime,
    *,
    to: PhaseName,
    trigger: Trigger,
    passed: bool,
    failures: Sequence[str] = (),
    operator: str | None,
    reason: str | None,
) -> PhaseTransition:
    """A transition out of `ev.phase`, carrying the §3 metrics at that moment."""
    return PhaseTransition(
        transition_id=uuid.uuid4().hex,
        ts=now,
        from_phase=ev.phase,
        to_phase=to,
        trigger=trigger,
        validation_passed=passed,
        failures=tuple(failures),
        metrics=metrics_record(ev.stats),
        operator=operator,
        reason=reason,
    )


def _audit(
    now: datetime,
    *,
    action: str,
    operator: str,
    from_phase: PhaseName,
    to_phase: PhaseName,
    granted: bool,
    outcome: str,
    reason: str | None,
    detail: str,
    **extra: Any,
) -> dict[str, Any]:
    """One `phase-overrides.jsonl` record (never the password)."""
    return {
        "v": 1,
        "ts": now,
        "action": action,
        "operator": operator,
        "from_phase": from_phase,
        "to_phase": to_phase,
        "granted": granted,
        "outcome": outcome,
        "reason": reason,
        "detail": detail,
        **extra,
    }


class PhaseLadder:
    """The ladder over one configuration's files."""

    def __init__(
        self, loaded: LoadedConfig, *, notify: Notify | None = None, cached: bool = False
    ) -> None:
        """`cached`: keep the journals in memory and read only their appended tails (the
        long-running loop); commands read the files afresh each time."""
        self.loaded = loaded
        self.cfg = loaded.settings.phase
        self.records = PhaseRecords(loaded.logs_dir)
        self.state = StateStore(loaded.state_dir)
        self.trades: TradeJournal
        self.orders: OrderJournal
        if cached:
            from tradebot.books.journal_cache import CachedOrderJournal, CachedTradeJournal

            self.trades = CachedTradeJournal(loaded.logs_dir)
            self.orders = CachedOrderJournal(loaded.logs_dir)
        else:
            self.trades = TradeJournal(loaded.logs_dir)
            self.orders = OrderJournal(loaded.logs_dir)
        self.notify: Notify = notify or _log_notify
        self._sessions_closed_on: Any = None  # the day close_sessions last ran (once a day)

    # -- reading -------------------------------------------------------------------------------
    def _evaluate(
        self,
        history: list[PhaseTransition],
        trades: TradeSeries,
        now: datetime,
        equity: Decimal | None,
        warnings: list[str],
        order_events: list[OrderEvent] | None = None,
    ) -> tuple[PhaseEvaluation, EquityView]:
        view = self._equity(trades, now, equity, warnings)
        day_loss = None
        if view.current is not None and view.start_of_day is not None:
            day_loss = DayLoss(view.start_of_day, view.current)
        phase = current_phase(history, self.cfg.initial)
        since = history[-1].ts if history else None
        window = trades.window(self.cfg.rules(phase).counted_modes, since)
        # Drawdown % is anchored at the equity when the window began: current minus its P&L.
        # Unknown equity leaves it unknown (never the simulated account size for a real one).
        base = None
        if view.current is not None:
            base = view.current - from_micros(sum(window.pnl))
            if base <= 0:
                base = None
        evaluation = evaluate(
            history=history,
            trades=trades,
            order_events=self.orders.session_events(session_of(now))
            if order_events is None
            else order_events,
            cfg=self.cfg,
            max_daily_loss_pct=self.loaded.settings.risk.max_daily_loss_pct,
            now=now,
            base_equity=base,
            equity=view.current,
            day_loss=day_loss,
        )
        evaluation.warnings.extend(warnings)
        future = [
            f"{self.records.history.path}: {line}" for line in future_transitions(history, now)
        ]
        evaluation.future_records.extend(future)
        evaluation.warnings.extend(future)
        return evaluation, view

    def _future_dated(self, now: datetime) -> list[str]:
        """Override-audit and state records dated after `now` (unreadable ones are skipped)."""
        problems = self.state.future_dated(now)
        try:
            attempts = self.records.read_attempts()
        except CorruptRecordError:
            attempts = []
        late = [a.ts for a in attempts if in_future(a.ts, now)]
        if late:
            problems.append(
                f"{self.records.overrides.path}: {len(late)} record(s) dated after now, the "
                f"latest {max(late):%Y-%m-%d %H:%M}Z (now {now:%Y-%m-%d %H:%M}Z); is the system "
                "clock right? Fix the clock or the file"
            )
        return problems

    def _equity(
        self, trades: TradeSeries, now: datetime, equity: Decimal | None, warnings: list[str]
    ) -> EquityView:
        view = equity_view(self.loaded, trades, self.state, now, session_of(now))
        if equity is not None:
            view = EquityView(equity, "broker", view.start_of_day, view.start_source, view.warnings)
        warnings.extend(view.warnings)
        return view

    def _read_history(self) -> HistoryRead:
        """The history, checked as a chain starting at `phase.initial`."""
        return self.records.read_history(initial=self.cfg.initial)

    def _parse_history(self, locked: LockedJsonl) -> HistoryRead:
        """The history read under its lock, checked like `_read_history`."""
        return parse_history(self.records.history.path, locked.read(), initial=self.cfg.initial)

    def _read_trades(self, warnings: list[str]) -> TradeSeries:
        series, read_warnings = self.trades.series()
        warnings.extend(read_warnings)
        return series

    def snapshot(
        self,
        now: datetime,
        *,
        equity: Decimal | None = None,
        order_events: list[OrderEvent] | None = None,
    ) -> LadderSnapshot:
        """Evaluate the ladder at `now`. Any unreadable file gives `error`, never a guess.

        The equity view is still filled in when only the phase history is unreadable.
        """
        warnings: list[str] = []
        view: EquityView | None = None
        try:
            trades = self._read_trades(warnings)
            view = self._equity(trades, now, equity, [])
            read = self._read_history()
            warnings.extend(read.warnings)
            evaluation, view = self._evaluate(
                read.transitions, trades, now, equity, warnings, order_events
            )
        except CorruptRecordError as exc:
            return LadderSnapshot(None, exc.message, view, warnings)
        future = self._future_dated(now)
        evaluation.future_records.extend(future)
        evaluation.warnings.extend(future)
        return LadderSnapshot(evaluation, None, view, evaluation.warnings)

    # -- the loop's questions ------------------------------------------------------------------
    def check_entry(
        self,
        now: datetime,
        mode: str,
        *,
        equity: Decimal | None = None,
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
        equity: Decimal | None = None,
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

    def on_tick(self, now: datetime, *, equity: Decimal | None = None) -> TickResult:
        """Auto-downgrade when a trigger holds; record closed sessions; notice eligibility."""
        transition = self._maybe_downgrade(now, equity)
        recorded = self.close_sessions(now)
        snap = self.snapshot(now, equity=equity)
        ev = snap.evaluation
        if ev is not None and ev.eligible and ev.next_phase is not None:
            key = f"eligible:{ev.phase}:{ev.since.isoformat() if ev.since else 'start'}"
            if not self.state.notice_sent(key) and self._advance_would_be_granted(now):
                self.notify(
                    "eligible",
                    f"phase {ev.phase} has met every criterion for {ev.next_phase}; advance with "
                    "`tradebot phase advance` when you are ready",
                )
                self.state.mark_notice_sent(key)
        return TickResult(transition, snap, recorded)

    def _advance_would_be_granted(self, now: datetime) -> bool:
        """Whether `phase advance` would grant the step now. The tick judges the criteria on
        the broker's equity (open positions at the mid); the advance on the equity it can know
        without the broker (the journal's closed trades, or the loop's last recorded reading).
        An unrealized gain must not announce an advance that is then refused."""
        try:
            self._earned(self._read_history(), now, None)
        except (RefusedError, UsageError, CorruptRecordError):
            return False
        return True

    def _maybe_downgrade(self, now: datetime, equity: Decimal | None) -> PhaseTransition | None:
        with self.records.history.locked() as locked:
            read = self._parse_history(locked)
            warnings: list[str] = []
            trades = self._read_trades(warnings)
            ev, _ = self._evaluate(read.transitions, trades, now, equity, warnings)
            below = previous_phase(ev.phase)
            # At most one automatic step down per session: the daily-loss trigger is
            # account-wide and would otherwise cascade through every phase on one bad day.
            if not ev.downgrade_reasons or below is None or ev.downgraded_this_session:
                return None
            transition = _transition(
                ev,
                now,
                to=below,
                trigger="auto_downgrade",
                passed=False,
                failures=ev.downgrade_reasons,
                operator="tradebot",
                reason="; ".join(ev.downgrade_reasons),
            )
            locked.append(transition.as_record())
        self.notify(
            "downgrade",
            f"phase dropped {transition.from_phase} → {transition.to_phase}: "
            f"{transition.reason}. New entries stop for the rest of this session.",
        )
        return transition

    # -- operator commands ---------------------------------------------------------------------
    def advance(
        self, now: datetime, *, to: PhaseName | None, operator: str, reason: str | None
    ) -> PhaseTransition:
        """An earned, one-step advance; RefusedError lists every unmet criterion.

        Decided first from a plain read, so a refused advance creates no file (not even the
        history or its directory); then decided again under the history's lock and recorded.
        """
        self._earned(self._read_history(), now, to)
        with self.records.history.locked() as locked:
            ev = self._earned(self._parse_history(locked), now, to)
            assert ev.next_phase is not None
            transition = _transition(
                ev,
                now,
                to=ev.next_phase,
                trigger="advance",
                passed=True,
                operator=operator,
                reason=reason,
            )
            locked.append(transition.as_record())
        log.info(
            "phase advanced %s -> %s by %s", transition.from_phase, transition.to_phase, operator
        )
        return transition

    def _earned(self, read: HistoryRead, now: datetime, to: PhaseName | None) -> PhaseEvaluation:
        """The evaluation when an earned advance to `to` may happen now; else the refusal."""
        ev, _ = self._evaluate(read.transitions, self._read_trades([]), now, None, [])
        if ev.next_phase is None:
            raise RefusedError(f"already in {ev.phase}, the top of the ladder")
        if to is not None and to != ev.next_phase:
            raise UsageError(
                f"an earned advance moves one step ({ev.phase} → {ev.next_phase}); to move "
                f"to {to} use --force --to {to} (needs the override password)"
            )
        if ev.future_records:
            raise RefusedError(
                f"{ev.phase} → {ev.next_phase} refused: {ev.future_records[0]}; fix the system "
                "clock or the file first"
            )
        if ev.downgrade_reasons or ev.downgraded_this_session:
            why = "; ".join(ev.downgrade_reasons) or "a downgrade happened this session"
            raise RefusedError(
                f"{ev.phase} → {ev.next_phase} refused while a downgrade holds ({why}); "
                "the ladder re-evaluates from the next session"
            )
        if not ev.eligible:
            raise RefusedError(
                f"{ev.phase} → {ev.next_phase} refused: {len(ev.unmet)} criterion(s) not met",
                details=tuple(c.describe() for c in ev.unmet),
            )
        return ev

    def password_hash(self) -> tuple[str | None, str]:
        """The stored override hash and where it comes from (config wins over the state dir)."""
        configured = self.cfg.override_password_hash
        if configured is not None:
            return configured.get_secret_value(), "config"
        return self.state.password_hash(), "state"

    def lockout(self, now: datetime, attempts: list[Attempt] | None = None) -> datetime | None:
        """When overrides unlock, or None."""
        return lockout_until(
            self.records.read_attempts() if attempts is None else attempts,
            now,
            max_failures=self.cfg.override_max_failures,
            window=timedelta(minutes=self.cfg.override_failure_window_minutes),
            lockout=timedelta(minutes=self.cfg.override_lockout_minutes),
        )

    def force(
        self,
        now: datetime,
        *,
        to: PhaseName,
        password: Callable[[], str],
        operator: str,
        reason: str | None,
    ) -> PhaseTransition:
        """A manual override to any phase. Every attempt is audited; the password never is.

        `password` is asked only when the attempt can proceed (a password is set and overrides
        are not locked), and no lock is held while the operator types it: `phase status`, the
        loop and other commands carry on. Everything is checked again once it is entered.
        """
        with self.records.overrides.locked() as audit:
            self._override_gate(audit, now, to=to, operator=operator, reason=reason)
        secret = password()
        with self.records.overrides.locked() as audit:
            record, attempts, stored = self._override_gate(
                audit, now, to=to, operator=operator, reason=reason
            )
            if not verify_password(secret, stored):
                record("wrong_password", False, "wrong password")
                window = timedelta(minutes=self.cfg.override_failure_window_minutes)
                failures = _recent_failures(attempts, now - window) + 1
                left = self.cfg.override_max_failures - failures
                hint = f"{left} attempt(s) left before a lockout" if left > 0 else "now locked"
                raise RefusedError(f"wrong override password ({hint})")
            with self.records.history.locked() as locked:
                read = self._parse_history(locked)
                ev, _ = self._evaluate(read.transitions, self._read_trades([]), now, None, [])
                if to == ev.phase:
                    record("no_change", False, f"already in {to}")
                    raise RefusedError(f"already in {to}; nothing changed")
                upward = PHASES.index(to) > PHASES.index(ev.phase)
                # Moving down needs no criteria; moving up records which were unmet, and names
                # every phase skipped without its criteria ever being evaluated.
                failures_now = [c.describe() for c in ev.unmet] if upward else []
                skipped = PHASES[PHASES.index(ev.phase) + 1 : PHASES.index(to)]
                failures_now += [f"skips {p}: its criteria were never evaluated" for p in skipped]
                transition = _transition(
                    ev,
                    now,
                    to=to,
                    trigger="manual_override",
                    passed=not upward or (ev.eligible and not skipped),
                    failures=failures_now,
                    operator=operator,
                    reason=reason,
                )
                # Audit first: a crash between the two appends leaves a granted attempt with no
                # transition (harmless), never a transition without its audit line.
                record(
                    "granted",
                    True,
                    "criteria met"
                    if transition.validation_passed
                    else "criteria not met: " + "; ".join(failures_now),
                    transition_id=transition.transition_id,
                )
                locked.append(transition.as_record())
        log.warning(
            "phase override %s -> %s by %s (%s)",
            transition.from_phase,
            transition.to_phase,
            operator,
            "criteria met" if transition.validation_passed else "criteria NOT met",
        )
        return transition

    def _override_gate(
        self,
        audit: LockedJsonl,
        now: datetime,
        *,
        to: PhaseName,
        operator: str,
        reason: str | None,
    ) -> tuple[Callable[..., None], list[Attempt], str]:
        """Refuse (audited) when overrides are locked or no password is set."""
        attempts = parse_attempts(self.records.overrides.path, audit.read())
        current = current_phase(self._read_history().transitions, self.cfg.initial)

        def record(outcome: str, granted: bool, detail: str, **extra: Any) -> None:
            audit.append(
                _audit(
                    now,
                    action="override",
                    operator=operator,
                    from_phase=current,
                    to_phase=to,
                    granted=granted,
                    outcome=outcome,
                    reason=reason,
                    detail=detail,
                    **extra,
                )
            )

        until = self.lockout(now, attempts)
        if until is not None:
            record("locked_out", False, f"overrides locked until {until:%Y-%m-%d %H:%M}Z")
            raise RefusedError(
                f"overrides are locked after {self.cfg.override_max_failures} wrong passwords; "
                f"try again after {until:%Y-%m-%d %H:%M} UTC"
            )
        stored, _source = self.password_hash()
        if stored is None:
            record("no_password", False, "no override password is set")
            raise RefusedError(
                "no override password is set, so --force is refused; set one with "
                "`tradebot phase set-password`"
            )
        return record, attempts, stored

    def set_password(
        self,
        now: datetime,
        *,
        new_password: str,
        current_password: Callable[[], str],
        operator: str,
        expected_hash: object = _UNSET,
    ) -> None:
        """Store a salted hash of `new_password`; changing it needs the current one.

        Under the audit file's lock, in this order: the intent is audited, the new hash is
        written (atomically: a failure leaves the old password working), the outcome is audited.
        `expected_hash` is the stored hash the caller saw when it decided whether to ask for the
        current password (default: the one read on entry); if another command set or changed
        the password since, nothing changes and RefusedError says so (ten first-time
        `set-password` at once: exactly one wins).
        """
        stored, source = self.password_hash()
        if source == "config":
            raise RefusedError(
                "the override password hash is set in the configuration "
                "(phase.override_password_hash or its TRADEBOT_ variable); change it there"
            )
        if len(new_password) < MIN_LENGTH:
            raise UsageError(f"the override password must have at least {MIN_LENGTH} characters")
        if len(new_password) > MAX_LENGTH:
            raise UsageError(f"the override password must have at most {MAX_LENGTH} characters")
        expected = stored if expected_hash is _UNSET else expected_hash
        with self.records.overrides.locked() as audit:
            attempts = parse_attempts(self.records.overrides.path, audit.read())
            phase = current_phase(self._read_history().transitions, self.cfg.initial)

            def record(outcome: str, granted: bool, detail: str) -> None:
                audit.append(
                    _audit(
                        now,
                        action="set_password",
                        operator=operator,
                        from_phase=phase,
                        to_phase=phase,
                        granted=granted,
                        outcome=outcome,
                        reason=None,
                        detail=detail,
                    )
                )

            stored = self.state.password_hash()  # again, now that no other change can run
            if stored != expected:
                record(
                    "password_changed_elsewhere",
                    False,
                    "another command set or changed the password first; nothing changed",
                )
                raise RefusedError(
                    "another command set or changed the override password meanwhile; nothing "
                    "changed (run `tradebot phase set-password` again: a change needs the "
                    "current password)"
                )
            if stored is not None:
                until = self.lockout(now, attempts)
                if until is not None:
                    record("locked_out", False, f"overrides locked until {until:%Y-%m-%d %H:%M}Z")
                    raise RefusedError(
                        f"overrides are locked; try again after {until:%Y-%m-%d %H:%M} UTC"
                    )
                if not verify_password(current_password(), stored):
                    record("wrong_password", False, "wrong current password")
                    raise RefusedError("the current override password is wrong; nothing changed")
            encoded = hash_password(new_password)
            verb = "change" if stored else "set"
            record("password_change_started", False, f"writing a new hash ({verb})")
            try:
                self.state.set_password_hash(encoded, now)
            except OSError as exc:
                with contextlib.suppress(OSError):
                    record("password_change_failed", False, f"the new hash was not written: {exc}")
                still = "the old password still works" if stored else "no password is set"
                raise StorageError(
                    f"{exc}; the override password was not {verb}: {still}",
                    path=self.state.path(PASSWORD_FILE),
                    errno=exc.errno,
                ) from None
            record("password_set", True, "override password changed" if stored else "set")
        log.warning("phase override password %s by %s", "changed" if stored else "set", operator)

    # -- session records -----------------------------------------------------------------------
    def close_sessions(self, now: datetime) -> int:
        """Append a `session-metrics.jsonl` line for each finished session not yet recorded."""
        today = session_of(now)
        if self._sessions_closed_on == today:
            return 0  # finished sessions only change when the day does
        with self.records.session_metrics.locked() as locked:
            done = {str(r.get("session")) for r in locked.read().records}
            history = self._read_history().transitions
            contents = self.trades.read()
            by_session: dict[str, list[Any]] = {}
            for t in contents.trades:
                if t.session < today and t.session.isoformat() not in done:
                    by_session.setdefault(t.session.isoformat(), []).append(t)
            lines = []
            all_trades = TradeSeries.of(contents.trades)
            for key in sorted(by_session):
                day = by_session[key][0].session
                phase = _phase_at(history, day, self.cfg.initial)
                counted = [
                    t for t in by_session[key] if t.mode in self.cfg.rules(phase).counted_modes
                ]
                start = self._start_equity(all_trades, day)
                stats = summarize(counted, start or self.loaded.settings.risk.paper_equity)
                rec = stats.as_record()
                lines.append(
                    {
                        "v": 1,
                        "session": key,
                        "phase": phase,
                        "trades": stats.trades,
                        "wins": stats.wins,
                        "losses": stats.losses,
                        "win_rate": rec["win_rate"],
                        "avg_rr": rec["avg_rr"],
                        "pnl": stats.total_pnl,
                        "start_equity": start,
                        "end_equity": None if start is None else start + stats.total_pnl,
                    }
                )
            locked.append_many(lines)
        self._sessions_closed_on = today
        return len(lines)

    def _start_equity(self, trades: TradeSeries, day: Any) -> Decimal | None:
        recorded = self.state.start_of_day_equity(day)
        if recorded is not None:
            return recorded.amount
        if self.loaded.settings.broker.kind == "sim":
            from tradebot.books.equity import sim_equity

            return sim_equity(self.loaded.settings.risk.paper_equity, trades, before=day)
        return None


def _phase_at(history: list[PhaseTransition], day: Any, initial: PhaseName) -> PhaseName:
    phase = initial
    for t in history:
        if session_of(t.ts) <= day:
            phase = t.to_phase
    return phase


def _recent_failures(attempts: list[Attempt], since: datetime) -> int:
    """Wrong passwords at or after `since` and after the last success."""
    count = 0
    for a in attempts:
        if a.outcome in ("granted", "password_set"):
            count = 0
        elif a.outcome == "wrong_password" and a.ts >= since:
            count += 1
    return count


__all__ = ["LadderSnapshot", "PhaseLadder", "TickResult", "default_operator"]
