"""The settings the pure core reads, as its own read-only protocols.

`core/` imports nothing from outside itself: a rule that needs configuration takes one of these.
`tradebot.config`'s models satisfy them as they are (read-only properties accept the models'
fields), so the edge passes `settings.risk` or `settings.phase` straight through, and a test can
pass any small object with the same attributes. Only what the core reads is listed here.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Literal, Protocol

from tradebot.core.trades import PhaseName, TradeMode


class OptionsSettings(Protocol):
    """`[options]`: which expiry and strike an entry may take."""

    @property
    def min_days_to_expiry(self) -> int: ...
    @property
    def max_days_to_expiry(self) -> int: ...
    @property
    def max_otm_pct(self) -> Decimal: ...
    @property
    def price(self) -> Literal["mid", "ask"]: ...


class RiskSettings(Protocol):
    """`[risk]`: the liquidity guard and the position size."""

    @property
    def max_risk_pct(self) -> Decimal: ...
    @property
    def stop_loss_pct(self) -> Decimal: ...
    @property
    def max_spread_pct(self) -> Decimal: ...
    @property
    def min_option_volume(self) -> int: ...


class ScalpSettings(Protocol):
    """`[strategies.scalp]`."""

    @property
    def enabled(self) -> bool: ...
    @property
    def rsi_period(self) -> int: ...
    @property
    def ema_fast(self) -> int: ...
    @property
    def ema_slow(self) -> int: ...
    @property
    def min_bars(self) -> int: ...
    @property
    def rsi_buy(self) -> tuple[Decimal, Decimal]: ...
    @property
    def rsi_sell(self) -> tuple[Decimal, Decimal]: ...


class WhaleSettings(Protocol):
    """`[strategies.whale]`."""

    @property
    def enabled(self) -> bool: ...
    @property
    def range_days(self) -> int: ...
    @property
    def volume_multiple(self) -> Decimal: ...
    @property
    def debounce_days(self) -> int: ...


class PhaseRulesSettings(Protocol):
    """One phase's limits and its criteria to leave upward (`[phase.<name>]`)."""

    @property
    def counted_modes(self) -> Sequence[TradeMode]: ...
    @property
    def live_allowed(self) -> bool: ...
    @property
    def max_entries_per_session(self) -> int: ...
    @property
    def position_cap_usd(self) -> Decimal: ...
    @property
    def min_sessions(self) -> int: ...
    @property
    def min_profitable_sessions(self) -> int: ...
    @property
    def min_trades(self) -> int: ...
    @property
    def min_win_rate_pct(self) -> Decimal: ...
    @property
    def min_avg_rr(self) -> Decimal: ...
    @property
    def max_drawdown_pct(self) -> Decimal: ...


class ScalingRulesSettings(PhaseRulesSettings, Protocol):
    """`[phase.scaling]`: the graduated cap on top of the common rules."""

    @property
    def cap_max_usd(self) -> Decimal: ...
    @property
    def cap_equity_pct(self) -> Decimal: ...
    @property
    def cap_step_usd(self) -> Decimal: ...
    @property
    def cap_step_sessions(self) -> int: ...


class DowngradeSettings(Protocol):
    """`[phase.downgrade]`: the automatic triggers."""

    @property
    def consecutive_losses(self) -> int: ...
    @property
    def rolling_trades(self) -> int: ...
    @property
    def rolling_min_win_rate_pct(self) -> Decimal: ...


class PhaseSettings(Protocol):
    """`[phase]`: where the ladder starts, each phase's rules, the downgrade triggers."""

    @property
    def initial(self) -> PhaseName: ...
    @property
    def scaling(self) -> ScalingRulesSettings: ...
    @property
    def downgrade(self) -> DowngradeSettings: ...
    def rules(self, phase: PhaseName) -> PhaseRulesSettings: ...
