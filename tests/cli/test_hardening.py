"""Hostile or careless input (issue 7): every case a named error with its exit code, no trace."""

from __future__ import annotations

import json
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


# -- set-password killed between its intent and its outcome; an intent that cannot be written ----
ROOT = Path(__file__).resolve().parents[2]
NEW_PASSWORD = "new password 2"

# The real CLI in a real process, which stops itself (SIGSTOP) just before (or just after) the
# new hash is written: the intent line is on disk, the outcome is not. Nothing is replaced: the
# hash is written by the real code, or not yet.
PAUSED_SET_PASSWORD = """
import os, signal, sys
from tradebot.books.state_store import StateStore

real = StateStore.set_password_hash
when = sys.argv[1]

def paused(self, encoded, now):
    if when == "before":
        os.kill(os.getpid(), signal.SIGSTOP)
    real(self, encoded, now)
    if when == "after":
        os.kill(os.getpid(), signal.SIGSTOP)

StateStore.set_password_hash = paused
sys.argv = ["tradebot", "phase", "set-password", "--password-stdin"]
from tradebot.cli import main
main()
"""


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    return {**env, "PYTHONPATH": str(ROOT)}


def _works(password: str) -> bool:
    """Whether `password` is the current one, asked through the CLI (which changes nothing when
    it is wrong: it is then refused as the current password)."""
    result = invoke(
        ["phase", "set-password", "--password-stdin"], input=f"{password}\n{password}\n"
    )
    assert result.exit_code in (0, 4), result.stderr
    assert "Traceback" not in result.stderr
    return result.exit_code == 0


@pytest.mark.parametrize("when", ["before", "after"])
def test_set_password_killed_between_its_intent_and_its_outcome(tmp_path: Path, when: str) -> None:
    """A real `set-password` process SIGKILLed after its intent line and before its outcome.

    Polling the audit file for the intent cannot hit the window reliably (the atomic write that
    follows takes well under a millisecond), so the process stops itself with SIGSTOP at the
    exact point, before the hash is written (`before`) or after it was (`after`), and is then
    killed with SIGKILL: the audit shows the intent, exactly one of the old and new passwords
    works (the old one unless the hash was replaced), and later commands work with no traceback.
    """
    assert (
        invoke(["phase", "set-password", "--password-stdin"], input=PASSWORD + "\n").exit_code == 0
    )
    old_hash = (tmp_path / HASH_FILE).read_bytes()
    proc = subprocess.Popen(
        [sys.executable, "-c", PAUSED_SET_PASSWORD, when],
        cwd=tmp_path,
        env=_clean_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdin is not None
        proc.stdin.write(f"{PASSWORD}\n{NEW_PASSWORD}\n".encode())
        proc.stdin.close()
        _, status = os.waitpid(proc.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status), status
        # The stopped process holds the audit lock: read the bytes on disk without it.
        last = (tmp_path / AUDIT).read_bytes().splitlines()[-1]
        assert json.loads(last)["outcome"] == "password_change_started"  # intent on disk
        replaced = (tmp_path / HASH_FILE).read_bytes() != old_hash
        assert replaced == (when == "after")
    finally:
        proc.kill()  # SIGKILL, delivered to the stopped process
        proc.wait(timeout=30)
    assert proc.returncode == -9
    outcomes = _audit_outcomes(tmp_path)
    assert outcomes[-1] == "password_change_started"
    assert "password_set" not in outcomes[2:]  # no outcome was ever recorded for the change
    current, other = (NEW_PASSWORD, PASSWORD) if replaced else (PASSWORD, NEW_PASSWORD)
    assert not _works(other)
    assert _works(current)  # exactly one works; this also sets it again (a later set-password)
    assert _audit_outcomes(tmp_path)[-2:] == ["password_change_started", "password_set"]
    status_run = subprocess.run(
        [sys.executable, "-m", "tradebot", "phase", "status"],
        cwd=tmp_path,
        env=_clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status_run.returncode == 0, status_run.stderr
    assert "Traceback" not in status_run.stderr
    assert sorted(p.name for p in (tmp_path / HASH_FILE).parent.glob(".*.tmp")) == []


def test_an_intent_that_cannot_be_audited_changes_nothing(tmp_path: Path) -> None:
    """A real process whose file-size limit (RLIMIT_FSIZE, like a full disk) refuses the intent
    line: the hash is never written, the command says so in one sentence and exits 1 (the
    README's code for a machine failing under tradebot), and the old password still works."""
    import resource

    assert (
        invoke(["phase", "set-password", "--password-stdin"], input=PASSWORD + "\n").exit_code == 0
    )
    audit = (tmp_path / AUDIT).read_bytes()
    old_hash = (tmp_path / HASH_FILE).read_bytes()
    limit = len(audit)  # no byte may be added to the audit (the hash file would still fit)
    assert len(old_hash) < limit

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # Python ignores SIGXFSZ

    result = subprocess.run(
        [sys.executable, "-m", "tradebot", "phase", "set-password", "--password-stdin"],
        cwd=tmp_path,
        env=_clean_env(),
        input=f"{PASSWORD}\n{NEW_PASSWORD}\n",
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=limit_file_size,
    )
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert str(tmp_path / AUDIT) in errors[0] and "too large" in errors[0]
    assert "ulimit -f" in errors[0]  # and what to do
    assert (tmp_path / HASH_FILE).read_bytes() == old_hash  # never written
    assert (tmp_path / AUDIT).read_bytes() == audit  # cut back: no partial line
    assert not _works(NEW_PASSWORD)
    assert _works(PASSWORD)


# -- a journal path that is a directory, or cannot be read even by root ---------------------------
def _unreadable_journal(tmp_path: Path, how: str) -> Path:
    journal = tmp_path / "logs" / "journal" / "trades.jsonl"
    journal.parent.mkdir(parents=True)
    if how == "directory":
        journal.mkdir()  # EISDIR
    else:
        # The tests run as root, so no permission bit stops a read; a symlink pointing at
        # itself does: open() fails with ELOOP ("Too many levels of symbolic links").
        journal.symlink_to(journal.name)
    return journal


@pytest.mark.parametrize(
    ("how", "problem"),
    [
        ("directory", "is a directory, not a regular file"),
        ("loop", "cannot be read (Too many levels of symbolic links)"),
    ],
)
@pytest.mark.parametrize("command", [["journal"], ["journal", "--json"], ["risk", "check"]])
def test_a_journal_that_is_a_directory_or_unreadable_is_exit_4_naming_it(
    tmp_path: Path, how: str, problem: str, command: list[str]
) -> None:
    journal = _unreadable_journal(tmp_path, how)
    result = invoke([*command, "--at", "2025-07-01T15:00:00Z"] if command[0] == "risk" else command)
    assert result.exit_code == 4, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    if command[0] == "journal":
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and f"{journal}: {problem}" in result.stderr.replace("\n", "")
        assert result.stdout == ""
    else:
        shown = result.stdout.replace("\n", "")
        assert "phase_unknown" in shown and "can_open: false" in shown
        # The table wraps long lines anywhere, so compare without whitespace.
        assert "".join(f"{journal}: {problem}".split()) in "".join(result.stdout.split())
    if how == "loop":
        assert "formaloop" in "".join((result.stdout + result.stderr).split())
    assert journal.is_dir() if how == "directory" else journal.is_symlink()  # left as it was


def test_risk_check_json_names_an_unreadable_journal(tmp_path: Path) -> None:
    journal = _unreadable_journal(tmp_path, "loop")
    result = invoke(["risk", "check", "--at", "2025-07-01T15:00:00Z", "--json"])
    assert result.exit_code == 4 and "Traceback" not in result.stderr
    doc = json.loads(result.stdout)
    assert doc["can_open"] is False
    assert doc["phase_error"].startswith(f"{journal}: cannot be read (Too many levels")
