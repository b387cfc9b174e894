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
"""

from __future__ import annotations

import difflib
import json
import os
import re
import tomllib
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from tradebot.core.trades import PhaseName, TradeMode
from tradebot.errors import ConfigError

ENV_PREFIX = "TRADEBOT_"
# Environment variables with our prefix that are not configuration keys.
ENV_NOT_SETTINGS = frozenset({"TRADEBOT_CONFIG"})
DEFAULT_CONFIG_PATH = Path("config.toml")

Phase = PhaseName
PHASES: tuple[Phase, ...] = ("experience", "proof", "trial", "scaling")
NotifyEvent = Literal[
    "start",
    "stop",
    "entry",
    "exit",
    "refusal",
    "daily_loss",
    "downgrade",
    "eligible",
    "halt",
    "resume",
    "disconnect",
    "reconnect",
    "error",
]
NOTIFY_EVENTS: tuple[str, ...] = get_args(NotifyEvent)
DEFAULT_NOTIFY_ON: tuple[NotifyEvent, ...] = (
    "start",
    "stop",
    "entry",
    "exit",
    "daily_loss",
    "downgrade",
    "eligible",
    "halt",
    "resume",
    "disconnect",
    "error",
)


def _modes(*modes: TradeMode) -> Any:
    """A default_factory for counted_modes (a fresh list per instance)."""
    return lambda: list(modes)


Percent = Annotated[Decimal, Field(ge=0, le=100)]
PositivePercent = Annotated[Decimal, Field(gt=0, le=100)]
Usd = Annotated[Decimal, Field(ge=0)]


class Section(BaseModel):
    """A config table: unknown keys are errors, values are validated on assignment too."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SimBrokerConfig(Section):
    """The built-in simulated broker (`broker.kind = "sim"`)."""

    seed: int = Field(1, ge=0, le=2**31 - 1)  # the synthetic market's seed
    commission_per_contract: Annotated[Decimal, Field(ge=0, le=100)] = Decimal("0.65")
    commission_minimum: Annotated[Decimal, Field(ge=0, le=100)] = Decimal("1.00")
    # Rehearsal faults: refuse native brackets (the loop falls back to OCO emulation), and
    # report quotes this many seconds old (stale quotes must never open a trade).
    refuse_brackets: bool = False
    quote_delay_s: int = Field(0, ge=0, le=86_400)


class BrokerConfig(Section):
    kind: Literal["sim", "ibkr"] = "sim"
    host: str = "127.0.0.1"
    port: int = Field(4002, ge=1, le=65535)
    client_id: int = Field(17, ge=0)
    account: str | None = None
    market_data_type: Literal["live", "delayed"] = "live"
    timeout_s: Decimal = Field(Decimal(10), gt=0)
    sim: SimBrokerConfig = SimBrokerConfig()


class TradingConfig(Section):
    mode: Literal["dry_run", "paper", "live"] = "dry_run"
    symbols: list[Annotated[str, Field(min_length=1, pattern=r"^[A-Z][A-Z0-9.]*$")]] = Field(
        default_factory=lambda: ["SPY", "QQQ"], min_length=1
    )
    interval_s: int = Field(180, ge=1)
    max_concurrent_symbols: int = Field(2, ge=1)
    flatten_minutes_before_close: int = Field(10, ge=0)


class RiskConfig(Section):
    max_risk_pct: PositivePercent = Decimal("1.0")
    stop_loss_pct: PositivePercent = Decimal(50)
    take_profit_pct: Annotated[Decimal, Field(gt=0)] = Decimal(100)
    max_daily_loss_pct: PositivePercent = Decimal(5)
    max_spread_pct: PositivePercent = Decimal(10)
    min_option_volume: int = Field(100, ge=0)
    paper_equity: Annotated[Decimal, Field(gt=0)] = Decimal(10000)
    # A quote older than this (by its own time) never opens a position.
    max_quote_age_s: int = Field(10, ge=1, le=3600)


class ScalpConfig(Section):
    enabled: bool = True
    rsi_period: int = Field(14, ge=2)
    ema_fast: int = Field(9, ge=1)
    ema_slow: int = Field(21, ge=2)
    min_bars: int = Field(30, ge=1)
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
    enabled: bool = True
    range_days: int = Field(20, ge=1)
    volume_multiple: Decimal = Field(Decimal("1.5"), gt=0)
    debounce_days: int = Field(3, ge=0)


class StrategiesConfig(Section):
    scalp: ScalpConfig = ScalpConfig()
    whale: WhaleConfig = WhaleConfig()


class OptionsConfig(Section):
    min_days_to_expiry: int = Field(1, ge=0)
    max_days_to_expiry: int = Field(7, ge=0)
    max_otm_pct: Percent = Decimal(3)
    price: Literal["mid", "ask"] = "mid"

    @model_validator(mode="after")
    def _check_window(self) -> OptionsConfig:
        if self.min_days_to_expiry > self.max_days_to_expiry:
            raise ValueError("min_days_to_expiry must not exceed max_days_to_expiry")
        return self


class ScheduleConfig(Section):
    calendar: str = "XNYS"
    open_delay_minutes: int = Field(5, ge=0)
    close_buffer_minutes: int = Field(15, ge=0)


class PhaseRules(Section):
    """Limits while in a phase, and (except scaling) the criteria to leave it upward."""

    counted_modes: list[TradeMode] = Field(default_factory=_modes("live"))
    live_allowed: bool = True
    # 0 means unlimited (TOML has no null).
    max_entries_per_session: int = Field(0, ge=0)
    position_cap_usd: Usd = Decimal(200)
    min_sessions: int = Field(0, ge=0)
    min_profitable_sessions: int = Field(0, ge=0)
    min_trades: int = Field(0, ge=0)
    min_win_rate_pct: Percent = Decimal(0)
    min_avg_rr: Annotated[Decimal, Field(ge=0)] = Decimal(0)
    # Advance only while the window's max drawdown is below this; 0 = not checked.
    max_drawdown_pct: Percent = Decimal(0)


class ExperienceRules(PhaseRules):
    counted_modes: list[TradeMode] = Field(default_factory=_modes("paper"))
    live_allowed: bool = False

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
    min_profitable_sessions: int = Field(20, ge=0)
    min_trades: int = Field(20, ge=0)
    min_win_rate_pct: Percent = Decimal(60)
    min_avg_rr: Annotated[Decimal, Field(ge=0)] = Decimal("1.5")


class ProofRules(PhaseRules):
    max_entries_per_session: int = Field(1, ge=0)
    position_cap_usd: Usd = Decimal(100)
    min_sessions: int = Field(30, ge=0)
    min_trades: int = Field(50, ge=0)
    min_win_rate_pct: Percent = Decimal(65)
    min_avg_rr: Annotated[Decimal, Field(ge=0)] = Decimal("1.8")


class TrialRules(PhaseRules):
    position_cap_usd: Usd = Decimal(200)
    min_sessions: int = Field(60, ge=0)
    min_trades: int = Field(100, ge=0)
    min_win_rate_pct: Percent = Decimal(70)
    min_avg_rr: Annotated[Decimal, Field(ge=0)] = Decimal("2.0")
    max_drawdown_pct: Percent = Decimal(5)


class ScalingRules(PhaseRules):
    """Graduated cap = min(cap_max_usd, cap_equity_pct % of equity, base + step × floor(n/k))."""

    position_cap_usd: Usd = Decimal(200)
    cap_max_usd: Usd = Decimal(2000)
    cap_equity_pct: PositivePercent = Decimal(5)
    cap_step_usd: Usd = Decimal(200)
    cap_step_sessions: int = Field(5, ge=1)


class DowngradeConfig(Section):
    consecutive_losses: int = Field(3, ge=1)
    rolling_trades: int = Field(20, ge=1)
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
    override_max_failures: int = Field(5, ge=1)
    override_failure_window_minutes: int = Field(15, ge=1)
    override_lockout_minutes: int = Field(15, ge=1)

    @field_validator("override_password_hash")
    @classmethod
    def _check_hash(cls, value: SecretStr | None) -> SecretStr | None:
        from tradebot.override_password import is_valid_hash

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


class MonitoringConfig(Section):
    # Apprise URLs carry tokens, so they are secrets: masked in `config show` and never logged.
    notify_urls: list[SecretStr] = Field(default_factory=list)
    heartbeat_s: int = Field(60, ge=1)
    notify_on: list[NotifyEvent] = Field(default_factory=lambda: list(DEFAULT_NOTIFY_ON))


class PathsConfig(Section):
    logs_dir: Path = Path("logs")
    state_dir: Path = Path("logs/state")


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
    paths: PathsConfig = PathsConfig()

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.trading.mode == "live" and self.broker.kind != "ibkr":
            raise ValueError(
                "trading.mode = 'live' needs broker.kind = 'ibkr'; the simulated broker has no "
                "real money"
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


def load_config(path: Path) -> LoadedConfig:
    """Read `path` (TOML) with TRADEBOT_* overrides; raise ConfigError listing every problem."""
    data: dict[str, Any] = {}
    found = path.is_file()
    if found:
        data = _read_toml(path)
    elif path.exists():
        raise ConfigError(f"{path} is not a file; pass the path of a TOML config with --config")
    overrides, env_keys = env_overrides(os.environ)
    try:
        settings = Settings.model_validate(_deep_merge(data, overrides))
    except ValidationError as exc:
        problems = [
            _describe(err, env_keys) for err in exc.errors(include_url=False, include_input=False)
        ]
        raise ConfigError(
            f"{path}: {len(problems)} problem(s) in the configuration; fix them and run "
            "`tradebot config check`",
            details=tuple(problems),
        ) from None
    base_dir = path.resolve().parent if found else Path.cwd()
    return LoadedConfig(
        settings=settings,
        path=path,
        file_found=found,
        base_dir=base_dir,
        env_keys=tuple(sorted(env_keys)),
    )


def env_overrides(environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """TRADEBOT_<SECTION>__<KEY> variables as a nested dict, and dotted key → variable name.

    Names are case-insensitive. Lists, tuples and tables are written as JSON; scalars as plain
    text (pydantic converts them). Unknown names are errors, with a "did you mean".
    """
    data: dict[str, Any] = {}
    keys: dict[str, str] = {}
    problems = []
    for name, raw in sorted(environ.items()):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in ENV_NOT_SETTINGS:
            continue
        parts = upper[len(ENV_PREFIX) :].lower().split("__")
        model: type[BaseModel] = Settings
        node = data
        for depth, part in enumerate(parts):
            field = model.model_fields.get(part)
            if field is None:
                where = ".".join(parts[:depth]) or "the top level"
                hint = _did_you_mean(part, list(model.model_fields))
                problems.append(
                    f"{name}: no setting '{part}' in {where}{hint}; unset the variable or fix "
                    "its name"
                )
                break
            annotation = field.annotation
            if depth < len(parts) - 1:
                if not _is_model(annotation):
                    problems.append(f"{name}: '{'.'.join(parts[: depth + 1])}' is not a table")
                    break
                node = node.setdefault(part, {})
                model = annotation  # type: ignore[assignment]
                continue
            if _is_structured(annotation):
                try:
                    node[part] = json.loads(raw, parse_float=Decimal)
                except ValueError:
                    problems.append(
                        f"{name}: the value is not valid JSON; lists are written as JSON, e.g. "
                        f'{name}=\'["SPY", "QQQ"]\''
                    )
                    break
            else:
                node[part] = raw
            keys[".".join(parts)] = name
    if problems:
        raise ConfigError(
            f"{len(problems)} problem(s) in TRADEBOT_* environment variables",
            details=tuple(problems),
        )
    return data, keys


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_structured(annotation: Any) -> bool:
    return _is_model(annotation) or get_origin(annotation) in (list, tuple, dict)


def _deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        text = str(exc)
        where = re.search(r"\(at line (\d+), column (\d+)\)", text)
        reason = re.sub(r"\s*\(at line \d+, column \d+\)", "", text) or "syntax error"
        place = f"line {where[1]}, column {where[2]}" if where else "somewhere"
        raise ConfigError(
            f"{path}, {place}: invalid TOML ({reason}); fix that line and run "
            "`tradebot config check`"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _fields_at(loc: tuple[str | int, ...]) -> list[str]:
    """Names of the keys allowed in the table at `loc`."""
    model: type[BaseModel] = Settings
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _describe(err: Any, env_keys: dict[str, str]) -> str:
    loc = tuple(err["loc"])
    dotted = ".".join(str(p) for p in loc) or "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        hint = _did_you_mean(str(loc[-1]), _fields_at(loc[:-1]))
        msg = f"unknown key{hint}"
    elif msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
    source = env_keys.get(dotted)
    suffix = f" (from environment variable {source})" if source else ""
    return f"{dotted}: {msg}{suffix}"


def resolve_config_path(option: Path | None) -> Path:
    """The config path: --config, else $TRADEBOT_CONFIG, else ./config.toml."""
    if option is not None:
        return option
    from_env = os.environ.get("TRADEBOT_CONFIG")
    return Path(from_env) if from_env else DEFAULT_CONFIG_PATH
