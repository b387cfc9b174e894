"""Streamed CSV sessions: the same frames and the same errors as reading the files whole, with
only recent sessions kept in memory."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import tradebot.market.csv_bars as csv_bars
from tests.conftest import shared_data
from tradebot.market.csv_bars import BarsError, CsvBars, StreamingCsvBars

HEADER = "timestamp,open,high,low,close,volume\n"


def _rows(day: str, count: int, start: float = 100.0) -> list[str]:
    out = []
    for i in range(count):
        t = 9 * 60 + 25 + i  # from 09:25: five pre-market bars first
        price = start + 0.01 * i
        out.append(f"{day} {t // 60:02d}:{t % 60:02d}:00,{price},{price + 1},{price - 1},{price},7")
    return out


def _write(directory: Path, rows: list[str], name: str = "SPY.csv", header: str = HEADER) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(header + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("block", [64, 1000, 4 << 20])
def test_streamed_sessions_equal_the_whole_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block: int
) -> None:
    monkeypatch.setattr(csv_bars, "BLOCK_BYTES", block)
    rows = [*_rows("2025-07-01", 120), "", *_rows("2025-07-02", 90, 101), *_rows("2025-07-03", 7)]
    _write(tmp_path, rows)
    whole, streamed = CsvBars(tmp_path), StreamingCsvBars(tmp_path, keep_sessions=1)
    assert streamed.sessions("SPY") == whole.sessions("SPY")
    for day in whole.sessions("SPY") * 2:  # twice: from the file again after eviction
        pd.testing.assert_frame_equal(
            streamed.session_bars("SPY", day), whole.session_bars("SPY", day), check_exact=True
        )
    assert len(streamed._cache) == 1


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        (["2025-07-01 09:31:00,1,1,1,1,1", "2025-07-01 09:30:00,1,1,1,1,1"], "row 3: time"),
        (["2025-07-01 09:30:00,1,1,1,1,1", "2025-07-01 09:30:00,1,1,1,1,1"], "row 3: duplicate"),
        (["2025-07-01 09:30:00,1,1,1,x,1"], "row 2: close 'x' is not a positive number"),
        ([], "no rows"),
    ],
)
def test_bad_files_give_the_same_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: list[str], message: str
) -> None:
    monkeypatch.setattr(csv_bars, "BLOCK_BYTES", 40)  # rows fall in different blocks
    _write(tmp_path, rows)
    with pytest.raises(BarsError) as whole:
        CsvBars(tmp_path).frame("SPY")
    with pytest.raises(BarsError) as streamed:
        StreamingCsvBars(tmp_path)
    assert message in streamed.value.message
    assert streamed.value.message == whole.value.message


def test_unsorted_across_blocks_and_bad_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(csv_bars, "BLOCK_BYTES", 64)
    rows = _rows("2025-07-02", 10) + _rows("2025-07-01", 10)
    _write(tmp_path / "a", rows)
    with pytest.raises(BarsError, match=r"row 12: time .* is before the row above"):
        StreamingCsvBars(tmp_path / "a")
    _write(tmp_path / "b", _rows("2025-07-01", 3), header="time,open,high,low,close\n")
    with pytest.raises(BarsError, match="missing column"):
        StreamingCsvBars(tmp_path / "b")
    with pytest.raises(BarsError, match="no bars for QQQ"):
        StreamingCsvBars(tmp_path / "a", symbols=["QQQ"])


@pytest.mark.shared_data
def test_real_spy_month_streams_like_the_whole_file() -> None:
    path = shared_data("pratikdkale-rl-trade-execution/data/SPY_1min.csv")
    whole, streamed = CsvBars(path.parent), StreamingCsvBars(path.parent)
    assert len(streamed.sessions("SPY")) == 21
    for day in whole.sessions("SPY"):
        pd.testing.assert_frame_equal(
            streamed.session_bars("SPY", day), whole.session_bars("SPY", day), check_exact=True
        )
