"""Bar files a backtest must refuse (review): bars that are not 1-minute bars labelled by a whole
minute, and rows whose prices contradict themselves. Each would have let the backtest trade on
prices it could not have known, or never fill at all, with no warning; each is now one line
naming the file and row (exit 3), the same whole or streamed, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd  # type: ignore[import-untyped]
import pytest

import tradebot.market.csv_bars as csv_bars
from tests.backtest.test_cli import CONFIG, _tree
from tests.cli.conftest import invoke
from tests.conftest import shared_data
from tradebot.market.csv_bars import BarsError, StreamingCsvBars, load_bar_file

HEADER = "timestamp,open,high,low,close,volume\n"


def _minutes(day: str, start: str, count: int, step: int = 1, second: int = 0) -> list[str]:
    hh, mm = (int(x) for x in start.split(":"))
    rows = []
    for i in range(count):
        t = hh * 60 + mm + i * step
        rows.append(f"{day} {t // 60:02d}:{t % 60:02d}:{second:02d},100,101,99,100.5,1000")
    return rows


def _write(directory: Path, rows: list[str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "SPY.csv"
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


BAD = [
    # 5-minute bars: the bar labelled 09:30 ends at 09:35, but a 1-minute reader takes it as
    # complete at 09:31 — its close (the 09:35 price) would be traded on four minutes early.
    (
        _minutes("2025-07-01", "09:30", 40, step=5),
        "row 3: 5 minutes after the row above, and no two rows are closer",
    ),
    # Bars labelled at :30 seconds: no minute of the simulated exchange finds them, so no
    # resting order ever fills (the backtest silently made no trade).
    (_minutes("2025-07-01", "09:30", 40, second=30), "row 2: time '2025-07-01 09:30:30' is not"),
    (
        [*_minutes("2025-07-01", "09:30", 3), "2025-07-01 09:33:00,102,101,99,100.5,1000"],
        "row 5: open 102 is outside the bar's low 99 … high 101",
    ),
    (
        [*_minutes("2025-07-01", "09:30", 3), "2025-07-01 09:33:00,100,101,99,98.5,1000"],
        "row 5: close 98.5 is outside the bar's low 99 … high 101",
    ),
    # Naive New York times that do not exist or happen twice: the row and what to do.
    (
        [*_minutes("2025-03-07", "09:30", 2), "2025-03-09 02:30:00,100,101,99,100.5,1000"],
        "row 4: time '2025-03-09 02:30:00' does not exist in New York",
    ),
    (
        [*_minutes("2025-10-31", "09:30", 2), "2025-11-02 01:30:00,100,101,99,100.5,1000"],
        "row 4: time '2025-11-02 01:30:00' happens twice in New York",
    ),
    (
        [*_minutes("2025-07-01", "09:30", 2), ",100,101,99,100.5,1000"],
        "row 4: time '' is not a time",
    ),
    (
        [*_minutes("2025-07-01", "09:30", 2), "2025-07-01 9h32,100,101,99,100.5,1000"],
        "row 4: a time cannot be read ('2025-07-01 9h32' is not ISO-8601)",
    ),
]


@pytest.mark.parametrize(("rows", "message"), BAD)
@pytest.mark.parametrize("block", [64, 1 << 20])
def test_refused_whole_and_streamed_with_the_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows: list[str], message: str, block: int
) -> None:
    monkeypatch.setattr(csv_bars, "BLOCK_BYTES", block)
    path = _write(tmp_path / "bars", rows)
    with pytest.raises(BarsError) as whole:
        load_bar_file(path)
    with pytest.raises(BarsError) as streamed:
        StreamingCsvBars(tmp_path / "bars")
    assert whole.value.message == streamed.value.message
    assert whole.value.message.startswith(f"{path}, ") and message in whole.value.message
    assert "\n" not in whole.value.message


@pytest.mark.parametrize(("rows", "message"), BAD[:3])
def test_backtest_refuses_them_and_writes_nothing(  # type: ignore[no-untyped-def]
    write_config, tmp_path: Path, rows: list[str], message: str
) -> None:
    write_config(CONFIG)
    _write(tmp_path / "bars", rows)
    before = _tree(tmp_path)
    result = invoke(["backtest", "--bars", "bars", "--out", "out"])
    assert result.exit_code == 3, result.stderr
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert _tree(tmp_path) == before


def test_sparse_one_minute_bars_are_still_accepted(tmp_path: Path) -> None:
    """Missing minutes are normal (thin markets): only a file with no two rows one minute apart
    is taken for longer bars."""
    rows = _minutes("2025-07-01", "09:30", 3) + _minutes("2025-07-01", "10:00", 5, step=7)
    frame = load_bar_file(_write(tmp_path / "bars", rows))
    assert len(frame) == 8


@pytest.mark.shared_data
def test_real_spy_resampled_to_five_minutes_is_refused(tmp_path: Path) -> None:
    source = shared_data("pratikdkale-rl-trade-execution/data/SPY_1min.csv")
    raw = pd.read_csv(source)
    raw.iloc[::5].to_csv(tmp_path / "SPY.csv", index=False)  # every 5th 1-minute row
    with pytest.raises(BarsError, match="no two rows are closer"):
        StreamingCsvBars(tmp_path)
    load_bar_file(source)  # the real 1-minute file itself passes every new check
