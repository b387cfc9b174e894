"""Bars files with bounds (issue 18, item 6): what the audit fed `--bars`.

Real processes under a memory limit (RLIMIT_AS): a 2 GB sparse file of NULs took 4–6 GB of
memory before its exit 3; a header, 500 rows and a 2 GB sparse tail ran for more than 300 s; a
200 MB field was echoed whole to stderr. Now every file is checked for its size and its line
lengths before it is parsed, streaming, and an error line quotes at most ~100 characters of a bad
value. Rows in the year 2300 were exit 1 (an unreadable folder: tests/cli/test_small_bounds.py);
a folder of 3,000 files with one symbol configured took 268 s: only the configured symbols' files
are read now.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from tradebot.market.csv_bars import BarsError, load_bar_file

pytestmark = pytest.mark.slow
MEMORY = 768 * 1024 * 1024  # address space for the whole process, pandas and numpy included
HEADER = b"timestamp,open,high,low,close,volume\n"


def _rows(count: int, day: str = "2025-07-01") -> bytes:
    out = []
    for i in range(count):
        t = 9 * 60 + 30 + i
        out.append(f"{day} {t // 60:02d}:{t % 60:02d}:00,100,101,99,100.5,1000\n")
    return "".join(out).encode()


def _folder(tmp_path: Path, body: bytes = b"", *, sparse_tail: int = 0) -> Path:
    bars = tmp_path / "bars"
    bars.mkdir()
    path = bars / "SPY.csv"
    path.write_bytes(body)
    if sparse_tail:
        with path.open("r+b") as fh:
            fh.truncate(len(body) + sparse_tail)  # NULs that take no disk
    (tmp_path / "config.toml").write_text(
        '[trading]\nmode = "paper"\nsymbols = ["SPY"]\n', encoding="utf-8"
    )
    return bars


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def _tradebot(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    return subprocess.run(
        [sys.executable, "-m", "tradebot", *args],
        cwd=cwd, env=env, capture_output=True, timeout=120, preexec_fn=_limited,
    )  # fmt: skip


def _refused(done: subprocess.CompletedProcess[bytes], *words: str) -> str:
    assert done.returncode == 3, done.stderr[-2000:]
    last = done.stderr.strip().splitlines()[-1]
    assert len(last) <= 300, len(last)
    text = last.decode("utf-8", "replace")
    for word in words:
        assert word in text, text
    return text


BIG = 2 * 1024**3


@pytest.mark.parametrize("command", ["run", "backtest"])
def test_a_sparse_file_of_nuls_is_refused_in_bounded_memory(tmp_path: Path, command: str) -> None:
    _folder(tmp_path, sparse_tail=BIG)
    args = ["--bars", "bars"] + (["--out", "out"] if command == "backtest" else [])
    _refused(_tradebot(tmp_path, command, *args), "SPY.csv")


def test_rows_then_a_huge_sparse_tail_are_refused_at_once(tmp_path: Path) -> None:
    _folder(tmp_path, HEADER + _rows(500), sparse_tail=BIG)
    _refused(_tradebot(tmp_path, "backtest", "--bars", "bars", "--out", "out"), "SPY.csv")


def test_a_huge_field_is_never_echoed_whole(tmp_path: Path) -> None:
    huge = b"2025-07-01 09:30:00," + b"9" * (200 * 1024 * 1024) + b",101,99,100.5,1000\n"
    _folder(tmp_path, HEADER + huge)
    _refused(_tradebot(tmp_path, "run", "--bars", "bars"), "SPY.csv")


def test_a_long_bad_value_is_quoted_short(tmp_path: Path) -> None:
    bad = b"x" * 900
    _folder(tmp_path, HEADER + _rows(2) + b"2025-07-01 09:32:00," + bad + b",101,99,100,1\n")
    text = _refused(_tradebot(tmp_path, "run", "--bars", "bars"), "row 4", "open")
    assert "xxx" in text and "x" * 150 not in text


def test_rows_in_the_year_2300_are_a_bars_error(tmp_path: Path) -> None:
    _folder(tmp_path, HEADER + _rows(3, day="2300-07-01"))
    _refused(_tradebot(tmp_path, "run", "--bars", "bars"), "SPY.csv", "row 2", "2300")


def test_prices_beyond_any_quote_are_a_bars_error(tmp_path: Path) -> None:
    """A high of 1e308 made every later step of the loop fail (issue 18, item 1)."""
    rows = _rows(2) + b"2025-07-01 09:32:00,100,1e308,99,100,1\n"
    path = _folder(tmp_path, HEADER + rows) / "SPY.csv"
    with pytest.raises(BarsError, match="row 4: high"):
        load_bar_file(path)


def test_only_the_configured_symbols_files_are_read(tmp_path: Path) -> None:
    bars = _folder(tmp_path, HEADER + _rows(390))
    for i in range(300):  # unreadable as bars: reading any of them would fail the run
        (bars / f"X{i:04d}.csv").write_bytes(b"\0garbage\n")
    done = _tradebot(tmp_path, "run", "--bars", "bars")
    assert done.returncode == 0, done.stderr[-2000:]
