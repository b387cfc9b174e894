"""The account statement (IB's Flex query) that PositionWatch waits 2 s for and then leaves to the
background is used only by the check that asked for it, and only while fresh (review of fixes1,
finding 5); a download still running is cancelled when the loop stops."""

from __future__ import annotations

import asyncio
from datetime import date
from types import SimpleNamespace
from typing import Any

from tradebot.brokers.base import Statement
from tradebot.engine.positions import PositionWatch


class SlowFlex:
    """A broker whose account statement takes `delay` s; each download is a new statement."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.downloads = 0

    async def statement(self, since: date) -> Statement | None:
        self.downloads += 1
        n = self.downloads
        await asyncio.sleep(self.delay)
        return Statement(source=f"download {n}", trades=(), events=())


def test_a_statement_left_in_the_background_is_not_reused_days_later() -> None:
    """Monday: a difference; the statement is slow, left to the background; the difference is
    explained by the order status before step 2 runs again, so nobody reads that statement.
    Thursday: a new difference (a sale while tradebot was away). The check must ask IB for a
    statement that can hold Thursday's sale — not hand back Monday's, which cannot, and then
    tell the operator that 'no account statement explains it'."""

    async def body() -> None:
        broker = SlowFlex(0.2)
        watch = PositionWatch(ctx=SimpleNamespace(broker=broker))  # type: ignore[arg-type]
        watch.statement_wait_s = 0.01
        monday = date(2025, 6, 30)
        assert await watch._statement_for(monday) is None  # on its way
        await asyncio.sleep(0.3)  # it arrives; no check asks for it (explained otherwise)
        thursday = date(2025, 7, 2)
        broker.delay = 0.0
        got: Any = await watch._statement_for(thursday)
        assert got is not None
        assert got.source == "download 2", (
            f"Thursday's check was answered with {got.source!r}, downloaded on Monday"
        )

    asyncio.run(body())


def test_a_download_still_running_is_cancelled_when_the_watch_closes() -> None:
    """The loop stops while the statement downloads: the task is cancelled, so asyncio.run's
    shutdown does not wait for the download's thread."""

    async def body() -> None:
        watch = PositionWatch(ctx=SimpleNamespace(broker=SlowFlex(30)))  # type: ignore[arg-type]
        watch.statement_wait_s = 0.01
        assert await watch._statement_for(date(2025, 6, 30)) is None
        task = watch._statement
        assert task is not None and not task.done()
        watch.close()
        await asyncio.sleep(0)
        assert task.cancelled()

    asyncio.run(body())
