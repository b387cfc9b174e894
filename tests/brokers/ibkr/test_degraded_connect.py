"""A Gateway that never answers reqExecutions: connect degraded, never "unreachable".

Some Gateway builds never answer `reqExecutions` at connect (ib-api-reloaded/ib_async#54, #82);
ib_async's own start-up sync with `raiseSyncErrors=True` then fails the connection, and nothing
manages the stops or the flatten. The simulator's fault `leave_executions_unanswered` keeps that
habit; tradebot asks its start-up requests itself, each bounded by broker.timeout_s.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from tests.brokers.ibkr.conftest import (
    Rig,
    ThreadedSim,
    filled,
    make_rig,
    open_position,
    rig,
)
from tests.brokers.ibkr.test_gateway_test_cmd import _config, _json, _same_clock
from tests.cli.conftest import invoke

DAY = datetime(2025, 7, 3, 16, 30, tzinfo=UTC)  # 12:30 New York; the 13:00 close, weeklies expire
CLOSE = datetime(2025, 7, 3, 17, 0, tzinfo=UTC)


@pytest.mark.parametrize("version", [157, 178])
def test_run_connects_degraded_and_still_closes_an_expiring_position(
    tmp_path: Path, version: int
) -> None:
    async def body(r: Rig) -> None:
        await r.start()
        ref = await open_position(r, "SPY", expiry=date(2025, 7, 3))
        await filled(r, ref)
        await r.ctx.book.sync(r.broker, r.now)
        await r.stop()
        r.sim.faults.leave_executions_unanswered()
        again = make_rig(r.sim, r.loaded)
        try:
            await again.start()  # connects: the executions request times out, noted by name
            assert again.broker.is_connected()
            assert list(again.broker.conn.missing) == ["the executions"]
            paused = again.broker.entries_paused(again.now)
            assert paused is not None and paused.startswith("connected degraded")
            assert "did not answer the executions" in paused
            await again.tick()
            [event] = again.events("entries_paused")
            assert "connected degraded" in event["message"]
            assert [
                o.order_ref for o in again.venue_orders() if o.order_ref.startswith("QQQ")
            ] == []
            # Exits keep working: the expiring position is flattened at the flatten time.
            again.sim.set_time(CLOSE - timedelta(minutes=10))
            await again.wake()
            assert not again.sim.exchange.positions
            # The Gateway answers again: the next account read asks again, the loop reconciles
            # and entries may open.
            again.sim.faults.leave_executions_unanswered(False)
            await again.advance(timedelta(minutes=2))
            generation = again.broker.generation
            await again.broker.account()
            assert again.broker.conn.missing == {}
            assert again.broker.generation > generation
            assert again.broker.entries_paused(again.now) is None
        finally:
            await again.stop()

    rig(body, tmp_path, version=version, start=DAY, symbols=("QQQ",), limit_s=40)


def test_gateway_test_says_degraded_and_exits_4(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim = ThreadedSim()
    try:
        _config(tmp_path, sim.port)
        _same_clock(monkeypatch, sim)
        sim.call(sim.sim.faults.leave_executions_unanswered)
        result = invoke(["gateway", "test", "--json"])
        assert result.exit_code == 4, result.stdout
        doc = _json(result.stdout)
        assert doc["status"] == "degraded" and doc["error"] is None
        [problem] = doc["problems"]
        assert problem.startswith("the gateway did not answer the executions")
        assert "connect degraded" in problem and "ib_async#54" in problem
        assert doc["net_liquidation"] == "10000.00"  # the rest is still reported
    finally:
        sim.stop()
