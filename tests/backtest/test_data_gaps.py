"""Sessions the bars do not cover (review): where a symbol's bars stop early (a file downloaded
during the day), or a session in range has no bars for it at all, the loop goes on trading on
the last earlier price — quotes, stops and the flatten before the close all come from a frozen
underlying, and no resting order can fill. The report used to show those trades like any other;
it now says which sessions were short of bars."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from tests.backtest.helpers import backtest
from tests.backtest.test_cli import CONFIG
from tests.cli.conftest import invoke
from tests.conftest import shared_data
from tests.engine.harness import config
from tradebot.backtest.report import build_report

HEADER = "timestamp,open,high,low,close,volume\n"


def _session(day: date, minutes: int = 390, price: float = 100.0) -> list[str]:
    start = datetime(day.year, day.month, day.day, 9, 30)
    rows = []
    for i in range(minutes):
        t = start + timedelta(minutes=i)
        p = price + 0.01 * (i % 7)
        rows.append(f"{t:%Y-%m-%d %H:%M:%S},{p},{p + 0.05},{p - 0.05},{p},1000")
    return rows


def _write(directory: Path, symbol: str, rows: list[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{symbol}.csv").write_text(HEADER + "".join(r + "\n" for r in rows))


def test_short_and_missing_sessions_are_named_in_the_report(  # type: ignore[no-untyped-def]
    write_config, tmp_path: Path
) -> None:
    write_config('[trading]\nsymbols = ["SPY", "QQQ"]\n')
    days = [date(2025, 7, 1), date(2025, 7, 2), date(2025, 7, 3), date(2025, 7, 7)]
    spy = [r for d in days for r in _session(d, 210 if d.day == 3 else 390)]
    _write(tmp_path / "bars", "SPY", spy)
    # QQQ: no bars on 07-02, and 07-07 stops at 12:00 (150 of 390 minutes).
    qqq = _session(days[0], 390, 200) + _session(days[2], 210, 200) + _session(days[3], 150, 200)
    _write(tmp_path / "bars", "QQQ", qqq)
    result = invoke(["backtest", "--bars", "bars", "--out", "out", "--json"])
    assert result.exit_code == 0, result.stderr
    warnings = json.loads(result.stdout)["warnings"]
    text = " ".join(warnings)
    assert "QQQ" in text and "2025-07-02 (no bars)" in text and "2025-07-07 (150 of 390" in text
    # The 13:00 close of 07-03 is a whole session, not a gap.
    assert not any(w.startswith("SPY") and "too few bars" in w for w in warnings)
    # On a terminal the same lines are printed.
    shown = invoke(["backtest", "--bars", "bars", "--out", "out2"])
    assert "2025-07-07 (150 of 390" in shown.stdout
    # A session no file has is run by the loop all the same (it runs from the first session to
    # the last): it is named too.
    _write(tmp_path / "bars", "QQQ", qqq[:390])
    _write(tmp_path / "bars", "SPY", [r for d in days if d.day != 2 for r in _session(d)])
    result = invoke(["backtest", "--bars", "bars", "--out", "out3", "--json", "--to", "2025-07-03"])
    assert result.exit_code == 0, result.stderr
    warnings = json.loads(result.stdout)["warnings"]
    assert any(w.startswith("SPY") and "2025-07-02 (no bars)" in w for w in warnings), warnings


@pytest.mark.shared_data
def test_real_spy_downloaded_at_noon(tmp_path: Path) -> None:
    source = shared_data("pratikdkale-rl-trade-execution/data/SPY_1min.csv")
    lines = source.read_text().splitlines()
    kept = [lines[0]] + [x for x in lines[1:] if x < "2025-07-30 12:00:00"]
    (tmp_path / "bars").mkdir()
    (tmp_path / "bars" / "SPY.csv").write_text("\n".join(kept) + "\n")
    (tmp_path / "cfg").mkdir()
    loaded = config(tmp_path / "cfg", "", base=CONFIG)
    result = backtest(loaded, tmp_path / "out", bars=tmp_path / "bars", start=date(2025, 7, 29))
    report = build_report(result)
    assert any("2025-07-30 (150 of 390" in w for w in report["warnings"]), report["warnings"]
    # A complete month says nothing.
    full = tmp_path / "full"
    full.mkdir()
    (full / "SPY.csv").symlink_to(source)
    clean = backtest(loaded, tmp_path / "out2", bars=full, start=date(2025, 7, 29))
    assert build_report(clean)["warnings"] == []


@pytest.mark.shared_data
def test_sessions_priced_without_a_realized_volatility_are_named(tmp_path: Path) -> None:
    """The report says option prices come from "the realized volatility of the previous 5
    sessions of these bars"; for a session with no earlier bars the model falls back to an
    assumed volatility (SPY 16 %). The report must say which sessions those were."""
    source = shared_data("pratikdkale-rl-trade-execution/data/SPY_1min.csv")
    (tmp_path / "bars").mkdir()
    (tmp_path / "bars" / "SPY.csv").symlink_to(source)
    (tmp_path / "cfg").mkdir()
    loaded = config(tmp_path / "cfg", "", base=CONFIG)
    first = backtest(loaded, tmp_path / "a", bars=tmp_path / "bars", end=date(2025, 7, 2))
    warnings = build_report(first)["warnings"]
    assert any("2025-07-01" in w and "assumed 16 % volatility" in w for w in warnings), warnings
    assert not any("2025-07-02" in w for w in warnings)
    later = backtest(loaded, tmp_path / "b", bars=tmp_path / "bars", start=date(2025, 7, 2),
                     end=date(2025, 7, 2))  # fmt: skip
    assert build_report(later)["warnings"] == []  # 07-01's bars serve 07-02's estimate
