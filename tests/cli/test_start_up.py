"""Start-up: a command imports what it uses and nothing else (issue 19, item 6).

Timing is measured in `make bench` (benchmarks/test_cli_speed.py, as ratios to the floor); these
tests hold the structure that makes it fast, from the modules a real `tradebot` process has
imported when it exits (whatever the machine's load): `--help` imports no command module and
none of typer's rich-help dependencies, the read-only commands that need no market calendar
never import pandas, numpy or exchange_calendars, and those that need session dates and times
(`risk check`, `status` with a position expiring today) do not either once the state directory
holds the calendar's cached copy (`tradebot.books.session_calendar`).
"""

from __future__ import annotations

import json
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


def probe(tmp_path: Path, *args: str) -> tuple[str, set[str]]:
    """A real `tradebot ARGS` process: its stdout and every module it had imported at exit."""
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
    return done.stdout, set(line.split()[1:])


def imported(tmp_path: Path, *args: str) -> set[str]:
    """Every module a real `tradebot ARGS` process has imported when it exits."""
    return probe(tmp_path, *args)[1]


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


# -- the calendar's cached copy: `risk check` and `status` without pandas -------------------------
AT = "2025-09-02T15:00:00Z"


def _cache(config: Path) -> Path:
    return config.parent / "logs" / "state" / "cache" / "calendar-XNYS.json"


def _risk_doc(tmp_path: Path, config: Path) -> tuple[dict[str, object], set[str]]:
    """`risk check --json` from a real process: its document and the modules it imported."""
    out, modules = probe(tmp_path, "--config", str(config), "risk", "check", "--json", "--at", AT)
    return json.loads(out), modules


def test_risk_check_imports_no_pandas_once_the_calendar_is_cached(
    tmp_path: Path, sample: Path
) -> None:
    """The first look (no copy yet) asks exchange_calendars and leaves a copy in the state
    directory; from then on `risk check` imports none of pandas, numpy, exchange_calendars, and
    says exactly what it said."""
    (sample.parent / "logs" / "state").mkdir()
    first, modules = _risk_doc(tmp_path, sample)
    assert "exchange_calendars" in modules  # the miss: exchange_calendars answered
    assert _cache(sample).is_file()
    second, modules = _risk_doc(tmp_path, sample)
    assert not set(HEAVY) & modules, sorted(set(HEAVY) & modules)
    assert second == first
    window = second["entry_window"]
    assert isinstance(window, dict)
    assert (window["opens"], window["closes"]) == ("2025-09-02T13:35:00Z", "2025-09-02T19:45:00Z")


def test_a_damaged_calendar_copy_is_ignored_and_replaced(tmp_path: Path, sample: Path) -> None:
    (sample.parent / "logs" / "state").mkdir()
    good, _ = _risk_doc(tmp_path, sample)
    _cache(sample).write_text(_cache(sample).read_text()[:-300])  # torn
    again, modules = _risk_doc(tmp_path, sample)
    assert again == good
    _, modules = _risk_doc(tmp_path, sample)  # the copy was written afresh
    assert not set(HEAVY) & modules


def test_a_config_that_never_ran_gets_no_state_directory(tmp_path: Path, sample: Path) -> None:
    _, modules = _risk_doc(tmp_path, sample)
    assert "exchange_calendars" in modules
    assert not (sample.parent / "logs" / "state").exists()


def _open_position_expiring_today(config: Path) -> None:
    """An entry filled in the journal, its option expiring today (New York)."""
    from datetime import UTC, datetime
    from decimal import Decimal

    from tradebot.books.journal_cache import CachedOrderJournal, CachedTradeJournal
    from tradebot.brokers.base import Execution
    from tradebot.core.instruments import OptionContract
    from tradebot.core.trades import session_of
    from tradebot.engine.events import EventLog
    from tradebot.engine.order_book import OrderBook, TrackedOrder

    logs = config.parent / "logs"
    now = datetime.now(UTC)
    today = session_of(now)
    book = OrderBook(CachedOrderJournal(logs), CachedTradeJournal(logs), EventLog(logs))
    contract = OptionContract("SPY", today, Decimal(600), "C")
    entry = TrackedOrder(
        ref="SPY-x-s1", role="entry", symbol="SPY", strategy="scalp", contract=contract,
        action="BUY", qty=1, order_type="LMT", tif="DAY", session=today, mode="paper",
        phase="experience", intent_ts=now, limit=Decimal("1.20"),
    )  # fmt: skip
    book.add_intent(now, entry)
    fill = Execution("e1", entry.ref, 1, 1, contract, "BOT", 1, Decimal("1.20"), now, Decimal(1))
    book._record_fill(now, book.orders[entry.ref], fill, 1)
    assert [p.entry.contract.expiry for p in book.open_positions()] == [today]


def test_status_with_a_position_expiring_today_imports_no_pandas(
    tmp_path: Path, sample: Path
) -> None:
    """`status` asks the calendar for today's close only when a position expires today, and
    then from the cached copy."""
    (sample.parent / "logs" / "state").mkdir()
    _open_position_expiring_today(sample)
    assert "exchange_calendars" in imported(tmp_path, "--config", str(sample), "status")
    assert _cache(sample).is_file()
    modules = imported(tmp_path, "--config", str(sample), "status")
    assert "tradebot.engine.schedule" in modules  # the expiry check ran
    assert not set(HEAVY) & modules, sorted(set(HEAVY) & modules)
