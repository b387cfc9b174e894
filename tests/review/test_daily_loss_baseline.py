"""The daily-loss guard measures today's loss from the equity the broker reported at the
session's first look (spec §5: start-of-day equity recorded once per session)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

from tests.engine.harness import config
from tests.review.helpers import HOLD, prepare, run_loop, sim
from tradebot.books.risk_report import build_risk_report
from tradebot.brokers.base import AccountSnapshot
from tradebot.core.trades import session_of

WHALE_ONLY = (
    "[strategies.scalp]\nenabled = false\n"
    "[strategies.whale]\nrange_days = 2\nvolume_multiple = 0.5\ndebounce_days = 0\n"
)
DAY2 = date(2025, 7, 2)


def test_start_of_day_equity_is_the_brokers_equity_at_the_first_look(tmp_path: Path) -> None:
    loaded = config(tmp_path, HOLD + WHALE_ONLY)
    ctx, until = prepare(loaded, "2025-07-01", "2025-07-02T10:00")
    broker = sim(ctx)
    account = broker.account
    first_look: dict[date, Decimal] = {}

    async def remembered() -> AccountSnapshot:
        snapshot = await account()
        now = broker.now()
        if now.hour >= 13:  # in the session (09:30 New York is 13:30 UTC in July)
            first_look.setdefault(session_of(now), snapshot.net_liquidation)
        return snapshot

    broker.account = remembered  # type: ignore[method-assign]
    run_loop(ctx, until)
    at_open = first_look[DAY2]
    # A whale position held overnight: the account at the open is not paper_equity + P&L.
    assert at_open != loaded.settings.risk.paper_equity, "the scenario needs a moved account"
    report = build_risk_report(loaded, ctx.clock.now(), equity=at_open)
    assert report.daily_loss.start_equity == at_open
