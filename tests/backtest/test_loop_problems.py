"""Problems the loop survives must not vanish from a backtest's report (review).

`tradebot run` carries on after a failed step — right for a live loop, which must keep managing
its exits. A backtest inherits that: a step that fails is journaled in `events.jsonl` and the
replay goes on, so the report showed the sessions after it as if nothing had happened. On the
simulated broker nothing should ever fail; when something does, the results cannot be trusted
and the report now says so."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

import pytest

from tests.backtest.helpers import NOW, backtest
from tests.backtest.test_data_gaps import _session
from tests.cli.conftest import invoke
from tests.engine.harness import config
from tradebot.backtest.engine import run_backtest
from tradebot.backtest.ladder import BacktestOperator
from tradebot.backtest.plan import BacktestRequest, prepare
from tradebot.backtest.report import build_report
from tradebot.engine.entries import EntryPipeline
from tradebot.market.csv_bars import BarsError, StreamingCsvBars

HEADER = "timestamp,open,high,low,close,volume\n"
DAYS = [date(2025, 7, 1), date(2025, 7, 2), date(2025, 7, 3)]


def _write(directory: Path, days: list[date]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "SPY.csv"
    rows = [r for d in days for r in _session(d)]
    path.write_text(HEADER + "".join(r + "\n" for r in rows))
    return path


def test_a_failing_step_is_a_report_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = []

    async def broken(self: EntryPipeline, symbol: str, *args: object, **kw: object) -> str:
        calls.append(symbol)
        raise RuntimeError("a bug in the entry pipeline")

    monkeypatch.setattr(EntryPipeline, "evaluate", broken)
    (tmp_path / "cfg").mkdir()
    loaded = config(tmp_path / "cfg", "", base='[trading]\nsymbols = ["SPY"]\n')
    result = backtest(loaded, tmp_path / "out", start=date(2025, 7, 1), sessions=1)
    assert calls  # the loop carried on after each failure ...
    report = build_report(result)
    assert report["run"]["trades"] == 0
    # ... and the report says the replay cannot be trusted, with the first message.
    problems = [w for w in report["warnings"] if "not trustworthy" in w]
    assert len(problems) == 1, report["warnings"]
    assert "error" in problems[0] and "a bug in the entry pipeline" in problems[0]


def test_a_bars_file_rewritten_during_the_backtest(tmp_path: Path) -> None:
    """A downloader that rewrites the file while a long backtest reads it: the byte spans
    indexed at the start no longer hold those sessions. Reading them must fail, never serve
    another session's rows as this one's."""
    path = _write(tmp_path / "bars", DAYS)
    source = StreamingCsvBars(tmp_path / "bars", keep_sessions=1)
    _write(tmp_path / "bars", DAYS[1:])  # the first session dropped: every span moves
    for day in (DAYS[0], DAYS[2]):
        with pytest.raises(BarsError, match="changed since") as info:
            source.session_bars("SPY", day)
        assert info.value.message.startswith(str(path))

    (tmp_path / "cfg").mkdir()
    loaded = config(tmp_path / "cfg", "", base='[trading]\nsymbols = ["SPY"]\n')
    _write(tmp_path / "bars", DAYS)
    plan = prepare(BacktestRequest(bars=tmp_path / "bars", out=tmp_path / "out"), loaded, NOW)

    def rewrite(done: int, total: int, session: date) -> None:
        if done == 1:
            _write(tmp_path / "bars", DAYS[1:])

    with pytest.raises(BarsError, match="changed since"):
        run_backtest(plan, progress=rewrite)
    # The folder says what it is: a backtest that stopped part-way.
    marker = (tmp_path / "out" / "INCOMPLETE").read_text()
    assert "stopped before the end" in marker and "changed since" in marker
    assert "2025-07-02" in marker and not (tmp_path / "out" / "report.json").exists()


@pytest.mark.parametrize(
    ("raised", "code", "first"),
    [
        (KeyboardInterrupt(), 130, "interrupted"),
        (BarsError("SPY.csv: the file changed since the backtest checked it"), 3, "error:"),
        (RuntimeError("boom"), 1, "the backtest stopped"),
    ],
)
def test_a_backtest_stopped_part_way_says_where_its_partial_journals_are(  # type: ignore[no-untyped-def]
    write_config,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    raised: BaseException,
    code: int,
    first: str,
) -> None:
    write_config('[trading]\nsymbols = ["SPY"]\n')
    seen = []

    def stop_in_the_second_session(self: object, now: datetime) -> None:
        seen.append(now)
        if now.date() == date(2025, 7, 2) and now.hour >= 15:
            raise raised

    monkeypatch.setattr(BacktestOperator, "act", stop_in_the_second_session)
    result = invoke(
        ["backtest", "--synthetic", "--sessions", "3", "--from", "2025-07-01", "--out", "out"]
    )
    assert result.exit_code == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith(first) or first in lines[0], lines
    assert "Traceback" not in result.stderr
    text = " ".join(lines)
    assert f"{tmp_path / 'out'}" in text and "INCOMPLETE" in text, lines
    marker = (tmp_path / "out" / "INCOMPLETE").read_text()
    assert "2025-07-02" in marker and "stopped before the end" in marker
    assert not (tmp_path / "out" / "report.json").exists()
    # The folder is not taken for a finished one: a new run there is refused.
    again = invoke(["backtest", "--synthetic", "--sessions", "1", "--out", "out"])
    assert again.exit_code == 2 and "already has files" in again.stderr


def test_a_killed_backtest_leaves_its_folder_marked(tmp_path: Path) -> None:
    """SIGKILL (the OOM killer, a power cut) gives no chance to write anything at the end: the
    marker is written when the replay starts and removed only when it finished."""
    (tmp_path / "config.toml").write_text('[trading]\nsymbols = ["SPY", "QQQ"]\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    args = ["backtest", "--synthetic", "--sessions", "200", "--from", "2024-01-02"]
    child = subprocess.Popen(
        [sys.executable, "-m", "tradebot", *args, "--out", "out", "--json"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        # The loop's first event: the replay has started (the journal folder is made earlier,
        # with the context, and a kill in between found no marker yet on a loaded machine).
        started = tmp_path / "out" / "journal" / "events.jsonl"
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert child.poll() is None, "finished before it could be killed"
    finally:
        child.kill()
        child.wait(timeout=30)
    assert "stopped before the end" in (tmp_path / "out" / "INCOMPLETE").read_text()
    assert not (tmp_path / "out" / "report.json").exists()


def test_a_finished_backtest_has_no_marker(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    loaded = config(tmp_path / "cfg", "", base='[trading]\nsymbols = ["SPY"]\n')
    backtest(loaded, tmp_path / "out", start=date(2025, 7, 1), sessions=1)
    assert not (tmp_path / "out" / "INCOMPLETE").exists()
