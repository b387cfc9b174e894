"""Daily-loss guard and entry window, pure; the window against the real XNYS calendar."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from tradebot.books.risk_report import upcoming_sessions
from tradebot.core.guards import (
    DayLoss,
    Halt,
    MarkedEquity,
    PositionMark,
    daily_loss_guard,
    entry_window,
    pct_text,
)

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


# -- every input of a daily-loss decision (issue 23) -------------------------------------------
def _position(n: int, mark: str | None) -> PositionMark:
    return PositionMark(f"SPY-250701-s{n}", "SPY 2025-07-03 620 C", 1, 100, D("1.00"),
                        None if mark is None else D(mark))  # fmt: skip


def test_the_refusal_names_the_start_the_realized_pnl_each_mark_and_the_equity() -> None:
    inputs = DayLoss.of(
        D(10000),
        "recorded at session start",
        MarkedEquity(D("9499.50"), "sim account", D("9300.00"), (_position(1, "1.995"),)),
        D("-420"),
    )
    g = daily_loss_guard(session=DAY, start_equity=D(10000), equity=D("9499.50"),
                         limit_pct=D(5), recorded_trip_session=None, inputs=inputs)  # fmt: skip
    assert g.tripped
    assert g.message == (
        "equity $9,499.50 vs start-of-day $10,000.00: down 5.005 % (limit 5 %); cash $9,300.00 "
        "+ 1 position marked at $199.50 (SPY-250701-s1 1 × 1.995); realized today -$420.00: no "
        "new entries until the next session"
    )
    record = inputs.as_record()
    assert (record["loss_usd"], record["loss_pct"]) == (D("500.50"), D("5.005000"))
    assert record["positions"][0]["value"] == D("199.500")


def test_a_message_lists_five_marks_and_the_record_all_of_them() -> None:
    positions = tuple(_position(n, "0.50" if n != 3 else None) for n in range(7))
    inputs = DayLoss.of(D(1000), "", MarkedEquity(D(900), "sim", D(600), positions), None)
    text = inputs.breakdown()
    assert "7 positions marked at $300.00" in text
    assert "SPY-250701-s3 1 × no quote" in text
    assert "SPY-250701-s4 1 × 0.50, 2 more in the record)" in text
    assert len(inputs.as_record()["positions"]) == 7


@pytest.mark.parametrize(
    ("value", "against", "shown"),
    [
        ("5.0001", "5", "5.0001 %"),
        ("4.99996", "5", "4.99996 %"),
        ("5", "5", "5.00 %"),
        ("7.25", "5", "7.25 %"),
        ("59.96", "60", "59.96 %"),
    ],
)
def test_a_percentage_never_reads_as_its_threshold(value: str, against: str, shown: str) -> None:
    assert pct_text(D(value), D(against)) == shown
