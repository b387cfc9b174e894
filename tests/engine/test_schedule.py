"""The loop's session plan: ticks inside the entry window, early closes, holidays, DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebot.core.sessions import previous_sessions, session_open_close, sessions_between
from tradebot.engine.schedule import SessionPlan, current_or_next_session, session_plan

NY = ZoneInfo("America/New_York")
CAL = "XNYS"


def _plan(
    day: date,
    *,
    interval_s: int = 180,
    open_delay: int = 5,
    close_buffer: int = 15,
    flatten: int = 10,
) -> SessionPlan:
    return session_plan(
        day,
        CAL,
        interval_s=interval_s,
        open_delay_minutes=open_delay,
        close_buffer_minutes=close_buffer,
        flatten_minutes=flatten,
    )


def _ny(day: date, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm, ss), NY).astimezone(UTC)


def test_a_regular_day() -> None:
    day = date(2025, 7, 1)
    plan = _plan(day)
    assert plan.session == day
    assert (plan.opens, plan.closes) == (_ny(day, 9, 30), _ny(day, 16))
    assert plan.window_open == _ny(day, 9, 35)
    assert plan.window_close == _ny(day, 15, 45)
    assert plan.flatten_at == _ny(day, 15, 50)
    ticks = plan.ticks()
    assert ticks[0] == _ny(day, 9, 35)
    assert ticks[-1] == _ny(day, 15, 44)  # 15:47 would be past the 15:45 window close
    assert len(ticks) == 124
    assert all(b - a == timedelta(seconds=180) for a, b in pairwise(ticks))
    assert all(t.tzinfo is not None and t.utcoffset() == timedelta(0) for t in ticks)


def test_no_tick_at_the_window_close_itself() -> None:
    day = date(2025, 7, 1)
    plan = _plan(day, interval_s=300)  # 09:35 + 5 min steps lands exactly on 15:45
    assert plan.ticks()[-1] == _ny(day, 15, 40)
    assert plan.tick_at_or_after(_ny(day, 15, 44)) is None
    assert plan.tick_at_or_after(_ny(day, 15, 45)) is None


def test_the_early_close_before_independence_day() -> None:
    day = date(2025, 7, 3)
    plan = _plan(day)
    assert plan.closes == _ny(day, 13)
    assert plan.window_close == _ny(day, 12, 45)
    assert plan.flatten_at == _ny(day, 12, 50)
    ticks = plan.ticks()
    assert ticks[-1] == _ny(day, 12, 44)
    assert all(t < _ny(day, 12, 45) for t in ticks)
    assert len(ticks) == 64  # (12:45 − 09:35) / 3 min, rounded up
    assert plan.in_session(_ny(day, 12, 59)) and not plan.in_session(_ny(day, 13))


def test_a_holiday_has_no_plan() -> None:
    with pytest.raises(ValueError, match="not a XNYS session"):
        _plan(date(2025, 7, 4))
    with pytest.raises(ValueError):
        _plan(date(2025, 7, 5))  # a Saturday


@pytest.mark.parametrize(
    ("day", "utc_open"),
    [
        (date(2025, 3, 7), time(14, 30)),  # the Friday before DST starts (EST)
        (date(2025, 3, 10), time(13, 30)),  # the Monday after (EDT)
        (date(2025, 10, 31), time(13, 30)),  # the Friday before DST ends (EDT)
        (date(2025, 11, 3), time(14, 30)),  # the Monday after (EST)
    ],
)
def test_dst_days_open_at_0930_new_york(day: date, utc_open: time) -> None:
    plan = _plan(day)
    assert plan.opens == datetime.combine(day, utc_open, UTC)
    assert plan.opens.astimezone(NY).time() == time(9, 30)
    assert plan.closes.astimezone(NY).time() == time(16)
    ticks = plan.ticks()
    assert ticks[0].astimezone(NY).time() == time(9, 35)
    assert ticks[-1].astimezone(NY).time() == time(15, 44)
    assert len(ticks) == 124  # the same day in New York time, whatever the UTC offset


def test_an_interval_that_does_not_divide_the_window() -> None:
    day = date(2025, 7, 1)
    plan = _plan(day, interval_s=7 * 60)  # a 370-minute window in 7-minute steps
    ticks = plan.ticks()
    assert len(ticks) == 53  # ceil(370 / 7)
    assert ticks[-1] == _ny(day, 9, 35) + 52 * timedelta(minutes=7)
    assert ticks[-1] < plan.window_close < ticks[-1] + timedelta(minutes=7)


def test_an_interval_longer_than_the_window_gives_one_tick() -> None:
    day = date(2025, 7, 3)
    plan = _plan(day, interval_s=6 * 3600)
    assert plan.ticks() == [_ny(day, 9, 35)]


def test_a_window_with_no_room_has_no_tick() -> None:
    day = date(2025, 7, 3)  # 3.5 hours
    plan = _plan(day, open_delay=200, close_buffer=10)
    assert plan.window_open >= plan.window_close
    assert plan.ticks() == []
    assert plan.tick_at_or_after(plan.opens) is None


def test_tick_at_or_after() -> None:
    day = date(2025, 7, 1)
    plan = _plan(day)
    first = _ny(day, 9, 35)
    assert plan.tick_at_or_after(_ny(day, 4)) == first  # before the open
    assert plan.tick_at_or_after(first) == first
    assert plan.tick_at_or_after(first + timedelta(microseconds=1)) == _ny(day, 9, 38)
    assert plan.tick_at_or_after(_ny(day, 9, 38)) == _ny(day, 9, 38)
    assert plan.tick_at_or_after(_ny(day, 9, 39, 59)) == _ny(day, 9, 41)
    assert plan.tick_at_or_after(_ny(day, 20)) is None  # after the close
    # Any timezone names the same instant.
    assert plan.tick_at_or_after(_ny(day, 10, 0).astimezone(NY)) == _ny(day, 10, 2)


def test_in_session_is_open_inclusive_close_exclusive() -> None:
    day = date(2025, 7, 1)
    plan = _plan(day)
    assert plan.in_session(_ny(day, 9, 30))
    assert not plan.in_session(_ny(day, 9, 30) - timedelta(microseconds=1))
    assert plan.in_session(_ny(day, 16) - timedelta(microseconds=1))
    assert not plan.in_session(_ny(day, 16))


_SESSIONS_2025 = sessions_between(date(2025, 1, 1), date(2025, 12, 31), CAL)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(_SESSIONS_2025),
    st.integers(30, 7200),
    st.integers(0, 240),
    st.integers(0, 240),
    st.floats(-0.1, 1.1),
)
def test_ticks_are_every_interval_inside_the_window(
    day: date, interval_s: int, open_delay: int, close_buffer: int, where: float
) -> None:
    plan = _plan(day, interval_s=interval_s, open_delay=open_delay, close_buffer=close_buffer)
    step = timedelta(seconds=interval_s)
    ticks = plan.ticks()
    if plan.window_open >= plan.window_close:
        assert ticks == []
    else:
        assert ticks[0] == plan.opens + timedelta(minutes=open_delay)
        assert all(b - a == step for a, b in pairwise(ticks))
        assert ticks[-1] < plan.closes - timedelta(minutes=close_buffer) <= ticks[-1] + step
    # tick_at_or_after(t) is the first tick ≥ t, anywhere around the session.
    span = plan.closes - plan.opens
    t = plan.opens + span * where
    expected = next((tick for tick in ticks if tick >= t), None)
    assert plan.tick_at_or_after(t) == expected


# -- which session is current -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (_ny(date(2025, 7, 1), 6), date(2025, 7, 1)),  # before the open: today's
        (_ny(date(2025, 7, 1), 12), date(2025, 7, 1)),  # during the session
        (_ny(date(2025, 7, 1), 16), date(2025, 7, 2)),  # at the close: the next one
        (_ny(date(2025, 7, 3), 12, 59, 59), date(2025, 7, 3)),  # before the 13:00 close
        (_ny(date(2025, 7, 3), 13), date(2025, 7, 7)),  # after it, skipping the holiday
        (_ny(date(2025, 7, 3), 21), date(2025, 7, 7)),  # already 07-04 in UTC
        (_ny(date(2025, 7, 4), 0), date(2025, 7, 7)),  # the holiday itself
        (_ny(date(2025, 7, 4), 10), date(2025, 7, 7)),
        (_ny(date(2025, 7, 5), 10), date(2025, 7, 7)),  # the weekend
        (_ny(date(2025, 12, 24), 14), date(2025, 12, 26)),  # early close, then Christmas
        (_ny(date(2025, 3, 9), 3), date(2025, 3, 10)),  # the DST night
    ],
)
def test_current_or_next_session(now: datetime, expected: date) -> None:
    assert current_or_next_session(now, CAL) == expected
    assert current_or_next_session(now.astimezone(NY), CAL) == expected


@settings(max_examples=80, deadline=None)
@given(st.datetimes(datetime(2024, 1, 1), datetime(2026, 12, 1), timezones=st.just(UTC)))
def test_current_or_next_session_is_the_first_session_not_yet_closed(now: datetime) -> None:
    day = current_or_next_session(now, CAL)
    assert session_open_close(day, CAL)[1] > now
    before = previous_sessions(day, 1, CAL)[0]
    assert session_open_close(before, CAL)[1] <= now
