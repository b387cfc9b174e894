"""`[trading]`, `[risk]`, `[options]` and `[schedule]`: what is traded, how big, when."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    Field,
    field_validator,
    model_validator,
)

from tradebot.config.fields import (
    MAX_EQUITY,
    Int,
    Minutes,
    Num,
    Percent,
    PositivePercent,
    Section,
    Text,
)

FLATTEN_FLOOR_MINUTES = 3


class TradingConfig(Section):
    mode: Literal["dry_run", "paper", "live"] = "dry_run"
    symbols: list[
        Annotated[str, Field(min_length=1, max_length=10, pattern=r"^[A-Z][A-Z0-9.]*$")]
    ] = Field(default_factory=lambda: ["SPY", "QQQ"], min_length=1, max_length=100)
    interval_s: Int = Field(180, ge=1, le=86_400)
    max_concurrent_symbols: Int = Field(2, ge=1, le=50)
    # At least FLATTEN_FLOOR_MINUTES: see `_flatten_floor`.
    flatten_minutes_before_close: Annotated[Int, Field(le=390)] = 10

    @field_validator("flatten_minutes_before_close")
    @classmethod
    def _flatten_floor(cls, value: int) -> int:
        # An option still held at the close of its expiry day is exercised (100 shares a
        # contract) or liquidated by IB. The closing sell needs the legs' cancels confirmed, a
        # sell, a marketable-limit retry a minute later if IB refuses it, and room for a Gateway
        # reconnect (backoff 1+2+4+8+16 s): three minutes is the least that allows all of it.
        if value < FLATTEN_FLOOR_MINUTES:
            raise ValueError(
                f"must be at least {FLATTEN_FLOOR_MINUTES} (minutes): the closing sell of an "
                "option expiring that day, its retry and a Gateway reconnect need that long "
                "before the close (an option still held at its expiry close is exercised); "
                "see docs/ibkr.md"
            )
        return value

    @field_validator("symbols")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        repeated = sorted({s for s in value if value.count(s) > 1})
        if repeated:
            raise ValueError(f"lists {', '.join(repeated)} more than once")
        return value


class RiskConfig(Section):
    max_risk_pct: PositivePercent = Decimal("1.0")
    stop_loss_pct: PositivePercent = Decimal(50)
    take_profit_pct: Annotated[Num, Field(gt=0, le=10_000)] = Decimal(100)
    max_daily_loss_pct: PositivePercent = Decimal(5)
    max_spread_pct: PositivePercent = Decimal(10)
    min_option_volume: Int = Field(100, ge=0, le=1_000_000_000)
    paper_equity: Annotated[Num, Field(ge=1, le=MAX_EQUITY)] = Decimal(10000)
    # A quote older than this (by its own time) never opens a position.
    max_quote_age_s: Int = Field(10, ge=1, le=3600)


class OptionsConfig(Section):
    min_days_to_expiry: Int = Field(1, ge=0, le=365)
    max_days_to_expiry: Int = Field(7, ge=0, le=365)
    max_otm_pct: Percent = Decimal(3)
    price: Literal["mid", "ask"] = "mid"

    @model_validator(mode="after")
    def _check_window(self) -> OptionsConfig:
        if self.min_days_to_expiry > self.max_days_to_expiry:
            raise ValueError("min_days_to_expiry must not exceed max_days_to_expiry")
        return self


class ScheduleConfig(Section):
    calendar: Annotated[Text, Field(max_length=32)] = "XNYS"
    open_delay_minutes: Minutes = 5
    close_buffer_minutes: Minutes = 15
