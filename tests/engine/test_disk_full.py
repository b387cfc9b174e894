"""A full disk loses nothing (issue 18, item 2).

On a real small tmpfs the disk is filled (a filler file takes every free page) at a chosen write
of the loop — each kind of write in turn: the simulated broker's account, an order intent, a
fill, a closed trade, an event — then freed a quarter of an hour later; the run goes on to its
end, a second run restarts from the files, and then:

* the journal is the account: every execution the broker has is journaled exactly once and no
  journaled fill is missing from the broker; the journal's open quantity per contract is the
  broker's position;
* cash = starting cash + Σ trade P&L − the cost of what is still open, to the cent.

The audit's runs broke both: the simulated broker went on trading in memory after its save
failed, the loop adopted those fills, and a restart found an account that never had them.

CI runs a few write kinds (TB_DISKFULL_ROUNDS=all runs every kind the dry run found).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.engine.harness import Recorder, config, orders, trades
from tests.review.helpers import prepare, run_loop, sim, trading
from tradebot.brokers.base import BrokerError, OrderSpec
from tradebot.config import LoadedConfig
from tradebot.engine.order_book import OrderBook
from tradebot.storage import atomic, jsonl

pytestmark = pytest.mark.slow
DISK_BYTES = 16 * 1024 * 1024
DAY = date(2025, 7, 1)
CI_KINDS = ("sim-broker.json", "orders.jsonl:fill", "orders.jsonl:intent", "trades.jsonl")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real tmpfs of DISK_BYTES mounted for the test (root only: CI runs as root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES},mode=0700", "tmpfs", str(disk)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()}); needs root")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> None:
    """Take every free page of the file system with one filler file."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        for block in (1 << 20, 1 << 12, 1):
            data = b"\0" * block
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, data)
    finally:
        os.close(fd)
    assert os.statvfs(disk).f_bavail == 0


@dataclass
class Writes:
    """Every durable write of the loop (file:event), and the ones the full disk refused."""

    kinds: list[str] = field(default_factory=list)
    refused: set[str] = field(default_factory=set)


def _kind(fd: int, data: bytes) -> str:
    name = Path(os.readlink(f"/proc/self/fd/{fd}")).name
    if name.startswith(".") and name.endswith(".tmp"):
        name = name[1:].rsplit(".", 2)[0]  # an atomic write's temporary file
    if name.endswith(".jsonl") and b'"event":"' in data:
        event = data.split(b'"event":"', 1)[1].split(b'"', 1)[0].decode()
        if name == "orders.jsonl":
            return f"{name}:{event}"
    return name


def watch_writes(
    monkeypatch: pytest.MonkeyPatch, writes: Writes, before: Callable[[int], None]
) -> None:
    """Count every write of tradebot.storage (atomic files and journal appends)."""
    real = atomic.write_all

    def counted(fd: int, data: bytes) -> None:
        kind = _kind(fd, bytes(data[:200]))
        writes.kinds.append(kind)
        before(len(writes.kinds))
        try:
            real(fd, data)
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                writes.refused.add(kind)
            raise

    monkeypatch.setattr(atomic, "write_all", counted)
    monkeypatch.setattr(jsonl, "_write_all", counted)


def _config(root: Path, disk: Path) -> LoadedConfig:
    root.mkdir()
    logs = disk / f"{root.name}-logs"
    paths = f'[paths]\nlogs_dir = "{logs}"\nstate_dir = "{logs}/state"\n'
    return config(root, paths, base=trading("interval_s = 60", symbols='"SPY", "QQQ"'))


def _first_of_each_kind(kinds: list[str], after: int) -> dict[str, int]:
    """The first write of each kind from write `after` on, before the run's own stop (its last
    writes: the stop event, the heartbeat, the account; a disk full there fails no step)."""
    found: dict[str, int] = {}
    for i, kind in enumerate(kinds[after : len(kinds) - 5], start=after + 1):
        found.setdefault(kind, i)
    return found


def check_identities(loaded: LoadedConfig, ctx: Any) -> None:
    broker = sim(ctx)
    journal = orders(loaded)
    journal_fills = [r for r in journal if r["event"] == "fill"]
    exec_ids = [r["exec_id"] for r in journal_fills]
    assert len(exec_ids) == len(set(exec_ids)), "a fill was journaled twice"
    broker_fills = {f.exec_id for f in broker.exchange.fills}
    assert set(exec_ids) == broker_fills, (
        f"journal only: {set(exec_ids) - broker_fills}; broker only: {broker_fills - set(exec_ids)}"
    )
    book = OrderBook(ctx.book.journal.__class__(loaded.logs_dir), ctx.book.trades, ctx.events)
    book.refresh()
    held: dict[int, int] = {}
    open_cost = Decimal(0)
    for pos in book.open_positions():
        con_id = pos.entry.contract.con_id
        held[con_id] = held.get(con_id, 0) + pos.open_qty
        mult = pos.entry.contract.multiplier
        open_cost += pos.entry.avg_price * pos.entry.filled_qty * mult + pos.entry.commission
        for e in pos.exits:
            open_cost -= e.avg_price * e.filled_qty * mult - e.commission
    account = {c: p.qty for c, p in broker.exchange.positions.items() if p.qty}
    assert held == account, f"journal {held} != account {account}"
    pnl = sum((t.pnl for t in trades(loaded)), Decimal(0))
    start = loaded.settings.risk.paper_equity
    expected = (start + pnl - open_cost).quantize(Decimal("0.01"))
    assert broker.exchange.cash.quantize(Decimal("0.01")) == expected


def _round(root: Path, disk: Path, monkeypatch: pytest.MonkeyPatch, at: int | None) -> Writes:
    """One run with the disk filled at write `at` (None: never) until the run stops; the disk
    is freed, a restart runs from the files, and the identities are checked at the end."""
    loaded = _config(root, disk)
    ctx, until = prepare(loaded, "2025-07-01T09:29", "2025-07-01T11:00", notify=Recorder())
    writes = Writes()
    full_since: list[datetime] = []

    def before(count: int) -> None:
        if at is not None and count == at:
            fill(disk)
            full_since.append(ctx.clock.now())

    with monkeypatch.context() as patch:
        watch_writes(patch, writes, before)
        summary = run_loop(ctx, until)
    assert summary.stopped_by == "until"  # the loop lived through the full disk
    with contextlib.suppress(FileNotFoundError):
        (disk / "filler").unlink()
    if at is not None:
        assert full_since, "the round never reached its write"
        assert writes.refused, "the full disk refused nothing"
        notes = ctx.notify.events("error")  # type: ignore[attr-defined]
        assert any("disk full" in n and "entries paused" in n for n in notes), (
            at,
            sorted(writes.refused),
        )
    # The restart, from the files alone.
    ctx2, until2 = prepare(loaded, "2025-07-01T11:00", "2025-07-01T12:00")
    run_loop(ctx2, until2)
    check_identities(loaded, ctx2)
    return writes


def test_a_full_disk_at_each_kind_of_write_loses_nothing(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dry = _round(small_disk / "dry", small_disk, monkeypatch, None)
    first_fill = dry.kinds.index("orders.jsonl:fill")
    points = _first_of_each_kind(dry.kinds, first_fill - 3)
    wanted = os.environ.get("TB_DISKFULL_ROUNDS", "")
    kinds = sorted(points) if wanted == "all" else [k for k in CI_KINDS if k in points]
    assert len(kinds) >= len(CI_KINDS) if wanted != "all" else kinds
    refused: set[str] = set()
    for n, kind in enumerate(kinds):
        writes = _round(small_disk / f"r{n}", small_disk, monkeypatch, points[kind])
        refused |= writes.refused
    # Whatever kind of write met the full disk first, the account, the order journal and the
    # events journal were all refused at some point of the campaign.
    assert {"sim-broker.json", "events.jsonl"} <= refused
    assert any(k.startswith("orders.jsonl") for k in refused)


def test_the_simulated_broker_does_not_act_on_what_it_could_not_record(
    small_disk: Path,
) -> None:
    """A save that fails undoes the change: the order the broker could not record is not in
    its account, and a restart from the file finds the same account."""
    loaded = _config(small_disk / "one", small_disk)
    ctx, _ = prepare(loaded, "2025-07-01T10:00")
    broker = sim(ctx)

    async def scenario() -> None:
        await broker.connect()
        chain = await broker.option_chain("SPY")
        strike = chain.strikes[len(chain.strikes) // 2]
        contract = broker.market.option("SPY", chain.expiries[0], strike, "C", DAY)
        assert contract is not None
        before = broker.exchange.to_state()
        fill(small_disk)
        spec = OrderSpec("SPY-x-1", contract, "BUY", 1, "MKT", "DAY")
        with pytest.raises(BrokerError, match="could not record"):
            await broker.place_order(spec)
        assert broker.exchange.to_state() == before
        assert [o for o in await broker.orders() if o.order_ref == "SPY-x-1"] == []
        (small_disk / "filler").unlink()

    asyncio.run(scenario())
    # A restart reads the account as the broker last wrote it: no trace of the order.
    again = sim(prepare(loaded, "2025-07-01T10:01")[0])
    asyncio.run(again.connect())
    assert [o for o in again.exchange.orders.values() if o.order_ref == "SPY-x-1"] == []
