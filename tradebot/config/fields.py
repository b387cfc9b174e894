"""Strict scalar types every config section uses: the TOML type must be the key's type, and
every number has bounds (documented next to each key in config.toml)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)

from tradebot.core.trades import PhaseName, TradeMode

Phase = PhaseName
PHASES: tuple[Phase, ...] = ("experience", "proof", "trial", "scaling")


def default_modes(*modes: TradeMode) -> Any:
    """A default_factory for counted_modes (a fresh list per instance)."""
    return lambda: list(modes)


def whole_number(value: Any) -> Any:
    # TOML has integers: `interval_s = true`, `"180"` or `180.5` is a mistake, not a number.
    if type(value) is not int:
        raise ValueError("must be a whole number (not true/false, text or a decimal)")
    return value


def true_or_false(value: Any) -> Any:
    # `enabled = "yes"` or `1` is refused: only TOML's true and false.
    if type(value) is not bool:
        raise ValueError("must be true or false (without quotes)")
    return value


def number(value: Any) -> Any:
    # Integers and decimals (TOML floats are read as exact Decimals); never text or true/false.
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise ValueError("must be a number (without quotes)")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError("must be a finite number")
    return value


def plain_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be text (in quotes)")
    if not value.strip():
        raise ValueError("must not be empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    return value


# Strict scalars: the value's TOML type must be the key's type (environment variables are
# converted by the key's type first, see `env_overrides`). Bounds are documented in config.toml.
Int = Annotated[int, BeforeValidator(whole_number)]
Bool = Annotated[bool, BeforeValidator(true_or_false)]
Num = Annotated[Decimal, BeforeValidator(number)]
Text = Annotated[str, BeforeValidator(plain_text)]
Percent = Annotated[Num, Field(ge=0, le=100)]
PositivePercent = Annotated[Num, Field(gt=0, le=100)]
MAX_USD = Decimal(1_000_000)  # any configured dollar amount (a cap, a step)
MAX_EQUITY = Decimal(1_000_000_000)
Usd = Annotated[Num, Field(ge=0, le=MAX_USD)]
Minutes = Annotated[Int, Field(ge=0, le=390)]  # within one regular session
Count = Annotated[Int, Field(ge=0, le=1_000_000)]


class Section(BaseModel):
    """A config table: unknown keys are errors, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", frozen=True)
