"""The loop's clocks: simulated (instant or scaled) and the wall clock."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradebot.engine.clock import SimClock, WallClock

if TYPE_CHECKING:
    from pathlib import Path

START = datetime(2025, 7, 1, 13, 30, tzinfo=UTC)
GUARD_S = 10.0  # a sleep that does not return by then has really slept: the test fails, not hangs


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    async def guarded() -> Any:
        return await asyncio.wait_for(coro, timeout=GUARD_S)

    return asyncio.run(guarded())


def test_start_is_kept_as_utc() -> None:
    ny = START.astimezone(ZoneInfo("America/New_York"))
    clock = SimClock(ny)
    assert clock.now() == START
    assert clock.now().utcoffset() == timedelta(0)
    assert clock.simulated is True and WallClock.simulated is False


def test_a_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SimClock(datetime(2025, 7, 1, 9, 30))


@pytest.mark.parametrize("speed", [0.0, -1.0, -math.inf])
def test_a_speed_that_is_not_positive_is_refused(speed: float) -> None:
    with pytest.raises(ValueError, match="positive"):
        SimClock(START, speed)


def test_a_nan_speed_is_refused() -> None:
    with pytest.raises(ValueError):
        SimClock(START, math.nan)


def test_max_speed_jumps_straight_to_the_time_asked() -> None:
    clock = SimClock(START)
    year_later = START + timedelta(days=365)
    _run(clock.sleep_until(year_later))  # would never return within the guard if it slept
    assert clock.now() == year_later


def test_max_speed_still_yields_to_other_tasks() -> None:
    clock = SimClock(START)
    order: list[str] = []

    async def other() -> None:
        order.append("other ran")

    async def main() -> None:
        task = asyncio.ensure_future(other())
        await clock.sleep_until(START + timedelta(minutes=1))
        order.append("sleep returned")
        await task

    _run(main())
    assert order == ["other ran", "sleep returned"]


def test_a_finite_speed_sleeps_the_scaled_real_time() -> None:
    speed = 600.0  # ten simulated minutes per real second
    clock = SimClock(START, speed)
    target = START + timedelta(seconds=120)  # 0.2 s of real time
    began = time.monotonic()
    _run(clock.sleep_until(target))
    elapsed = time.monotonic() - began
    assert clock.now() == target
    assert elapsed >= 0.1  # it did wait (half the expected time, to stay tolerant)
    assert elapsed < GUARD_S


def test_sleeping_until_the_past_or_now_changes_nothing() -> None:
    clock = SimClock(START, 1.0)  # at real time, a real sleep would trip the guard
    _run(clock.sleep_until(START - timedelta(hours=1)))
    assert clock.now() == START
    _run(clock.sleep_until(START))
    assert clock.now() == START


def test_set_moves_forward_never_backwards() -> None:
    clock = SimClock(START)
    later = START + timedelta(minutes=5)
    clock.set(later)
    assert clock.now() == later
    clock.set(later)  # standing still is fine
    with pytest.raises(ValueError, match="never goes backwards"):
        clock.set(later - timedelta(microseconds=1))
    assert clock.now() == later


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(-3600, 86_400), min_size=1, max_size=15))
def test_one_sleeper_never_sees_time_go_backwards(offsets: list[int]) -> None:
    clock = SimClock(START)

    async def main() -> list[datetime]:
        seen = [clock.now()]
        for seconds in offsets:
            await clock.sleep_until(START + timedelta(seconds=seconds))
            seen.append(clock.now())
        return seen

    seen = _run(main())
    assert seen == sorted(seen)
    assert seen[-1] == max(START, *(START + timedelta(seconds=s) for s in offsets))


def test_two_sleepers_never_move_the_clock_back() -> None:
    clock = SimClock(START)
    later, sooner = START + timedelta(minutes=10), START + timedelta(minutes=1)

    async def main() -> None:
        await asyncio.gather(clock.sleep_until(later), clock.sleep_until(sooner))

    _run(main())
    assert clock.now() == later


def test_the_wall_clock_is_utc_now() -> None:
    before = datetime.now(UTC)
    now = WallClock().now()
    after = datetime.now(UTC)
    assert now.utcoffset() == timedelta(0)
    assert before <= now <= after


def test_the_wall_clock_sleeps_until_the_time_asked() -> None:
    clock = WallClock()
    target = clock.now() + timedelta(milliseconds=100)
    _run(clock.sleep_until(target))
    # asyncio may wake a hair early (timer resolution); never a whole tenth of a second.
    assert clock.now() >= target - timedelta(milliseconds=50)


def test_the_wall_clock_does_not_sleep_for_the_past() -> None:
    clock = WallClock()
    began = time.monotonic()
    _run(clock.sleep_until(clock.now() - timedelta(days=1)))
    assert time.monotonic() - began < GUARD_S


# -- the simulated clock as the loop sleeps on it ------------------------------------------------


def test_a_stop_request_ends_a_scaled_simulated_sleep(tmp_path: Path) -> None:
    from decimal import Decimal

    from tradebot.brokers.sim import SimBroker
    from tradebot.config import load_config
    from tradebot.engine.context import build_context
    from tradebot.engine.loop import TradingLoop
    from tradebot.market import make_market

    loaded = load_config(tmp_path / "config.toml")
    clock = SimClock(datetime(2025, 7, 1, 11, 0, tzinfo=UTC), 1.0)  # 2.5 h before the open
    broker = SimBroker(
        make_market(seed=1), clock.now, loaded.state_dir, starting_cash=Decimal(10000)
    )
    ctx = build_context(loaded, broker, clock, lambda event, message: None)

    async def main() -> str:
        stop = asyncio.Event()
        loop = TradingLoop(ctx, until=datetime(2025, 7, 2, 4, 0, tzinfo=UTC), stop=stop)
        task = asyncio.ensure_future(loop.run())
        while loop.next_sync is None:  # the first wake is under way; the sleep follows it
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        stop.set()  # what the SIGTERM handler does
        summary = await asyncio.wait_for(task, timeout=2.0)
        return summary.stopped_by

    assert asyncio.run(main()) == "signal"
