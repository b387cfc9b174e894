"""The whole effective configuration (`Settings`) and where it came from (`LoadedConfig`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    model_validator,
)

from tradebot.config.broker import BrokerConfig
from tradebot.config.fields import Section, plain_text
from tradebot.config.monitoring import MonitoringConfig
from tradebot.config.phase import PhaseConfig
from tradebot.config.remote import RemoteConfig
from tradebot.config.strategies import StrategiesConfig
from tradebot.config.trading import OptionsConfig, RiskConfig, ScheduleConfig, TradingConfig


class PathsConfig(Section):
    logs_dir: Annotated[Path, BeforeValidator(plain_text)] = Path("logs")
    state_dir: Annotated[Path, BeforeValidator(plain_text)] = Path("logs/state")


class Settings(Section):
    """The whole effective configuration."""

    broker: BrokerConfig = BrokerConfig()
    trading: TradingConfig = TradingConfig()
    risk: RiskConfig = RiskConfig()
    strategies: StrategiesConfig = StrategiesConfig()
    options: OptionsConfig = OptionsConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    phase: PhaseConfig = PhaseConfig()
    monitoring: MonitoringConfig = MonitoringConfig()
    remote: RemoteConfig = RemoteConfig()
    paths: PathsConfig = PathsConfig()

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.trading.mode == "live" and self.broker.kind != "ibkr":
            raise ValueError(
                "trading.mode = 'live' needs broker.kind = 'ibkr'; the simulated broker has no "
                "real money"
            )
        if self.broker.clock == "gateway":
            if self.broker.kind != "ibkr":
                raise ValueError(
                    "broker.clock = 'gateway' needs broker.kind = 'ibkr' (it follows the clock "
                    "of `tradebot gateway sim`); the simulated broker has its own --start"
                )
            if self.trading.mode == "live":
                raise ValueError(
                    "broker.clock = 'gateway' is for rehearsals against `tradebot gateway sim` "
                    "and is refused with trading.mode = 'live': real money runs on this "
                    "machine's clock (broker.clock = 'local')"
                )
        return self


class LoadedConfig(BaseModel):
    """Settings plus where they came from."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    settings: Settings
    path: Path
    file_found: bool
    base_dir: Path
    env_keys: tuple[str, ...] = ()

    @property
    def logs_dir(self) -> Path:
        return self._resolve(self.settings.paths.logs_dir)

    @property
    def state_dir(self) -> Path:
        return self._resolve(self.settings.paths.state_dir)

    def _resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else self.base_dir / path
