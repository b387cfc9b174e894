"""Command start-up against the floor (issue 19 item 6; spec §8's `--help` ≤ 0.3 s).

The floor is `python -c "import typer, rich.console, pydantic"`: what any Typer + rich +
pydantic command pays before doing anything. Each command is timed in the same run as the floor,
in CPU time of the child process (user + sys: less at the mercy of this shared machine's other
load than wall time), the least of 9 runs, and reported as a ratio: met / NOT MET.

The commands run against a copy of examples/sample whose state directory exists, as a bot's
does once it has run: `risk check` reads the calendar's cached copy there (the first look writes
it). The same command on a config that never ran (no copy: exchange_calendars answers) is
printed for comparison.
"""

from __future__ import annotations

import resource
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.conftest import TRADEBOT

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "sample" / "config.toml"
FLOOR = [sys.executable, "-c", "import typer, rich.console, pydantic"]
TARGETS = {  # command: the ratio to the floor it must stay within
    "--help": 1.3,
    "phase status": 2.0,
    "status": 2.0,
    "journal": 2.5,
    "risk check": 3.0,
}
HELP_TARGET_S = 0.3


def cpu_s(argv: list[str], cwd: Path, runs: int = 9) -> float:
    best = float("inf")
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(argv, cwd=cwd, check=False, capture_output=True)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        spent = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best = min(best, spent)
    return best


def command(name: str, config: Path = SAMPLE) -> list[str]:
    args = name.split()
    return [str(TRADEBOT), *([] if name == "--help" else ["--config", str(config)]), *args]


def sample_copy(root: Path, *, ran: bool) -> Path:
    """A copy of examples/sample; `ran`: with the state directory a loop leaves behind."""
    shutil.copytree(SAMPLE.parent, root)
    if ran:
        (root / "logs" / "state").mkdir()
    return root / SAMPLE.name


def test_command_start_up_against_the_floor(benchmark, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """One measured round (`benchmark` only makes `make bench` run it; the figures are CPU)."""
    benchmark.pedantic(lambda: measure(tmp_path), rounds=1, iterations=1)


def measure(tmp_path: Path) -> None:
    config = sample_copy(tmp_path / "sample", ran=True)
    subprocess.run(command("risk check", config), check=False, capture_output=True)
    floor = cpu_s(FLOOR, tmp_path)
    print(f"\nfloor (import typer, rich.console, pydantic): {floor * 1000:.0f} ms CPU")
    failed = []
    for name, target in TARGETS.items():
        spent = cpu_s(command(name, config), tmp_path)
        ratio = spent / floor
        verdict = "met" if ratio <= target else "NOT MET"
        print(
            f"tradebot {name}: {spent * 1000:.0f} ms CPU, {ratio:.2f}x the floor, "
            f"target <= {target}x: {verdict}"
        )
        if name == "--help" and spent > HELP_TARGET_S:
            failed.append(f"--help {spent:.3f} s > {HELP_TARGET_S} s")
    never_ran = sample_copy(tmp_path / "never-ran", ran=False)
    spent = cpu_s(command("risk check", never_ran), tmp_path, runs=3)
    print(
        f"tradebot risk check, no calendar copy (a config that never ran): "
        f"{spent * 1000:.0f} ms CPU, {spent / floor:.2f}x the floor"
    )
    assert not failed, failed
