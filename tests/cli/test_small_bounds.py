"""The smaller findings of the audit (issue 18, item 8), each against the real thing.

* `notify test` against a server sending one byte every 2 s took 66 s (each byte reset the
  socket timeout): every URL has one overall deadline.
* `status --json` showed `heartbeat_age_s: -5.2`: "now" was taken before the file was read.
* `set-password` with EIO on the directory fsync after the rename reported a failure and
  audited `password_change_failed` while the new password was in effect: now it says what is
  true (changed, durability not confirmed).
* Deeply nested TOML or JSON in a `TRADEBOT_*` list was exit 1 (RecursionError), not 3.
* An unreadable `--config` was exit 2 (Typer's usage box), not 3; so was an unreadable
  `--bars` folder. Root reads any file, so these run without the capabilities that let it
  (setpriv drops CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH): permissions count as for anyone.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.cli.conftest import invoke
from tradebot.books.state_store import StateStore
from tradebot.core.override_password import verify_password
from tradebot.engine.heartbeat import HEARTBEAT_FILE
from tradebot.notify.alerts import send_test
from tradebot.storage import JsonlFile, atomic, write_json_state


# -- notify test: a deadline per URL -----------------------------------------------------------
class DripServer:
    """A loopback HTTP server that answers one byte every `every` seconds, for at most
    `total` seconds, then stops by itself."""

    def __init__(self, every: float, total: float) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.sock.settimeout(total)
        self.every, self.total = every, total
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    def _serve(self) -> None:
        deadline = time.monotonic() + self.total
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(self.total)
            try:
                conn.recv(65536)
                for byte in b"HTTP/1.1 200 OK\r\n" * 100:
                    if time.monotonic() > deadline or self.stopped.wait(self.every):
                        return  # closing the connection ends the client's wait too
                    conn.sendall(bytes([byte]))
            except OSError:
                return

    def close(self) -> None:
        self.stopped.set()
        self.sock.close()
        self.thread.join(5)


def test_notify_test_gives_each_url_one_overall_deadline() -> None:
    drip = DripServer(every=0.5, total=30)
    try:
        started = time.monotonic()
        [result] = send_test([f"json://127.0.0.1:{drip.port}/"], "hello", deadline=2.0)
        took = time.monotonic() - started
    finally:
        drip.close()
    assert not result.ok
    assert "no answer within 2 s" in result.detail
    assert took < 15  # the deadline, not the drip (30 s) and not one timeout per byte


# -- status: the heartbeat's age is never negative ---------------------------------------------
def test_status_takes_now_after_reading_the_heartbeat(tmp_path: Path) -> None:
    state = tmp_path / "logs" / "state"
    record = {"v": 1, "running": False, "crashed": False, "pid": 1, "beat": datetime.now(UTC)}
    write_json_state(state / HEARTBEAT_FILE, record)
    stop = threading.Event()

    def beating() -> None:  # a loop writing its heartbeat as fast as it can
        while not stop.is_set():
            write_json_state(state / HEARTBEAT_FILE, {**record, "beat": datetime.now(UTC)})

    writer = threading.Thread(target=beating, daemon=True)
    writer.start()
    try:
        ages = []
        for _ in range(15):
            result = invoke(["status", "--json"])
            ages.append(json.loads(result.stdout)["heartbeat_age_s"])
    finally:
        stop.set()
        writer.join(5)
    assert min(ages) >= 0, ages


# -- set-password: a durability failure after the rename is not "not changed" ------------------
PASSWORD = "correct horse battery"
NEW = "new password 2"


def test_set_password_with_eio_on_the_directory_fsync_says_changed_unconfirmed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (
        invoke(["phase", "set-password", "--password-stdin"], input=PASSWORD + "\n").exit_code == 0
    )
    real = atomic.fsync_directory

    def eio(directory: Path) -> None:
        if Path(directory) == tmp_path / "logs" / "state":
            raise OSError(errno.EIO, "Input/output error")
        real(directory)

    monkeypatch.setattr(atomic, "fsync_directory", eio)
    result = invoke(["phase", "set-password", "--password-stdin"], input=f"{PASSWORD}\n{NEW}\n")
    monkeypatch.setattr(atomic, "fsync_directory", real)
    assert result.exit_code == 0, result.stderr
    assert "changed" in result.stdout
    assert "durability not confirmed" in result.stderr and "I/O error" in result.stderr
    audit = JsonlFile(tmp_path / "logs" / "phase" / "phase-overrides.jsonl").read().records
    assert [r["outcome"] for r in audit][-2:] == ["password_change_started", "password_set"]
    assert "durability not confirmed" in audit[-1]["detail"]
    stored = StateStore(tmp_path / "logs" / "state").password_hash()
    assert stored is not None and verify_password(NEW, stored)


# -- configuration: nesting and unreadable files -----------------------------------------------
def test_deeply_nested_json_in_an_environment_list_is_exit_3(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRADEBOT_TRADING__SYMBOLS", "[" * 100_000 + "]" * 100_000)
    result = invoke(["config", "check"])
    assert result.exit_code == 3, result.stderr
    assert "TRADEBOT_TRADING__SYMBOLS" in result.stderr and "nested" in result.stderr


def test_deeply_nested_toml_is_exit_3(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        "[trading]\nsymbols = " + "[" * 100_000 + "]" * 100_000 + "\n", encoding="utf-8"
    )
    result = invoke(["config", "check"])
    assert result.exit_code == 3, result.stderr
    assert "config.toml" in result.stderr and "nested" in result.stderr


def _as_anyone(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m tradebot ARGS`; as root, without the capabilities that ignore permissions."""
    command = [sys.executable, "-m", "tradebot", *args]
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        assert setpriv, "setpriv (util-linux) is needed to test permissions as root"
        command = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *command]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_an_unreadable_config_is_exit_3(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('[trading]\nmode = "paper"\n', encoding="utf-8")
    path.chmod(0)
    result = _as_anyone(["--config", "mine.toml", "config", "check"], tmp_path)
    assert result.returncode == 3, result.stderr
    assert "mine.toml" in result.stderr and "Permission denied" in result.stderr
    assert "Usage:" not in result.stderr


@pytest.mark.parametrize("command", ["run", "backtest"])
def test_an_unreadable_bars_folder_is_exit_3(tmp_path: Path, command: str) -> None:
    bars = tmp_path / "bars"
    bars.mkdir()
    (bars / "SPY.csv").write_text("timestamp,open,high,low,close,volume\n", encoding="utf-8")
    bars.chmod(0)
    (tmp_path / "config.toml").write_text('[trading]\nsymbols = ["SPY"]\n', encoding="utf-8")
    extra = ["--out", "out"] if command == "backtest" else []
    result = _as_anyone([command, "--bars", "bars", *extra], tmp_path)
    bars.chmod(0o700)
    assert result.returncode == 3, result.stderr
    assert "bars" in result.stderr and "Permission denied" in result.stderr
    assert "Usage:" not in result.stderr
