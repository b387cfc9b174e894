"""Hostile or careless input (issue 7): every case a named error with its exit code, no trace."""

from __future__ import annotations

import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import invoke
from tests.factories import trade
from tradebot.logging_setup import LOG_FILE_NAME, configure_logging
from tradebot.storage import JsonlFile


# -- --csv targets ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "target", ["", " ", ".", "/", "somedir/", pytest.param("x" * 5000, id="name-too-long")]
)
@pytest.mark.parametrize("command", [["journal"], ["phase", "export"]])
def test_csv_targets_that_cannot_be_a_file_are_usage_errors(
    command: list[str], target: str, tmp_path: Path
) -> None:
    (tmp_path / "somedir").mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = invoke([*command, "--csv", target])
    assert result.exit_code == 2, result.stderr
    assert "--csv" in result.stderr or "directory" in result.stderr
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing changed on disk


def test_csv_to_a_fifo_streams_through_it(journal, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    journal(trade(50, trade_id="T1"))
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        result = invoke(["journal", "--csv", str(fifo)])
        assert result.exit_code == 0, result.stderr
        data = os.read(reader, 65536).decode()
    finally:
        os.close(reader)
    assert data.startswith("v,trade_id,") and ",T1," in data
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_csv_to_a_symlink_keeps_the_link(journal, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    journal(trade(50, trade_id="T1"))
    (tmp_path / "real.csv").write_text("old\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "real.csv")
    assert invoke(["phase", "export", "--csv", "link.csv"]).exit_code == 0
    assert (tmp_path / "link.csv").is_symlink()
    assert (tmp_path / "real.csv").read_text().startswith("timestamp,from_phase,")


# -- phase set-password: audit, change, outcome; one winner; clear input errors -------------------
PASSWORD = "correct horse battery"


def _audit_outcomes(tmp_path: Path) -> list[str]:
    return [r["outcome"] for r in JsonlFile(tmp_path / AUDIT).read().records]


AUDIT = Path("logs") / "phase" / "phase-overrides.jsonl"
HASH_FILE = Path("logs") / "state" / "override-password.json"


def test_set_password_audits_the_intent_then_changes_then_the_outcome(tmp_path: Path) -> None:
    result = invoke(["phase", "set-password", "--password-stdin"], input=PASSWORD + "\n")
    assert result.exit_code == 0, result.stderr
    assert _audit_outcomes(tmp_path) == ["password_change_started", "password_set"]
    assert (tmp_path / HASH_FILE).exists()


def test_a_failed_password_change_leaves_the_old_password_working(tmp_path: Path) -> None:
    assert (
        invoke(["phase", "set-password", "--password-stdin"], input=PASSWORD + "\n").exit_code == 0
    )
    # The hash file becomes a symlink to its own copy: still readable, but never replaced.
    state = tmp_path / HASH_FILE
    copy = state.with_name("elsewhere.json")
    state.rename(copy)
    state.symlink_to(copy)
    change = invoke(
        ["phase", "set-password", "--password-stdin"], input=f"{PASSWORD}\nnew password 2\n"
    )
    assert change.exit_code == 1, change.stderr
    assert "the override password was not change" in change.stderr
    assert "the old password still works" in change.stderr
    assert _audit_outcomes(tmp_path)[-2:] == ["password_change_started", "password_change_failed"]
    force = invoke(
        ["phase", "advance", "--force", "--to", "proof", "--password-stdin"], input=PASSWORD + "\n"
    )
    assert force.exit_code == 0, force.stderr  # the old password still works


def test_ten_first_time_set_passwords_at_once_make_exactly_one_winner(tmp_path: Path) -> None:
    """Real processes started together; each would set its own password."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "tradebot", "phase", "set-password", "--password-stdin"],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(10)
    ]
    # A process that starts after the winner reads its own password as the "current" one.
    results = [
        p.communicate(f"password-{i}\npassword-{i}\n", timeout=120) for i, p in enumerate(procs)
    ]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0] + [4] * 9, results
    assert _audit_outcomes(tmp_path).count("password_set") == 1
    refusals = [err for (_, err), p in zip(results, procs, strict=True) if p.returncode == 4]
    # Processes that start after the winner offer their own password as the "current" one:
    # wrong; after five of those, overrides lock (the lockout rule), which refuses the rest.
    assert all(
        "another command set" in e
        or "current override password is wrong" in e
        or "overrides are locked" in e
        for e in refusals
    )


def test_a_non_utf8_password_is_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    result = subprocess.run(
        [sys.executable, "-m", "tradebot", "phase", "set-password", "--password-stdin"],
        cwd=tmp_path,
        env={**env, "PYTHONIOENCODING": "utf-8"},
        input=b"caf\xe9-password\n",
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert b"not UTF-8 text" in result.stderr and b"Traceback" not in result.stderr
    assert not (tmp_path / HASH_FILE).exists()


@pytest.mark.parametrize(
    "args",
    [
        ["phase", "set-password", "hunter2-secret"],
        ["phase", "advance", "--force", "--to", "proof", "hunter2-secret"],
    ],
)
def test_a_password_given_as_an_argument_is_refused_and_not_echoed(args: list[str]) -> None:
    result = invoke(args)
    assert result.exit_code == 2
    assert "hunter2-secret" not in result.stderr + result.stdout
    assert "takes no arguments" in result.stderr


# -- operator text in the log and on the terminal ----------------------------------------------
def test_control_characters_in_operator_and_reason_are_escaped(tmp_path: Path) -> None:
    assert (
        invoke(["phase", "set-password", "--password-stdin"], input=PASSWORD + "\n").exit_code == 0
    )
    operator = "eve\n2025-01-01 WARNING forged\x1b[2J"
    result = invoke(
        [
            "phase",
            "advance",
            "--force",
            "--to",
            "proof",
            "--password-stdin",
            "--operator",
            operator,
            "--reason",
            "line one\rline two\x07",
        ],
        input=PASSWORD + "\n",
    )
    assert result.exit_code == 0, result.stderr
    assert "\x1b" not in result.stdout
    shown = result.stdout.replace("\n", "")  # rich may wrap the line; no newline of ours is left
    assert "eve\\x0a2025-01-01 WARNING forged\\x1b[2J" in shown
    log = (tmp_path / "logs" / "tradebot.log").read_text()
    assert "\x1b" not in log and "\x07" not in log
    override_lines = [line for line in log.splitlines() if "override experience ->" in line]
    assert len(override_lines) == 1 and "forged\\x1b[2J" in override_lines[0]
    assert not any(line.startswith("2025-01-01 WARNING forged") for line in log.splitlines())
    # Stored as given (JSON escapes it), so the audit keeps the truth.
    assert JsonlFile(tmp_path / AUDIT).read().records[-1]["operator"] == operator


@pytest.mark.parametrize(("option", "length"), [("--operator", 65), ("--reason", 501)])
def test_operator_and_reason_have_a_length_limit(option: str, length: int) -> None:
    result = invoke(["phase", "advance", option, "x" * length])
    assert result.exit_code == 2
    assert f"{option} is {length} characters long" in result.stderr


# -- no trace of a refusal; logging that cannot write ----------------------------------------
def test_a_refused_phase_advance_creates_no_files(tmp_path: Path) -> None:
    result = invoke(["phase", "advance"])
    assert result.exit_code == 4
    assert "criterion(s) not met" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_log_file_is_one_warning_not_a_traceback_per_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "logs" / LOG_FILE_NAME).mkdir(parents=True)  # cannot be opened as a file
    configure_logging(tmp_path / "logs")
    try:
        for i in range(5):
            logging.getLogger("tradebot.test").warning("record %d", i)
    finally:
        configure_logging(None)
    err = capsys.readouterr().err
    assert err.count("cannot write the log file") == 1
    assert "Traceback" not in err and "Logging error" not in err
    assert err.count("WARNING record") == 5  # the terminal still gets every record


def test_the_log_file_is_0600_in_a_0700_directory(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        configure_logging(tmp_path / "logs")
        logging.getLogger("tradebot.test").info("hello")
    finally:
        configure_logging(None)
        os.umask(old)
    assert stat.S_IMODE(os.stat(tmp_path / "logs").st_mode) == 0o700
    assert stat.S_IMODE(os.stat(tmp_path / "logs" / LOG_FILE_NAME).st_mode) == 0o600
