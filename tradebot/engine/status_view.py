"""`tradebot status`: the loop seen from another terminal, from files only (the run lock, the
heartbeat the loop publishes, the journals and the state), never from the broker. It depends on
the loop's published state (`engine.status`, `engine.heartbeat`), never on the loop itself."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

STALE_MIN_S = 90.0


def loop_report(loaded: Any, now: datetime | None = None) -> dict[str, Any]:
    """What `tradebot status` shows. Reads files only; never talks to the broker.

    `now` defaults to the moment just after the heartbeat was read: taken before, a beat
    written in between would look like one from the future (a negative age)."""
    import fcntl
    import os as _os
    from pathlib import Path

    from tradebot.books.equity import account_modes
    from tradebot.books.journal_cache import CachedOrderJournal, CachedTradeJournal
    from tradebot.books.ladder import PhaseLadder
    from tradebot.books.state_store import StateStore
    from tradebot.engine.events import EventLog
    from tradebot.engine.heartbeat import HEARTBEAT_FILE
    from tradebot.engine.order_book import OrderBook
    from tradebot.errors import CorruptRecordError
    from tradebot.storage import read_json_state

    state_dir = Path(loaded.state_dir)
    heartbeat_s = float(loaded.settings.monitoring.heartbeat_s)
    lock_holder: int | None = None
    lock_path = state_dir / "run.lock"
    if lock_path.exists():
        fd = _os.open(lock_path, _os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            text = _os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            lock_holder = int(text) if text.isdigit() else -1
        finally:
            _os.close(fd)
    beat = read_json_state(state_dir / HEARTBEAT_FILE)
    beat_at = None if beat is None else _beat_time(state_dir / HEARTBEAT_FILE, beat)
    if now is None:
        from datetime import UTC

        now = datetime.now(UTC)
    age = None if beat_at is None else max(0.0, (now - beat_at).total_seconds())
    stale_after = max(STALE_MIN_S, 3 * heartbeat_s)
    problems: list[str] = []
    if lock_holder is not None:
        state = "running"
        if age is None or age > stale_after:
            state = "stale"
            problems.append(
                f"the loop (pid {lock_holder}) holds the lock but its last heartbeat is "
                + ("missing" if age is None else f"{age:.0f} s old (> {stale_after:.0f} s)")
                + ": it may be hung; systemd's watchdog restarts it, or stop and restart it"
            )
        elif beat is not None and (beat.get("stuck_for_s") or 0) > stale_after:
            state = "stale"
            problems.append(f"the loop has been stuck in one step for {beat['stuck_for_s']} s")
    elif beat is not None and beat.get("crashed"):
        state = "died"
        problems.append(
            "the loop stopped on an error"
            + (f" ({beat.get('last_error')})" if beat.get("last_error") else "")
            + "; see tradebot.log, then start it again"
        )
    elif beat is not None and beat.get("running"):
        state = "died"
        problems.append(
            "the last heartbeat says a loop was running, but none holds the lock: it stopped "
            "without saying so (kill -9, a crash, a reboot); start it again"
        )
    else:
        state = "not running"

    # A loop on its own clock (a simulated replay, the gateway simulator's) lives at that
    # clock's time: its session, its P&L today and its phase are read there.
    at = now
    clock_note = (beat or {}).get("clock_note")
    loop_clock = (beat or {}).get("clock")
    if clock_note and state == "running" and loop_clock:
        at = datetime.fromisoformat(str(loop_clock).replace("Z", "+00:00"))
    ladder = PhaseLadder(loaded)
    snap = ladder.snapshot(at)
    try:
        halt = StateStore(state_dir).halt()
        halted, halt_text = halt.halted, halt.message()
    except CorruptRecordError as exc:
        halted, halt_text = True, exc.message
    orders = CachedOrderJournal(loaded.logs_dir)
    trades = CachedTradeJournal(loaded.logs_dir)
    positions: list[dict[str, Any]] = []
    working: list[dict[str, Any]] = []
    urgent: list[str] = list((beat or {}).get("urgent") or []) if state == "running" else []
    realized = Decimal(0)
    try:
        book = OrderBook(orders, trades, EventLog(loaded.logs_dir))
        book.refresh()
        marks = {p["ref"]: p for p in (beat or {}).get("positions", [])}
        for pos in book.open_positions():
            e = pos.entry
            mark = marks.get(e.ref, {})
            positions.append(
                {
                    "ref": e.ref,
                    "contract": e.contract.label,
                    "strategy": e.strategy,
                    "qty": pos.open_qty,
                    "entry_price": e.avg_price,
                    "mark": mark.get("mark"),
                    "unrealized": mark.get("unrealized"),
                }
            )
        urgent += _expiry_lines(loaded, book, now, urgent)
        for o in book.live.values():
            if o.status != "intent":
                working.append(
                    {
                        "ref": o.ref,
                        "role": o.role,
                        "contract": o.contract.label,
                        "action": o.action,
                        "qty": o.qty,
                        "order_type": o.order_type,
                        "price": o.limit if o.limit is not None else o.stop,
                        "status": o.status,
                    }
                )
        series, _ = trades.series()
        from tradebot.core.metrics import from_micros
        from tradebot.core.trades import session_of

        realized = from_micros(
            series.sum_pnl(account_modes(loaded), session=session_of(at).toordinal())
        )
    except CorruptRecordError as exc:
        problems.append(exc.message)
    last_error = (beat or {}).get("last_error") or _last_error_event(Path(loaded.logs_dir))
    ev = snap.evaluation
    return {
        "v": 1,
        "now": now,
        "state": state,
        "running": state == "running",
        "pid": lock_holder if lock_holder and lock_holder > 0 else (beat or {}).get("pid"),
        "started": (beat or {}).get("started"),
        "last_heartbeat": beat_at,
        "heartbeat_age_s": None if age is None else round(age, 1),
        "stale": state in ("stale", "died"),
        "clock": (beat or {}).get("clock"),
        "clock_note": clock_note,
        "status": (beat or {}).get("status"),
        "phase": None if ev is None else ev.phase,
        "phase_error": snap.error,
        "halted": halted,
        "halt": halt_text,
        "today": {"realized_pnl": realized, "session": _session_of(at)},
        "equity": (beat or {}).get("equity"),
        "positions": positions,
        "working_orders": working,
        "last_error": last_error,
        "problems": problems,
        "urgent": urgent,
    }


def _beat_time(path: Any, beat: dict[str, Any]) -> datetime:
    """The heartbeat's `beat`: an ISO-8601 time with a timezone, or CorruptRecordError naming
    the file and the key (written by the loop only; anything else is not its heartbeat)."""
    from tradebot.core.validation import utc_timestamp
    from tradebot.errors import CorruptRecordError

    if "beat" not in beat:
        raise CorruptRecordError(path, None, "the key beat is missing")
    try:
        return utc_timestamp(beat["beat"], "beat")
    except ValueError as exc:
        raise CorruptRecordError(path, None, str(exc)) from None


def _expiry_lines(loaded: Any, book: Any, now: datetime, known: list[str]) -> list[str]:
    """Open positions whose option expires today (once the flatten time has come) or has
    expired already, unless the running loop's heartbeat names them."""
    from tradebot.core.trades import EXCHANGE_TZ, session_of

    s = loaded.settings
    today = session_of(now)
    plan: Any = None
    if any(p.entry.contract.expiry == today for p in book.open_positions()):
        # The calendar only when a position expires today, and from the state directory's
        # cached copy when valid (no pandas): `status` stays fast.
        from tradebot.engine.schedule import session_plan

        try:
            plan = session_plan(
                today,
                s.schedule.calendar,
                interval_s=s.trading.interval_s,
                open_delay_minutes=s.schedule.open_delay_minutes,
                close_buffer_minutes=s.schedule.close_buffer_minutes,
                flatten_minutes=s.trading.flatten_minutes_before_close,
                state_dir=loaded.state_dir,
            )
        except ValueError:  # not a session today
            plan = None
    lines = []
    for pos in book.open_positions():
        entry = pos.entry
        if any(entry.ref in line for line in known):
            continue
        label = f"{entry.ref} {pos.open_qty} {entry.contract.label}"
        if entry.contract.expiry < today:
            lines.append(
                f"PAST EXPIRY: {label} is still open in the journal: IB exercised it or let it "
                "expire; check the account and record the outcome (`tradebot journal close`)"
            )
        elif entry.contract.expiry == today and plan is not None and now >= plan.flatten_at:
            close = plan.closes.astimezone(EXCHANGE_TZ)
            lines.append(
                f"EXPIRES TODAY: {label} still open after the flatten time; held at the "
                f"{close:%H:%M %Z} close it is exercised if in the money"
            )
    return lines


def _session_of(now: datetime) -> Any:
    from tradebot.core.trades import session_of

    return session_of(now)


def _last_error_event(logs_dir: Any) -> str | None:
    """The last error-like event in `journal/events.jsonl` (its final 64 KiB only)."""
    import json

    path = logs_dir / "journal" / "events.jsonl"
    try:
        with path.open("rb") as fh:
            fh.seek(0, 2)
            size = fh.tell()
            fh.seek(max(0, size - 65536))
            tail = fh.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return None
    for line in reversed(tail):
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict) and record.get("event") in (
            "error",
            "broker_error",
            "ladder_error",
            "exit_failed",
        ):
            return f"{record.get('ts')}: {record.get('message')}"
    return None
