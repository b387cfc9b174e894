"""The manual override and its password: every attempt audited in
`phase/phase-overrides.jsonl` (never the password), lockout after repeated wrong passwords,
and the password change audited as intent → write → outcome."""

from __future__ import annotations

import contextlib
import getpass
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from tradebot.books.ladder.evaluation import LadderReader, transition_from
from tradebot.books.phase_records import parse_attempts
from tradebot.books.state_store import PASSWORD_FILE
from tradebot.core.market_time import market_datetime
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
    current_phase,
)
from tradebot.core.trades import PhaseName
from tradebot.errors import CorruptRecordError, RefusedError, StorageError, UsageError
from tradebot.storage.jsonl import LockedJsonl

log = logging.getLogger("tradebot.books.ladder")

_UNSET: Any = object()  # "argument not given" where None is a meaningful value


def default_operator() -> str:
    """The OS user running the command."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


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


class Overrides(LadderReader):
    """`phase advance --force` and `phase set-password`."""

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
                transition = transition_from(
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
            record("locked_out", False, f"overrides locked until {market_datetime(until)}")
            raise RefusedError(
                f"overrides are locked after {self.cfg.override_max_failures} wrong passwords; "
                f"try again after {market_datetime(until)}"
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
    ) -> str | None:
        """Store a salted hash of `new_password`; changing it needs the current one. Returns
        None, or what the operator must know when the change is in effect but its durability
        was not confirmed (a failed fsync after the rename).

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
                    record("locked_out", False, f"overrides locked until {market_datetime(until)}")
                    raise RefusedError(
                        f"overrides are locked; try again after {market_datetime(until)}"
                    )
                if not verify_password(current_password(), stored):
                    record("wrong_password", False, "wrong current password")
                    raise RefusedError("the current override password is wrong; nothing changed")
            encoded = hash_password(new_password)
            verb = "change" if stored else "set"
            record("password_change_started", False, f"writing a new hash ({verb})")
            unconfirmed: str | None = None
            try:
                self.state.set_password_hash(encoded, now)
            except OSError as exc:
                # The rename may have happened before the failure (an fsync of the directory
                # after it): then the new password is the one in effect, and saying "not
                # changed" would be false. What the file holds now decides.
                if not self._stored_is(encoded):
                    with contextlib.suppress(OSError):
                        record(
                            "password_change_failed", False, f"the new hash was not written: {exc}"
                        )
                    still = "the old password still works" if stored else "no password is set"
                    raise StorageError(
                        f"{exc}; the override password was not {verb}: {still}",
                        path=self.state.path(PASSWORD_FILE),
                        errno=exc.errno,
                    ) from None
                unconfirmed = (
                    f"durability not confirmed: the new password is in effect, but the disk "
                    f"did not confirm it is stored ({exc}); if the machine loses power before "
                    "it is flushed, the old password may come back"
                )
            done = "override password changed" if stored else "set"
            record("password_set", True, f"{done}; {unconfirmed}" if unconfirmed else done)
        log.warning("phase override password %s by %s", "changed" if stored else "set", operator)
        return unconfirmed

    def _stored_is(self, encoded: str) -> bool:
        try:
            return self.state.password_hash() == encoded
        except (OSError, CorruptRecordError):
            return False


def _recent_failures(attempts: list[Attempt], since: datetime) -> int:
    """Wrong passwords at or after `since` and after the last success."""
    count = 0
    for a in attempts:
        if a.outcome in ("granted", "password_set"):
            count = 0
        elif a.outcome == "wrong_password" and a.ts >= since:
            count += 1
    return count
