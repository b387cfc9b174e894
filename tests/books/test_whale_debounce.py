"""The persisted whale debounce: state shape, session counting, and survival across processes."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from tradebot.books.whale_debounce import (
    LastWhaleSignal,
    debounce_check,
    last_signal,
    read_last_signals,
    record_signal,
    state_path,
)
from tradebot.errors import CorruptRecordError

NOW = datetime(2025, 7, 1, 14, 30, tzinfo=UTC)


def test_state_file_shape(tmp_path: Path) -> None:
    record_signal(tmp_path, "SPY", session=date(2025, 7, 1), signal="BUY_CALL", now=NOW)
    record_signal(tmp_path, "QQQ", session=date(2025, 7, 1), signal="BUY_PUT", now=NOW)
    on_disk = json.loads(state_path(tmp_path).read_text(encoding="utf-8"))
    assert on_disk == {
        "v": 1,
        "symbols": {
            "QQQ": {"session": "2025-07-01", "signal": "BUY_PUT", "ts": "2025-07-01T14:30:00Z"},
            "SPY": {"session": "2025-07-01", "signal": "BUY_CALL", "ts": "2025-07-01T14:30:00Z"},
        },
    }
    assert state_path(tmp_path).name == "whale-debounce.json"
    assert last_signal(tmp_path, "SPY") == LastWhaleSignal(date(2025, 7, 1), "BUY_CALL", NOW)
    assert last_signal(tmp_path, "IWM") is None


def test_missing_file_means_no_debounce(tmp_path: Path) -> None:
    assert read_last_signals(tmp_path) == {}
    assert not debounce_check(tmp_path, "SPY", date(2025, 7, 1), 3).suppressed


def test_debounce_holds_for_three_sessions(tmp_path: Path) -> None:
    record_signal(tmp_path, "SPY", session=date(2025, 7, 1), signal="BUY_CALL", now=NOW)
    days = [date(2025, 7, d) for d in (1, 2, 3, 7, 8)]  # 07-04 holiday, then a weekend
    assert [debounce_check(tmp_path, "SPY", d, 3).suppressed for d in days] == [
        True,
        True,
        True,
        False,
        False,
    ]
    assert not debounce_check(tmp_path, "QQQ", date(2025, 7, 2), 3).suppressed  # per symbol


def test_an_older_session_never_shortens_the_debounce(tmp_path: Path) -> None:
    record_signal(tmp_path, "SPY", session=date(2025, 7, 3), signal="BUY_PUT", now=NOW)
    kept = record_signal(tmp_path, "SPY", session=date(2025, 7, 1), signal="BUY_CALL", now=NOW)
    assert kept.session == date(2025, 7, 3) and kept.signal == "BUY_PUT"
    assert last_signal(tmp_path, "SPY") == kept


def test_only_entries_are_recorded_and_times_are_aware(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only entry signals"):
        record_signal(tmp_path, "SPY", session=date(2025, 7, 1), signal="HOLD", now=NOW)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone-aware"):
        record_signal(
            tmp_path, "SPY", session=date(2025, 7, 1), signal="BUY_CALL", now=datetime(2025, 7, 1)
        )


@pytest.mark.parametrize(
    "content",
    [
        '{"v": 2, "symbols": {}}',
        '{"v": 1, "symbols": {"SPY": {"session": "2025-07-01", "signal": "BUY"}}}',
        '{"v": 1, "symbols": {"SPY": {"session": "07/01", "signal": "BUY_CALL", "ts": "x"}}}',
        "not json",
    ],
)
def test_damaged_state_fails_safe(tmp_path: Path, content: str) -> None:
    state_path(tmp_path).write_text(content, encoding="utf-8")
    with pytest.raises(CorruptRecordError, match=r"whale-debounce\.json"):
        debounce_check(tmp_path, "SPY", date(2025, 7, 2), 3)
    with pytest.raises(CorruptRecordError):  # and is not overwritten by the next signal
        record_signal(tmp_path, "SPY", session=date(2025, 7, 2), signal="BUY_CALL", now=NOW)
    assert state_path(tmp_path).read_text(encoding="utf-8") == content


def test_debounce_survives_a_new_process(tmp_path: Path) -> None:
    record_signal(tmp_path, "SPY", session=date(2025, 7, 1), signal="BUY_CALL", now=NOW)
    reader = textwrap.dedent(
        """
        import sys
        from datetime import date
        from pathlib import Path
        from tradebot.books.whale_debounce import debounce_check, last_signal

        state = Path(sys.argv[1])
        print(last_signal(state, "SPY").session)
        for day in sys.argv[2:]:
            check = debounce_check(state, "SPY", date.fromisoformat(day), 3)
            print(day, check.suppressed, check.sessions_elapsed)
        """
    )
    days = ["2025-07-02", "2025-07-03", "2025-07-07"]
    done = subprocess.run(
        [sys.executable, "-c", reader, str(tmp_path), *days],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert done.stdout.splitlines() == [
        "2025-07-01",
        "2025-07-02 True 1",
        "2025-07-03 True 2",
        "2025-07-07 False 3",
    ]
