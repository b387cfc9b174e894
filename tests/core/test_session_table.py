"""The pure-Python session table answers exactly as exchange_calendars (issue 19, item 6).

`SessionTable` is what `risk check` and `status` ask instead of exchange_calendars. It must give
the same answers as the exchange_calendars-backed functions of `tradebot.core.sessions`: for
every session from 1990 to the calendar's end, and (hypothesis) for any day or moment, including
non-sessions, early closes, DST changes and lunch breaks (XKRX). Past its last session it
refuses (`NotCovered`) rather than guess.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebot.books.session_calendar import decode, encode
from tradebot.core import sessions as ec
from tradebot.core.session_table import NotCovered, SessionTable

CALENDARS = ("XNYS", "XKRX")  # XKRX: lunch breaks on some sessions


@pytest.fixture(scope="module", params=CALENDARS)
def calendar(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@lru_cache(maxsize=4)
def _table(name: str) -> SessionTable:
    # Through the cache's own form, so what is written to disk is what is checked.
    return decode(encode(ec.session_table(name), "test"), name, "test")


def _days(name: str) -> list[date]:
    return [d.item() for d in ec.session_schedule(name).sessions.astype("datetime64[D]")]


def test_every_session_from_1990_to_the_calendars_end(calendar: str) -> None:
    table, sched = _table(calendar), ec.session_schedule(calendar)
    days = _days(calendar)
    assert days[0] >= date(1990, 1, 1) and days[-1] == table.last
    assert [date.fromordinal(d) for d in table.days] == days
    opens = [ec.utc_datetime(int(ns)) for ns in sched.opens_ns]
    closes = [ec.utc_datetime(int(ns)) for ns in sched.closes_ns]
    assert [table.open_close(d) for d in days] == list(zip(opens, closes, strict=True))
    assert all(table.is_session(d) for d in days)
    # next and previous of each session, and the week from each, as exchange_calendars says
    assert [table.next_session(d) for d in days[:-1]] == days[1:]
    assert [table.previous(d, 1) for d in days[1:]] == [[d] for d in days[:-1]]
    assert table.previous(days[0], 5) == []
    assert table.between(days[0], days[-1]) == days
    step = 97  # a spread of starting points keeps the exchange_calendars side quick
    for d in days[::step]:
        assert table.between(d, d + timedelta(days=9)) == ec.sessions_between(
            d, d + timedelta(days=9), calendar
        )
        assert table.previous(d, 4) == ec.previous_sessions(d, 4, calendar)


def test_every_day_is_a_session_or_not_as_exchange_calendars_says(calendar: str) -> None:
    table = _table(calendar)
    sessions = set(_days(calendar))
    day, end = date(1989, 12, 1), table.last
    while day <= end:
        assert table.is_session(day) is (day in sessions), day
        day += timedelta(days=1)


def test_early_closes_and_holidays_are_the_calendars() -> None:
    table = _table("XNYS")
    opens, closes = table.open_close(date(2025, 7, 3))  # 13:00 New York close
    assert (opens, closes) == (
        datetime(2025, 7, 3, 13, 30, tzinfo=UTC),
        datetime(2025, 7, 3, 17, 0, tzinfo=UTC),
    )
    assert not table.is_session(date(2025, 7, 4))
    with pytest.raises(ValueError, match="2025-07-04 is not a XNYS session"):
        table.open_close(date(2025, 7, 4))
    assert table.next_session(date(2025, 7, 3)) == date(2025, 7, 7)


def _in_range(calendar: str) -> st.SearchStrategy[date]:
    return st.dates(date(1985, 1, 1), _table(calendar).last)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), span=st.integers(-3, 40), count=st.integers(0, 12))
def test_any_day_answers_as_exchange_calendars(
    calendar: str, data: st.DataObject, span: int, count: int
) -> None:
    table = _table(calendar)
    day = data.draw(_in_range(calendar))
    end = min(day + timedelta(days=span), table.last)
    assert table.is_session(day) == ec.is_session(day, calendar)
    assert table.between(day, end) == ec.sessions_between(day, end, calendar)
    assert table.previous(day, count) == ec.previous_sessions(day, count, calendar)
    if day < table.last:
        assert table.next_session(day) == ec.next_session(day, calendar)
    if ec.is_session(day, calendar):
        assert table.open_close(day) == ec.session_open_close(day, calendar)
    else:
        with pytest.raises(ValueError):
            table.open_close(day)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), seconds=st.integers(0, 86_400 * 2))
def test_any_moment_is_in_the_session_exchange_calendars_says(
    calendar: str, data: st.DataObject, seconds: int
) -> None:
    table = _table(calendar)
    # From the day after the first session: a moment before the table's first open is outside
    # it (NotCovered, as past its last close; see the test below), not "no session".
    day = data.draw(st.dates(table.first + timedelta(days=1), table.last - timedelta(days=2)))
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(seconds=seconds)
    assert table.session_at(moment) == ec.session_at(moment, calendar)


def test_session_boundaries_are_exact(calendar: str) -> None:
    """[open, close): the open's second is in, the close's is out; a break is out too."""
    table, sched = _table(calendar), ec.session_schedule(calendar)
    for i in range(len(table.days) - 500, len(table.days) - 1, 7):
        for ns in (sched.opens_ns[i], sched.closes_ns[i], sched.break_starts_ns[i]):
            if ns == np.iinfo(np.int64).min:
                continue
            for delta in (-1, 0, 1):
                moment = ec.utc_datetime(int(ns)) + timedelta(seconds=delta, microseconds=delta)
                assert table.session_at(moment) == ec.session_at(moment, calendar), moment


def test_past_the_last_session_the_table_does_not_guess() -> None:
    table = _table("XNYS")
    after = table.last + timedelta(days=1)
    for ask in (
        lambda: table.is_session(after),
        lambda: table.open_close(after),
        lambda: table.between(table.last, after),
        lambda: table.previous(after, 3),
        lambda: table.next_session(table.last),
        lambda: table.session_at(table.open_close(table.last)[1]),
        lambda: table.session_at(datetime(1980, 1, 2, 15, tzinfo=UTC)),
    ):
        with pytest.raises(NotCovered):
            ask()
    assert table.between(date(1980, 1, 1), date(1990, 1, 5)) == [
        date(1990, 1, 2),
        date(1990, 1, 3),
        date(1990, 1, 4),
        date(1990, 1, 5),
    ]


def test_a_date_is_asked_not_a_datetime_nor_a_naive_moment() -> None:
    table = _table("XNYS")
    with pytest.raises(ValueError, match="a session is a date"):
        table.is_session(datetime(2025, 7, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="timezone-aware"):
        table.session_at(datetime(2025, 7, 1, 15))


def test_a_table_needs_matching_columns() -> None:
    with pytest.raises(ValueError):
        SessionTable("X", [], [], [])
    with pytest.raises(ValueError):
        SessionTable("X", [1, 2], [0], [1, 2])
    with pytest.raises(ValueError):
        SessionTable("X", [1], [0], [1], break_starts=[None])
