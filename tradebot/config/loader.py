"""Reading `config.toml`, merging the environment, and turning every validation problem into
one line `section.key: message` (exit 3)."""

from __future__ import annotations

import errno
import os
import re
import stat
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ValidationError,
)

from tradebot.config.environment import did_you_mean, env_overrides
from tradebot.config.settings import LoadedConfig, Settings
from tradebot.errors import ConfigError, UsageError

DEFAULT_CONFIG_PATH = Path("config.toml")


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
    except RecursionError:
        raise ConfigError(
            f"{path} or TRADEBOT_* environment variables: a value is nested too deeply to be a "
            "setting; fix it and run `tradebot config check`"
        ) from None
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


def with_logs_dir(loaded: LoadedConfig, directory: Path) -> LoadedConfig:
    """`tradebot --logs DIR`: the journals, phase files and log in DIR, the state in DIR/state
    (whatever `[paths]` says); a relative DIR is taken from the current directory."""
    logs = directory if directory.is_absolute() else Path.cwd() / directory
    paths = loaded.settings.paths.model_copy(update={"logs_dir": logs, "state_dir": logs / "state"})
    settings = loaded.settings.model_copy(update={"paths": paths})
    _check_directory(logs, "--logs", {})
    _check_directory(logs / "state", "--logs", {})
    return loaded.model_copy(update={"settings": settings})


def with_symbols(loaded: LoadedConfig, symbols: tuple[str, ...]) -> LoadedConfig:
    """`--symbols A,B`: these symbols instead of `trading.symbols` (checked like it)."""
    from tradebot.config.trading import TradingConfig

    data = loaded.settings.trading.model_dump()
    data["symbols"] = list(symbols)
    try:
        trading = TradingConfig.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        raise UsageError(f"--symbols: {first['msg'].removeprefix('Value error, ')}") from None
    settings = loaded.settings.model_copy(update={"trading": trading})
    return loaded.model_copy(update={"settings": settings})


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
    except RecursionError:
        raise ConfigError(
            f"{path}: arrays or tables nested too deeply to be a configuration; fix the file and "
            "run `tradebot config check`"
        ) from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file ({exc.strerror})") from None


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
        hint = did_you_mean(str(loc[-1]), _fields_at(loc[:-1]))
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
