"""`TRADEBOT_<SECTION>__<KEY>` environment variables: our own small source (see
docs/decisions.md: pydantic-settings costs 50–100 ms of import on every command)."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import (
    BaseModel,
)

from tradebot.config.settings import Settings
from tradebot.errors import ConfigError

ENV_PREFIX = "TRADEBOT_"
# Environment variables with our prefix that are not configuration keys.
ENV_NOT_SETTINGS = frozenset({"TRADEBOT_CONFIG", "TRADEBOT_TELEGRAM_TOKEN"})


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
                hint = did_you_mean(part, list(model.model_fields))
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
                except RecursionError:
                    problems.append(
                        f"{name}: the value is nested too deeply to be a setting; write a flat "
                        f'JSON list, e.g. {name}=\'["SPY", "QQQ"]\''
                    )
                    break
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


def did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
