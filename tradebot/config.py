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
import errno
import json
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
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
ENV_NOT_SETTINGS = frozenset({"TRADEBOT_CONFIG", "TRADEBOT_TELEGRAM_TOKEN"})
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
    "summary",
    "remote",
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
    "reconnect",
    "error",
    "summary",
    "remote",
)


def _modes(*modes: TradeMode) -> Any:
    """A default_factory for counted_modes (a fresh list per instance)."""
    return lambda: list(modes)


def _whole_number(value: Any) -> Any:
    # TOML has integers: `interval_s = true`, `"180"` or `180.5` is a mistake, not a number.
    if type(value) is not int:
        raise ValueError("must be a whole number (not true/false, text or a decimal)")
    return value


def _true_or_false(value: Any) -> Any:
    # `enabled = "yes"` or `1` is refused: only TOML's true and false.
    if type(value) is not bool:
        raise ValueError("must be true or false (without quotes)")
    return value


def _number(value: Any) -> Any:
    # Integers and decimals (TOML floats are read as exact Decimals); never text or true/false.
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise ValueError("must be a number (without quotes)")
    if isinstance(value, Decimal) and not value.is_finite():
        raise ValueError("must be a finite number")
    return value


def _text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("must be text (in quotes)")
    if not value.strip():
        raise ValueError("must not be empty")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    return value


# Strict scalars: the value's TOML type must be the key's type (environment variables are
# converted by the key's type first, see `env_overrides`). Bounds are documented in config.toml.
Int = Annotated[int, BeforeValidator(_whole_number)]
Bool = Annotated[bool, BeforeValidator(_true_or_false)]
Num = Annotated[Decimal, BeforeValidator(_number)]
Text = Annotated[str, BeforeValidator(_text)]
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


class SimBrokerConfig(Section):
    """The built-in simulated broker (`broker.kind = "sim"`)."""

    seed: Int = Field(1, ge=0, le=2**31 - 1)  # the synthetic market's seed
    commission_per_contract: Annotated[Num, Field(ge=0, le=100)] = Decimal("0.65")
    commission_minimum: Annotated[Num, Field(ge=0, le=100)] = Decimal("1.00")
    # Rehearsal faults: refuse native brackets (the loop falls back to OCO emulation), and
    # report quotes this many seconds old (stale quotes must never open a trade).
    refuse_brackets: Bool = False
    quote_delay_s: Int = Field(0, ge=0, le=86_400)


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
    sim: SimBrokerConfig = SimBrokerConfig()

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


class TradingConfig(Section):
    mode: Literal["dry_run", "paper", "live"] = "dry_run"
    symbols: list[
        Annotated[str, Field(min_length=1, max_length=10, pattern=r"^[A-Z][A-Z0-9.]*$")]
    ] = Field(default_factory=lambda: ["SPY", "QQQ"], min_length=1, max_length=100)
    interval_s: Int = Field(180, ge=1, le=86_400)
    max_concurrent_symbols: Int = Field(2, ge=1, le=50)
    # At least one minute: at the close itself nothing can be sold any more.
    flatten_minutes_before_close: Annotated[Int, Field(ge=1, le=390)] = 10

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


class PhaseRules(Section):
    """Limits while in a phase, and (except scaling) the criteria to leave it upward."""

    counted_modes: list[TradeMode] = Field(
        default_factory=_modes("live"), min_length=1, max_length=3
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
        default_factory=_modes("paper"), min_length=1, max_length=3
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
    notify_urls: list[SecretStr] = Field(default_factory=list, max_length=20)
    heartbeat_s: Int = Field(60, ge=1, le=3600)
    notify_on: list[NotifyEvent] = Field(default_factory=lambda: list(DEFAULT_NOTIFY_ON))

    @field_validator("notify_urls")
    @classmethod
    def _short_urls(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(not 0 < len(url.get_secret_value()) <= 2000 for url in value):
            raise ValueError("each URL must have 1 to 2000 characters (the value is not shown)")
        return value


class RemoteConfig(Section):
    """`tradebot remote`: status and halt from a phone through a Telegram bot. The bot's token
    is never a key here: TRADEBOT_TELEGRAM_TOKEN or a 0600 file (see tradebot/remote/token.py)."""

    # Numeric Telegram user ids allowed to command the bot, in a private chat only. Empty:
    # `tradebot remote run` refuses to start.
    allowed_user_ids: list[Annotated[Int, Field(ge=1, le=2**53)]] = Field(
        default_factory=list, max_length=20
    )
    token_file: Annotated[Path, BeforeValidator(_text)] | None = None
    api_url: Annotated[Text, Field(max_length=200)] = "https://api.telegram.org"
    # Alerts (and each session's summary) also go to every allowed user's private chat.
    send_alerts: Bool = True

    @field_validator("allowed_user_ids")
    @classmethod
    def _unique_ids(cls, value: list[int]) -> list[int]:
        repeated = sorted({i for i in value if value.count(i) > 1})
        if repeated:
            raise ValueError(f"lists {', '.join(map(str, repeated))} more than once")
        return value

    @field_validator("token_file")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("must be an absolute path (e.g. /etc/tradebot/telegram_token)")
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        from tradebot.remote.bot_api import check_api_url

        return check_api_url(value)


class PathsConfig(Section):
    logs_dir: Annotated[Path, BeforeValidator(_text)] = Path("logs")
    state_dir: Annotated[Path, BeforeValidator(_text)] = Path("logs/state")


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


def load_config(path: Path) -> LoadedConfig:
    """Read `path` (TOML) with TRADEBOT_* overrides; raise ConfigError listing every problem.

    A missing file means the built-in defaults. A path that exists but cannot be the config
    (a directory, a dangling symlink, a symlink loop, an unreadable file) is an error naming
    the reason, never a silent fall-back to the defaults. So is a `paths.logs_dir` or
    `paths.state_dir` that exists and is not a directory.
    """
    data: dict[str, Any] = {}
    found = _config_file_exists(path)
    if found:
        data = _read_toml(path)
    overrides, env_keys = env_overrides(os.environ)
    try:
        settings = Settings.model_validate(_deep_merge(data, overrides))
    except ValidationError as exc:
        described = [
            _describe(err, env_keys) for err in exc.errors(include_url=False, include_input=False)
        ]
        problems = [text for text, _ in described]
        from_env = sum(1 for _, env in described if env)
        if from_env == len(problems):
            where = "TRADEBOT_* environment variables"
        elif from_env:
            where = f"{path} and TRADEBOT_* environment variables"
        else:
            where = str(path)
        raise ConfigError(
            f"{where}: {len(problems)} problem(s) in the configuration; fix them and run "
            "`tradebot config check`",
            details=tuple(problems),
        ) from None
    base_dir = path.resolve().parent if found else Path.cwd()
    loaded = LoadedConfig(
        settings=settings,
        path=path,
        file_found=found,
        base_dir=base_dir,
        env_keys=tuple(sorted(env_keys)),
    )
    _check_directory(loaded.logs_dir, "paths.logs_dir", env_keys)
    _check_directory(loaded.state_dir, "paths.state_dir", env_keys)
    return loaded


def _config_file_exists(path: Path) -> bool:
    """True for a regular file, False when nothing is there; ConfigError for anything else."""
    use = "pass the path of a TOML config with --config (or TRADEBOT_CONFIG)"
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise ConfigError(
                f"{path} is a symlink to {os.readlink(path)}, which does not exist; fix the "
                f"link or {use}"
            ) from None
        return False
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            reason = "is a symlink loop"
        elif exc.errno == errno.ENOTDIR:
            reason = "cannot exist: a directory in its path is a file"
        elif exc.errno in (errno.EACCES, errno.EPERM):
            reason = "cannot be reached (permission denied on a directory in its path)"
        else:
            reason = f"cannot be read ({exc.strerror or exc})"
        raise ConfigError(f"{path} {reason}; {use}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{path} is a directory, not a file; {use}")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{path} is not a regular file (a FIFO or a device?); {use}")
    return True


def _check_directory(directory: Path, key: str, env_keys: dict[str, str]) -> None:
    """ConfigError when `directory` (or the nearest existing part of it) is not a directory."""
    current = directory
    while True:
        try:
            info = current.stat()
        except FileNotFoundError:
            if current.parent == current:
                return
            current = current.parent
            continue
        except OSError as exc:
            if exc.errno != errno.ENOTDIR:
                return  # unreachable (permissions): the file operations will say so
            current = current.parent
            continue
        if stat.S_ISDIR(info.st_mode):
            return
        source = env_keys.get(key)
        suffix = f" (from environment variable {source})" if source else ""
        raise ConfigError(
            f"{key}: {directory} cannot be a directory because {current} is a file{suffix}; "
            f"point {key} at a directory (or move that file away)"
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
                try:
                    node[part] = _env_scalar(raw, annotation)
                except ValueError as exc:
                    problems.append(f"{'.'.join(parts)}: {exc} (from environment variable {name})")
                    break
            keys[".".join(parts)] = name
    if problems:
        raise ConfigError(
            f"{len(problems)} problem(s) in TRADEBOT_* environment variables",
            details=tuple(problems),
        )
    return data, keys


def _env_scalar(raw: str, annotation: Any) -> Any:
    """An environment variable's text as the key's type, so the same strict checks apply as to
    the file: whole numbers, true/false (or 1/0), decimals; anything else stays text."""
    kind = annotation
    if get_origin(kind) in (Union, UnionType):
        kind = next(a for a in get_args(kind) if a is not type(None))
    if get_origin(kind) is Annotated:
        kind = get_args(kind)[0]
    text = raw.strip()
    if kind is bool:
        if text.lower() in ("true", "1"):
            return True
        if text.lower() in ("false", "0"):
            return False
        raise ValueError(f"{raw[:40]!r} is not true or false")
    if kind is int:
        if not re.fullmatch(r"[+-]?[0-9]{1,19}", text):
            raise ValueError(f"{raw[:40]!r} is not a whole number")
        return int(text)
    if kind is Decimal:
        try:
            return Decimal(text)
        except InvalidOperation:
            raise ValueError(f"{raw[:40]!r} is not a number") from None
    return raw


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


def _describe(err: Any, env_keys: dict[str, str]) -> tuple[str, bool]:
    """(one line `section.key: message`, whether the value came from an environment variable)."""
    loc = tuple(err["loc"])
    dotted = ".".join(str(p) for p in loc) or "(top level)"
    msg = err["msg"]
    if err["type"] == "extra_forbidden":
        hint = _did_you_mean(str(loc[-1]), _fields_at(loc[:-1]))
        msg = f"unknown key{hint}"
    elif msg.startswith("Value error, "):
        msg = msg.removeprefix("Value error, ")
    # The variable that set this key, or the table or list containing it (JSON values).
    source = next(
        (
            env_keys[prefix]
            for n in range(len(loc), 0, -1)
            if (prefix := ".".join(str(p) for p in loc[:n])) in env_keys
        ),
        None,
    )
    suffix = f" (from environment variable {source})" if source else ""
    return f"{dotted}: {msg}{suffix}", source is not None


def resolve_config_path(option: Path | None) -> Path:
    """The config path: --config, else $TRADEBOT_CONFIG, else ./config.toml."""
    if option is not None:
        return option
    from_env = os.environ.get("TRADEBOT_CONFIG")
    return Path(from_env) if from_env else DEFAULT_CONFIG_PATH
