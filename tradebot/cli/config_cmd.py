"""`tradebot config check | show`: validate the configuration and show what is in effect."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from tradebot.cli.context import state_of
from tradebot.cli.output import esc, print_json, stdout_console

app = typer.Typer(
    rich_markup_mode=None, help="Validate and show the configuration.", no_args_is_help=True
)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON document for scripts.")]


@app.command("check")
def check(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Validate the config file and TRADEBOT_* variables; exit 0 when valid, 3 when not (a
    file named with --config or TRADEBOT_CONFIG that is not there is not valid)."""
    state = state_of(ctx)
    path = state.config_path
    if state.config_explicit and _absent(path):
        from tradebot.errors import ConfigError

        raise ConfigError(
            f"{path} does not exist: nothing to check (other commands would run on the "
            "built-in defaults); give the path of your config.toml"
        )
    loaded = state.config(log_to_file=False)
    s = loaded.settings
    from tradebot.books.session_calendar import check_calendar

    check_calendar(s.schedule.calendar)  # needs the calendar library: checked here, not per load
    source = str(loaded.path) if loaded.file_found else f"built-in defaults ({loaded.path} absent)"
    summary = {
        "valid": True,
        "source": source,
        "env_overrides": list(loaded.env_keys),
        "broker": s.broker.kind,
        "mode": s.trading.mode,
        "symbols": s.trading.symbols,
        "initial_phase": s.phase.initial,
        "logs_dir": str(loaded.logs_dir),
        "state_dir": str(loaded.state_dir),
    }
    if as_json:
        print_json(summary)
        return
    out = stdout_console()
    out.print(f"[green]config OK[/]: {esc(source)}")
    symbols = esc(", ".join(s.trading.symbols))
    out.print(f"  broker {s.broker.kind}, mode {s.trading.mode}, symbols {symbols}")
    out.print(f"  logs in {esc(loaded.logs_dir)}, state in {esc(loaded.state_dir)}")
    if loaded.env_keys:
        out.print(f"  overridden by environment: {esc(', '.join(loaded.env_keys))}")


def _absent(path: Path) -> bool:
    """Nothing at `path` (other troubles — a file in the path, permissions — are the loader's
    to name)."""
    try:
        path.lstat()
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return False


@app.command("show")
def show(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Print the effective configuration (file + environment + defaults), secrets masked."""
    loaded = state_of(ctx).config(log_to_file=False)
    document = loaded.settings.model_dump(mode="json")
    if as_json:
        print_json(document)
        return
    import tomli_w

    # The path on a line of its own keeps the header within 80 columns for a usual path; the
    # document is written as it is, never re-wrapped to the terminal: a wrapped comment or
    # string is no longer TOML (`config show > effective.toml`), and a terminal wraps a long
    # line itself.
    from tradebot.core.validation import escape_control

    path = escape_control(str(loaded.path))  # a newline in a path must not end the comment
    header = (
        f"# effective configuration from\n# {path}"
        if loaded.file_found
        else f"# built-in defaults\n# ({path} not found)"
    )
    text = tomli_w.dumps(_tomlable(loaded.settings.model_dump()))
    sys.stdout.write(header + "\n" + text)


def _tomlable(value: Any) -> Any:
    """Python values TOML can hold: secrets masked, paths as text, no nulls (TOML has none)."""
    from pydantic import SecretStr

    if isinstance(value, dict):
        return {k: _tomlable(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_tomlable(v) for v in value]
    if isinstance(value, SecretStr):
        return str(value)  # "**********"
    if isinstance(value, Path):
        return str(value)
    return value
