"""The order book (engine/order_book.py) as the loop sees it between its own refreshes.

The trading loop's order journal is lean: whoever reads `orders.jsonl` first (the book, or the
ladder in the middle of a tick through `ladder.orders.session_events`) hands the new records to
the book, which applies them later. A journal replaced by hand (an editor's save: same bytes, a
new inode) is handed over whole, as a reset. The book must never be seen empty or half rebuilt in
between: `EntryPipeline.evaluate` asks `book.holds` before any refresh, and an empty book there
sends an entry on a symbol already held.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.engine.harness import DRY, config, run
from tradebot.config import LoadedConfig
from tradebot.engine.context import EngineContext
from tradebot.engine.dry_run import WouldBePositions
from tradebot.errors import CorruptRecordError


def _holding(tmp_path: Path) -> tuple[LoadedConfig, EngineContext, list[tuple[str, str]]]:
    loaded = config(tmp_path)
    _, ctx = run(loaded, "2025-07-01", "2025-07-01T11:30")
    ctx.book.refresh()
    held = [(p.entry.symbol, p.entry.strategy) for p in ctx.book.open_positions()]
    assert held, "the scenario holds a position at 11:30"
    return loaded, ctx, held


def _replace(path: Path, data: bytes) -> None:
    """What an editor's save does: a new file renamed over the old one (a new inode)."""
    tmp = path.with_suffix(".repaired")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def test_book_stays_whole_when_the_ladder_reads_a_replaced_journal(tmp_path: Path) -> None:
    """Reviewer's scenario: the ladder reads the repaired journal first; the entry pipeline then
    asks the book, with no refresh in between."""
    loaded, ctx, held = _holding(tmp_path)
    book = ctx.book
    refs = sorted(book.unfinished)
    path = loaded.logs_dir / "journal" / "orders.jsonl"
    _replace(path, path.read_bytes())
    session = book.open_positions()[0].entry.session
    assert ctx.ladder.orders.session_events(session) is not None  # the ladder reads it first
    for symbol, strategy in held:
        assert book.holds(symbol, strategy) is not None, "the book forgot the open position"
    assert [(p.entry.symbol, p.entry.strategy) for p in book.open_positions()] == held
    assert book.has_activity()
    assert sorted(book.unfinished) == refs
    book.refresh()  # and the refresh after it changes nothing
    assert sorted(book.unfinished) == refs


def test_a_replaced_journal_with_a_damaged_line_leaves_the_book_as_it_was(
    tmp_path: Path,
) -> None:
    """A repair that went wrong (a fill line no broker would report): the book keeps what it
    knew, whole, for exits; an entry is refused (holds raises, naming the line) and every refresh
    says so until the journal is repaired, after which the book is rebuilt from it."""
    loaded, ctx, held = _holding(tmp_path)
    book = ctx.book
    path = loaded.logs_dir / "journal" / "orders.jsonl"
    good = path.read_bytes()
    lines = good.decode().splitlines()
    n, record = next(
        (i, json.loads(x)) for i, x in enumerate(lines) if json.loads(x)["event"] == "fill"
    )
    record["qty"] = 10_000  # more than was ordered
    lines[n] = json.dumps(record)
    _replace(path, ("\n".join(lines) + "\n").encode())
    before = {ref: (o.status, o.filled_qty) for ref, o in book.orders.items()}
    ctx.ladder.orders.session_events(book.open_positions()[0].entry.session)
    assert [(p.entry.symbol, p.entry.strategy) for p in book.open_positions()] == held
    assert {ref: (o.status, o.filled_qty) for ref, o in book.orders.items()} == before
    symbol, strategy = held[0]
    with pytest.raises(CorruptRecordError, match=f"orders.jsonl:{n + 1}"):
        book.holds(symbol, strategy)
    with pytest.raises(CorruptRecordError):
        book.refresh()
    assert {ref: (o.status, o.filled_qty) for ref, o in book.orders.items()} == before
    _replace(path, good)  # repaired
    book.refresh()
    assert book.holds(symbol, strategy) is not None
    assert {ref: (o.status, o.filled_qty) for ref, o in book.orders.items()} == before


def test_forget_finished_keeps_open_would_be_positions(tmp_path: Path) -> None:
    """Reviewer's scenario: a dry run's entry is `not_sent` (final, nothing filled), so it is
    never 'unfinished'; the daily pruning of finished round trips dropped an open would-be
    position held over three days (a whale may hold an option up to 7 days): its take-profit and
    stop were gone (read from the book) and a restarted dry run no longer found it. A would-be
    position that was closed (its `.x` exit) is still forgotten (the next test)."""
    loaded = config(tmp_path, base=DRY)
    _, ctx = run(loaded, "2025-07-01", "2025-07-01T10:30")
    book = ctx.book
    open_refs = list(WouldBePositions(ctx)._positions())
    assert open_refs, "the scenario has an open would-be position at 10:30"
    ref = open_refs[0]
    entry = book.orders[ref]
    before = WouldBePositions(ctx)._bracket(entry)
    assert before[0] is not None and before[1] is not None
    book.forget_finished(entry.intent_ts + timedelta(days=4))  # the first sync of a later day
    assert WouldBePositions(ctx)._bracket(entry) == before, "take-profit/stop forgotten"
    assert sorted(WouldBePositions(ctx)._positions()) == sorted(open_refs)  # as after a restart


def test_a_closed_would_be_position_is_forgotten(tmp_path: Path) -> None:
    """Its entry, bracket and `.x` exit all leave memory once the exit is older than three
    days."""
    loaded = config(tmp_path, base=DRY)
    _, ctx = run(loaded, "2025-07-01", "2025-07-02")
    book = ctx.book
    closed = [o.parent_ref for o in book.orders.values() if o.role == "exit"]
    assert closed, "the scenario closes a would-be position on its first day"
    assert book.forget_finished(datetime(2025, 7, 8, tzinfo=UTC)) >= len(closed)
    assert not any(ref in book.orders or f"{ref}.x" in book.orders for ref in closed)
