"""One bad step never ends the loop, and a failing step backs off (issue 18, item 1).

The audit's loop exited 1 after 45 failed steps in 44 µs of simulated time: the backoff
`RETRY_FIRST * 2 ** (failures - 1)` overflowed `timedelta` before its cap, and a failed sync left
`next_sync` in the past, so every next wake was "now". These tests drive the real loop on the
simulated clock (fast) with the real simulated broker, whose executions request keeps failing
(as IB's reqExecutions does when the gateway is wedged).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.engine.harness import config, events, orders
from tests.market_time_text import utc_shown
from tests.review.helpers import HOLD, prepare, sim, trading
from tradebot.brokers.base import BrokerError, Execution
from tradebot.engine.loop import RETRY_MAX, TradingLoop
from tradebot.engine.status_view import loop_report

SOAK = 10_000


def _failing_executions(ctx: Any, *, first: int = 1, count: int = SOAK) -> dict[str, Any]:
    """Make the broker's executions request fail for `count` calls, from call `first` on."""
    broker = sim(ctx)
    executions = broker.executions
    seen: dict[str, Any] = {"calls": 0, "failed": 0, "heartbeat": None}

    async def wedged(since: datetime) -> list[Execution]:
        seen["calls"] += 1
        if seen["calls"] >= first and seen["failed"] < count:
            seen["failed"] += 1
            if seen["failed"] == count // 2 + 1:  # half way: what does `tradebot status` see?
                seen["heartbeat"] = loop_report(ctx.loaded, datetime.now(UTC))
            raise BrokerError("request timed out (executions)")
        return await executions(since)

    broker.executions = wedged  # type: ignore[method-assign]
    return seen


def test_ten_thousand_failed_steps_keep_the_loop_alive_at_the_capped_interval(
    tmp_path: Path,
) -> None:
    loaded = config(tmp_path, base=trading("", symbols='"SPY"'))
    ctx, until = prepare(loaded, "2025-07-01T09:29", "2025-07-08T10:00")
    seen = _failing_executions(ctx, first=2)  # the reconcile at start succeeds
    loop = TradingLoop(ctx, until=until)
    wakes: list[tuple[datetime, int]] = []
    wake = loop.wake

    async def timed(now: datetime, *, force_tick: bool = False) -> None:
        await wake(now, force_tick=force_tick)
        wakes.append((now, loop._failures))

    loop.wake = timed  # type: ignore[method-assign]
    summary = asyncio.run(loop.run())
    assert seen["failed"] == SOAK
    assert summary.stopped_by == "until"  # alive to the end, not exit 1
    failing = [at for at, failures in wakes if failures >= 5]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(failing)]
    assert len(gaps) > SOAK - 10
    assert max(gaps) <= RETRY_MAX.total_seconds()
    assert min(gaps) >= 1.0, "a failing step retried at once: the backoff did not delay"
    assert statistics.median(gaps) == RETRY_MAX.total_seconds()
    # The failures were said (not 10,000 times) and the loop recovered when the broker did.
    failed = [e for e in events(loaded) if e["event"] == "broker_error"]
    assert 3 <= len(failed) <= 1 + SOAK // 50 + 3
    assert "executions" in failed[-1]["message"]
    assert loop._failures == 0
    # Half way through, `tradebot status` showed the failing step and how often it failed.
    report = seen["heartbeat"]
    assert report is not None
    assert "sync" in report["last_error"] and "timed out" in report["last_error"]
    assert f"{SOAK // 2}×" in report["last_error"]
    # Since when, as the operator reads it: New York time with its zone (status, events).
    assert re.search(r"× since 2025-07-01 \d\d:\d\d EDT: ", report["last_error"])
    [recovered] = [e["message"] for e in events(loaded) if e["event"] == "step_recovered"]
    assert re.search(r"failure\(s\) since 2025-07-01 \d\d:\d\d EDT$", recovered)
    assert not utc_shown([report["last_error"], recovered])
    assert "FAILING" in report["status"]


def test_emulated_protective_legs_are_watched_while_the_sync_keeps_failing(
    tmp_path: Path,
) -> None:
    """A position guarded only by the loop (the broker refused the bracket) is still sold at
    its stop or take-profit while every sync fails; the fills are adopted once it recovers."""
    loaded = config(
        tmp_path,
        "[risk]\ntake_profit_pct = 4\nstop_loss_pct = 4\n",
        base=trading("interval_s = 60", symbols='"SPY"').replace(
            "seed = 7", "seed = 7\nrefuse_brackets = true"
        ),
    )
    ctx, until = prepare(loaded, "2025-07-01T09:29", "2025-07-01T11:00")
    broker = sim(ctx)
    executions = broker.executions
    state: dict[str, Any] = {"failing": False, "failed": 0, "sold_while_failing": False}

    async def wedged(since: datetime) -> list[Execution]:
        # From the first filled entry on, the next 300 syncs fail.
        if not state["failing"] and state["failed"] == 0:
            found = await executions(since)
            if any(x.side == "BOT" for x in found):
                state["failing"] = True
            return found
        if state["failing"] and state["failed"] < 300:
            state["failed"] += 1
            if any(o.action == "SELL" and o.filled for o in broker.exchange.orders.values()):
                state["sold_while_failing"] = True
            raise BrokerError("request timed out (executions)")
        state["failing"] = False
        return await executions(since)

    broker.executions = wedged  # type: ignore[method-assign]
    summary = asyncio.run(TradingLoop(ctx, until=until).run())
    assert summary.stopped_by == "until"
    assert state["failed"] == 300, "the scenario needs a position open while the sync fails"
    assert state["sold_while_failing"], "the emulated legs were not watched during the failures"
    fired = [e for e in events(loaded) if e["event"] == "oco_fired"]
    assert fired
    exit_fills = [r for r in orders(loaded) if r["event"] == "fill" and r["role"] != "entry"]
    assert exit_fills  # adopted after the broker recovered


def test_the_backoff_is_capped_before_it_is_computed() -> None:
    from tradebot.engine.loop import retry_delay

    assert retry_delay(1) == timedelta(seconds=5)
    assert retry_delay(2) == timedelta(seconds=10)
    for failures in (5, 45, 46, 1000, 10**9):
        assert retry_delay(failures) == RETRY_MAX


def test_a_sync_that_fails_after_the_order_list_still_adopts_the_fill_next_time(
    tmp_path: Path,
) -> None:
    """The order list answered (the simulated broker notes "reported"), then the executions
    request failed: the next sync must be a full one, not skipped as "nothing changed since the
    last report" — else the fill stays unread, IB holds a position the journal does not, and
    the filled entry is "expired" again and again (found by the 10,000-failure soak)."""
    loaded = config(tmp_path, base=trading("", symbols='"SPY"'))
    ctx, until = prepare(loaded, "2025-07-01T09:29", "2025-07-01T16:05")
    broker = sim(ctx)
    executions = broker.executions
    state = {"failed": 0}

    async def once(since: datetime) -> list[Execution]:
        found = await executions(since)
        if state["failed"] == 0 and any(x.side == "BOT" for x in found):
            state["failed"] += 1  # the first time a fill is there to read, the request fails
            raise BrokerError("request timed out (executions)")
        return found

    broker.executions = once  # type: ignore[method-assign]
    summary = asyncio.run(TradingLoop(ctx, until=until).run())
    assert summary.stopped_by == "until"
    assert state["failed"] == 1, "the scenario needs a fill to be there when the request fails"
    journaled = {r["exec_id"] for r in orders(loaded) if r["event"] == "fill"}
    at_broker = {f.exec_id for f in broker.exchange.fills if f.kind != "expiry"}
    assert at_broker and at_broker <= journaled
    names = {e["event"] for e in events(loaded)}
    assert "position_mismatch" not in names
    cancels = [e for e in events(loaded) if e["event"] == "order_cancel"]
    assert len(cancels) == len({e.get("ref", e["message"]) for e in cancels})


def test_a_failed_sync_after_a_held_cancel_never_skips_the_flatten(tmp_path: Path) -> None:
    """The sync that follows the cancel of a held order (IB's Inactive) is inside the
    risk-reducing steps: when it fails (the broker times out, a journal line is damaged), the
    halt, the flatten and the expiry sells after it in the same wake must still run. Before,
    its exception ended the steps, at every wake the cancel was re-sent (review of fixes1)."""
    loaded = config(tmp_path, HOLD, base=trading("", symbols='"SPY"'))
    ctx, until = prepare(loaded, "2025-07-01", "2025-07-02")
    loop = TradingLoop(ctx, until=until)
    sync = ctx.book.sync
    state = {"fail_next": False, "failed": 0}

    async def held_guards(now: datetime) -> list[str]:
        # From the flatten time on, a held order is cancelled at every wake, and the sync
        # that follows it fails.
        if now >= datetime(2025, 7, 1, 19, 50, tzinfo=UTC):
            state["fail_next"] = True
            return ["a held order cancelled"]
        return []

    async def failing_sync(broker: Any, now: datetime) -> Any:
        if state["fail_next"]:
            state["fail_next"] = False
            state["failed"] += 1
            raise BrokerError("request timed out (executions)")
        return await sync(broker, now)

    loop.exits.held_guards = held_guards  # type: ignore[method-assign]
    ctx.book.sync = failing_sync  # type: ignore[method-assign]
    asyncio.run(loop.run())
    assert state["failed"] > 0, "the scenario needs the held-cancel sync to fail"
    sells = [r for r in orders(loaded) if r["event"] == "intent" and r["role"] == "exit"]
    assert sells, "the flatten's sells were never sent"
    assert any("held order" in e["message"] for e in events(loaded) if e["event"] == "broker_error")
