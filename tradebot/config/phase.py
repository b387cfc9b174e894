"""`[phase.*]`: the ladder's limits, criteria, downgrade triggers and override settings."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import (
    Field,
    SecretStr,
    field_validator,
)

from tradebot.config.fields import (
    Bool,
    Count,
    Int,
    Num,
    Percent,
    Phase,
    PositivePercent,
    Section,
    Usd,
    default_modes,
)
from tradebot.core.trades import TradeMode


class PhaseRules(Section):
    """Limits while in a phase, and (except scaling) the criteria to leave it upward."""

    counted_modes: list[TradeMode] = Field(
        default_factory=default_modes("live"), min_length=1, max_length=3
    )
    live_allowed: Bool = True
    # 0 means unlimited (TOML has no null).
    max_entries_per_session: Int = Field(0, ge=0, le=1000)
    position_cap_usd: Usd = Decimal(200)
    min_sessions: Count = 0
    min_profitable_sessions: Count = 0
    min_trades: Count = 0
    min_win_rate_pct: Percent = Decimal(0)
    min_avg_rr: Annotated[Num, Field(ge=0, le=1000)] = Decimal(0)
    # Advance only while the window's max drawdown is below this; 0 = not checked.
    max_drawdown_pct: Percent = Decimal(0)


class ExperienceRules(PhaseRules):
    counted_modes: list[TradeMode] = Field(
        default_factory=default_modes("paper"), min_length=1, max_length=3
    )
    live_allowed: Bool = False

    @field_validator("live_allowed")
    @classmethod
    def _paper_only(cls, value: bool) -> bool:
        if value:
            raise ValueError(
                "experience is paper only (spec §3); live trading starts in proof, earned by "
                "`tradebot phase advance`"
            )
        return value

    position_cap_usd: Usd = Decimal(100)
    min_profitable_sessions: Count = 20
    min_trades: Count = 20
    min_win_rate_pct: Percent = Decimal(60)
    min_avg_rr: Annotated[Num, Field(ge=0, le=1000)] = Decimal("1.5")


class ProofRules(PhaseRules):
    max_entries_per_session: Int = Field(1, ge=0, le=1000)
    position_cap_usd: Usd = Decimal(100)
    min_sessions: Count = 30
    min_trades: Count = 50
    min_win_rate_pct: Percent = Decimal(65)
    min_avg_rr: Annotated[Num, Field(ge=0, le=1000)] = Decimal("1.8")


class TrialRules(PhaseRules):
    position_cap_usd: Usd = Decimal(200)
    min_sessions: Count = 60
    min_trades: Count = 100
    min_win_rate_pct: Percent = Decimal(70)
    min_avg_rr: Annotated[Num, Field(ge=0, le=1000)] = Decimal("2.0")
    max_drawdown_pct: Percent = Decimal(5)


class ScalingRules(PhaseRules):
    """Graduated cap = min(cap_max_usd, cap_equity_pct % of equity, base + step × floor(n/k))."""

    position_cap_usd: Usd = Decimal(200)
    cap_max_usd: Usd = Decimal(2000)
    cap_equity_pct: PositivePercent = Decimal(5)
    cap_step_usd: Usd = Decimal(200)
    cap_step_sessions: Int = Field(5, ge=1, le=1000)


class DowngradeConfig(Section):
    consecutive_losses: Int = Field(3, ge=1, le=1000)
    rolling_trades: Int = Field(20, ge=1, le=10_000)
    rolling_min_win_rate_pct: Percent = Decimal(55)


class PhaseConfig(Section):
    initial: Phase = "experience"
    experience: ExperienceRules = ExperienceRules()
    proof: ProofRules = ProofRules()
    trial: TrialRules = TrialRules()
    scaling: ScalingRules = ScalingRules()
    downgrade: DowngradeConfig = DowngradeConfig()
    # Usually set with `tradebot phase set-password` (kept in the state dir); this key, or
    # TRADEBOT_PHASE__OVERRIDE_PASSWORD_HASH, takes precedence when set.
    override_password_hash: SecretStr | None = None
    override_max_failures: Int = Field(5, ge=1, le=100)
    override_failure_window_minutes: Int = Field(15, ge=1, le=10_080)
    override_lockout_minutes: Int = Field(15, ge=1, le=10_080)

    @field_validator("override_password_hash")
    @classmethod
    def _check_hash(cls, value: SecretStr | None) -> SecretStr | None:
        from tradebot.core.override_password import is_valid_hash

        if value is not None and not is_valid_hash(value.get_secret_value()):
            raise ValueError(
                "not a hash written by `tradebot phase set-password` (scrypt$...); the value is "
                "not shown"
            )
        return value

    def rules(self, phase: Phase) -> PhaseRules:
        """The limits and criteria table of `phase`."""
        rules: PhaseRules = getattr(self, phase)
        return rules
