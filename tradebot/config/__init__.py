"""Configuration: `config.toml` plus `TRADEBOT_*` environment overrides (spec §2).

Validation is pydantic; the environment source is our own small merge (see
docs/decisions.md: pydantic-settings costs 50–100 ms of import on every command, a third of the
0.3 s budget for `tradebot phase status`).

* Missing file → built-in defaults: the simulated broker in dry-run, so nothing real can happen.
* Every key can be overridden by `TRADEBOT_<SECTION>__<KEY>` (lists as JSON).
* Unknown keys (in the file or in `TRADEBOT_*` variables) are errors, with a "did you mean".
* Every problem becomes one line `section.key: message`; secret values are never echoed.
* Relative paths in `[paths]` are resolved against the directory of the config file, so every
  command finds the same state wherever it is started from.
* The bot never rewrites this file; mutable state lives under `paths.state_dir`.

The package: `fields` (strict scalar types), one module of models per section (`broker`,
`trading`, `strategies`, `phase`, `monitoring`, `remote`), `settings` (the whole configuration
and where it came from), `environment` (the `TRADEBOT_*` source) and `loader` (reading, merging,
one line per problem). Everything public is importable from `tradebot.config`.
"""

from __future__ import annotations

from tradebot.config.broker import BrokerConfig, SimBrokerConfig, SimPricingConfig
from tradebot.config.environment import ENV_NOT_SETTINGS, ENV_PREFIX, env_overrides
from tradebot.config.fields import MAX_EQUITY, MAX_USD, PHASES, Phase, Section
from tradebot.config.loader import (
    DEFAULT_CONFIG_PATH,
    load_config,
    resolve_config_path,
    with_logs_dir,
    with_symbols,
)
from tradebot.config.monitoring import (
    DEFAULT_NOTIFY_ON,
    NOTIFY_EVENTS,
    MonitoringConfig,
    NotifyEvent,
)
from tradebot.config.phase import (
    DowngradeConfig,
    ExperienceRules,
    PhaseConfig,
    PhaseRules,
    ProofRules,
    ScalingRules,
    TrialRules,
)
from tradebot.config.remote import RemoteConfig
from tradebot.config.settings import LoadedConfig, PathsConfig, Settings
from tradebot.config.strategies import ScalpConfig, StrategiesConfig, WhaleConfig
from tradebot.config.trading import OptionsConfig, RiskConfig, ScheduleConfig, TradingConfig

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_NOTIFY_ON",
    "ENV_NOT_SETTINGS",
    "ENV_PREFIX",
    "MAX_EQUITY",
    "MAX_USD",
    "NOTIFY_EVENTS",
    "PHASES",
    "BrokerConfig",
    "DowngradeConfig",
    "ExperienceRules",
    "LoadedConfig",
    "MonitoringConfig",
    "NotifyEvent",
    "OptionsConfig",
    "PathsConfig",
    "Phase",
    "PhaseConfig",
    "PhaseRules",
    "ProofRules",
    "RemoteConfig",
    "RiskConfig",
    "ScalingRules",
    "ScalpConfig",
    "ScheduleConfig",
    "Section",
    "Settings",
    "SimBrokerConfig",
    "SimPricingConfig",
    "StrategiesConfig",
    "TradingConfig",
    "TrialRules",
    "WhaleConfig",
    "env_overrides",
    "load_config",
    "resolve_config_path",
    "with_logs_dir",
    "with_symbols",
]
