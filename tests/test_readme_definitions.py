"""README's "Journal metrics" definitions match what the code computes (issue 23).

The worked example in README.md (its trades table and its results table) is read from the
README itself, the trades are built and journaled, and every number is computed by the code
that `tradebot journal`, the backtest report and the phase ladder use — and by `tradebot
journal --json` — then compared with what the README says, to the digit it shows.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from tests.cli.conftest import invoke
from tests.factories import trade
from tradebot.books.trade_journal import TradeJournal
from tradebot.core.metrics import (
    TradeSeries,
    chronological,
    equity_curve,
    losing_streak,
    summarize,
)
from tradebot.core.trades import EXCHANGE_TZ, ClosedTrade

README = Path(__file__).resolve().parents[1] / "README.md"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("## Journal metrics")
    return text[start : text.index("\n## ", start + 1)]


def _table(section: str, header: str) -> list[list[str]]:
    """The rows of the Markdown table whose header row starts with `header`."""
    lines = section.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(f"| {header} |"))
    rows = []
    for line in lines[first + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def _example() -> tuple[Decimal, list[ClosedTrade], dict[str, str]]:
    section = _section()
    base = Decimal(re.search(r"`risk\.paper_equity` = \$([\d,]+)", section)[1].replace(",", ""))  # type: ignore[index]
    risk = Decimal(re.search(r"each\s+trade's risk \$(\d+)", section)[1])  # type: ignore[index]
    trades = []
    for name, exit_ny, pnl in _table(section, "trade"):
        at = datetime.fromisoformat(exit_ny).replace(tzinfo=EXCHANGE_TZ)
        # The factory's risk is entry × 100 × 50 %: the entry price gives the stated risk.
        made = trade(pnl, exit_time=at, trade_id=name, entry_price=str(risk / 50))
        assert made.risk == risk
        trades.append(made)
    results = {row[0]: row[1] for row in _table(section, "metric")}
    return base, trades, results


def _two(value: Decimal) -> str:
    return str(value.quantize(Decimal("0.01"), ROUND_HALF_UP))


def test_the_worked_example_is_what_the_code_computes() -> None:
    base, trades, said = _example()
    lines = list(reversed(trades))  # the journal's line order must not matter
    ordered = chronological(lines)
    assert said["trade order"] == ", ".join(t.trade_id for t in ordered)
    curve = [e for _, e in equity_curve(lines, base)]
    assert said["equity curve"] == ", ".join(f"{e:,.2f}".removesuffix(".00").replace(",", "")
                                             for e in curve)  # fmt: skip

    s = summarize(lines, base)
    assert said["trades"] == f"{s.trades} ({s.wins} won, {s.losses} lost)"
    assert s.win_rate is not None and s.avg_rr is not None and s.expectancy_r is not None
    assert s.profit_factor is not None and s.max_drawdown_pct is not None
    assert said["win rate"] == f"{_two(s.win_rate * 100)} %"
    assert said["avg R:R"] == _two(s.avg_rr)
    assert said["expectancy"] == f"{_two(s.expectancy_r)} R"
    assert said["profit factor"] == _two(s.profit_factor)
    assert said["total P&L"] == f"${s.total_pnl:,.2f}"
    assert said["max drawdown $"] == f"${s.max_drawdown_usd:,.2f}"
    assert said["max drawdown %"] == f"{_two(s.max_drawdown_pct)} %"
    assert said["sessions"] == (
        f"{s.sessions} ({s.profitable_sessions} profitable, {s.losing_sessions} losing, "
        f"{s.flat_sessions} flat)"
    )
    assert said["consecutive losses now"] == str(s.consecutive_losses)
    run = losing_streak(TradeSeries.of(lines), s.consecutive_losses)
    assert run is not None
    assert [ordered[i].trade_id for i in run] == ["T5", "T6", "T7"]  # as the README explains

    # The ladder's reading of the same curve, anchored where its window began.
    key = next(k for k in said if k.startswith("ladder max drawdown %"))
    window_start = Decimal(re.search(r"\$([\d,]+)", key)[1].replace(",", ""))  # type: ignore[index]
    ladder = summarize(lines, window_start).max_drawdown_pct
    assert ladder is not None and said[key] == f"{_two(ladder)} %"

    # Max drawdown % is the largest (peak − equity) / peak, not the % at the largest dollar dip
    # (8.57 % here): the README's example is chosen so the two differ.
    peak, largest = base, (Decimal(0), base)
    for equity in curve:
        peak = max(peak, equity)
        if peak - equity > largest[0]:
            largest = (peak - equity, peak)
    assert largest[0] == s.max_drawdown_usd
    assert f"{_two(largest[0] * 100 / largest[1])} %" != said["max drawdown %"]


def test_journal_json_reports_the_example_as_the_readme_does(tmp_path: Path) -> None:
    base, trades, said = _example()
    (tmp_path / "config.toml").write_text(f"[risk]\npaper_equity = {base}\n", encoding="utf-8")
    journal = TradeJournal(tmp_path / "logs")
    for t in reversed(trades):  # written out of order on purpose
        journal.append(t)
    doc = json.loads(invoke(["journal", "--json"]).stdout)
    assert ", ".join(t["trade_id"] for t in doc["trades"]) == said["trade order"]
    summary = doc["summary"]
    assert doc["drawdown_anchor"] == "risk.paper_equity"
    assert f"${Decimal(summary['max_drawdown_usd']):,.2f}" == said["max drawdown $"]
    assert f"{_two(Decimal(summary['max_drawdown_pct']))} %" == said["max drawdown %"]
    assert (summary["profitable_sessions"], summary["losing_sessions"]) == (1, 1)
    assert summary["flat_sessions"] == 1
    assert str(summary["consecutive_losses"]) == said["consecutive losses now"]
