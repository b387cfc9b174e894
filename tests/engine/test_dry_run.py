"""A dry run sends nothing and never repeats a would-be entry while its would-be position is open:
one entry per idea, as the real run would make, not the same entry every tick."""

from __future__ import annotations

import itertools
import json
from datetime import datetime
from pathlib import Path
from typing import Any

from tests.engine.harness import DRY, config, read_jsonl, run


def _ts(record: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(record["ts"]).replace("Z", "+00:00"))


def _would_be(orders: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Entry ref → {entry, exit} (the exit is the not_sent `.x` close, when it came)."""
    out: dict[str, dict[str, Any]] = {}
    for r in orders:
        if r["event"] != "intent":
            continue
        if r["role"] == "entry":
            out[r["order_ref"]] = {"entry": r, "exit": None}
        elif r["role"] == "exit":
            out[r["parent_ref"]]["exit"] = r
    return out


def test_a_dry_run_sends_nothing_and_never_repeats_an_open_would_be_entry(
    tmp_path: Path,
) -> None:
    loaded = config(tmp_path, base=DRY)
    summary, _ = run(loaded, "2025-07-01")
    orders = read_jsonl(loaded.logs_dir / "journal" / "orders.jsonl")
    # Nothing sent: no submission, no fill, every order not_sent, the broker never saw one.
    assert not [r for r in orders if r["event"] in ("submitted", "fill")]
    statuses = {r["order_ref"]: r["status"] for r in orders if r["event"] == "status"}
    assert statuses and set(statuses.values()) == {"not_sent"}
    account = json.loads((loaded.state_dir / "sim-broker.json").read_text())
    assert account.get("orders", []) in ([], {}) and summary.entries_sent == 0
    assert summary.trades == []
    # One would-be position per (symbol, strategy) at a time: each entry comes after the
    # previous one for the same symbol and strategy was closed.
    positions = _would_be(orders)
    assert len(positions) >= 4
    by_key: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for p in positions.values():
        by_key.setdefault((p["entry"]["symbol"], p["entry"]["strategy"]), []).append(p)
    assert any(len(v) >= 3 for v in by_key.values())  # repeated ideas, spaced out
    for key, series in by_key.items():
        series.sort(key=lambda p: _ts(p["entry"]))
        for before, after in itertools.pairwise(series):
            assert before["exit"] is not None, f"{key}: a second entry while one was open"
            assert _ts(before["exit"]) <= _ts(after["entry"]), key
    # Each close says why, with a price where there was one.
    reasons = {p["exit"]["exit_reason"] for p in positions.values() if p["exit"]}
    assert reasons <= {"take_profit", "stop_loss", "flatten", "expired"}
    assert "flatten" in reasons  # scalp would-be positions end before the close, like real ones
    assert all(p["exit"] is not None for p in positions.values())
    # Nothing of it is a trade.
    assert not (loaded.logs_dir / "journal" / "trades.jsonl").exists()


def test_a_restarted_dry_run_remembers_its_open_would_be_positions(tmp_path: Path) -> None:
    loaded = config(tmp_path, base=DRY)
    run(loaded, "2025-07-01", "2025-07-01T10:30")
    orders = read_jsonl(loaded.logs_dir / "journal" / "orders.jsonl")
    open_before = {ref: p for ref, p in _would_be(orders).items() if p["exit"] is None}
    assert open_before, "no would-be position open at 10:30 to test the restart with"
    run(loaded, "2025-07-01T10:30", "2025-07-01T16:30")
    after = _would_be(read_jsonl(loaded.logs_dir / "journal" / "orders.jsonl"))
    for ref, p in open_before.items():
        symbol, strategy = p["entry"]["symbol"], p["entry"]["strategy"]
        closed = after[ref]["exit"]
        assert closed is not None
        later = [
            q
            for q in after.values()
            if q["entry"]["symbol"] == symbol
            and q["entry"]["strategy"] == strategy
            and _ts(q["entry"]) > _ts(p["entry"])
        ]
        assert all(_ts(q["entry"]) >= _ts(closed) for q in later), ref


def test_paper_on_the_simulated_broker_does_not_hold_would_be_positions(tmp_path: Path) -> None:
    """Entries left not_sent by an earlier dry run never block a paper run."""
    loaded = config(tmp_path, base=DRY)
    run(loaded, "2025-07-01", "2025-07-01T10:30")
    paper = config(tmp_path, base=DRY.replace('"dry_run"', '"paper"'))
    summary, _ = run(paper, "2025-07-01T10:30", "2025-07-01T12:00")
    assert summary.entries_sent >= 1
