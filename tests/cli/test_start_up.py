"""Start-up: a command imports what it uses and nothing else (issue 19, item 6).

Timing is measured in `make bench` (benchmarks/test_cli_speed.py, as ratios to the floor); these
tests hold the structure that makes it fast, from the modules a real `tradebot` process has
imported when it exits (whatever the machine's load): `--help` imports no command module and
none of typer's rich-help dependencies, and the read-only commands that need no market calendar
never import pandas, numpy or exchange_calendars.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tradebot.cli import COMMANDS, load_command

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sample"
HEAVY = ("pandas", "numpy", "exchange_calendars")


# The console script's own `main`, which reports `sys.modules` on its way out.
PROBE = """
import sys
import tradebot.cli as cli

exit_now = cli._exit_now

def report(code):
    sys.stderr.write("MODULES " + " ".join(sorted(sys.modules)) + "\\n")
    exit_now(code)

cli._exit_now = report
sys.argv = ["tradebot", *sys.argv[1:]]
cli.main()
"""


def imported(tmp_path: Path, *args: str) -> set[str]:
    """Every module a real `tradebot ARGS` process has imported when it exits."""
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert done.returncode in (0, 4), done.stderr[-2000:]
    [line] = [x for x in done.stderr.splitlines() if x.startswith("MODULES ")]
    return set(line.split()[1:])


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    """A copy of examples/sample (a config and a 60-trade journal) to run commands against."""
    shutil.copytree(SAMPLE, tmp_path / "sample")
    return tmp_path / "sample" / "config.toml"


def test_the_command_table_is_each_commands_own_help_and_fits_80_columns() -> None:
    for name, (_, _, text) in COMMANDS.items():
        command = load_command(name)
        first = " ".join((command.help or "").split("\n\n")[0].split())
        assert first == text, name
        assert 2 + max(map(len, COMMANDS)) + 2 + len(text) <= 80, name


def test_help_imports_no_command_module_and_no_rich_help(tmp_path: Path) -> None:
    modules = imported(tmp_path, "--help")
    commands = sorted(m for m in modules if m.startswith("tradebot.cli.") and m.endswith("_cmd"))
    assert commands == []
    assert not {"rich.markdown", "markdown_it", "pygments", "typer.rich_utils"} & modules
    assert not set(HEAVY) & modules


@pytest.mark.parametrize(
    ("args", "module"),
    [
        (("status",), "tradebot.cli.status_cmd"),
        (("phase", "status"), "tradebot.cli.phase_cmd"),
        (("journal",), "tradebot.cli.journal_cmd"),
    ],
)
def test_read_only_commands_import_their_own_module_and_never_pandas(
    tmp_path: Path, sample: Path, args: tuple[str, ...], module: str
) -> None:
    modules = imported(tmp_path, "--config", str(sample), *args)
    commands = {m for m in modules if m.startswith("tradebot.cli.") and m.endswith("_cmd")}
    assert module in commands
    assert commands <= {module, "tradebot.cli.journal_close_cmd"}  # journal's own sub-command
    assert not set(HEAVY) & modules, sorted(set(HEAVY) & modules)
