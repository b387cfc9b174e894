"""The `tradebot` command: a thin layer that parses, calls the core, and renders.

Each command group lives in its own module with its own small Typer app. Our errors become one
line on stderr and the exit code of spec §1, in one place (`_ErrorsAsExitCodes`), so the same
mapping holds for the console script and for CliRunner tests.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.main
from typer.core import TyperGroup

from tradebot import __version__
from tradebot.cli.context import CliState
from tradebot.errors import ExitCode, TradebotError

log = logging.getLogger("tradebot")


class _ErrorsAsExitCodes(TyperGroup):
    """Turns TradebotError into its exit code, and anything unexpected into exit 1; finds its
    commands in `COMMANDS`, importing each one's module only when it is used."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return load_command(cmd_name) if cmd_name in COMMANDS else None

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        """`tradebot --help`'s command list, from the table (no command module imported)."""
        width = max(len(name) for name in COMMANDS)
        limit = max(20, formatter.width - 6 - width)
        rows = [(name, _shorten(text, limit)) for name, (_, _, text) in COMMANDS.items()]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except TradebotError as exc:
            from tradebot.cli.output import error_line

            error_line(exc.message, exc.details)
            if _debug(ctx):
                log.exception("details")
            raise typer.Exit(int(exc.exit_code)) from None
        except typer.Exit:
            raise
        except (KeyboardInterrupt, typer.Abort):
            # Ctrl-C (also at a password prompt, which Typer reports as Abort).
            sys.stderr.write("\ninterrupted\n")
            raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
        except Exception as exc:
            # Typer's own usage errors (bad option, unknown command) keep their exit code 2.
            if _debug(ctx) or (hasattr(exc, "exit_code") and hasattr(exc, "format_message")):
                raise
            from tradebot.cli.output import error_line

            error_line(
                f"unexpected error: {type(exc).__name__}: {exc}; run again with --debug for the "
                "traceback and report it"
            )
            raise typer.Exit(int(ExitCode.UNEXPECTED)) from None


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(0, limit - 3)].rstrip() + "..."


def _debug(ctx: Any) -> bool:
    obj = ctx.find_root().obj
    return isinstance(obj, CliState) and obj.debug


# Plain help and usage errors (click's own format): typer's rich panels cost ~45 ms of imports
# on every `--help` and usage error (rich.markdown, markdown-it, pygments) and wrap badly at 80
# columns. Every Typer app in cli/ says the same (`rich_markup_mode=None`).
app = typer.Typer(
    cls=_ErrorsAsExitCodes,
    rich_markup_mode=None,
    name="tradebot",
    help="Safety-first options-buying bot for Interactive Brokers.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"tradebot {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    ctx: typer.Context,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            metavar="PATH",
            help="Config file (TOML). Default: $TRADEBOT_CONFIG, else ./config.toml.",
            show_default=False,
            readable=False,  # an unreadable file is a config error (exit 3)
        ),
    ] = None,
    logs: Annotated[
        Path | None,
        typer.Option(
            "--logs",
            metavar="DIR",
            help="Keep the journals, phase files, log and state (DIR/state) in DIR instead of "
            "paths.logs_dir: a fresh one for a rehearsal.",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[
        bool, typer.Option("--debug", help="Verbose logs and full tracebacks on errors.")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
) -> None:
    """Safety-first options-buying bot for Interactive Brokers."""
    from tradebot.config import resolve_config_path

    ctx.obj = CliState(
        config_path=resolve_config_path(config),
        config_explicit=config is not None or _env_has_config(),
        debug=debug,
        logs=logs,
    )


def _env_has_config() -> bool:
    import os

    return bool(os.environ.get("TRADEBOT_CONFIG"))


# Every command, in the order `tradebot --help` lists them: (module, attribute, the one line
# --help shows). A command's module is imported only when that command runs (or its own --help
# is asked), so `tradebot status` never pays for `backtest`'s imports; the one-line help is
# written here for the same reason, and a test checks it against each command's own help.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "run": (
        "tradebot.cli.run_cmd",
        "run",
        "Run the trading loop: signals, guards, sizing, brackets, exits.",
    ),
    "status": (
        "tradebot.cli.status_cmd",
        "status",
        "Is a loop running? Phase, halt, today's P&L, positions, orders.",
    ),
    "halt": (
        "tradebot.cli.halt_cmd",
        "halt",
        "Stop new entries now (a running loop notices within a second).",
    ),
    "resume": (
        "tradebot.cli.halt_cmd",
        "resume",
        "Lift the halt: entries may start again (positions untouched).",
    ),
    "backtest": (
        "tradebot.cli.backtest_cmd",
        "backtest",
        "Replay sessions through the real loop on the simulated broker.",
    ),
    "phase": (
        "tradebot.cli.phase_cmd",
        "app",
        "The phase ladder: status, advance, override, history export.",
    ),
    "risk": (
        "tradebot.cli.risk_cmd",
        "app",
        "Risk guards: can the bot open a trade now, and how big.",
    ),
    "journal": (
        "tradebot.cli.journal_cmd",
        "app",
        "Closed trades and metrics; `journal close` records an exit.",
    ),
    "notify": ("tradebot.cli.notify_cmd", "app", "Alerts (Apprise): check the configured URLs."),
    "config": ("tradebot.cli.config_cmd", "app", "Validate and show the configuration."),
    "gateway": (
        "tradebot.cli.gateway_cmd",
        "app",
        "IB Gateway: test the connection, or run a local simulator.",
    ),
    "remote": (
        "tradebot.cli.remote_cmd",
        "app",
        "Status and halt from a phone (Telegram): reduces risk only.",
    ),
}


@functools.cache
def load_command(name: str) -> Any:
    """The click command `name` (imports its module on first use)."""
    module, attribute, _ = COMMANDS[name]
    target = getattr(importlib.import_module(module), attribute)
    command: Any
    if isinstance(target, typer.Typer):
        command = typer.main.get_group(target)  # a group even with one sub-command
    else:
        single = typer.Typer(rich_markup_mode=None)
        single.command(name=name)(target)
        command = typer.main.get_command(single)
    command.name = name
    return command


def main() -> None:
    """Console-script entry point."""
    code: int = ExitCode.OK
    try:
        app()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        if isinstance(exc.code, str):
            sys.stderr.write(exc.code + "\n")
    except TradebotError as exc:  # raised outside a command (should not happen; be safe)
        from tradebot.cli.output import error_line

        error_line(exc.message, exc.details)
        code = exc.exit_code
    except KeyboardInterrupt:
        code = ExitCode.INTERRUPTED
    _exit_now(int(code))


def _exit_now(code: int) -> None:
    """Flush everything, then skip interpreter teardown (tens of ms of module cleanup).

    Safe because every durable write in tradebot is fsynced before it returns; only the
    buffered standard streams and log handlers need flushing here.
    """
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)
