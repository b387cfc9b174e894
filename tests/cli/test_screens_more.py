"""What a person reads, for the commands tests/cli/test_screens.py's scene leaves out (issue 20):
`notify test`, `journal close`, `phase set-password`, `phase advance --force`, `phase export`
with recorded metrics, `remote check`, `config show` of a full configuration and `gateway test`
degraded or unreachable. Each at 80 and at 120 columns: the exit code, New York time with its
zone and never UTC, no line wider than the terminal, nothing cut, a number never parted from
its unit, and the ids, money, times and reasons of that screen whole on one line.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import tomllib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tests.brokers.ibkr.conftest import CLIENT_ID, ThreadedSim
from tests.cli.test_screens import _check_screen
from tests.market_time_text import BARE_TIME, UTC_SHOWN
from tests.notify.test_alerts import Endpoint
from tests.phase_helpers import series_of
from tests.remote.conftest import OPERATOR, STRANGER, remote_config
from tests.remote.fake_telegram import SECRET, TOKEN, FakeTelegram
from tradebot.books.journal_cache import CachedOrderJournal, CachedTradeJournal
from tradebot.books.trade_journal import TradeJournal
from tradebot.cli import app
from tradebot.engine.events import EventLog
from tradebot.engine.order_book import OrderBook, TrackedOrder

COLUMNS = [80, 120]
PASSWORD = "correct horse battery"
SCENE = """
[broker.sim]
seed = 7

[trading]
mode = "paper"
symbols = ["SPY", "QQQ", "IWM"]
max_concurrent_symbols = 3
"""
STATEMENT = "stop filled 07-01 at 14:20 EDT while tradebot was stopped, per the IB statement"


def _invoke(
    args: list[str], columns: int, *, input: str | None = None, env: dict[str, str] | None = None
) -> Result:
    return CliRunner().invoke(
        app,
        args,
        input=input,
        env={"COLUMNS": str(columns), "LINES": "50", **(env or {})},
        catch_exceptions=False,
    )


def _screen(
    result: Result, code: int, columns: int, expected: list[str], *, quoted: str = ""
) -> str:
    """`result` exited `code`, shows no UTC and no zone-less time of day (stdout or stderr;
    `quoted`, what the operator typed, aside), and is whole at `columns` (`_check_screen` of
    test_screens.py); its stdout + stderr."""
    assert result.exit_code == code, (result.exit_code, result.stdout, result.stderr)
    screen = result.stdout + result.stderr
    assert not UTC_SHOWN.search(screen), UTC_SHOWN.findall(screen)
    bare = [t for t in BARE_TIME.findall(screen.replace(quoted, "")) if t != "00:00"]
    assert not bare, bare
    assert "Traceback" not in screen
    _check_screen(result.stdout, columns, expected, result.stderr)
    return screen


def _closed_port() -> int:
    with socket.socket() as s:  # a port nobody listens on once it is closed
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# -- notify test -------------------------------------------------------------------------------


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    made = Endpoint()
    yield made
    made.close()


@pytest.mark.parametrize("columns", COLUMNS)
def test_notify_test_with_a_failing_url(columns: int, tmp_path: Path, endpoint: Endpoint) -> None:
    """One URL that works, one json:// to a closed local port with a secret path and token:
    each is named by its place and server, the failing one says so, exit 4, nothing secret."""
    closed = _closed_port()
    secret = "hooks/b7f3c9e1d2a4-private-path?token=9f8e7d6c5b4a"
    config = tmp_path / "config.toml"
    config.write_text(
        SCENE + f'[monitoring]\nnotify_urls = ["{endpoint.url}", '
        f'"json://127.0.0.1:{closed}/{secret}"]\n',
        encoding="utf-8",
    )
    result = _invoke(["--config", str(config), "notify", "test"], columns)
    good = endpoint.server.server_address[1]
    screen = _screen(
        result,
        4,
        columns,
        [f"#1 json://127.0.0.1:{good}/***", f"#2 json://127.0.0.1:{closed}/***", "failed ("],
    )
    assert re.search(rf"#1 json://127\.0\.0\.1:{good}/\*\*\*\s+ok\b", result.stdout)
    assert "b7f3c9e1d2a4" not in screen and "9f8e7d6c5b4a" not in screen and "hook" not in screen
    assert endpoint.titles() == ["tradebot: test"]


# -- journal close -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def open_trades(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real simulated session stopped at 11:30 New York: three trades open (their take-profit
    and stop working), one closed (QQQ-250701-s1), one entry expired unfilled."""
    root = tmp_path_factory.mktemp("open")
    config = root / "config.toml"
    config.write_text(SCENE, encoding="utf-8")
    args = ["--config", str(config), "run", "--start", "2025-07-01", "--until", "2025-07-01T11:30"]
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.stderr
    book = _book(root)
    assert {p.entry.ref for p in book.open_positions()} >= {"SPY-250701-s1", "IWM-250701-s1"}
    assert [t.trade_id for t in TradeJournal(root / "logs").read().trades] == ["QQQ-250701-s1"]
    return root


def _book(root: Path) -> OrderBook:
    logs = root / "logs"
    book = OrderBook(CachedOrderJournal(logs), CachedTradeJournal(logs), EventLog(logs))
    book.refresh()
    return book


def _copy(template: Path, tmp_path: Path) -> Path:
    """A copy of the session's folder (each test changes its journals); its config.toml."""
    root = tmp_path / "scene"
    shutil.copytree(template, root, ignore=shutil.ignore_patterns("*.lock"))
    return root / "config.toml"


def _close(config: Path, ref: str, *extra: str) -> list[str]:
    return ["--config", str(config), "journal", "close", ref, "--operator", "ops", *extra]


@pytest.mark.parametrize("columns", COLUMNS)
def test_journal_close_confirms_what_it_recorded(
    columns: int, open_trades: Path, tmp_path: Path
) -> None:
    """The operator records a stop IB filled while tradebot was stopped: the screen says what
    was recorded (trade, quantity, price, who) and the trade it closed with its P&L."""
    config = _copy(open_trades, tmp_path)
    at = "2025-07-01T14:20:00-04:00"
    args = _close(config, "SPY-250701-s1", "--price", "0.47", "--time", at, "--reason", STATEMENT)
    result = _invoke(args, columns)
    trade = TradeJournal(config.parent / "logs").read().trades[-1]
    assert trade.trade_id == "SPY-250701-s1" and trade.exit_reason == "manual"
    assert trade.exit_time == datetime(2025, 7, 1, 18, 20, tzinfo=UTC)
    assert trade.pnl == (Decimal("0.47") - trade.entry_price) * 100 - trade.commission
    _screen(
        result,
        0,
        columns,
        ["recorded the exit of SPY-250701-s1: 1 at 0.47 by ops", f"P&L {trade.pnl:+.2f} (manual)"],
    )


@pytest.mark.parametrize("columns", COLUMNS)
def test_journal_close_refusals_change_nothing(
    columns: int, open_trades: Path, tmp_path: Path
) -> None:
    """Each refusal is one sentence naming the trade or the argument and what to do, with its
    exit code (4 refused, 2 bad input), and the journals are unchanged."""
    config = _copy(open_trades, tmp_path)
    logs = config.parent / "logs"
    # IWM's position has a closing sell still working (as the loop's flatten leaves it between
    # sending a sell and its fill).
    book = _book(config.parent)
    entry = book.orders["IWM-250701-s1"]
    now = datetime.now(UTC)
    sell = TrackedOrder(
        ref=f"{entry.ref}.x1", role="exit", symbol=entry.symbol, strategy=entry.strategy,
        contract=entry.contract, action="SELL", qty=1, order_type="MKT", tif="DAY",
        session=entry.session, mode=entry.mode, phase=entry.phase, intent_ts=now,
        parent_ref=entry.ref, exit_reason="flatten",
    )  # fmt: skip
    book.add_intent(now, sell)
    book.mark_submitted(now, sell.ref, 901, 9901, "Submitted")
    before = {p.name: p.read_bytes() for p in (logs / "journal").glob("*.jsonl")}
    price = ["--price", "0.50", "--reason", STATEMENT]
    typed = "'2025-07-01 14:20' needs a time zone (e.g. -04:00"  # the operator's own text
    cases: list[tuple[list[str], int, list[str], str]] = [
        (
            _close(config, "IWM-250701-s1", *price),
            4,
            ["IWM-250701-s1 has a closing order working at the broker", "cancel it in TWS"],
            "",
        ),
        (
            _close(config, "QQQ-250701-s1", *price),
            4,
            ["QQQ-250701-s1 has nothing open in the journal: nothing to close"],
            "",
        ),
        (_close(config, "SPY-250701-s9", *price), 2, ["'SPY-250701-s9' is not a trade in"], ""),
        (
            _close(config, "SPY-250701-s1", "--price", "0.5x", "--reason", STATEMENT),
            2,
            ["--price '0.5x' is not a number; write it like 1.25"],
            "",
        ),
        (
            _close(config, "SPY-250701-s1", *price, "--time", "2025-07-01 14:20"),
            2,
            [f"--time {typed} or Z)"],
            typed,
        ),
        (
            _close(config, "SPY-250701-s1", "--price", "0.50", "--reason", " "),
            2,
            ["--reason is empty; say how the trade ended"],
            "",
        ),
    ]
    for args, code, expected, quoted in cases:
        result = _invoke(args, columns)
        assert result.stdout == "", result.stdout
        # stderr is one sentence the terminal wraps itself: its tokens whole on its one line.
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        _screen(result, code, columns, expected, quoted=quoted)
    after = {p.name: p.read_bytes() for p in (logs / "journal").glob("*.jsonl")}
    assert after == before


# -- phase set-password, advance --force, export -----------------------------------------------


@pytest.mark.parametrize("columns", COLUMNS)
def test_phase_set_password_from_stdin(columns: int, tmp_path: Path) -> None:
    """Set, change, a wrong current password and a missing second line: what each says, and
    the warning log line (New York time) on stderr, never the password."""
    config = tmp_path / "config.toml"
    config.write_text(SCENE, encoding="utf-8")
    args = ["--config", str(config), "phase", "set-password", "--password-stdin"]
    state = str(tmp_path / "logs" / "state")
    steps = [
        (PASSWORD + "\n", 0, ["override password set", "salted scrypt hash"]),
        (f"{PASSWORD}\nnew {PASSWORD}\n", 0, ["override password changed"]),
        (f"not the {PASSWORD}\nyet another one\n", 4, ["the current override password is wrong"]),
        (f"new {PASSWORD}\n", 2, ["--password-stdin: a password is already set"]),
    ]
    for stdin, code, expected in steps:
        result = _invoke(args, columns, input=stdin)
        screen = _screen(result, code, columns, expected)
        assert PASSWORD not in screen and "another" not in screen
        if code == 0:
            assert state in "".join(result.stdout.split())  # where the hash is, whole
            assert re.search(r"E[SD]T WARNING phase override password (set|changed)", screen)


@pytest.mark.parametrize("columns", COLUMNS)
def test_phase_override_lists_the_unmet_criteria(columns: int, tmp_path: Path) -> None:
    """`phase advance --force` with no trades: the move, who, and each unmet criterion with its
    number and threshold (a percentage keeps its `%`)."""
    config = tmp_path / "config.toml"
    config.write_text(SCENE, encoding="utf-8")
    c = ["--config", str(config), "phase"]
    assert (
        _invoke([*c, "set-password", "--password-stdin"], 80, input=PASSWORD + "\n").exit_code == 0
    )
    reason = "rehearsing proof on the simulator before the account is funded " * 2
    args = [*c, "advance", "--force", "--to", "proof", "--password-stdin", "--operator", "ops"]
    result = _invoke([*args, "--reason", reason], columns, input=PASSWORD + "\n")
    _screen(
        result,
        0,
        columns,
        [
            "phase: experience → proof (manual_override, by ops)",
            "criteria were not met; recorded in the history:",
            "trades 0 (needs >= 20)",
            "win_rate n/a (needs >= 60.0 %)",
        ],
    )


@pytest.fixture
def advanced(tmp_path: Path) -> Path:
    """30 paper trades, 23 of them wins (a 76.666… % win rate), one session each, then a real
    `phase advance` experience → proof: its record carries the window's metrics."""
    config = tmp_path / "config.toml"
    config.write_text(SCENE, encoding="utf-8")
    journal = TradeJournal(tmp_path / "logs")
    pnls: list[int | str] = [100, 100, 100, -20] * 7 + [100, 100]
    assert (len(pnls), pnls.count(100)) == (30, 23)
    for t in series_of(pnls):
        journal.append(t)
    moved = _invoke(["--config", str(config), "phase", "advance", "--operator", "ops"], 120)
    assert moved.exit_code == 0, moved.stdout + moved.stderr
    assert "experience → proof" in moved.stdout
    return config


@pytest.mark.parametrize("columns", COLUMNS)
def test_phase_export_shows_the_win_rate_as_a_percentage(columns: int, advanced: Path) -> None:
    """`phase export` shows the recorded win rate as `76.7 %` (a percentage, like `phase
    status` and `journal`), never the stored fraction `0.7666…`; `--json` keeps the record's
    fraction for scripts. The table fits the terminal (the win-rate column where there is
    room); `--wide` shows every column, unwrapped."""
    config = ["--config", str(advanced), "phase", "export"]
    doc = json.loads(_invoke([*config, "--json"], 80).stdout)
    (record,) = doc["transitions"]
    assert Decimal(record["metrics"]["win_rate"]).quantize(Decimal("0.0001")) == Decimal("0.7667")
    assert record["metrics"]["trades"] == 30
    plain = _invoke(config, columns)
    screen = _screen(plain, 0, columns, ["experience → proof", "advance", "met"])
    wide = _invoke([*config, "--wide"], columns)
    assert wide.exit_code == 0, wide.stderr
    for shown in (screen, wide.stdout):
        assert "0.766" not in shown and "0.767" not in shown
    header = next(line for line in wide.stdout.splitlines() if "time (New York)" in line)
    assert "win rate" in header and "trades" in header
    row = next(line for line in wide.stdout.splitlines() if "experience → proof" in line)
    assert re.search(r"\b30\s+76\.7 %", row), row
    if "win rate" in plain.stdout:
        assert "76.7 %" in plain.stdout
    assert columns < 120 or "76.7 %" in plain.stdout  # room for it at 120


# -- remote check ------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", COLUMNS)
def test_remote_check_against_the_fake_bot_api(
    columns: int, tmp_path: Path, fake: FakeTelegram
) -> None:
    """Ready: the bot, the allow-list, the recent senders with their message times in New York
    (18:47Z shows as 14:47 EDT), `ready at` a New York time; with a webhook set, the problem
    (exit 4); with Telegram unreachable, exit 5. Never the token."""
    remote_config(tmp_path, fake.url)
    config = ["--config", str(tmp_path / "config.toml")]
    sent = datetime(2025, 7, 1, 18, 47, tzinfo=UTC)
    fake.message(STRANGER, "hello", date=sent.timestamp())
    fake.message(
        OPERATOR, "/start", chat_type="group", date=(sent + timedelta(minutes=5)).timestamp()
    )
    env = {"TRADEBOT_TELEGRAM_TOKEN": TOKEN}
    ready = _invoke([*config, "remote", "check"], columns, env=env)
    screens = [
        _screen(
            ready,
            0,
            columns,
            [
                "token: 7012345678:**********",
                "bot: @tradebot_test_bot",
                f"allowed user ids: {OPERATOR}",
                f"user id {STRANGER} in a private chat, 2025-07-01 14:47",
                f"user id {OPERATOR} in a group chat, 2025-07-01 14:52",
                "ready at",
            ],
        )
    ]
    assert "2025-07-01 14:47 EDT" in ready.stdout or "2025-07-01 14:47:00 EDT" in ready.stdout
    fake.webhook = True
    hooked = _invoke([*config, "remote", "check"], columns, env=env)
    screens.append(_screen(hooked, 4, columns, ["webhook"]))
    assert "ready at" not in hooked.stdout
    remote_config(tmp_path, f"http://127.0.0.1:{_closed_port()}")
    gone = _invoke([*config, "remote", "check"], columns, env=env)
    screens.append(_screen(gone, 5, columns, ["Telegram unreachable"]))
    assert not any(SECRET in s for s in screens), "the bot token leaked"


# -- config show -------------------------------------------------------------------------------


@pytest.mark.parametrize("columns", COLUMNS)
def test_config_show_of_a_full_configuration(columns: int, tmp_path: Path) -> None:
    """Alerts, the remote and every table: TOML a person reads within the terminal and a
    script can parse back (`config show > effective.toml`), the secrets masked. A path longer
    than the terminal stays on its own comment line: re-wrapped, it would no longer be TOML."""
    config = tmp_path / "config.toml"
    config.write_text(
        SCENE + '[monitoring]\nnotify_urls = ["ntfys://ntfy.sh/my-secret-topic-7f3a", '
        '"json://user:pw@hooks.example.com:8443/path/TOKEN9"]\n'
        f'[remote]\nallowed_user_ids = [{OPERATOR}, {STRANGER}]\napi_url = "http://127.0.0.1:1"\n',
        encoding="utf-8",
    )
    result = _invoke(["--config", "config.toml", "config", "show"], columns)  # run from tmp_path
    screen = _screen(
        result, 0, columns, ["[monitoring]", "[remote]", "[phase.proof]", "**********"]
    )
    assert "my-secret-topic" not in screen and "TOKEN9" not in screen and ":pw@" not in screen
    assert result.stdout.startswith("# effective configuration from\n# config.toml\n")
    shown = tomllib.loads(result.stdout)
    assert shown["remote"]["allowed_user_ids"] == [OPERATOR, STRANGER]
    assert shown["trading"]["symbols"] == ["SPY", "QQQ", "IWM"]
    deep = tmp_path / ("a-folder-with-a-long-name-" * 3) / "config.toml"
    deep.parent.mkdir()
    shutil.copy(config, deep)
    far = _invoke(["--config", str(deep), "config", "show"], columns)
    assert far.exit_code == 0, far.stderr
    assert tomllib.loads(far.stdout) == shown
    assert far.stdout.splitlines()[1] == f"# {deep}"
    assert all(len(line) <= columns for line in far.stdout.splitlines()[2:])


# -- gateway test ------------------------------------------------------------------------------


def _gateway_config(tmp_path: Path, port: int) -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[broker]\nkind = "ibkr"\nport = {port}\nclient_id = {CLIENT_ID}\ntimeout_s = 1\n'
        '[trading]\nmode = "paper"\nsymbols = ["SPY", "QQQ"]\n',
        encoding="utf-8",
    )
    return config


@pytest.mark.parametrize("columns", COLUMNS)
def test_gateway_test_unreachable_says_the_usual_causes_once(columns: int, tmp_path: Path) -> None:
    """Nothing listens: exit 5, the address tried and each usual cause once (the error sentence
    names them; no second list after it), on stdout, nothing on stderr."""
    port = _closed_port()
    result = _invoke(["--config", str(_gateway_config(tmp_path, port)), "gateway", "test"], columns)
    screen = _screen(result, 5, columns, ["unreachable:", f"127.0.0.1:{port}"])
    flat = " ".join(screen.split())
    for cause in ("Enable ActiveX and Socket Clients", "4002 paper / 4001 live", "Trusted IPs"):
        assert flat.count(cause) == 1, (cause, screen)
    assert "usual causes" not in screen
    assert flat.count("cannot reach IB Gateway") == 1
    assert result.stderr == ""


@pytest.mark.parametrize("columns", COLUMNS)
def test_gateway_test_degraded_against_the_simulator(
    columns: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Gateway whose API is Read-Only and an account without option data (gateway_sim's
    faults): exit 4, what works, each problem whole, the gateway's clock in New York time."""
    sim = ThreadedSim()  # frozen at 11:00 New York
    try:
        monkeypatch.setattr("tradebot.brokers.ibkr.probe._wall", sim.sim.clock.now)
        sim.call(sim.sim.faults.set_read_only_api)
        sim.call(sim.sim.faults.option_data_permission, "*", "none")
        config = _gateway_config(tmp_path, sim.port)
        result = _invoke(["--config", str(config), "gateway", "test"], columns)
    finally:
        sim.stop()
    screen = _screen(
        result,
        4,
        columns,
        [
            f"(client id {CLIENT_ID + 1})",
            "account DUSIM0001",
            "orders: refused: the API is Read-Only",
            "clock: gateway 2025-07-01 11:00:00 EDT",
            "degraded: 2 problem(s)",
        ],
    )
    assert "+0.0 s from this machine's" in " ".join(screen.split())
