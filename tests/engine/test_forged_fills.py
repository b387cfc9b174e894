"""A forged or impossible journal line is an error, not a trade (issue 18, item 4).

The audit appended a `fill` to `orders.jsonl` at 1000.00 for a take-profit leg: it became a
trade with P&L 99,899 (the broker's fills said +98), with no warning, and the real position was
left unmanaged. On the simulated broker the account is the truth: a journaled fill the account
does not have is a named error (exit 4) that blocks entries. On any broker a fill that cannot
be — above a buy's limit, more than was ordered, at a price no quote of the contract came near —
is refused. A trade dated in the future blocks entries like a future-dated history line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.engine.harness import config, entry_intents, events, orders, trades, ts
from tests.factories import trade
from tests.market_time_text import utc_shown
from tests.review.helpers import HOLD, prepare, run_loop, sim, trading
from tradebot.books.journal_cache import CachedOrderJournal, CachedTradeJournal
from tradebot.books.ladder import PhaseLadder
from tradebot.books.risk_report import build_risk_report
from tradebot.config import LoadedConfig
from tradebot.core.validation import FUTURE_TOLERANCE
from tradebot.engine.events import EventLog
from tradebot.engine.order_book import OrderBook
from tradebot.errors import CorruptRecordError


def _journal(loaded: LoadedConfig) -> Path:
    return loaded.logs_dir / "journal" / "orders.jsonl"


def _forged_fill(loaded: LoadedConfig, price: str | None = None) -> dict[str, Any]:
    """A fill line for the first working take-profit leg, in the journal's own format (at the
    leg's own limit unless `price`: a line that looks right)."""
    records = orders(loaded)
    filled = {r["order_ref"] for r in records if r["event"] == "fill" and r["role"] == "entry"}
    leg = next(
        r
        for r in records
        if r["event"] == "intent" and r["role"] == "take_profit" and r["parent_ref"] in filled
    )
    last = ts(records[-1])
    return {
        "v": 1, "ts": records[-1]["ts"], "event": "fill", "order_ref": leg["order_ref"],
        "role": "take_profit", "session": leg["session"], "mode": leg["mode"],
        "exec_id": "0000e0d1.forged.01", "qty": leg["qty"], "price": price or leg["limit"],
        "commission": "0.65", "time": last.isoformat().replace("+00:00", "Z"),
        "filled_qty": leg["qty"], "kind": "trade", "order_id": 999, "perm_id": 999,
    }  # fmt: skip


def _append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def _open_positions_by_10_30(tmp_path: Path) -> LoadedConfig:
    loaded = config(tmp_path, HOLD, base=trading("interval_s = 60", symbols='"SPY"'))
    ctx, until = prepare(loaded, "2025-07-01T09:29", "2025-07-01T10:30")
    run_loop(ctx, until)
    assert any(r["event"] == "fill" and r["role"] == "entry" for r in orders(loaded))
    return loaded


def test_a_forged_fill_in_the_journal_is_exit_4_and_no_trade(tmp_path: Path) -> None:
    loaded = _open_positions_by_10_30(tmp_path)
    forged = _forged_fill(loaded)
    _append(_journal(loaded), forged)
    line = len(_journal(loaded).read_text().splitlines())
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    done = subprocess.run(
        [sys.executable, "-m", "tradebot", "run", "--once", "--start", "2025-07-01T10:31"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 4, done.stderr
    assert f"orders.jsonl:{line}" in done.stderr
    assert "0000e0d1.forged.01" in done.stderr and "simulated account" in done.stderr
    assert "Traceback" not in done.stderr
    assert trades(loaded) == []  # never a trade of 99,899


def test_a_fill_forged_while_the_loop_runs_blocks_entries_and_writes_no_trade(
    tmp_path: Path,
) -> None:
    loaded = _open_positions_by_10_30(tmp_path)
    ctx, until = prepare(loaded, "2025-07-01T10:31", "2025-07-01T12:00")
    broker = sim(ctx)
    real = broker.orders
    forged_at: list[datetime] = []

    async def forging(since: datetime | None = None) -> Any:
        if not forged_at and broker.now() >= datetime(2025, 7, 1, 15, 0, tzinfo=UTC):
            _append(_journal(loaded), _forged_fill(loaded))
            forged_at.append(broker.now())
        return await real(since)

    broker.orders = forging  # type: ignore[method-assign]
    summary = run_loop(ctx, until)
    assert summary.stopped_by == "until"  # the loop lives on (exits go on) ...
    assert forged_at
    after = [r for r in entry_intents(loaded) if ts(r) >= forged_at[0]]
    assert after == []  # ... but opens nothing
    assert not [t for t in trades(loaded) if t.pnl > 1000]
    said = [e["message"] for e in events(loaded) if e["event"] in ("error", "broker_error")]
    assert any("0000e0d1.forged.01" in m for m in said)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"price": "0.01"}, "below"),  # a sell leg's limit is a floor
        ({"price": "1000.00"}, "no quote of the contract comes near"),  # the audit's forgery
        ({"qty": "lots"}, "qty must be a whole number"),
        ({"qty": 5, "filled_qty": 5}, "more than"),
        ({"price": "-1"}, "price"),
        ({"price": "NaN"}, "price"),
    ],
)
def test_an_impossible_fill_line_is_refused_on_any_broker(
    tmp_path: Path, change: dict[str, Any], problem: str
) -> None:
    """Checked from the journal alone (no broker asked): what no broker can report."""
    loaded = _open_positions_by_10_30(tmp_path)
    _append(_journal(loaded), {**_forged_fill(loaded), **change})
    line = len(_journal(loaded).read_text().splitlines())
    logs = loaded.logs_dir
    book = OrderBook(CachedOrderJournal(logs), CachedTradeJournal(logs), EventLog(logs))
    with pytest.raises(CorruptRecordError, match=problem) as err:
        book.refresh()
    assert f"orders.jsonl:{line}" in err.value.message


def test_a_trade_dated_in_the_future_blocks_entries(tmp_path: Path) -> None:
    loaded = config(tmp_path)
    now = datetime(2025, 7, 1, 15, 0, tzinfo=UTC)
    later = now + FUTURE_TOLERANCE + timedelta(minutes=1)
    path = loaded.logs_dir / "journal" / "trades.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(trade(50, exit_time=later, mode="paper").model_dump(mode="json")) + "\n"
    )
    report = build_risk_report(loaded, now)
    assert "future_dated_record" in [b.rule for b in report.blocking]
    [late] = [w for w in report.warnings if "trades.jsonl" in w and "after now" in w]
    assert "(now 2025-07-01 11:00 EDT)" in late and not utc_shown([late])  # a person reads it
    snap = PhaseLadder(loaded).snapshot(now)
    assert snap.evaluation is not None and snap.evaluation.future_records
    assert not snap.evaluation.eligible  # it earns nothing toward the next phase
