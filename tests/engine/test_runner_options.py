"""`tradebot run` options: --start/--until times, --speed, simulated or real, the run lock."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebot.engine.runner import LOCK_FILE, build_options, parse_speed, parse_when, run_lock
from tradebot.errors import ExitCode, RefusedError, UsageError

ROOT = Path(__file__).resolve().parents[2]
NY = ZoneInfo("America/New_York")


# -- parse_when ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-07-01", datetime(2025, 7, 1, 4, 0, tzinfo=UTC)),  # midnight EDT
        ("2025-01-15", datetime(2025, 1, 15, 5, 0, tzinfo=UTC)),  # midnight EST
        (" 2025-07-01 ", datetime(2025, 7, 1, 4, 0, tzinfo=UTC)),
        ("2025-07-01T10:30", datetime(2025, 7, 1, 14, 30, tzinfo=UTC)),  # naive = New York
        ("2025-01-15T10:30:15", datetime(2025, 1, 15, 15, 30, 15, tzinfo=UTC)),
        ("2025-07-01 10:30", datetime(2025, 7, 1, 14, 30, tzinfo=UTC)),
        ("2025-07-01T14:30Z", datetime(2025, 7, 1, 14, 30, tzinfo=UTC)),
        ("2025-07-01T14:30:00+00:00", datetime(2025, 7, 1, 14, 30, tzinfo=UTC)),
        ("2025-07-01T16:30+02:00", datetime(2025, 7, 1, 14, 30, tzinfo=UTC)),
        ("2025-07-01T09:30-05:00", datetime(2025, 7, 1, 14, 30, tzinfo=UTC)),
        ("2025-07-01T00:30+05:30", datetime(2025, 6, 30, 19, 0, tzinfo=UTC)),
    ],
)
def test_parse_when(text: str, expected: datetime) -> None:
    got = parse_when(text, "--start")
    assert got == expected
    assert got.tzinfo is UTC


def test_a_date_is_midnight_new_york_for_until_too() -> None:
    got = parse_when("2025-11-03", "--until")
    assert got == datetime(2025, 11, 3, 5, 0, tzinfo=UTC)
    assert got.astimezone(NY).hour == 0


@pytest.mark.parametrize(
    "text",
    ["tomorrow", "", "   ", "2025-13-01", "2025-02-30", "2025-07-01T25:00", "07/01/2025", "2025"],
)
@pytest.mark.parametrize("option", ["--start", "--until"])
def test_bad_text_is_a_usage_error_naming_the_option(text: str, option: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_when(text, option)
    assert str(err.value).startswith(f"{option} {text!r}")
    assert "2025-07-01" in str(err.value)  # shows what to write instead
    assert err.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize(
    "text",
    ["1900-01-01T00:00", "1989-12-31T23:59Z", "2500-01-01T00:00+00:00", "9999-12-31T23:59"],
)
def test_an_out_of_range_time_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match=r"--start .* is out of range"):
        parse_when(text, "--start")


@pytest.mark.parametrize("text", ["0001-01-01", "1900-01-01", "9999-12-31"])
def test_an_out_of_range_date_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="out of range"):
        parse_when(text, "--start")


@settings(max_examples=100, deadline=None)
@given(
    st.datetimes(datetime(1990, 1, 2), datetime(2199, 12, 30)),
    st.integers(-14 * 60, 14 * 60),
)
def test_any_offset_names_the_same_instant(moment: datetime, offset_min: int) -> None:
    aware = moment.replace(tzinfo=timezone(timedelta(minutes=offset_min)))
    assert parse_when(aware.isoformat(), "--start") == aware.astimezone(UTC)
    utc = aware.astimezone(UTC).replace(tzinfo=None)
    assert parse_when(utc.isoformat() + "Z", "--start") == aware


# -- parse_speed ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, (1.0, False)),
        ("max", (None, True)),
        (" MAX ", (None, True)),
        ("1", (1.0, True)),
        ("60", (60.0, True)),
        ("0.5", (0.5, True)),
        ("1e6", (1_000_000.0, True)),
    ],
)
def test_parse_speed(text: str | None, expected: tuple[float | None, bool]) -> None:
    assert parse_speed(text) == expected


@pytest.mark.parametrize(
    "text", ["0", "-1", "-0.5", "nan", "NaN", "inf", "-inf", "1000001", "fast", "", "1x"]
)
def test_a_bad_speed_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError, match="--speed"):
        parse_speed(text)


# -- build_options -------------------------------------------------------------------------------


def _options(
    *,
    once: bool = False,
    bars: Path | None = None,
    speed: str | None = None,
    start: str | None = None,
    until: str | None = None,
):  # type: ignore[no-untyped-def]
    return build_options(once=once, bars=bars, speed=speed, start=start, until=until)


def test_no_options_is_real_time() -> None:
    options = _options()
    assert not options.simulated
    assert options.speed == 1.0
    assert options.start is None and options.until is None and options.bars is None


def test_start_makes_a_simulated_run_at_max_speed() -> None:
    options = _options(start="2025-07-01")
    assert options.simulated and options.speed is None
    # A date starts a minute before that day's open (09:29 New York), not at midnight.
    assert options.start == datetime(2025, 7, 1, 13, 29, tzinfo=UTC)


def test_start_on_a_date_without_a_session_names_the_next_one() -> None:
    with pytest.raises(UsageError) as error:
        _options(start="2025-07-04")
    assert error.value.message == (
        "--start 2025-07-04 (Friday): the XNYS exchange has no session that day; the next one "
        "is 2025-07-07 (Monday): `--start 2025-07-07`"
    )
    # A date and time is taken as given, session or not (`--once` at a chosen moment).
    assert _options(start="2025-07-04T10:00").start == datetime(2025, 7, 4, 14, tzinfo=UTC)
    # An early close opens at the same time: 09:29.
    assert _options(start="2025-07-03").start == datetime(2025, 7, 3, 13, 29, tzinfo=UTC)


def test_bars_make_a_simulated_run_at_max_speed(tmp_path: Path) -> None:
    options = _options(bars=tmp_path)
    assert options.simulated and options.speed is None and options.bars == tmp_path


@pytest.mark.parametrize(("speed", "expected"), [("10", 10.0), ("0.5", 0.5), ("max", None)])
def test_a_speed_other_than_one_makes_a_simulated_run(speed: str, expected: float | None) -> None:
    options = _options(speed=speed)
    assert options.simulated and options.speed == expected


def test_speed_one_alone_is_real_time() -> None:
    options = _options(speed="1")
    assert not options.simulated and options.speed == 1.0


@pytest.mark.parametrize(("speed", "expected"), [("1", 1.0), ("30", 30.0), ("max", None)])
def test_a_given_speed_is_kept_for_a_replay(speed: str, expected: float | None) -> None:
    options = _options(start="2025-07-01T09:30", speed=speed)
    assert options.simulated and options.speed == expected


def test_once_and_until_are_passed_through() -> None:
    options = _options(once=True, until="2025-07-02")
    assert options.once and not options.simulated
    assert options.until == datetime(2025, 7, 2, 4, tzinfo=UTC)


@pytest.mark.parametrize(
    ("start", "until"),
    [
        ("2025-07-01", "2025-07-01"),  # equal
        ("2025-07-01T10:00", "2025-07-01T09:59"),
        ("2025-07-01T10:00", "2025-07-01T14:00Z"),  # the same instant, written two ways
        ("2025-07-02", "2025-07-01T23:00"),
    ],
)
def test_until_not_after_start_is_refused(start: str, until: str) -> None:
    with pytest.raises(UsageError, match="--until must be after --start"):
        _options(start=start, until=until)


def test_until_after_start_is_accepted() -> None:
    options = _options(start="2025-07-01T10:00", until="2025-07-01T10:00:01")
    assert options.until is not None and options.start is not None
    assert options.until - options.start == timedelta(seconds=1)


def test_a_bad_value_names_its_option() -> None:
    with pytest.raises(UsageError, match=r"^--until 'soon'"):
        _options(start="2025-07-01", until="soon")
    with pytest.raises(UsageError, match=r"^--speed"):
        _options(start="2025-07-01", speed="0")


# -- run_lock ------------------------------------------------------------------------------------

_HOLDER = """
import sys
from pathlib import Path
from tradebot.engine.runner import run_lock
with run_lock(Path(sys.argv[1])):
    print("locked", flush=True)
    sys.stdin.read()  # hold the lock until the parent closes stdin (or kills us)
"""

_TRIER = """
import sys
from pathlib import Path
from tradebot.engine.runner import run_lock
from tradebot.errors import RefusedError
try:
    with run_lock(Path(sys.argv[1])):
        print("acquired", flush=True)
except RefusedError as exc:
    print(exc, flush=True)
    sys.exit(int(exc.exit_code))
"""


def _python(script: str, *args: str, stdin: int | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=stdin,
        stdout=subprocess.PIPE,
        text=True,
    )


def _holder(state: Path) -> subprocess.Popen[str]:
    proc = _python(_HOLDER, str(state), stdin=subprocess.PIPE)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line != "locked\n":
        proc.kill()
        proc.communicate()
        pytest.fail(f"the lock holder did not start: {line!r}")
    return proc


def _acquire(state: Path) -> str:
    """Take and release the lock; returns what the lock file said while held."""
    with run_lock(state):
        return (state / LOCK_FILE).read_text()


def test_the_lock_file_names_the_holder(tmp_path: Path) -> None:
    state = tmp_path / "logs" / "state"
    assert _acquire(state) == f"{os.getpid()}\n"  # the directory is created too
    assert _acquire(state) == f"{os.getpid()}\n"  # released on leaving: taken again


def test_a_second_holder_in_the_same_process_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with run_lock(state), pytest.raises(RefusedError, match=f"pid {os.getpid()}"):
        _acquire(state)
    assert _acquire(state) == f"{os.getpid()}\n"


def test_a_second_process_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    state = tmp_path / "logs" / "state"
    with _holder(state) as holder:
        with pytest.raises(RefusedError) as err:
            _acquire(state)
        assert f"pid {holder.pid}" in str(err.value)
        assert str(tmp_path / "logs") in str(err.value)  # names the logs directory
        assert err.value.exit_code == ExitCode.REFUSED
        assert holder.stdin is not None
        holder.stdin.close()
        assert holder.wait(timeout=30) == 0
    assert _acquire(state) == f"{os.getpid()}\n"  # released when the holder exited


def test_the_lock_is_released_when_the_holder_is_killed(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with _holder(state) as holder:
        holder.kill()  # SIGKILL: no cleanup code runs in the holder
        assert holder.wait(timeout=30) == -9
    assert _acquire(state) == f"{os.getpid()}\n"  # the stale pid was replaced by ours


def test_another_process_is_refused_while_this_one_holds_the_lock(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with run_lock(state):
        trier = _python(_TRIER, str(state))
        out, _ = trier.communicate(timeout=30)
        assert trier.returncode == ExitCode.REFUSED
        assert f"pid {os.getpid()}" in out
