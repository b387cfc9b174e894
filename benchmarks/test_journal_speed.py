"""Journal summary over 100,000 closed trades (spec §8: shown, no fixed target)."""

from __future__ import annotations

from decimal import Decimal

from tradebot.books.trade_journal import TradeJournal
from tradebot.core.metrics import group_by, summarize
from tradebot.core.trades import ClosedTrade


def test_journal_summary_100k(benchmark, trades_100k: list[ClosedTrade]) -> None:  # type: ignore[no-untyped-def]
    def run() -> None:
        summarize(trades_100k, Decimal(10000))
        for group in group_by(trades_100k, lambda t: t.strategy).values():
            summarize(group, Decimal(10000))
        for group in group_by(trades_100k, lambda t: t.symbol).values():
            summarize(group, Decimal(10000))

    benchmark.pedantic(run, rounds=5, warmup_rounds=1)


def test_journal_read_100k(benchmark, trades_100k: list[ClosedTrade], tmp_path) -> None:  # type: ignore[no-untyped-def]
    journal = TradeJournal(tmp_path)
    journal.file.append_many(t.model_dump(mode="json") for t in trades_100k)

    result = benchmark.pedantic(journal.read, rounds=3, warmup_rounds=1)
    assert len(result.trades) == 100_000
