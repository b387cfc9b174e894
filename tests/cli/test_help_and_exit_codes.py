"""Every command has help; main() maps errors onto the documented exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer.main

from tests.cli.conftest import invoke, run_process
from tradebot.cli import app
from tradebot.errors import ExitCode

ROOT = Path(__file__).resolve().parents[2]


def _commands(group, prefix=()):  # type: ignore[no-untyped-def]
    # Through click's own listing: the top group is lazy (`group.commands` is empty until a
    # command is used), so reading `.commands` found nothing and the test below ran no case.
    # (Typer's groups come from its own copy of click: asked by duck typing, not isinstance.)
    for name in group.list_commands(None):
        command = group.get_command(None, name)
        yield (*prefix, name), command
        if hasattr(command, "list_commands"):
            yield from _commands(command, (*prefix, name))


ALL = list(_commands(typer.main.get_command(app)))


def test_the_command_list_is_not_empty() -> None:
    """The parametrised help test checks every command; it must have commands to check."""
    names = {" ".join(path) for path, _ in ALL}
    assert {"run", "status", "phase status", "journal", "risk check", "gateway sim"} <= names
    assert len(ALL) >= 25


@pytest.mark.parametrize("path,command", ALL, ids=[" ".join(p) for p, _ in ALL])
def test_every_command_has_help(path, command) -> None:  # type: ignore[no-untyped-def]
    assert command.help, f"tradebot {' '.join(path)} has no help text"
    result = invoke([*path, "--help"])
    assert result.exit_code == 0
    assert "Usage" in result.stdout


def test_version() -> None:
    result = invoke(["--version"])
    assert result.exit_code == 0
    assert result.stdout.startswith("tradebot ")


def test_unknown_command_is_usage_error() -> None:
    result = CliRunner_invoke(["jornal"])
    assert result.exit_code == ExitCode.USAGE


def CliRunner_invoke(args):  # type: ignore[no-untyped-def]
    from typer.testing import CliRunner

    return CliRunner().invoke(app, args)


def test_console_entry_point_exit_codes(tmp_path: Path) -> None:
    """The real process: bad config → 3 without traceback; ok → 0; usage → 2."""
    (tmp_path / "config.toml").write_text("[risk]\nmax_risk_pct = 500\n")
    bad = run_process(["config", "check"], tmp_path)
    assert bad.returncode == ExitCode.BAD_CONFIG
    assert "risk.max_risk_pct" in bad.stderr
    assert "Traceback" not in bad.stderr
    (tmp_path / "config.toml").write_text("")
    assert run_process(["config", "check"], tmp_path).returncode == ExitCode.OK
    assert run_process(["journal", "--since", "x"], tmp_path).returncode == ExitCode.USAGE
