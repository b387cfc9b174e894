"""The operator's controls against a running loop: halt (with and without --flatten), and what
`tradebot status` says after the loop ended."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.cli.conftest import invoke
from tests.engine.harness import config, entry_intents, events
from tests.review.helpers import HOLD, prepare, run_loop, sim
from tradebot.books.halt import KillSwitch
from tradebot.brokers.base import AccountSnapshot, BrokerError, OptionChainInfo
from tradebot.engine.loop import TradingLoop
from tradebot.engine.status_view import loop_report


def test_a_halt_written_while_the_loop_is_busy_is_noticed_within_a_second(
    tmp_path: Path,
) -> None:
    loaded = config(tmp_path)
    # Real-time pace (1 simulated second per second), so the supervisor runs as in production.
    ctx, _ = prepare(loaded, "2025-07-01T09:31", speed=1.0)
    broker = sim(ctx)
    account = broker.account
    written: list[float] = []

    async def slow_account() -> AccountSnapshot:
        if not written:  # the operator halts while the loop waits on a slow broker reply
            KillSwitch(loaded.state_dir, loaded.logs_dir).halt(
                broker.now(), operator="ops", reason="stop now"
            )
            written.append(time.monotonic())
            await asyncio.sleep(0.6)
        return await account()

    broker.account = slow_account  # type: ignore[method-assign]

    async def scenario() -> float | None:
        loop = TradingLoop(ctx)
        task = asyncio.create_task(loop.run())
        try:
            while not written:
                await asyncio.sleep(0.01)
            while time.monotonic() - written[0] < 3:
                if any(e["event"] == "halt_noticed" for e in events(loaded)):
                    return time.monotonic() - written[0]
                await asyncio.sleep(0.02)
            return None
        finally:
            loop.stop.set()
            await task

    took = asyncio.run(scenario())
    # The write happened 0.6 s before the wake ended; one more second is generous.
    assert took is not None and took < 1.6, "the halt was not noticed within 3 s"


def test_no_entry_is_sent_after_the_halt_is_persisted(tmp_path: Path) -> None:
    loaded = config(tmp_path)
    ctx, until = prepare(loaded, "2025-07-01", "2025-07-01T11:00")
    broker = sim(ctx)
    chain = broker.option_chain
    at_halt: list[int] = []

    async def halted_meanwhile(symbol: str) -> OptionChainInfo:
        if not at_halt:  # `tradebot halt` returns while the tick looks up its first contract
            KillSwitch(loaded.state_dir, loaded.logs_dir).halt(
                broker.now(), operator="ops", reason="stop now"
            )
            at_halt.append(len(entry_intents(loaded)))
        return await chain(symbol)

    broker.option_chain = halted_meanwhile  # type: ignore[method-assign]
    run_loop(ctx, until)
    assert at_halt, "the scenario needs an entry attempt"
    assert len(entry_intents(loaded)) == at_halt[0]


def test_halt_flatten_works_when_the_halt_file_is_damaged(write_config) -> None:  # type: ignore[no-untyped-def]
    write_config("")
    state = Path("logs/state")
    state.mkdir(parents=True)
    (state / "halt.json").write_text('{"v": 1, "halted": "yes"', encoding="utf-8")
    result = invoke(["halt", "--flatten", "--reason", "get me out"])
    assert result.exit_code == 0, result.stderr
    halt = json.loads((state / "halt.json").read_text(encoding="utf-8"))
    assert halt["halted"] is True and halt["flatten"] is True


def test_status_reports_a_loop_that_crashed(tmp_path: Path) -> None:
    loaded = config(tmp_path, HOLD)
    ctx, until = prepare(loaded, "2025-07-01", "2025-07-02")
    broker = sim(ctx)
    executions = broker.executions

    async def fails_at_start(since):  # type: ignore[no-untyped-def]
        # A step failing mid-session no longer ends the loop; the start-up reconciliation
        # failing still does (no entry may come before it): that is the crash to report.
        raise BrokerError("request timed out (executions)")

    broker.executions = fails_at_start  # type: ignore[method-assign]
    with pytest.raises(BrokerError):
        run_loop(ctx, until)
    assert executions is not None
    report = loop_report(loaded, datetime.now(UTC))
    assert report["last_error"]  # the crash is known...
    assert report["state"] != "not running" and report["stale"]  # ...and exit 4, not 0
