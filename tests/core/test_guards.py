"""Daily-loss guard and entry window, pure; the window against the real XNYS calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from tradebot.books.risk_report import upcoming_sessions
from tradebot.core.guards import Halt, daily_loss_guard, entry_window

D = Decimal
DAY = date(2025, 7, 1)


def _guard(equity: str, *, trip: date | None = None, start: str = "10000"):  # type: ignore[no-untyped-def]
    return daily_loss_guard(
        session=DAY,
        start_equity=D(start),
        equity=D(equity),
        limit_pct=D(5),
        recorded_trip_session=trip,
    )


def test_trips_at_exactly_the_threshold() -> None:
    assert _guard("9500").tripped  # exactly 5 %
    assert _guard("9500").loss_pct == 5
    assert not _guard("9500.01").tripped  # 4.9999 %
    assert "no new entries until the next session" in _guard("9400").message


def test_a_recorded_trip_holds_for_the_session_even_after_recovery() -> None:
    g = _guard("10100", trip=DAY)
    assert g.tripped and g.tripped_earlier
    assert "tripped earlier in the 2025-07-01 session" in g.message


def test_a_trip_from_an_earlier_session_does_not_count() -> None:
    assert not _guard("10000", trip=date(2025, 6, 30)).tripped


def test_unknown_equity_is_not_a_trip_by_itself() -> None:
    g = daily_loss_guard(
        session=DAY, start_equity=None, equity=D(1), limit_pct=D(5), recorded_trip_session=None
    )
    assert not g.tripped and g.loss_pct is None and "unknown" in g.message


def _window(now: datetime):  # type: ignore[no-untyped-def]
    return entry_window(
        now, upcoming_sessions(now, "XNYS"), open_delay_minutes=5, close_buffer_minutes=15
    )


@pytest.mark.parametrize(
    "utc,expected",
    [
        ("2025-07-01T13:34:00", False),  # 09:34 ET: inside the 5-minute open delay
        ("2025-07-01T13:35:00", True),  # 09:35 ET
        ("2025-07-01T19:44:59", True),  # 15:44:59 ET
        ("2025-07-01T19:45:00", False),  # 15:45 ET: inside the 15-minute close buffer
        ("2025-07-01T22:00:00", False),  # after the close
        ("2025-07-04T15:00:00", False),  # Independence Day: no session
        ("2025-07-05T15:00:00", False),  # Saturday
        ("2025-07-03T16:40:00", True),  # early close day, 12:40 ET
        ("2025-07-03T16:45:00", False),  # 12:45 ET: 15 minutes before the 13:00 close
    ],
)
def test_entry_window_on_the_real_calendar(utc: str, expected: bool) -> None:
    w = _window(datetime.fromisoformat(utc).replace(tzinfo=UTC))
    assert w.in_window is expected, w.message


def test_next_window_after_a_holiday_weekend() -> None:
    w = _window(datetime(2025, 7, 4, 15, 0, tzinfo=UTC))
    assert w.session is None
    assert w.next_window_open == datetime(2025, 7, 7, 13, 35, tzinfo=UTC)  # Monday 09:35 ET
    assert w.message == "the market is closed; next entries from 2025-07-07 09:35 EDT"


def test_halt_message() -> None:
    h = Halt(True, datetime(2025, 7, 1, 14, 0, tzinfo=UTC), "alice", "news")
    assert h.message() == (
        "halted since 2025-07-01 10:00 EDT by alice: news; `tradebot resume` lifts it"
    )
    assert Halt(False).message() == "not halted"
