"""What the IBKR adapter needs from the configuration, in one immutable object."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time
from typing import Literal
from zoneinfo import ZoneInfo

from tradebot.brokers.ibkr.flex_settings import FlexSettings
from tradebot.config import Settings

# The simulator's accounts (`tradebot gateway sim`, default DUSIM0001). IB's own account ids
# are letters then digits only (U1234567, DU1234567): none starts with DUSIM.
SIMULATOR_ACCOUNT_PREFIX = "DUSIM"
# More than this between the gateway's clock and ours pauses entries (quotes are timed by the
# gateway; a quote cannot be judged fresh against a clock that is this far off).
MAX_CLOCK_SKEW_S = 10.0


def is_paper_account(account: str) -> bool:
    """IB paper accounts start with D (DU…, DF…); live ones do not (U…, F…, I…)."""
    return account.upper().startswith("D")


def is_simulator_account(account: str) -> bool:
    return account.upper().startswith(SIMULATOR_ACCOUNT_PREFIX)


@dataclass(frozen=True)
class RestartWindow:
    """A daily window (local times in `zone`, may cross midnight) when the gateway restarts."""

    start: time
    end: time
    zone: ZoneInfo

    @classmethod
    def parse(cls, text: str, zone: ZoneInfo) -> RestartWindow:
        """'23:45-00:15' → the window; ValueError when unreadable."""
        try:
            first, second = (part.strip() for part in text.split("-"))
            start = datetime.strptime(first, "%H:%M").time()
            end = datetime.strptime(second, "%H:%M").time()
        except ValueError:
            raise ValueError(f"{text!r} is not a window like '23:45-00:15'") from None
        if start == end:
            raise ValueError(f"{text!r} is an empty window")
        return cls(start, end, zone)

    def contains(self, moment: datetime) -> bool:
        local = moment.astimezone(self.zone).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end  # crosses midnight

    def describe(self) -> str:
        return f"{self.start:%H:%M}–{self.end:%H:%M} {self.zone.key}"


@dataclass(frozen=True)
class IbkrSettings:
    host: str
    port: int
    client_id: int
    account: str | None
    timeout_s: float
    market_data_type: Literal["live", "delayed"]
    clock: Literal["local", "gateway"]
    zone: ZoneInfo
    restart_window: RestartWindow | None
    trading_mode: str
    calendar: str
    readonly: bool = False  # `gateway test`: look, never touch (no order lists, no checks)
    backoff_initial_s: float = 1.0
    backoff_cap_s: float = 60.0
    quote_wait_s: float = 2.0  # how long a new subscription may take to show a quote
    market_data_lines: int = 100  # IB's default per login (more with quote booster packs)
    flex: FlexSettings | None = None  # the Flex query read by the reconciliation (a secret)

    @property
    def max_lines(self) -> int:
        """Quote lines tradebot keeps open: the account's lines less 10 for TWS and others."""
        return max(5, self.market_data_lines - 10)

    @classmethod
    def from_config(cls, settings: Settings, **overrides: object) -> IbkrSettings:
        b = settings.broker
        zone = ZoneInfo(b.timezone)
        window = RestartWindow.parse(b.restart_window, zone) if b.restart_window else None
        values: dict[str, object] = {
            "host": b.host,
            "port": b.port,
            "client_id": b.client_id,
            "account": b.account,
            "timeout_s": float(b.timeout_s),
            "market_data_type": b.market_data_type,
            "clock": b.clock,
            "zone": zone,
            "restart_window": window,
            "market_data_lines": b.market_data_lines,
            "flex": None
            if b.flex_token is None or b.flex_query_id is None
            else FlexSettings(b.flex_token.get_secret_value(), b.flex_query_id, float(b.timeout_s)),
            "trading_mode": settings.trading.mode,
            "calendar": settings.schedule.calendar,
        }
        values.update(overrides)
        return cls(**values)  # type: ignore[arg-type]

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"
