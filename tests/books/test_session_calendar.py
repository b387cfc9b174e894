"""The calendar's cached copy: used only when valid, never needed for a right answer.

A missing, damaged, other-version or too-short copy is ignored: exchange_calendars answers and a
fresh copy is written (only into a state directory that exists). `open_calendar(...,
prefer_loaded=False)` is what a command process does (this test process has exchange_calendars
loaded already, where the loop and backtests ask it directly); tests/cli/test_start_up.py checks
the same from real `tradebot` processes.
"""

from __future__ import annotations

import errno
import importlib.metadata
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tradebot.books import session_calendar as sc
from tradebot.core import sessions as ec
from tradebot.core.session_table import SessionTable
from tradebot.errors import ConfigError, storage_error

VERSION = sc.installed_version()
DAYS = [date(2025, 7, 1) + timedelta(days=i) for i in range(10)]


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    path = tmp_path / "logs" / "state"
    path.mkdir(parents=True)
    return path


def _path(state_dir: Path) -> Path:
    path = sc.cache_path(state_dir, "XNYS")
    assert path is not None
    return path


def _record(state_dir: Path) -> dict[str, Any]:
    return dict(json.loads(_path(state_dir).read_text()))


def _answers(sessions: sc.CalendarSessions) -> list[Any]:
    """What risk check, status and the whale debounce ask, for a span of days."""
    out: list[Any] = [sessions.between(DAYS[0], DAYS[-1]), sessions.previous(DAYS[0], 3)]
    for day in DAYS:
        out.append(sessions.is_session(day))
        out.append(sessions.open_close(day) if sessions.is_session(day) else None)
    out.append(sessions.next_session(date(2025, 7, 3)))
    out.append(sessions.session_at(datetime(2025, 7, 3, 16, 59, tzinfo=UTC)))
    return out


def _exact() -> list[Any]:
    return _answers(sc.CalendarSessions("XNYS", None))


def test_the_installed_version_is_read_without_importing_the_library() -> None:
    assert importlib.metadata.version("exchange_calendars") == VERSION


def test_a_miss_asks_exchange_calendars_and_leaves_a_copy(state_dir: Path) -> None:
    sessions = sc.open_calendar("XNYS", state_dir, prefer_loaded=False)
    assert sessions.table is None  # this answer came from exchange_calendars
    assert _answers(sessions) == _exact()
    record = _record(state_dir)
    assert (record["v"], record["calendar"], record["exchange_calendars"]) == (1, "XNYS", VERSION)
    assert record["start"] == ec.CALENDAR_START and record["last"] == str(
        ec.session_table("XNYS").last
    )
    assert _path(state_dir).stat().st_mode & 0o777 == 0o600
    assert _path(state_dir).stat().st_size < 40_000  # small: runs of times, gaps of days

    again = sc.open_calendar("XNYS", state_dir, prefer_loaded=False)
    assert again.table is not None  # the copy answers now ...
    assert _answers(again) == _exact()  # ... exactly as exchange_calendars


def test_a_state_directory_that_does_not_exist_is_not_created(tmp_path: Path) -> None:
    sessions = sc.open_calendar("XNYS", tmp_path / "never-ran", prefer_loaded=False)
    assert _answers(sessions) == _exact()
    assert not (tmp_path / "never-ran").exists()


def _damage_json(path: Path) -> None:
    path.write_text(path.read_text()[:-200])  # torn


def _damage_garbage(path: Path) -> None:
    path.write_bytes(b"\x00\xffnot json at all")


def _damage_a_digit(path: Path) -> None:
    # Valid JSON, a plausible time: the last sessions close a minute late. Only the checksum
    # can tell.
    record = json.loads(path.read_text())
    record["closes"][-1][0] += 60
    path.write_text(json.dumps(record))


def _edit(**changes: Any) -> Any:
    def apply(path: Path) -> None:
        record = json.loads(path.read_text())
        record.update(changes)
        path.write_text(json.dumps(record))

    apply.__name__ = "_".join(changes)
    return apply


@pytest.mark.parametrize(
    "damage",
    [
        _damage_json,
        _damage_garbage,
        _damage_a_digit,
        _edit(exchange_calendars="0.0.1"),  # written by another exchange_calendars version
        _edit(v=2),  # another format
        _edit(calendar="XLON"),  # another calendar's copy
        _edit(start="2000-01-01"),  # another range
        _edit(opens=[[34200, 3]]),  # runs that do not cover the sessions
        _edit(days="1,2,3"),
        _edit(breaks=[1, 2]),
        _edit(sessions=-1),
    ],
    ids=lambda f: f.__name__.removeprefix("_damage_"),
)
def test_a_copy_that_is_not_exactly_valid_is_ignored_and_replaced(
    state_dir: Path, damage: Any
) -> None:
    sc.open_calendar("XNYS", state_dir, prefer_loaded=False)
    damage(_path(state_dir))
    assert sc.read_table(state_dir, "XNYS", str(VERSION)) is None
    sessions = sc.open_calendar("XNYS", state_dir, prefer_loaded=False)
    assert sessions.table is None and _answers(sessions) == _exact()
    assert sc.read_table(state_dir, "XNYS", str(VERSION)) is not None  # written afresh


def test_a_copy_made_by_another_exchange_calendars_is_not_trusted(state_dir: Path) -> None:
    table = ec.session_table("XNYS")
    assert sc.write_table(state_dir, table, "0.0.1")
    assert sc.read_table(state_dir, "XNYS", "0.0.1") is not None
    assert sc.read_table(state_dir, "XNYS", str(VERSION)) is None


def _short_copy(state_dir: Path, last: date) -> SessionTable:
    full = ec.session_table("XNYS")
    n = sum(1 for d in full.days if d <= last.toordinal())
    short = SessionTable("XNYS", full.days[:n], full.opens[:n], full.closes[:n])
    assert sc.write_table(state_dir, short, str(VERSION))
    return short


def test_a_question_past_the_copys_end_asks_exchange_calendars_and_refreshes_it(
    state_dir: Path,
) -> None:
    """A copy written a year ago ends before next week: exchange_calendars knows more."""
    _short_copy(state_dir, DAYS[3])
    sessions = sc.open_calendar("XNYS", state_dir, prefer_loaded=False)
    assert sessions.table is not None and sessions.table.last == date(2025, 7, 3)
    assert sessions.is_session(date(2025, 7, 2))  # inside the copy: answered by it
    assert sessions.table is not None
    assert sessions.between(DAYS[0], DAYS[-1]) == ec.sessions_between(DAYS[0], DAYS[-1])
    assert sessions.table is None  # past it: exchange_calendars answers from now on
    assert _answers(sessions) == _exact()
    refreshed = sc.read_table(state_dir, "XNYS", str(VERSION))
    assert refreshed is not None and refreshed.last == ec.session_table("XNYS").last


@pytest.mark.parametrize(
    "question",
    ["is_session", "open_close", "previous", "next_session", "session_at"],
)
def test_every_question_falls_back_past_the_copy(state_dir: Path, question: str) -> None:
    _short_copy(state_dir, date(2025, 7, 3))
    sessions = sc.open_calendar("XNYS", state_dir, prefer_loaded=False)
    exact = sc.CalendarSessions("XNYS", None)
    args: dict[str, tuple[Any, ...]] = {
        "is_session": (date(2025, 7, 8),),
        "open_close": (date(2025, 7, 8),),
        "previous": (date(2025, 7, 9), 3),
        "next_session": (date(2025, 7, 3),),
        "session_at": (datetime(2025, 7, 8, 15, tzinfo=UTC),),
    }
    assert getattr(sessions, question)(*args[question]) == getattr(exact, question)(*args[question])
    assert sessions.table is None


def test_run_refreshes_the_copy_only_when_it_is_not_current(state_dir: Path) -> None:
    assert sc.refresh_cache(state_dir, "XNYS") is True
    stamp = _path(state_dir).stat().st_mtime_ns
    assert sc.refresh_cache(state_dir, "XNYS") is False
    assert _path(state_dir).stat().st_mtime_ns == stamp
    _short_copy(state_dir, date(2025, 7, 3))
    assert sc.refresh_cache(state_dir, "XNYS") is True
    table = sc.read_table(state_dir, "XNYS", str(VERSION))
    assert table is not None and table.last == ec.session_table("XNYS").last


def test_a_copy_that_cannot_be_written_changes_nothing_but_speed(state_dir: Path) -> None:
    (state_dir / sc.CACHE_DIR).write_text("a file where the cache folder would be\n")
    sessions = sc.open_calendar("XNYS", state_dir, prefer_loaded=False)
    assert _answers(sessions) == _exact()
    assert (state_dir / sc.CACHE_DIR).read_text().startswith("a file")
    assert sc.refresh_cache(state_dir, "XNYS") is False


def test_a_full_disk_is_not_a_failure(state_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full(path: Path, data: bytes, **_: Any) -> None:
        raise storage_error(path, OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr("tradebot.storage.atomic.write_atomic", full)
    sessions = sc.open_calendar("XNYS", state_dir, prefer_loaded=False)
    assert _answers(sessions) == _exact()
    assert list(state_dir.iterdir()) == []


def test_an_unknown_calendar_is_a_config_error_and_leaves_no_file(state_dir: Path) -> None:
    with pytest.raises(ConfigError, match="unknown exchange calendar 'NYSEX'"):
        sc.open_calendar("NYSEX", state_dir, prefer_loaded=False)
    with pytest.raises(ConfigError, match="unknown exchange calendar"):
        sc.refresh_cache(state_dir, "NYSEX")
    assert list(state_dir.iterdir()) == []


@pytest.mark.parametrize("name", ["24/7", "../XNYS", ".hidden", "x" * 40])
def test_a_name_unfit_for_a_file_name_is_never_a_path(state_dir: Path, name: str) -> None:
    assert sc.cache_path(state_dir, name) is None
    assert sc.read_table(state_dir, name, str(VERSION)) is None
    assert not sc.write_table(state_dir, SessionTable(name, [1], [0], [1]), str(VERSION))


def test_a_process_with_exchange_calendars_loaded_asks_it_directly(state_dir: Path) -> None:
    """The loop and backtests: no copy read, none written (a backtest writes only its --out)."""
    sessions = sc.open_calendar("XNYS", state_dir)
    assert sessions.table is None and _answers(sessions) == _exact()
    assert list(state_dir.iterdir()) == []
