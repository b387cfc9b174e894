"""The machine's time zone never changes what is journaled.

IB writes execution times without a zone ("20250701-15:00:00", UTC; or "20250701  11:00:00" in
the Gateway's zone) and ib_async 2.1 reads them in the host's local zone unless `TimezoneTWS`
is set (ib_async#230, ib_insync#671; nautilus_trader#2359 runs its Gateways in UTC because of
it): on a host in New York a 20:00:06Z fill was journaled as 01:00:06Z the next day. The
simulator sends the zone-less UTC form, and these tests run the same scenario with the process
in UTC, New York and Tokyo: the journal must say the same times.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.brokers.ibkr.conftest import CLIENT_ID, Rig, filled, host_zone, rig
from tradebot.brokers.ibkr.mapping import parse_ib_time

NY = ZoneInfo("America/New_York")


@pytest.mark.parametrize(
    ("zone", "version"),
    [("America/New_York", 157), ("Asia/Tokyo", 178), ("UTC", 178), ("Asia/Tokyo", 157)],
)
def test_the_same_fill_is_journaled_at_the_same_time_in_every_host_zone(
    tmp_path: Path, zone: str, version: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_HOST_TZ", zone)

    async def body(r: Rig) -> None:
        assert datetime(2025, 7, 1, 15).astimezone().tzinfo is not None
        assert os.environ["TZ"] == zone
        await r.start()
        await r.tick()  # 11:00 New York: the scalp entry
        ref = "SPY-250701-s1"
        r.sim.faults.fill_order(CLIENT_ID, r.client_order_id(ref))
        await filled(r, ref)
        await r.advance(timedelta(minutes=1))
        await r.wake()
        [fill] = [f for f in r.journal() if f["event"] == "fill"]
        assert fill["time"] == "2025-07-01T15:00:00Z"  # the simulator's clock, in UTC
        r.sim.advance(timedelta(hours=5))  # past the close: the flatten sold it before
        await r.wake()
        trade = next(t for t in r.journal("trades") if t["trade_id"] == ref)
        assert trade["entry_time"] == "2025-07-01T15:00:00Z"
        [sell] = [f for f in r.sim.exchange.fills if f.side == "SLD"]
        assert trade["exit_time"] == f"{sell.time:%Y-%m-%dT%H:%M:%SZ}"
        assert trade["session"] == "2025-07-01"
        exit_time = datetime.fromisoformat(trade["exit_time"].replace("Z", "+00:00"))
        assert exit_time.astimezone(NY).date() == datetime(2025, 7, 1).date()
        assert exit_time <= datetime(2025, 7, 1, 20, 0, tzinfo=UTC)
        assert Decimal(trade["commission"]) == 2

    rig(body, tmp_path, version=version, symbols=("SPY",))


@pytest.mark.parametrize("zone", ["America/New_York", "Asia/Tokyo", "UTC"])
def test_ib_time_strings_are_read_the_same_in_every_host_zone(zone: str) -> None:
    with host_zone(zone):
        assert parse_ib_time("20261120-20:00:06", NY) == datetime(
            2026, 11, 20, 20, 0, 6, tzinfo=UTC
        )
        assert parse_ib_time("20261120  15:00:06", NY) == datetime(
            2026, 11, 20, 20, 0, 6, tzinfo=UTC
        )
        assert parse_ib_time("20261120 15:00:06 US/Eastern", ZoneInfo("UTC")) == datetime(
            2026, 11, 20, 20, 0, 6, tzinfo=UTC
        )
        assert parse_ib_time("1795204806", NY) == datetime(2026, 11, 20, 20, 0, 6, tzinfo=UTC)
