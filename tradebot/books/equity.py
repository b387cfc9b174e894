"""Where equity figures come from, for commands that run beside (or without) the loop.

* Simulated broker: equity is fully determined by the journal —
  `risk.paper_equity + P&L of every closed sim trade` — and the start-of-day equity is the same
  sum over trades that closed before today's session.
* IBKR: the loop records the broker's equity every tick (`state/equity.json`) and the start-of-day
  equity once per session. A reading older than `STALE_AFTER` is treated as unknown, and unknown
  equity means no new entries (fail safe).

A start-of-day figure recorded by the loop always wins over a derived one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from tradebot.books.state_store import StateStore
from tradebot.config import LoadedConfig
from tradebot.core.market_time import market_clock, market_datetime
from tradebot.core.metrics import TradeSeries, from_micros

STALE_AFTER = timedelta(minutes=15)
CLOCK_SKEW = timedelta(minutes=1)


@dataclass(frozen=True)
class EquityView:
    current: Decimal | None
    source: str
    start_of_day: Decimal | None
    start_source: str
    warnings: tuple[str, ...] = ()

    def as_record(self) -> dict[str, Decimal | str | None]:
        return {
            "current": self.current,
            "source": self.source,
            "start_of_day": self.start_of_day,
            "start_source": self.start_source,
        }


def account_modes(loaded: LoadedConfig) -> set[str]:
    """Trade modes whose P&L moves this configuration's account."""
    s = loaded.settings
    if s.broker.kind == "sim":
        return {"sim"}
    return {"live"} if s.trading.mode == "live" else {"paper"}


def sim_equity(paper_equity: Decimal, trades: TradeSeries, before: date | None = None) -> Decimal:
    """paper_equity + P&L of sim trades (only those whose session is before `before`, if given)."""
    cutoff = None if before is None else before.toordinal()
    return paper_equity + from_micros(trades.sum_pnl(("sim",), before_session=cutoff))


def equity_view(
    loaded: LoadedConfig, trades: TradeSeries, state: StateStore, now: datetime, session: date
) -> EquityView:
    """Current and start-of-day equity as best known outside the broker connection."""
    settings = loaded.settings
    recorded_start = state.start_of_day_equity(session)
    if settings.broker.kind == "sim":
        current: Decimal | None = sim_equity(settings.risk.paper_equity, trades)
        source = "sim: paper_equity + journal P&L"
        derived_start = sim_equity(settings.risk.paper_equity, trades, before=session)
        if recorded_start is not None:
            return EquityView(current, source, recorded_start.amount, "recorded at session start")
        return EquityView(current, source, derived_start, "sim: derived from the journal")
    warnings: list[str] = []
    snapshot = state.equity_snapshot()
    current = None
    source = "unknown (the loop has not recorded broker equity)"
    if snapshot is not None:
        age = now - snapshot.ts
        if age < -CLOCK_SKEW:
            source = f"dated in the future ({snapshot.source} at {market_datetime(snapshot.ts)})"
            warnings.append(
                "the last broker equity is dated after now (clock trouble?); treated as unknown"
            )
        elif age <= STALE_AFTER:
            current, source = (
                snapshot.amount,
                f"{snapshot.source} at {market_clock(snapshot.ts, seconds=True)}",
            )
        else:
            source = f"stale ({snapshot.source} from {market_datetime(snapshot.ts)})"
            warnings.append(
                f"the last broker equity is {int(age.total_seconds() // 60)} minutes old; "
                "treated as unknown"
            )
    if recorded_start is None:
        return EquityView(current, source, None, "not recorded for this session", tuple(warnings))
    return EquityView(
        current, source, recorded_start.amount, "recorded at session start", tuple(warnings)
    )
