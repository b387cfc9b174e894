"""State files: halt, start-of-day equity, daily-loss trip, equity snapshot."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tradebot.books.halt import KillSwitch
from tradebot.books.state_store import KEEP_SESSIONS, StateStore
from tradebot.errors import CorruptRecordError

T0 = datetime(2025, 7, 1, 14, 0, tzinfo=UTC)


def test_halt_set_lift_read_and_journal(tmp_path: Path) -> None:
    switch = KillSwitch(tmp_path / "state", tmp_path / "logs")
    assert not switch.status().halted
    first = switch.halt(T0, operator="ops", reason="news")
    again = switch.halt(T0 + timedelta(minutes=5), operator="other", reason=None, flatten=True)
    assert first.halted and again.since == T0 and again.operator == "ops"
    assert again.flatten is True  # a second halt can add --flatten, never removes it
    assert KillSwitch(tmp_path / "state", tmp_path / "logs").status().halted  # new process
    lifted = switch.resume(T0 + timedelta(hours=1), operator="ops", reason="calm")
    assert lifted.halted and not switch.status().halted
    events = [
        json.loads(x) for x in (tmp_path / "logs/journal/events.jsonl").read_text().splitlines()
    ]
    assert [e["event"] for e in events] == ["halt", "halt", "resume"]


def test_unreadable_halt_details_keep_the_halt(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    (tmp_path / "halt.json").write_text('{"v": 1, "halted": true, "since": "yesterday"}\n')
    halt = store.halt()
    assert halt.halted and halt.since is None


def test_start_of_day_is_recorded_once_per_session(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    day = date(2025, 7, 1)
    assert store.record_start_of_day(day, Decimal(10000), "broker", T0).amount == 10000
    kept = store.record_start_of_day(day, Decimal(9000), "broker", T0 + timedelta(hours=1))
    assert kept.amount == 10000  # a later look never moves the day's anchor
    assert StateStore(tmp_path).start_of_day_equity(day) is not None
    assert store.start_of_day_equity(date(2025, 7, 2)) is None


def test_daily_loss_trip_is_recorded_once(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    day = date(2025, 7, 1)
    assert store.record_daily_loss_trip(day, T0, Decimal(10000), Decimal(9400), Decimal(6))
    assert not store.record_daily_loss_trip(day, T0, Decimal(10000), Decimal(9000), Decimal(10))
    trip = store.daily_loss_trip()
    assert trip is not None and trip[0] == day and trip[1]["loss_pct"] == "6.000000"
    assert store.record_daily_loss_trip(
        date(2025, 7, 2), T0, Decimal(9400), Decimal(8900), Decimal("5.3")
    )


def test_corrupt_state_is_an_error_not_a_guess(tmp_path: Path) -> None:
    (tmp_path / "start-of-day-equity.json").write_text("{torn")
    with pytest.raises(CorruptRecordError, match=r"start-of-day-equity\.json"):
        StateStore(tmp_path).start_of_day_equity(date(2025, 7, 1))


def test_start_of_day_keeps_only_recent_sessions(tmp_path: Path) -> None:
    """Every tick reads the whole file: it holds the last KEEP_SESSIONS sessions, not years
    (a backtest of 1,000 sessions spent a third of its time re-reading 400 of them)."""
    store = StateStore(tmp_path)
    days = [date(2025, 6, 2) + timedelta(days=i) for i in range(KEEP_SESSIONS + 5)]
    for i, day in enumerate(days):
        store.record_start_of_day(day, Decimal(10000 + i), "broker", T0 + timedelta(days=i))
    assert store.start_of_day_equity(days[-1]) is not None
    assert store.start_of_day_equity(days[-KEEP_SESSIONS]) is not None
    assert store.start_of_day_equity(days[-KEEP_SESSIONS - 1]) is None
    saved = json.loads((tmp_path / "start-of-day-equity.json").read_text())
    assert len(saved["sessions"]) == KEEP_SESSIONS
