"""`tradebot phase status | advance | set-password | export` through the real CLI."""

from __future__ import annotations

import csv
import io
import json
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.conftest import invoke, run_process
from tests.phase_helpers import series_of
from tradebot.storage import JsonlFile

PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[2]

STATUS_KEYS = {
    "v",
    "phase",
    "next_phase",
    "since",
    "session",
    "counted_modes",
    "eligible",
    "criteria",
    "metrics",
    "limits",
    "drawdown",
    "downgrade",
    "downgrade_watch",
    "downgraded_this_session",
    "equity",
    "override",
    "warnings",
    "not_counted",
}


def _history(tmp_path: Path) -> list[dict]:  # type: ignore[type-arg]
    return JsonlFile(tmp_path / "logs" / "phase" / "phase-history.jsonl").read().records


def _audit(tmp_path: Path) -> list[dict]:  # type: ignore[type-arg]
    return JsonlFile(tmp_path / "logs" / "phase" / "phase-overrides.jsonl").read().records


def _set_password(password: str = PASSWORD) -> None:
    result = invoke(["phase", "set-password", "--password-stdin"], input=password + "\n")
    assert result.exit_code == 0, result.stderr


def _force(to: str, password: str, *extra: str):  # type: ignore[no-untyped-def]
    return invoke(
        [
            "phase",
            "advance",
            "--force",
            "--to",
            to,
            "--password-stdin",
            "--operator",
            "bob",
            "--reason",
            "testing",
            *extra,
        ],
        input=password + "\n",
    )


# -- status --------------------------------------------------------------------------------
def test_status_json_contract(journal) -> None:  # type: ignore[no-untyped-def]
    journal(*series_of([100] * 12 + [-40] * 3))
    result = invoke(["phase", "status", "--json"])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(result.stdout)
    assert set(doc) == STATUS_KEYS
    assert doc["phase"] == "experience" and doc["next_phase"] == "proof"
    assert doc["eligible"] is False
    assert [c["name"] for c in doc["criteria"]] == [
        "profitable_sessions",
        "trades",
        "win_rate",
        "avg_rr",
    ]
    assert set(doc["criteria"][0]) == {"name", "op", "required", "actual", "met", "unit", "note"}
    trades = doc["criteria"][1]
    assert (trades["required"], trades["actual"], trades["met"]) == ("20", "15", False)
    assert doc["criteria"][2]["actual"] == "80"  # win rate in percent
    assert set(doc["limits"]) == {
        "max_entries_per_session",
        "entries_this_session",
        "entries_cancelled_unfilled",
        "position_cap_usd",
        "live_allowed",
    }
    assert doc["limits"]["position_cap_usd"] == "100"
    assert doc["limits"]["live_allowed"] is False
    assert doc["downgrade"] is None
    assert doc["metrics"]["trades"] == 15
    assert doc["override"] == {"password_set": False, "password_source": None, "locked_until": None}


def test_status_human(journal) -> None:  # type: ignore[no-untyped-def]
    journal(*series_of([100] * 20))
    result = invoke(["phase", "status"])
    assert result.exit_code == 0
    assert "Phase: experience" in result.stdout
    assert "Criteria for proof" in result.stdout
    assert "eligible" in result.stdout
    assert "Downgrade watch" in result.stdout


def test_status_with_corrupt_history_fails_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "phase" / "phase-history.jsonl"
    path.parent.mkdir(parents=True)
    path.write_text('{"v":1}\n{"v":1,"transition_id":"a"}\n')
    result = invoke(["phase", "status"])
    assert result.exit_code == 4  # refused: a damaged record is never a bug of ours (exit 1)
    assert "phase-history.jsonl:1" in result.stderr
    assert "every new entry is refused" in result.stderr
    assert "Traceback" not in result.stderr


# -- earned advance ------------------------------------------------------------------------
def test_advance_refused_lists_unmet_criteria(journal) -> None:  # type: ignore[no-untyped-def]
    journal(*series_of([100] * 19))
    result = invoke(["phase", "advance"])
    assert result.exit_code == 4
    assert "experience → proof refused: 2 criterion(s) not met" in result.stderr
    assert "trades 19 (needs >= 20)" in result.stderr
    assert "profitable_sessions 19 (needs >= 20)" in result.stderr


def test_advance_when_eligible(journal, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    journal(*series_of([100] * 20))
    result = invoke(["phase", "advance", "--operator", "alice", "--reason", "20 good sessions"])
    assert result.exit_code == 0, result.stderr
    assert "experience → proof" in result.stdout
    [rec] = _history(tmp_path)
    assert rec["trigger"] == "advance" and rec["operator"] == "alice"


def test_advance_to_must_be_next_phase(journal) -> None:  # type: ignore[no-untyped-def]
    journal(*series_of([100] * 20))
    assert invoke(["phase", "advance", "--to", "trial"]).exit_code == 2
    assert invoke(["phase", "advance", "--to", "bogus"]).exit_code == 2
    assert invoke(["phase", "advance", "--force"]).exit_code == 2


def test_two_processes_advancing_at_once_make_one_transition(tmp_path: Path) -> None:
    for round_ in range(3):
        cwd = tmp_path / f"r{round_}"
        cwd.mkdir()
        from tradebot.books.trade_journal import TradeJournal

        j = TradeJournal(cwd / "logs")
        for t in series_of([100] * 20):
            j.append(t)
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tradebot", "phase", "advance"],
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        codes = sorted(p.wait(timeout=60) for p in procs)
        for p in procs:
            p.communicate()
        assert codes == [0, 4]  # one advanced; the other found proof -> trial not earned
        assert len(_history(cwd)) == 1


# -- override -------------------------------------------------------------------------------
def test_no_password_set_refuses_force_with_instructions(tmp_path: Path) -> None:
    result = _force("proof", "anything")
    assert result.exit_code == 4
    assert "no override password is set" in result.stderr
    assert "tradebot phase set-password" in result.stderr
    assert _audit(tmp_path)[-1]["outcome"] == "no_password"
    assert _history(tmp_path) == []


def test_right_password_forces_and_records_unmet_criteria(journal, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    journal(*series_of([100] * 5))
    _set_password()
    result = _force("trial", PASSWORD)
    assert result.exit_code == 0, result.stderr
    assert "criteria were not met" in result.stdout
    [rec] = _history(tmp_path)
    assert (rec["from_phase"], rec["to_phase"], rec["trigger"]) == (
        "experience",
        "trial",
        "manual_override",
    )
    assert rec["validation_passed"] is False
    assert "trades 5 (needs >= 20)" in rec["failures"]
    assert "skips proof: its criteria were never evaluated" in rec["failures"]
    assert rec["operator"] == "bob" and rec["reason"] == "testing"
    granted = _audit(tmp_path)[-1]
    assert granted["granted"] is True and granted["transition_id"] == rec["transition_id"]
    # Forced down, any distance.
    assert _force("experience", PASSWORD).exit_code == 0
    assert _history(tmp_path)[-1]["to_phase"] == "experience"


def test_wrong_password_is_refused_audited_and_never_written(tmp_path: Path) -> None:
    _set_password()
    wrong = "Wr0ng-Pa55-UNIQUE-TEXT"
    result = _force("proof", wrong)
    assert result.exit_code == 4
    assert "wrong override password (4 attempt(s) left before a lockout)" in result.stderr
    rec = _audit(tmp_path)[-1]
    assert (rec["granted"], rec["outcome"], rec["operator"]) == (False, "wrong_password", "bob")
    assert (rec["from_phase"], rec["to_phase"], rec["reason"]) == ("experience", "proof", "testing")
    assert _history(tmp_path) == []
    for path in (tmp_path / "logs").rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert wrong.encode() not in data, path
            assert PASSWORD.encode() not in data, path
    assert wrong not in result.stdout + result.stderr


def test_five_failures_lock_overrides_across_processes(tmp_path: Path) -> None:
    _set_password()
    for _ in range(5):
        assert _force("proof", "nope-nope").exit_code == 4
    # Even the right password is refused now, and a brand-new process sees the lock.
    result = run_process(
        ["phase", "advance", "--force", "--to", "proof", "--password-stdin"],
        tmp_path,
        stdin=PASSWORD + "\n",
    )
    assert result.returncode == 4
    assert "overrides are locked after 5 wrong passwords" in result.stderr
    locked = _audit(tmp_path)[-1]
    assert locked["outcome"] == "locked_out"
    # The record's time is UTC; its text, for a person, says the market's time with its zone.
    assert re.fullmatch(
        r"overrides locked until \d{4}-\d\d-\d\d \d\d:\d\d E[SD]T", locked["detail"]
    )
    assert _history(tmp_path) == []
    status = json.loads(invoke(["phase", "status", "--json"]).stdout)
    assert status["override"]["locked_until"] is not None


def test_force_to_current_phase_changes_nothing(tmp_path: Path) -> None:
    _set_password()
    result = _force("experience", PASSWORD)
    assert result.exit_code == 4
    assert "already in experience" in result.stderr
    assert _history(tmp_path) == []


# -- set-password -------------------------------------------------------------------------
def test_set_password_stores_only_a_salted_hash(tmp_path: Path) -> None:
    _set_password()
    stored = json.loads((tmp_path / "logs" / "state" / "override-password.json").read_text())
    assert stored["hash"].startswith("scrypt$16384$8$1$")
    assert PASSWORD not in json.dumps(stored)
    assert (
        oct((tmp_path / "logs" / "state" / "override-password.json").stat().st_mode)[-3:] == "600"
    )
    assert _audit(tmp_path)[-1]["outcome"] == "password_set"


def test_changing_the_password_needs_the_current_one(tmp_path: Path) -> None:
    _set_password()
    bad = invoke(["phase", "set-password", "--password-stdin"], input="wrong-one\nnew password 2\n")
    assert bad.exit_code == 4
    ok = invoke(
        ["phase", "set-password", "--password-stdin"], input=f"{PASSWORD}\nnew password 2\n"
    )
    assert ok.exit_code == 0, ok.stderr
    assert _force("proof", PASSWORD).exit_code == 4
    assert _force("proof", "new password 2").exit_code == 0


def test_set_password_refused_when_the_hash_comes_from_config(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tradebot.core.override_password import hash_password

    monkeypatch.setenv("TRADEBOT_PHASE__OVERRIDE_PASSWORD_HASH", hash_password(PASSWORD))
    result = invoke(["phase", "set-password"])  # refused before any prompt
    assert result.exit_code == 4
    assert "set in the configuration" in result.stderr
    assert _force("proof", PASSWORD).exit_code == 0  # the configured hash is the one used


def test_short_password_is_a_usage_error() -> None:
    result = invoke(["phase", "set-password", "--password-stdin"], input="short\n")
    assert result.exit_code == 2


def test_no_terminal_and_no_stdin_flag_is_a_usage_error() -> None:
    result = invoke(["phase", "set-password"])
    assert result.exit_code == 2
    assert "--password-stdin" in result.stderr


def test_set_password_asks_twice_on_a_terminal(tmp_path: Path) -> None:
    """Drive the real command through a pseudo-terminal: hidden prompt, then confirmation."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    pid, fd = pty.fork()
    if pid == 0:  # child: becomes the command, with the pty as its terminal
        os.chdir(tmp_path)
        os.execve(sys.executable, [sys.executable, "-m", "tradebot", "phase", "set-password"], env)
    output = b""

    def read_until(marker: bytes, timeout: float = 20) -> None:
        nonlocal output
        deadline = time.monotonic() + timeout
        while marker not in output and time.monotonic() < deadline:
            try:
                output += os.read(fd, 1024)
            except OSError:
                break

    # Wait for the prompt's final space: click echoes the text, then getpass() switches echo off
    # (flushing pending input) and writes that last character. Typing earlier would be lost.
    read_until(b"New override password: ")
    os.write(fd, (PASSWORD + "\n").encode())
    read_until(b"Repeat for confirmation: ")
    os.write(fd, (PASSWORD + "\n").encode())
    read_until(b"override password set")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, output
    assert PASSWORD.encode() not in output  # the terminal never echoed it
    assert (tmp_path / "logs" / "state" / "override-password.json").exists()


# -- export -------------------------------------------------------------------------------
def _three_transitions(tmp_path: Path) -> None:
    _set_password()
    for to in ("proof", "trial", "proof"):
        assert _force(to, PASSWORD).exit_code == 0


def test_export_csv_columns_and_rows(tmp_path: Path) -> None:
    _three_transitions(tmp_path)
    result = invoke(["phase", "export", "--csv", "-"])
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert tuple(rows[0]) == (
        "timestamp",
        "from_phase",
        "to_phase",
        "trigger",
        "validation_passed",
        "sessions",
        "trades",
        "win_rate",
        "avg_rr",
        "pnl",
        "operator",
        "reason",
    )
    assert [r["to_phase"] for r in rows] == ["proof", "trial", "proof"]
    assert rows[0]["trigger"] == "manual_override" and rows[0]["validation_passed"] == "false"
    assert rows[0]["pnl"] == "0.00" and rows[0]["operator"] == "bob"


def test_export_filters_json_and_file(tmp_path: Path) -> None:
    _three_transitions(tmp_path)
    doc = json.loads(invoke(["phase", "export", "--json"]).stdout)
    assert len(doc["transitions"]) == 3
    assert set(doc["transitions"][0]) == {
        "v",
        "transition_id",
        "ts",
        "from_phase",
        "to_phase",
        "trigger",
        "validation_passed",
        "failures",
        "metrics",
        "operator",
        "reason",
    }
    assert json.loads(invoke(["phase", "export", "--json", "--until", "2000-01-01"]).stdout) == {
        "v": 1,
        "transitions": [],
    }
    assert (
        len(
            json.loads(invoke(["phase", "export", "--json", "--since", "2000-01-01"]).stdout)[
                "transitions"
            ]
        )
        == 3
    )
    out = invoke(["phase", "export", "--csv", "hist.csv"])
    assert "wrote 3 transition(s)" in out.stdout
    assert (tmp_path / "hist.csv").read_text().count("\n") == 4
    table = invoke(["phase", "export"])
    assert "Phase history" in table.stdout


def test_export_empty() -> None:
    result = invoke(["phase", "export"])
    assert result.exit_code == 0
    assert "No phase transitions recorded" in result.stdout


@pytest.mark.parametrize("args", [["--since", "yesterday"], ["--json", "--csv", "-"]])
def test_export_usage_errors(args: list[str]) -> None:
    assert invoke(["phase", "export", *args]).exit_code == 2


# -- issue 23: the ladder's numbers, from the journals -----------------------------------------
def test_tied_exits_are_listed_in_one_order_by_journal_and_phase_export(
    tmp_path: Path, journal
) -> None:  # type: ignore[no-untyped-def]
    """Two losses, then a loss and a win in the same second: the downgrade's record lists the
    losing run in the order `journal` lists the trades (losers first at the same time), and
    `phase export --json` shows that record as stored."""
    from datetime import UTC, datetime, timedelta

    from tests.factories import trade
    from tradebot.books.ladder import PhaseLadder
    from tradebot.config import load_config

    now = datetime(2025, 9, 2, 15, 0, tzinfo=UTC)
    journal(*series_of([100] * 20))
    ladder = PhaseLadder(load_config(tmp_path / "config.toml"))
    ladder.advance(now - timedelta(days=5), to=None, operator="alice", reason=None)
    tie = now - timedelta(minutes=10)
    for pnl, at, tid in [
        (-10, now - timedelta(hours=2), "L1"),
        (-12, now - timedelta(hours=1), "L2"),
        (23, tie, "A-SPY"),
        (-31, tie, "B-QQQ"),
    ]:
        journal(trade(pnl, exit_time=at, mode="live", trade_id=tid))
        ladder.on_tick(now)
    listed = json.loads(invoke(["journal", "--json", "--mode", "live"]).stdout)["trades"]
    assert [t["trade_id"] for t in listed] == ["L1", "L2", "B-QQQ", "A-SPY"]
    exported = json.loads(invoke(["phase", "export", "--json"]).stdout)["transitions"]
    downgrade = exported[-1]
    assert downgrade["trigger"] == "auto_downgrade"
    run = [t["trade_id"] for t in downgrade["inputs"]["consecutive_losses"]["trades"]]
    assert run == ["L1", "L2", "B-QQQ"]
    order = [t["trade_id"] for t in listed]
    assert sorted(run, key=order.index) == run  # the same order as `journal`
    csv_rows = list(csv.DictReader(io.StringIO(invoke(["journal", "--csv", "-"]).stdout)))
    assert [r["trade_id"] for r in csv_rows if r["mode"] == "live"] == order


@pytest.mark.parametrize(
    ("before", "window", "ladder_pct", "met", "journal_pct"),
    [
        # $2,000 lost before the window: it starts at $8,000; +200 then -450 is 450 / 8,200.
        ([-500] * 4, [200, -450], "5.4878", False, "4.4118"),
        # $5,000 won before: it starts at $15,000; +200 then -700 is 700 / 15,200.
        ([1000] * 5, [200, -700], "4.6053", True, "6.8627"),
    ],
)
def test_the_ladder_and_the_journal_name_their_drawdown_anchors(
    tmp_path: Path,
    journal,  # type: ignore[no-untyped-def]
    before: list[int],
    window: list[int],
    ladder_pct: str,
    met: bool,
    journal_pct: str,
) -> None:
    """Issue 23: trial → scaling needs a max drawdown < 5 % measured from the equity when the
    window began; `journal` measures its curve from risk.paper_equity. The two readings fall
    on either side of the 5 % line here, and each command says which anchor it used."""
    from datetime import UTC, datetime, timedelta

    from tests.factories import trade
    from tests.phase_helpers import transition

    (tmp_path / "config.toml").write_text(
        '[phase.trial]\ncounted_modes = ["sim"]\n', encoding="utf-8"
    )
    start = datetime(2025, 8, 1, 15, 0, tzinfo=UTC)
    journal(
        *(
            trade(p, exit_time=start + timedelta(days=i), mode="sim", entry_price="10.00")
            for i, p in enumerate(before)
        )
    )
    moved = datetime(2025, 8, 11, 13, 0, tzinfo=UTC)
    JsonlFile(tmp_path / "logs" / "phase" / "phase-history.jsonl").append(
        transition("trial", moved, trigger="manual_override").as_record()
    )
    journal(
        *(
            trade(p, exit_time=moved + timedelta(days=1 + i), mode="sim", entry_price="10.00")
            for i, p in enumerate(window)
        )
    )
    doc = json.loads(invoke(["phase", "status", "--json"]).stdout)
    assert doc["phase"] == "trial"
    (criterion,) = [c for c in doc["criteria"] if c["name"] == "max_drawdown"]
    assert (criterion["actual"], criterion["met"]) == (ladder_pct, met)
    base = 10000 + sum(before)
    assert doc["drawdown"]["anchor"] == "equity_at_window_start"
    assert doc["drawdown"]["base_equity"] == str(base)
    assert f"${base:,}.00, the equity when the window began" in criterion["note"]
    human = invoke(["phase", "status"]).stdout
    assert f"${base:,}.00, the equity when the window began" in " ".join(human.split())
    assert ("✔ met" if met else "✘ not met") in human

    since = ["journal", "--since", (moved + timedelta(days=1)).date().isoformat()]
    listed = json.loads(invoke([*since, "--json"]).stdout)
    assert listed["drawdown_anchor"] == "risk.paper_equity"
    assert listed["summary"]["max_drawdown_pct"] == journal_pct
    text = " ".join(invoke(since).stdout.split())
    assert "paper_equity $10,000.00 + closed P&L" in text
    assert "(largest (peak − equity) / peak)" in text
