"""What a person reads, command by command, on one scene (a real simulated session, a phase
history, a gateway simulator): New York time with its zone and never UTC (while `--json` stays
UTC), and at 80 and at 120 columns nothing cut — ids, money, times and reasons whole, no line
wider than the terminal.

The scene's times are chosen so that a UTC time cannot pass for a New York one: the forced
transition is at 18:47Z (14:47 EDT), the last trades exit at 19:50Z (15:50 EDT).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from rich.console import Console
from typer.testing import CliRunner, Result

from tests.brokers.ibkr.conftest import ThreadedSim, config_text
from tests.market_time_text import BARE_TIME, UTC_SHOWN, utc_shown
from tests.notify.test_alerts import Endpoint
from tests.phase_helpers import transition
from tradebot.books.phase_records import PhaseRecords
from tradebot.books.trade_journal import TradeJournal
from tradebot.cli import app
from tradebot.cli.live_view import render
from tradebot.cli.output import fmt_money, fmt_time
from tradebot.config import NOTIFY_EVENTS
from tradebot.core.trades import ClosedTrade
from tradebot.engine.status import LoopStatus, OrderLine, PositionLine, SignalLine

FORCED_AT = datetime(2025, 7, 1, 18, 47, tzinfo=UTC)  # 14:47 EDT
RISK_AT = "2025-07-01T19:52:00Z"  # 15:52 EDT: after the entry window
SCENE = """
[broker.sim]
seed = 7

[trading]
mode = "paper"
symbols = ["SPY", "QQQ", "IWM"]  # enough trades on one session for every screen to fill
max_concurrent_symbols = 3

[monitoring]  # every alert, to a local endpoint: what a person reads on the phone
notify_urls = ["{url}"]
notify_on = {events}
"""

# Rich cuts with an ellipsis glued to the text ("take_p…"); a range "a … b" has spaces.
CUT = re.compile(r"\S…")
# A number at the end of a line whose unit starts the next ("win rate 46.2" / "%").
UNIT_CUT = re.compile(r"\d[ \t]*\n[ \t]*(?:%|R|s|ms|min|×|E[SD]T)(?!\w)")
DEMO = Path(__file__).parents[2] / "examples" / "demo.toml"


@dataclass
class Scene:
    root: Path
    config: Path
    trades: list[ClosedTrade] = field(default_factory=list)
    sim: ThreadedSim | None = None
    sim_config: Path | None = None
    alerts: Endpoint | None = None


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    root = tmp_path_factory.mktemp("scene")
    config = root / "config.toml"
    alerts = Endpoint()
    events = json.dumps(list(NOTIFY_EVENTS))
    config.write_text(SCENE.format(url=alerts.url, events=events), encoding="utf-8")
    done = CliRunner().invoke(app, ["--config", str(config), "run", "--start", "2025-07-01"])
    assert done.exit_code == 0, done.stderr
    deadline = time.monotonic() + 10  # alerts are sent from their own thread
    while "tradebot: stop" not in alerts.titles() and time.monotonic() < deadline:
        time.sleep(0.05)
    PhaseRecords(root / "logs").history.append(
        transition("proof", FORCED_AT, trigger="manual_override").as_record()
        | {"operator": "ops", "reason": "a long reason, " * 6 + "to see it wrap"}
    )
    trades = TradeJournal(root / "logs").read().trades
    assert len(trades) >= 8
    sim = ThreadedSim()  # frozen at 11:00 New York (15:00Z)
    sim_config = root / "gateway.toml"
    sim_config.write_text(config_text(sim.port, broker='clock = "gateway"'), encoding="utf-8")
    try:
        yield Scene(root, config, trades, sim, sim_config, alerts)
    finally:
        sim.stop()
        alerts.close()


def _invoke(args: list[str], columns: int = 80) -> Result:
    env = {"COLUMNS": str(columns), "LINES": "50"}
    return CliRunner().invoke(app, args, env=env, catch_exceptions=False)


def _commands(s: Scene, tmp: Path) -> dict[str, list[str]]:
    c = ["--config", str(s.config)]
    fresh = ["--config", str(s.config), "--logs", str(tmp / "fresh")]
    assert s.sim_config is not None
    return {
        "journal": [*c, "journal", "--limit", "0"],
        "journal --chart": [*c, "journal", "--limit", "3", "--chart"],
        "phase status": [*c, "phase", "status"],
        "phase export": [*c, "phase", "export"],
        "phase advance": [*c, "phase", "advance"],
        "risk check": [*c, "risk", "check", "--premium", "0.80", "--at", RISK_AT],
        "status": [*c, "status"],
        "halt": [*fresh, "halt", "--reason", "lunch break with a long explanation " * 3],
        "resume": [*fresh, "resume"],
        "run": [*fresh, "run", "--once", "--start", "2025-07-01T11:00"],
        "run before the open": [*fresh, "run", "--once", "--start", "2025-07-01T08:00"],
        "config check": [*c, "config", "check"],
        "config show": [*c, "config", "show"],
        "gateway test": ["--config", str(s.sim_config), "gateway", "test"],
    }


COMMANDS = [
    "journal",
    "journal --chart",
    "phase status",
    "phase export",
    "phase advance",
    "risk check",
    "status",
    "halt",
    "resume",
    "run",
    "run before the open",
    "config check",
    "config show",
    "gateway test",
]


def _expected(name: str, s: Scene) -> list[str]:
    """What must be on one line, whole, in that command's output."""
    last = sorted(s.trades, key=lambda t: (t.exit_time, t.trade_id))[-1]
    return {
        "journal": [
            *(t.trade_id for t in s.trades),
            *(fmt_money(t.pnl) for t in s.trades),
            *(fmt_time(t.exit_time) for t in s.trades),
            *(t.exit_reason for t in s.trades),
        ],
        "journal --chart": [last.trade_id, fmt_money(last.pnl), fmt_time(last.exit_time)],
        "phase status": ["since 2025-07-01 14:47 EDT", "$100.00"],
        "phase export": ["2025-07-01 14:47 EDT", "manual_override", "experience → proof"],
        "phase advance": ["sessions", "trades"],
        "risk check": ["2025-07-01 15:52:00 EDT", "2025-07-02 09:35", "$80.00"],
        "status": ["2025-07-02 00:00:00 EDT"],
        "halt": ["halted since"],
        "resume": ["resumed: entries may start again"],
        "run": ["2025-07-01 11:00 EDT"],
        "run before the open": ["next open 2025-07-01 09:30 EDT"],
        "config check": ["config OK"],
        "config show": ["[trading]"],
        "gateway test": ["2025-07-01 11:00:00 EDT", "DUSIM0001", "followed by `tradebot run`"],
    }[name]


def _check_screen(text: str, columns: int, expected: list[str], errors: str = "") -> None:
    """`text` (stdout) fits `columns`; nothing in it or in `errors` (stderr: one sentence the
    terminal wraps itself) is cut; each expected token is whole on one line."""
    lines = text.splitlines()
    too_wide = [line for line in lines if len(line.rstrip()) > columns]
    assert not too_wide, f"wider than {columns} columns: {too_wide[:3]}"
    every = lines + errors.splitlines()
    cut = [line for line in every if CUT.search(line)]
    assert not cut, f"cut: {cut[:3]}"
    parted = UNIT_CUT.findall(text)
    assert not parted, f"a number parted from its unit: {parted[:3]}"
    for token in expected:
        assert any(token in line for line in every), f"{token!r} is not whole on one line"


@pytest.mark.parametrize("name", COMMANDS)
def test_no_utc_time_reaches_a_persons_screen(name: str, scene: Scene, tmp_path: Path) -> None:
    """A golden rule per command: the times a person reads are New York times with their zone;
    nothing that reads as UTC is printed (stdout or stderr)."""
    commands = _commands(scene, tmp_path)
    if name == "resume":
        _invoke(commands["halt"])
    result = _invoke(commands[name], 120)
    assert result.exit_code in (0, 4), result.stderr
    screen = result.stdout + result.stderr
    assert not UTC_SHOWN.search(screen), UTC_SHOWN.findall(screen)
    times = re.findall(r"\b\d\d:\d\d(?::\d\d)?\b(?: E[SD]T)?", screen)
    assert times or name in ("config check", "config show", "phase advance", "resume")
    # Every time of day carries its zone (a time span shows it once, at its end).
    bare = [t for t in BARE_TIME.findall(screen) if t != "00:00"]
    assert not bare, bare


def test_no_utc_time_in_event_messages_alerts_or_log_lines(scene: Scene) -> None:
    """What the session wrote for a person — each event's message in events.jsonl, each alert
    (every event the loop can alert on, sent to a real endpoint) and each line of tradebot.log —
    shows New York time with its zone, never UTC; the records' own times stay UTC."""
    logs = scene.root / "logs"
    text = (logs / "journal" / "events.jsonl").read_text(encoding="utf-8")
    events = [json.loads(line) for line in text.splitlines()]
    kinds = {e["event"] for e in events}
    assert {"start", "position_closing", "session_end", "stop"} <= kinds
    assert all(e["ts"].endswith("Z") for e in events)
    assert not utc_shown(e["message"] for e in events)
    assert scene.alerts is not None
    titles = scene.alerts.titles()
    assert {"tradebot: start", "tradebot: entry", "tradebot: summary"} <= set(titles)
    assert not utc_shown(r["message"] for r in scene.alerts.received)
    lines = (logs / "tradebot.log").read_text(encoding="utf-8").splitlines()
    assert len(lines) > 20
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d E[SD]T", line) for line in lines)
    assert not utc_shown(lines)


def test_one_log_line_per_flatten_sell(scene: Scene) -> None:
    """Each sell of the flatten before the close is one `position_closing` event and one line
    of the log (issue 20, item 6), not the event plus a "before the close" line."""
    logs = scene.root / "logs"
    text = (logs / "journal" / "events.jsonl").read_text(encoding="utf-8")
    closing = [e for e in map(json.loads, text.splitlines()) if e["event"] == "position_closing"]
    assert len(closing) >= 2
    lines = (logs / "tradebot.log").read_text(encoding="utf-8").splitlines()
    for event in closing:
        ref = event["message"].split(":", 1)[0]
        said = [line for line in lines if f"{ref}: selling" in line]
        assert len(said) == 1, said


@pytest.mark.parametrize(
    "args",
    [
        ["journal", "--json"],
        ["phase", "export", "--json"],
        ["phase", "status", "--json"],
        ["risk", "check", "--json", "--at", RISK_AT],
        ["status", "--json"],
    ],
    ids=" ".join,
)
def test_json_stays_utc(args: list[str], scene: Scene) -> None:
    result = _invoke(["--config", str(scene.config), *args])
    doc = json.loads(result.stdout)
    text = json.dumps(doc)
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", text)
    assert "EDT" not in re.sub(r'"message": "[^"]*"|"[a-z_]*reason[a-z_]*": "[^"]*"', "", text)


def test_csv_stays_utc(scene: Scene) -> None:
    result = _invoke(["--config", str(scene.config), "journal", "--csv", "-"])
    assert "T19:50:00Z" in result.stdout or re.search(r"T\d\d:\d\d:\d\dZ", result.stdout)
    assert "EDT" not in result.stdout


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_keeps_ids_money_times_and_reasons_whole(
    name: str, columns: int, scene: Scene, tmp_path: Path
) -> None:
    commands = _commands(scene, tmp_path)
    if name == "resume":
        _invoke(commands["halt"])
    result = _invoke(commands[name], columns)
    assert result.exit_code in (0, 4), result.stderr
    _check_screen(result.stdout, columns, _expected(name, scene), result.stderr)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The journals `make demo` leaves: its configuration's session on the simulated broker."""
    logs = tmp_path_factory.mktemp("demo") / "logs"
    args = ["run", "--start", "2025-07-01", "--speed", "max"]
    done = _invoke(["--config", str(DEMO), "--logs", str(logs), *args])
    assert done.exit_code == 0, done.stderr
    return logs


@pytest.mark.parametrize("columns", [80, 120])
def test_the_demos_phase_status_keeps_numbers_with_their_units(columns: int, demo: Path) -> None:
    """`make demo`'s `phase status` at 80 columns once wrapped its window line between
    "win rate 46.2" and "%": numbers keep their units, times their zones."""
    result = _invoke(["--config", str(DEMO), "--logs", str(demo), "phase", "status"], columns)
    assert result.exit_code == 0, result.stderr
    rate = re.search(r"win rate (\d+\.\d %)", " ".join(result.stdout.split()))
    assert rate is not None, result.stdout
    _check_screen(result.stdout, columns, [rate.group(1), "avg R:R"], result.stderr)


@pytest.mark.parametrize("columns", [80, 120])
def test_journal_wide_shows_every_column(columns: int, scene: Scene) -> None:
    result = _invoke(["--config", str(scene.config), "journal", "--wide"], columns)
    header = next(line for line in result.stdout.splitlines() if "exit (New York)" in line)
    for column in ("strategy", "qty", "entry", "exit", "P&L", "R", "reason", "mode"):
        assert column in header
    assert not CUT.search(result.stdout)


def test_backtest_screen_and_report(scene: Scene, tmp_path: Path) -> None:
    """`tradebot backtest` at 80 columns: nothing cut, no UTC."""
    out = tmp_path / "bt"
    args = ["--config", str(scene.config), "backtest", "--synthetic", "--sessions", "1"]
    result = _invoke([*args, "--from", "2025-07-01", "--out", str(out)], 80)
    assert result.exit_code == 0, result.stderr
    _check_screen(result.stdout, 80, ["Report: ", "Trades: "])
    flat = "".join(result.stdout.split())  # a long folder folds over lines
    assert f"{out}/report.html" in flat and f"{out}/trades.csv" in flat
    assert not UTC_SHOWN.search(result.stdout)


POSITION = PositionLine(
    "SPY-250701-s12", "SPY 2025-07-03 625 C", "scalp", 1, Decimal("0.85"), Decimal("0.92"),
    Decimal("7.00"),
)  # fmt: skip
ORDER = OrderLine(
    "SPY-250701-s12.tp", "take_profit", "SPY 2025-07-03 625 C", "SELL", 1, "LMT",
    Decimal("1.70"), "submitted",
)  # fmt: skip
REASON = (
    "scalp BUY: close 625.10 > VWAP 624.90, EMA9 625.02 > EMA21 624.88, RSI 58.4 in [50, 70]; "
    "whale: HOLD: close 625.10 inside the 20-session range [601.20, 640.10]"
)


@pytest.mark.parametrize("columns", [80, 120])
def test_the_live_panel_keeps_reasons_whole(columns: int) -> None:
    at = datetime(2025, 7, 1, 15, 3, tzinfo=UTC)
    status = LoopStatus(
        pid=1, started=at, clock=at, broker="sim", mode="paper", connected=True, phase="proof",
        limits={"live_allowed": True, "max_entries_per_session": 1, "entries_this_session": 1,
                "position_cap_usd": Decimal(100)},
        equity=Decimal("10012.50"), day_pnl=Decimal("12.50"), halted=False, halt_reason=None,
        blocking=["entry_limit: phase proof allows 1 entry per session and 1 were made in the "
                  "2025-07-01 session; next allowed at the next session open (2025-07-02 09:35 "
                  "EDT)"],
        positions=[POSITION], orders=[ORDER],
        signals=[SignalLine("SPY", at, "BUY CALL", "scalp", REASON)],
        next_wake=at, last_error=None, clock_note="simulated, ×120",
    )  # fmt: skip
    console = Console(record=True, width=columns, color_system=None)
    console.print(render(status, columns))
    text = console.export_text()
    _check_screen(text, columns, ["SPY-250701-s12", "$7.00", "11:03 EDT", "$10,012.50"])
    assert not UTC_SHOWN.search(text)
    flat = " ".join(line.strip(" │") for line in text.splitlines())
    flat = re.sub(r"\s+", " ", flat)
    assert REASON in flat  # the whole reason, wrapped, nothing cut


def test_the_gateway_simulator_banner_is_in_market_time(scene: Scene) -> None:
    assert scene.sim is not None
    banner = scene.sim.sim.describe()
    assert "clock 2025-07-01 11:00:00 EDT frozen" in banner
    assert not UTC_SHOWN.search(banner)
