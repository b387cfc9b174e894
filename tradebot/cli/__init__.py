"""The `tradebot` command: a thin layer that parses, calls the core, and renders.

Each command group lives in its own module with its own small Typer app. Our errors become one
line on stderr and the exit code of spec §1, in one place (`_ErrorsAsExitCodes`), so the same
mapping holds for the console script and for CliRunner tests.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from tradebot import __version__
from tradebot.cli.context import CliState
from tradebot.errors import ExitCode, TradebotError

log = logging.getLogger("tradebot")


class _ErrorsAsExitCodes(TyperGroup):
    """Turns TradebotError into its exit code, and anything unexpected into exit 1."""

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


def _debug(ctx: Any) -> bool:
    obj = ctx.find_root().obj
    return isinstance(obj, CliState) and obj.debug


def _flags_without_a_type() -> None:
    """Typer (0.29) shows `<bool>` after every on/off flag in --help, as if it took a value:
    a flag's type column stays empty instead."""
    from typer.core import TyperOption

    shown = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else shown(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_without_a_type()

app = typer.Typer(
    cls=_ErrorsAsExitCodes,
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


def _register() -> None:
    from tradebot.cli import (
        backtest_cmd,
        config_cmd,
        gateway_cmd,
        halt_cmd,
        journal_close_cmd,
        journal_cmd,
        notify_cmd,
        phase_cmd,
        remote_cmd,
        risk_cmd,
        run_cmd,
        status_cmd,
    )

    app.add_typer(phase_cmd.app, name="phase")
    app.add_typer(risk_cmd.app, name="risk")
    journal_app = typer.Typer(
        help="Closed trades and their metrics; `journal close` records an exit by hand.",
        no_args_is_help=False,
    )
    journal_app.callback(invoke_without_command=True)(journal_cmd.journal)
    journal_app.command(name="close")(journal_close_cmd.close)
    app.add_typer(journal_app, name="journal")
    app.command(name="run")(run_cmd.run)
    app.command(name="status")(status_cmd.status)
    app.command(name="halt")(halt_cmd.halt)
    app.command(name="resume")(halt_cmd.resume)
    app.add_typer(notify_cmd.app, name="notify")
    app.command(name="backtest")(backtest_cmd.backtest)
    app.add_typer(config_cmd.app, name="config")
    app.add_typer(gateway_cmd.app, name="gateway")
    app.add_typer(remote_cmd.app, name="remote")


_register()


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
