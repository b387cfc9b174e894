"""The backtest report: what the bot would have done, and how far the ladder would have let it.

One JSON-ready document (`backtest --json`, and `report.json` in the output folder), version 1:

* `source`, `range`, `symbols`, `out`: what was replayed and where the journals are;
* `summary`, `by_strategy`, `by_symbol`: the journal metrics of spec §3 (`tradebot journal`'s
  definitions, from `tradebot.core.metrics`), their drawdown curve anchored at
  `risk.paper_equity` (`drawdown_anchor`);
* `equity_curve`: the closed-trade equity after each trade, in the canonical trade order;
* `ladder`: the ladder replay (`tradebot.backtest.ladder.ladder_replay`);
* `pricing`: how option prices were obtained (one line); `option_quotes`: how many of the
  backtest's option quotes were real (`--options`) and how many modelled;
* `run`: sessions, bars, ticks, entries, the `entry_refused` lines of `events.jsonl` (total and by
  rule), timings.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from tradebot.backtest.engine import BacktestResult
from tradebot.backtest.ladder import ladder_replay
from tradebot.books.trade_journal import TradeJournal
from tradebot.core.metrics import breakdown_records, equity_curve
from tradebot.market.model import QuoteCounts
from tradebot.market.volatility import PricingParams

CALIBRATION_DOC = "docs/backtest-pricing.md"


def pricing_note(
    params: PricingParams, counts: QuoteCounts, options: str | None, source: str = "csv"
) -> str:
    """One line on where option prices came from."""
    total = counts.real + counts.modelled
    share = f" ({counts.real / total:.0%})" if total else ""
    real = (
        f"{counts.real:,} of the backtest's {total:,} option quotes were real{share}, from "
        f"{options}; the other {counts.modelled:,} were modelled: "
        if options is not None
        else f"all {total:,} option quotes were modelled (no --options): "
    )
    bars = "the synthetic bars" if source == "synthetic" else "the bars"
    return (
        f"{real}Black–Scholes on the underlying's last completed 1-minute bar, at an implied "
        f"volatility of {params.index_premium:g} × (index ETFs; {params.stock_premium:g} × "
        f"single stocks) the realized volatility of {bars} so far (today and up to "
        f"{params.lookback_sessions} earlier sessions), with a skew and smile, over trading time "
        f"to the expiry; spread max(tick, {params.spread * 100:g} % of the value). Calibrated "
        "on real option quotes: "
        f"the out-of-sample errors are in {CALIBRATION_DOC}."
    )


def build_report(result: BacktestResult) -> dict[str, Any]:
    plan, summary = result.plan, result.summary
    loaded = plan.loaded
    base = loaded.settings.risk.paper_equity
    contents = TradeJournal(loaded.logs_dir).read()
    trades = contents.trades
    sessions = list(plan.sessions)
    curve = [{"exit_time": t, "equity": e} for t, e in equity_curve(trades, base)]
    ladder = ladder_replay(result.ctx.ladder, result.operator, result.ended, sessions)
    return {
        "v": 1,
        "source": {
            "kind": plan.source,
            "description": plan.description,
            "seed": plan.seed,
        },
        "range": {"from": plan.first, "to": plan.last, "sessions": len(sessions)},
        "symbols": list(plan.symbols),
        "out": plan.out,
        "base_equity": base,
        "drawdown_anchor": "risk.paper_equity",
        **breakdown_records(trades, base),
        "equity_curve": curve,
        "ladder": ladder,
        "pricing": pricing_note(
            plan.market.params, plan.market.quote_counts, plan.options, plan.source
        ),
        "option_quotes": {
            "real": plan.market.quote_counts.real,
            "modelled": plan.market.quote_counts.modelled,
            "source": plan.options,
        },
        "run": {
            "bars": plan.bars,
            "ticks": summary.ticks,
            "ticks_skipped": result.ticks_skipped,
            "wakes": result.wakes,
            "entries_sent": summary.entries_sent,
            "entry_refused": entry_refusals(loaded.logs_dir),
            "trades": len(trades),
            "seconds": round(result.seconds, 3),
            "bars_per_second": round(result.bars_per_second, 1),
            "final_equity": summary.equity,
        },
        "warnings": [
            *plan.warnings,
            *_loop_problems(loaded.logs_dir),
            *_still_open(result),
            *contents.warnings,
            *ladder["warnings"],
        ],
    }


# Events the loop journals when something went wrong. `tradebot run` carries on after them (it
# must keep managing exits); on the simulated broker none should ever happen, so a backtest in
# which one did cannot be trusted. (`bracket_refused` is left out: `broker.sim.refuse_brackets`
# asks for it, and the loop then emulates the bracket.)
PROBLEMS = frozenset(
    {
        "error",
        "broker_error",
        "ladder_error",
        "exit_failed",
        "unknown_order",
        "unknown_execution",
        "position_mismatch",
    }
)


def entry_refusals(logs_dir: Path) -> dict[str, Any]:
    """The `entry_refused` lines of `events.jsonl`: their number and their number by rule.

    What an auditor counts in the journal: every refusal the loop journaled (the pipeline's,
    each time; an account-wide block, `blocked`, once per symbol, session and set of rules)."""
    from tradebot.books.halt import EVENTS_FILE

    by_rule: Counter[str] = Counter()
    try:
        with open(Path(logs_dir) / EVENTS_FILE, encoding="utf-8") as handle:
            for line in handle:
                if '"event":"entry_refused"' not in line:
                    continue
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("event") == "entry_refused":
                    by_rule[str(record.get("rule"))] += 1
    except FileNotFoundError:
        pass
    return {"events": sum(by_rule.values()), "by_rule": dict(sorted(by_rule.items()))}


def _loop_problems(logs_dir: Path) -> list[str]:
    """One warning when the backtest's `events.jsonl` holds any problem event."""
    from tradebot.books.halt import EVENTS_FILE

    path = Path(logs_dir) / EVENTS_FILE
    counts: Counter[str] = Counter()
    first: dict[str, Any] | None = None
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if not any(f'"event":"{kind}"' in line for kind in PROBLEMS):
                    continue  # most lines: a cheap test before parsing
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if record.get("event") in PROBLEMS:
                    counts[record["event"]] += 1
                    first = first or record
    except FileNotFoundError:
        return []
    if first is None:
        return []
    kinds = ", ".join(f"{kind} ×{n}" for kind, n in counts.most_common())
    return [
        f"the loop recorded {sum(counts.values())} problem(s) ({kinds}) and carried on, as "
        f"`tradebot run` does; the first, at {first.get('ts')}: {first.get('message')}. On the "
        f"simulated broker nothing should fail, so these results are not trustworthy (see "
        f"{path})"
    ]


def _still_open(result: BacktestResult) -> list[str]:
    """One warning when positions were still open at the end (not closed trades, so not in the
    metrics; the final equity marks them at the mid)."""
    positions = result.ctx.book.open_positions()
    if not positions:
        return []
    shown = ", ".join(
        f"{p.entry.ref} ({p.open_qty} {p.entry.contract.label}, bought at "
        f"{p.entry.avg_price.normalize()})"
        for p in positions
    )
    return [
        f"{len(positions)} position(s) still open when the backtest ended, not in the metrics "
        f"(they count closed trades only): {shown}; the final equity "
        f"{result.summary.equity} marks them at the mid"
    ]
