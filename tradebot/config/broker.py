"""`[broker]`: which broker, how to reach IB Gateway, and the simulated broker's settings."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from tradebot.config.fields import Bool, Int, Num, Section, Text


class SimPricingConfig(Section):
    """How the simulated market prices options (`tradebot.market.volatility`). The defaults are
    fitted on real option quotes by `benchmarks/calibrate_pricing.py`; docs/backtest-pricing.md
    has the fit and its out-of-sample errors."""

    # At-the-money implied vol = premium × realized vol (index ETFs SPY/QQQ/IWM/DIA; others).
    index_premium: Annotated[Num, Field(gt=0, le=10)] = Decimal("1.435")
    stock_premium: Annotated[Num, Field(gt=0, le=10)] = Decimal("0.843")
    # Smile: vol × (1 + skew·z + smile·z²), z = strike's distance from spot in std deviations.
    index_skew: Annotated[Num, Field(ge=-1, le=1)] = Decimal("-0.097")
    index_smile: Annotated[Num, Field(ge=0, le=1)] = Decimal("0.008")
    stock_skew: Annotated[Num, Field(ge=-1, le=1)] = Decimal("-0.045")
    stock_smile: Annotated[Num, Field(ge=0, le=1)] = Decimal("0.053")
    # The skew grows with time to expiry as (sessions to expiry / 5) ** skew_term.
    skew_term: Annotated[Num, Field(ge=0, le=1)] = Decimal("0.5")
    # How much more of a session's variance comes at its open and close than at midday.
    open_close: Annotated[Num, Field(ge=0, le=50)] = Decimal("5")
    lookback_sessions: Int = Field(10, ge=0, le=250)  # earlier sessions in the realized vol
    # Spread: max(one tick, this fraction of the option's value), fitted on index ETFs' quotes.
    spread: Annotated[Num, Field(ge=0, le=1)] = Decimal("0.028")


class SimBrokerConfig(Section):
    """The built-in simulated broker (`broker.kind = "sim"`)."""

    seed: Int = Field(1, ge=0, le=2**31 - 1)  # the synthetic market's seed
    commission_per_contract: Annotated[Num, Field(ge=0, le=100)] = Decimal("0.65")
    commission_minimum: Annotated[Num, Field(ge=0, le=100)] = Decimal("1.00")
    # Rehearsal faults: refuse native brackets (the loop falls back to OCO emulation), and
    # report quotes this many seconds old (stale quotes must never open a trade).
    refuse_brackets: Bool = False
    quote_delay_s: Int = Field(0, ge=0, le=86_400)
    pricing: SimPricingConfig = SimPricingConfig()


class BrokerConfig(Section):
    kind: Literal["sim", "ibkr"] = "sim"
    host: Annotated[Text, Field(max_length=253, pattern=r"^[A-Za-z0-9.:_\-\[\]]+$")] = "127.0.0.1"
    port: Int = Field(4002, ge=1, le=65535)
    client_id: Int = Field(17, ge=0, le=2**31 - 1)
    account: Annotated[Text, Field(max_length=32, pattern=r"^[A-Za-z0-9._\-]+$")] | None = None
    market_data_type: Literal["live", "delayed"] = "live"
    timeout_s: Num = Field(Decimal(10), gt=0, le=600)
    # IBKR only. "local": the loop runs on this machine's clock (always, for real money);
    # "gateway": it follows the gateway's clock, for rehearsals against `tradebot gateway sim`
    # started in the past (refused with trading.mode = "live" and with any real IB account).
    clock: Literal["local", "gateway"] = "local"
    # The gateway's time zone (IBC / the Docker image's TIME_ZONE): execution times without a
    # zone are read in it, and restart_window is written in it.
    timezone: Annotated[Text, Field(max_length=64)] = "America/New_York"
    # The gateway's daily restart (IBC AutoRestartTime), "HH:MM-HH:MM", may cross midnight:
    # no new entries inside it. Unset: no window.
    restart_window: Annotated[Text, Field(max_length=11)] | None = None
    # IBKR: the account's market-data lines (IB's default 100; quote booster packs add more).
    # tradebot keeps at most this less 10 quote streams open.
    market_data_lines: Int = Field(100, ge=15, le=10_000)
    # IBKR: a Flex query (sections Trades, and Option Exercises, Assignments and Expirations)
    # that the reconciliation reads when IB's same-day executions cannot explain a position the
    # broker no longer holds. The token is a secret: prefer TRADEBOT_BROKER__FLEX_TOKEN.
    flex_token: SecretStr | None = None
    flex_query_id: Annotated[Text, Field(pattern=r"^[0-9]{1,20}$")] | None = None
    sim: SimBrokerConfig = SimBrokerConfig()

    @model_validator(mode="after")
    def _flex_pair(self) -> BrokerConfig:
        if (self.flex_token is None) != (self.flex_query_id is None):
            raise ValueError(
                "broker.flex_token and broker.flex_query_id go together: set both (the Flex "
                "Web Service token and the query's id) or neither"
            )
        return self

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"{value!r} is not a time zone name (e.g. America/New_York, Europe/London, UTC)"
            ) from None
        return value

    @field_validator("restart_window")
    @classmethod
    def _window(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = re.fullmatch(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)", value)
        if match is None:
            raise ValueError("must be a daily window like '23:45-00:15' (HH:MM-HH:MM)")
        if match.group(1, 2) == match.group(3, 4):
            raise ValueError("the window is empty (start = end)")
        return value
