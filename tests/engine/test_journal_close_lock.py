"""Recording an exit tradebot could not see — by the loop's reconciliation or the operator's
`tradebot journal close` — is decided and written under the order journal's inter-process lock,
on the journal as it then is: the two never both record the same position's exit. An exit
recorded from the broker's order status is dated when the broker says it filled.

Real journals on disk, a real `tradebot journal close` process, the real OrderBook and
PositionWatch; the broker is a small stand-in that answers what IB answers when its executions
are gone but its order status is known (IB API docs for reqExecutions: today's executions only).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tradebot.books.journal_cache import CachedOrderJournal, CachedTradeJournal
from tradebot.brokers.base import BrokerOrder, Execution, Holding
from tradebot.core.instruments import OptionContract
from tradebot.engine.events import EventLog
from tradebot.engine.order_book import OrderBook, TrackedOrder
from tradebot.engine.positions import PositionWatch

T0 = datetime(2025, 7, 1, 14, 0, tzinfo=UTC)
REF = "SPY-250701-w1"
CONTRACT = OptionContract("SPY", date(2025, 7, 18), Decimal(600), "C", con_id=9001)


class Broker:
    """IB after its day ended: the executions are gone, the stop's order status says Filled."""

    def __init__(
        self,
        qty: int = 1,
        stop: BrokerOrder | None = None,
        holdings: list[Holding] | None = None,
    ):
        self.qty = qty
        self.stop = stop
        self.held = holdings or []
        self.entry_fill = Execution(
            exec_id="e1", order_ref=REF, order_id=1, perm_id=101, contract=CONTRACT,
            side="BOT", qty=qty, price=Decimal("2.00"), time=T0, commission=Decimal("0.65"),
        )  # fmt: skip

    async def holdings(self) -> list[Holding]:
        return self.held

    async def executions(self, since: datetime) -> list[Execution]:
        return [self.entry_fill] if self.stop is None else []

    async def orders(self, since: datetime | None = None) -> list[BrokerOrder]:
        entry = BrokerOrder(
            order_ref=REF, order_id=1, perm_id=101, parent_id=0, contract=CONTRACT,
            action="BUY", qty=self.qty, order_type="LMT", limit=Decimal("2.00"), stop=None,
            tif="DAY", status="filled", filled=self.qty, avg_fill_price=Decimal("2.00"),
            finished_at=T0,
        )  # fmt: skip
        return [entry] if self.stop is None else [entry, self.stop]

    async def statement(self, since: date) -> None:
        return None

    def order_lists_complete(self) -> bool:
        return True


def _book(logs: Path) -> OrderBook:
    return OrderBook(CachedOrderJournal(logs), CachedTradeJournal(logs), EventLog(logs))


def _open_position(logs: Path, qty: int = 1) -> OrderBook:
    """An entry bought and its stop working, as the loop journals them."""
    book = _book(logs)
    common: dict[str, Any] = {
        "symbol": "SPY", "strategy": "whale", "contract": CONTRACT, "session": T0.date(),
        "mode": "paper", "phase": "experience", "intent_ts": T0,
    }  # fmt: skip
    book.add_intent(T0, TrackedOrder(ref=REF, role="entry", action="BUY", qty=qty,
                                     order_type="LMT", tif="DAY", limit=Decimal("2.00"),
                                     **common))  # fmt: skip
    book.add_intent(T0, TrackedOrder(ref=f"{REF}.sl", role="stop_loss", action="SELL", qty=qty,
                                     order_type="STP", tif="GTC", stop=Decimal("1.00"),
                                     parent_ref=REF, **common))  # fmt: skip
    book.mark_submitted(T0, REF, 1, 101, "submitted")
    book.mark_submitted(T0, f"{REF}.sl", 2, 102, "submitted")
    asyncio.run(book.sync(Broker(qty), T0 + timedelta(minutes=2)))  # type: ignore[arg-type]
    assert book.position(book.orders[REF]).open_qty == qty
    return book


def _watch(book: OrderBook, broker: Broker, logs: Path) -> PositionWatch:
    ctx = SimpleNamespace(
        book=book, broker=broker, blocked_symbols={}, events=EventLog(logs),
        notify=lambda event, message: None,
    )  # fmt: skip
    return PositionWatch(ctx)  # type: ignore[arg-type]


def _filled_stop(at: datetime) -> BrokerOrder:
    return BrokerOrder(
        order_ref=f"{REF}.sl", order_id=2, perm_id=102, parent_id=1, contract=CONTRACT,
        action="SELL", qty=1, order_type="STP", limit=None, stop=Decimal("1.00"), tif="GTC",
        status="filled", filled=1, avg_fill_price=Decimal("0.98"), finished_at=at,
    )  # fmt: skip


def _exit_fills(logs: Path) -> list[dict[str, Any]]:
    book = _book(logs)
    book.refresh()
    return [
        {"ref": o.ref, "qty": f.qty, "price": f.price, "time": f.time}
        for o in book.orders.values()
        if o.parent_ref == REF
        for f in o.fills.values()
    ]


def test_an_exit_from_the_brokers_order_status_is_dated_when_the_broker_filled_it(
    tmp_path: Path,
) -> None:
    """The stop filled at 15:10; tradebot learns it from the order status at 10:00 the next
    day (its executions no longer listed): the exit is dated 15:10, not 10:00."""
    logs = tmp_path / "logs"
    book = _open_position(logs)
    sold_at = T0 + timedelta(minutes=70)
    watch = _watch(book, Broker(1, stop=_filled_stop(sold_at)), logs)
    done = asyncio.run(watch.check(T0 + timedelta(hours=20), settled=True))
    assert done == [f"{REF}.sl: 1 sold at 0.98 (IB's order status)"]
    assert _exit_fills(logs) == [
        {"ref": f"{REF}.sl", "qty": 1, "price": Decimal("0.98"), "time": sold_at}
    ]
    [trade] = book.trades.read().trades
    assert trade.exit_time == sold_at


def test_a_short_position_is_an_unknown_one_to_close_by_hand_never_an_exit_to_record(
    tmp_path: Path,
) -> None:
    """An exercised long put leaves the account short 100 shares: the operator is told to
    close it by hand (symbol, quantity, conId), entries on SPY wait; no exit advice."""
    logs = tmp_path / "logs"
    short = Holding(symbol="SPY", sec_type="STK", label="SPY", con_id=756733, qty=-100,
                    option=None)  # fmt: skip
    watch = _watch(_book(logs), Broker(1, holdings=[short]), logs)
    asyncio.run(watch.check(T0, settled=True))
    assert watch.refusal() is None
    [text] = watch.unknown.values()
    assert "short position" in text and "-100 SPY" in text and "con_id 756733" in text
    assert "close it by hand" in text and "journal close" not in text
    assert "short position" in watch.ctx.blocked_symbols["SPY"]


@pytest.fixture
def config_dir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "config.toml").write_text("", encoding="utf-8")
    yield tmp_path


def _waiting_for(pid: int) -> str | None:
    """The lock process `pid` waits for (READ or WRITE; a blocked flock is listed with `->` in
    /proc/locks), or None."""
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and fields[fields.index("->") + 4] == str(pid):
            return fields[fields.index("->") + 3]
    return None


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="needs Linux's /proc/locks")
def test_journal_close_waits_for_the_journal_lock_and_decides_on_what_it_then_holds(
    config_dir: Path,
) -> None:
    """The loop holds the journal's lock while it records the stop's fill (from IB's order
    status); `tradebot journal close` started meanwhile waits for the exclusive lock before it
    reads anything (a shared read, then a write, would leave a gap for a second exit), then
    finds nothing open and refuses — one exit, never two."""
    logs = config_dir / "logs"
    book = _open_position(logs)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    with book.journal.hold():
        cli = subprocess.Popen(
            [sys.executable, "-m", "tradebot", "journal", "close", REF, "--price", "0.90",
             "--reason", "stop filled (statement)"],
            cwd=config_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while (waiting := _waiting_for(cli.pid)) is None:
            assert cli.poll() is None, cli.communicate()
            assert time.monotonic() < deadline, "journal close never waited for the lock"
            time.sleep(0.01)
        # The exclusive lock, before reading anything: read, check and write are one step.
        assert waiting == "WRITE"
        watch = _watch(book, Broker(1, stop=_filled_stop(T0 + timedelta(minutes=70))), logs)
        asyncio.run(watch.check(T0 + timedelta(hours=20), settled=True))
    out, err = cli.communicate(timeout=60)
    assert cli.returncode == 4, (out, err)  # refused: nothing open
    assert "nothing open" in err
    assert [f["ref"] for f in _exit_fills(logs)] == [f"{REF}.sl"]


def test_a_reconciliation_after_journal_close_records_nothing_more(config_dir: Path) -> None:
    """The operator recorded the exit first; the loop's reconciliation, deciding on an older
    view of the journal, re-reads it under the lock and records nothing more."""
    logs = config_dir / "logs"
    book = _open_position(logs)
    watch = _watch(book, Broker(1, stop=_filled_stop(T0 + timedelta(minutes=70))), logs)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    done = subprocess.run(
        [sys.executable, "-m", "tradebot", "journal", "close", REF, "--price", "0.98",
         "--reason", "stop filled (statement)", "--time", "2025-07-01T11:10:00-04:00"],
        cwd=config_dir, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # The loop's in-memory book still shows the position open (it has not re-read yet).
    assert book.position(book.orders[REF]).open_qty == 1
    done_by_loop = asyncio.run(watch.check(T0 + timedelta(hours=20), settled=True))
    assert done_by_loop == []
    assert len(_exit_fills(logs)) == 1


def _reconciled(qty: int, n: int) -> Execution:
    return Execution(
        exec_id=f"statement:{n}", order_ref=REF, order_id=0, perm_id=0, contract=CONTRACT,
        side="SLD", qty=qty, price=Decimal("1.50"), time=T0 + timedelta(hours=1),
        commission=Decimal(0),
    )  # fmt: skip


def test_a_recorded_exit_is_final_at_once_partial_or_whole(tmp_path: Path) -> None:
    """An exit recorded from a statement or by the operator (`REF.rN`) has sold what it says:
    it is 'filled' in the journal at once, so it never reads as a sell still working — which
    would stop the flatten, the expiry-day sell and the emulated guards of what is left
    (review of fixes1, finding 1). True for one contract of two, then for the last one."""
    logs = tmp_path / "logs"
    book = _open_position(logs, qty=2)
    entry = book.orders[REF]
    first = book.record_exit(T0, entry, _reconciled(1, 1), source="statement", note="sold 1")
    assert first is not None and first.ref == f"{REF}.r1"
    assert book.orders[f"{REF}.r1"].status == "filled"
    pos = book.position(entry)
    assert pos.open_qty == 1
    assert [e.ref for e in pos.working_exits] == [f"{REF}.sl"]  # the stop, not the record
    book.record_exit(T0, entry, _reconciled(1, 2), source="statement", note="sold the rest")
    assert book.orders[f"{REF}.r2"].status == "filled"
    # A fresh reader of the journal agrees.
    again = _book(logs)
    again.refresh()
    assert {r: again.orders[r].status for r in (f"{REF}.r1", f"{REF}.r2")} == {
        f"{REF}.r1": "filled",
        f"{REF}.r2": "filled",
    }
    assert again.position(again.orders[REF]).open_qty == 0


def test_journal_close_of_the_whole_position_leaves_its_own_exit_filled(
    config_dir: Path,
) -> None:
    """`tradebot journal close` of everything that is open: its exit `.r1` is 'filled' (never
    marked cancelled with the legs it closes), and the trade is written once."""
    logs = config_dir / "logs"
    _open_position(logs)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    done = subprocess.run(
        [sys.executable, "-m", "tradebot", "journal", "close", REF, "--price", "0.50",
         "--reason", "sold in TWS"],
        cwd=config_dir, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    book = _book(logs)
    book.refresh()
    assert book.orders[f"{REF}.r1"].status == "filled"
    assert book.orders[f"{REF}.sl"].status == "cancelled"
    assert len(book.trades.read().trades) == 1
