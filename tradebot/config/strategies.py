"""`[strategies.scalp]` and `[strategies.whale]`: the signal parameters."""

from __future__ import annotations

from decimal import Decimal

from pydantic import (
    Field,
    model_validator,
)

from tradebot.config.fields import Bool, Int, Num, Percent, Section


class ScalpConfig(Section):
    enabled: Bool = True
    rsi_period: Int = Field(14, ge=2, le=500)
    ema_fast: Int = Field(9, ge=1, le=500)
    ema_slow: Int = Field(21, ge=2, le=500)
    min_bars: Int = Field(30, ge=1, le=1000)
    rsi_buy: tuple[Percent, Percent] = (Decimal(50), Decimal(70))
    rsi_sell: tuple[Percent, Percent] = (Decimal(30), Decimal(50))

    @model_validator(mode="after")
    def _check_ranges(self) -> ScalpConfig:
        if self.ema_fast >= self.ema_slow:
            raise ValueError("ema_fast must be smaller than ema_slow")
        for name in ("rsi_buy", "rsi_sell"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"{name} must be [low, high] with low <= high")
        return self


class WhaleConfig(Section):
    enabled: Bool = True
    range_days: Int = Field(20, ge=1, le=250)
    volume_multiple: Num = Field(Decimal("1.5"), gt=0, le=100)
    debounce_days: Int = Field(3, ge=0, le=250)


class StrategiesConfig(Section):
    scalp: ScalpConfig = ScalpConfig()
    whale: WhaleConfig = WhaleConfig()
