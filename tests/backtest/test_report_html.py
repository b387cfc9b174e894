"""The backtest's `report.html` and `trades.csv`: the page works offline (no script, no remote
resource), a real browser (Debian's headless chromium) draws its equity curve and tables, and
`trades.csv` is the journal's trades exactly as `tradebot journal --csv` writes them."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.cli.conftest import invoke
from tradebot.books.trade_journal import TradeJournal
from tradebot.core.metrics import trade_order

CONFIG = """
[broker.sim]
seed = 3

[trading]
mode = "paper"
symbols = ["SPY", "QQQ"]

[phase.experience]
min_profitable_sessions = 1
min_trades = 4
min_win_rate_pct = 30
min_avg_rr = 0.5
"""


@pytest.fixture(scope="module")
def backtest(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("report")
    (root / "config.toml").write_text(CONFIG, encoding="utf-8")
    out = root / "bt"
    config = ["--config", str(root / "config.toml")]
    args = ["backtest", "--synthetic", "--sessions", "2", "--from", "2025-07-01"]
    result = invoke([*config, *args, "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert "report.html" in result.stdout
    yield out


def test_trades_csv_is_the_journal_as_journal_csv_writes_it(backtest: Path) -> None:
    trades = TradeJournal(backtest).read().trades
    assert len(trades) >= 4
    exported = invoke(["--logs", str(backtest), "journal", "--csv", "-"])
    assert exported.exit_code == 0
    csv = (backtest / "trades.csv").read_text(encoding="utf-8")
    assert csv == exported.stdout
    assert csv.count("\n") == len(trades) + 1
    assert "r_multiple" in csv.splitlines()[0]
    # R to four places (not the quotient's 28 digits), times UTC as in the journal.
    rows = [line.split(",") for line in csv.splitlines()[1:]]
    header = csv.splitlines()[0].split(",")
    r = header.index("r_multiple")
    assert all(re.fullmatch(r"-?\d+\.\d{4}", row[r]) for row in rows)
    assert all(row[header.index("exit_time")].endswith("Z") for row in rows)


def test_the_page_is_self_contained(backtest: Path) -> None:
    page = (backtest / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "@import" not in page and "url(" not in page
    trades = TradeJournal(backtest).read().trades
    assert page.count("<tr><td class=n>") == len(trades)
    for t in trades:
        assert t.trade_id in page
    assert 'class="equity"' in page and 'class="drawdown"' in page
    assert page.count('class="session"') == 2  # one bar per session
    assert 'id="ladder"' in page and "eligible → advance" in page  # loose criteria: it moves
    assert "UTC" not in page and not re.search(r"\d\d:\d\dZ", page)


# -- one order for simultaneous exits (issue 23) ---------------------------------------------
# Four symbols: TSLA's entries never fit the cap, the other three are flattened in the same
# second before the close, losers and winners together; three losses from proof's start bring
# its downgrade on the third session, with the losing run it saw in its record.
TIED = """
[broker.sim]
seed = 7

[trading]
mode = "paper"
symbols = ["SPY", "QQQ", "IWM", "TSLA"]

[phase]
initial = "proof"
[phase.proof]
counted_modes = ["live", "sim"]
max_entries_per_session = 10
"""


@pytest.fixture(scope="module")
def tied(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("tied")
    (root / "config.toml").write_text(TIED, encoding="utf-8")
    out = root / "bt"
    args = ["backtest", "--synthetic", "--from", "2025-07-07", "--to", "2025-07-09"]
    result = invoke(["--config", str(root / "config.toml"), *args, "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    return out


def test_tied_exits_are_in_one_order_in_the_report_trades_csv_journal_and_phase(
    tied: Path,
) -> None:
    """A loss and a win exiting in the same second: report.html's table, trades.csv,
    `journal --csv` and the phase history's downgrade record list them in the one canonical order
    (`core.metrics.trade_order`: exit time, losers first, then trade id), never by id alone."""
    trades = TradeJournal(tied).read().trades
    times = [t.exit_time for t in trades]
    tie = [t for t in trades if times.count(t.exit_time) > 1]
    assert any(t.pnl > 0 for t in tie) and any(t.pnl <= 0 for t in tie)
    canonical = [t.trade_id for t in sorted(trades, key=trade_order)]
    by_id = [t.trade_id for t in sorted(trades, key=lambda t: (t.exit_time, t.trade_id))]
    assert canonical != by_id  # the fixture tells the two orders apart

    exported = invoke(["--logs", str(tied), "journal", "--csv", "-"])
    assert exported.exit_code == 0, exported.stderr
    journal_order = [row["trade_id"] for row in csv.DictReader(io.StringIO(exported.stdout))]
    assert journal_order == canonical
    trades_csv = (tied / "trades.csv").read_text(encoding="utf-8")
    assert trades_csv == exported.stdout
    page = (tied / "report.html").read_text(encoding="utf-8")
    table = page[page.index('id="trades-table"') :]
    listed = re.findall(r"<tr><td class=n>\d+</td><td>[^<]*</td><td>([^<]+)</td>", table)
    assert listed == canonical

    config = ["--config", str(tied.parent / "config.toml")]  # phase.initial = "proof"
    phase = invoke([*config, "--logs", str(tied), "phase", "export", "--json"])
    assert phase.exit_code == 0, phase.stderr
    downgrades = [
        t for t in json.loads(phase.stdout)["transitions"] if t["trigger"] == "auto_downgrade"
    ]
    assert downgrades, "the fixture's losing run downgrades proof"
    for record in downgrades:
        run = [t["trade_id"] for t in record["inputs"]["consecutive_losses"]["trades"]]
        assert sorted(run, key=canonical.index) == run


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip(
        "Debian's chromium is not installed (apt-get install -y chromium): the report is not "
        "rendered in a real browser here"
    )


def _browser(url: str, *args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--no-first-run", f"--user-data-dir={profile}", "--window-size=1000,900", *args, url],
        capture_output=True,
        text=True,
        timeout=90,
    )  # fmt: skip


def test_chromium_renders_the_curve_and_the_tables(backtest: Path, tmp_path: Path) -> None:
    url = (backtest / "report.html").as_uri()
    shot = tmp_path / "report.png"
    done = _browser(url, f"--screenshot={shot}", profile=tmp_path / "profile")
    assert shot.exists(), done.stderr[-2000:]
    width, height, pixels = _decode_png(shot.read_bytes())
    assert (width, height) == (1000, 900)
    # The equity line is drawn in its blue, the session bars in green or red.
    assert _count(pixels, (0x09, 0x69, 0xDA)) > 300
    assert _count(pixels, (0x1A, 0x7F, 0x37)) + _count(pixels, (0xCF, 0x22, 0x2E)) > 300
    dom = _browser(url, "--dump-dom", profile=tmp_path / "profile").stdout
    assert re.search(r'<polyline class="equity" points="[\d., ]{40,}"', dom)
    trades = TradeJournal(backtest).read().trades
    assert len(re.findall(r"<tr><td class=\"n\">\d+</td>", dom)) == len(trades)
    assert '<table class="steps">' in dom


def _count(pixels: np.ndarray, colour: tuple[int, int, int]) -> int:
    """Pixels within a few levels of `colour` (anti-aliasing aside)."""
    near = np.abs(pixels.astype(np.int16) - np.array(colour, dtype=np.int16)) <= 6
    return int(near.all(axis=-1).sum())


def _decode_png(data: bytes) -> tuple[int, int, np.ndarray]:
    """An 8-bit RGB or RGBA PNG (what chromium writes) as (width, height, RGB array)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, kind = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if tag == b"IHDR":
            width, height, depth, kind = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and kind in (2, 6) and body[12] == 0  # not interlaced
        elif tag == b"IDAT":
            idat += body
    step = 4 if kind == 6 else 3
    stride = width * step
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.uint8)
    previous = np.zeros(stride, dtype=np.uint8)
    for y in range(height):
        kind_of_filter, line = int(raw[y, 0]), raw[y, 1:]
        if kind_of_filter == 0:
            row = line.copy()
        elif kind_of_filter == 1:  # Sub: a running sum along the row, per channel
            row = line.reshape(width, step).astype(np.int64).cumsum(axis=0) % 256
            row = row.astype(np.uint8).reshape(stride)
        elif kind_of_filter == 2:  # Up
            row = line + previous  # uint8 arithmetic wraps as PNG's does
        else:  # Average (3) and Paeth (4) depend on the byte just decoded: byte by byte
            row = _sequential(kind_of_filter, bytes(line), bytes(previous), step)
        out[y] = row
        previous = row
    return width, height, out.reshape(height, width, step)[:, :, :3]


def _sequential(kind: int, line: bytes, up: bytes, step: int) -> np.ndarray:
    row = bytearray(len(line))
    for i, value in enumerate(line):
        left = row[i - step] if i >= step else 0
        above = up[i]
        if kind == 3:
            row[i] = (value + (left + above) // 2) & 0xFF
            continue
        corner = up[i - step] if i >= step else 0
        p = left + above - corner
        pa, pb, pc = abs(p - left), abs(p - above), abs(p - corner)
        best = left if pa <= pb and pa <= pc else (above if pb <= pc else corner)
        row[i] = (value + best) & 0xFF
    return np.frombuffer(bytes(row), dtype=np.uint8)
