"""Phase ladder speed (spec §8): evaluation ≤ 50 ms over 100,000 trades, export of 100,000 history
rows ≤ 1 s, `tradebot phase status` end to end ≤ 0.3 s."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from benchmarks.conftest import TRADEBOT, median_s, report_target, synthetic_trades
from tradebot.books.phase_records import PhaseRecords, export_history_csv
from tradebot.books.trade_journal import TradeJournal
from tradebot.config import Settings
from tradebot.core.metrics import TradeSeries
from tradebot.core.phase_history import PhaseTransition
from tradebot.core.phase_rules import evaluate
from tradebot.storage import JsonlFile, write_atomic

EVALUATION_TARGET_S = 0.050
EXPORT_TARGET_S = 1.0
STATUS_TARGET_S = 0.3


def test_phase_evaluation_100k(benchmark, trades_100k) -> None:  # type: ignore[no-untyped-def]
    """The loop keeps the journal as a TradeSeries; each tick re-evaluates the ladder on it."""
    series = TradeSeries.of(trades_100k)
    cfg = Settings().phase
    now = datetime(2030, 1, 2, 15, tzinfo=UTC)

    def run():  # type: ignore[no-untyped-def]
        return evaluate(
            history=[],
            trades=series,
            order_events=[],
            cfg=cfg,
            max_daily_loss_pct=Decimal(5),
            now=now,
            base_equity=Decimal(10000),
            equity=Decimal(10000),
            day_loss=None,
        )

    ev = benchmark.pedantic(run, rounds=15, warmup_rounds=2)
    assert ev.stats.trades == 100_000  # every trade is in the window (worst case)
    assert median_s(benchmark) <= EVALUATION_TARGET_S


def test_trade_series_build_100k(benchmark, trades_100k) -> None:  # type: ignore[no-untyped-def]
    """Shown for honesty: building the columns once per journal load (not a per-tick cost)."""
    benchmark.pedantic(lambda: TradeSeries.of(trades_100k), rounds=3, warmup_rounds=1)


@pytest.fixture(scope="module")
def history_100k(tmp_path_factory) -> Path:  # type: ignore[no-untyped-def]
    root = tmp_path_factory.mktemp("export")
    start = datetime(2020, 1, 1, tzinfo=UTC)
    phases = ("experience", "proof", "trial", "scaling")
    records = []
    for i in range(100_000):
        records.append(
            PhaseTransition(
                transition_id=uuid.UUID(int=i).hex,
                ts=start + timedelta(minutes=i),
                from_phase=phases[i % 4],  # type: ignore[arg-type]
                to_phase=phases[(i + 1) % 4],  # type: ignore[arg-type]
                trigger="manual_override",
                validation_passed=bool(i % 2),
                failures=["trades 5 (needs >= 20)"],
                metrics={
                    "trades": i,
                    "sessions": i // 5,
                    "win_rate": "0.6000",
                    "avg_rr": "1.5000",
                    "total_pnl": "123.45",
                },
                operator="bench",
                reason="benchmark row",
            ).as_record()
        )
    JsonlFile(root / "logs" / "phase" / "phase-history.jsonl").append_many(records)
    return root


def test_phase_export_100k_rows(benchmark, history_100k: Path) -> None:  # type: ignore[no-untyped-def]
    """What `phase export --csv FILE` does after start-up: read, validate every line, CSV, write."""
    records = PhaseRecords(history_100k / "logs")
    out = history_100k / "history-inproc.csv"

    def run() -> None:
        _, text = export_history_csv(records, None, None)
        write_atomic(out, text.encode("utf-8"))

    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    assert out.read_text().count("\n") == 100_001
    report_target("phase export, 100,000 rows, in-process", median_s(benchmark), EXPORT_TARGET_S)


def test_phase_export_100k_rows_end_to_end(benchmark, history_100k: Path) -> None:  # type: ignore[no-untyped-def]
    """The same export as a whole process, start-up included."""
    out = history_100k / "history.csv"

    def run() -> None:
        subprocess.run(
            [str(TRADEBOT), "phase", "export", "--csv", str(out)],
            cwd=history_100k,
            check=True,
            capture_output=True,
        )

    benchmark.pedantic(run, rounds=3, warmup_rounds=1)
    assert out.read_text().count("\n") == 100_001
    report_target("phase export, 100,000 rows, whole process", median_s(benchmark), EXPORT_TARGET_S)


def test_phase_status_end_to_end(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A realistic journal: 500 closed trades (about two years of the bot's trading)."""
    journal = TradeJournal(tmp_path / "logs")
    journal.file.append_many(t.model_dump(mode="json") for t in synthetic_trades(500))

    def run() -> None:
        subprocess.run(
            [str(TRADEBOT), "phase", "status"], cwd=tmp_path, check=True, capture_output=True
        )

    benchmark.pedantic(run, rounds=15, warmup_rounds=2)
    assert median_s(benchmark) <= STATUS_TARGET_S
