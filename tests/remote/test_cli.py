"""`tradebot remote run | check` as the operator runs them: exit codes, the locks, 409, SIGTERM,
kill -9 and restart, and the token kept out of every output."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from tests.cli.conftest import invoke
from tests.remote.conftest import OPERATOR, SECRET, STRANGER, remote_config, run_cli
from tests.remote.fake_telegram import TOKEN, FakeTelegram
from tests.remote.processes import journal, start_remote, stop, text_of, wait

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The per-bot lock lives here, not in the machine's real runtime directory."""
    path = tmp_path / "run"
    path.mkdir()
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(path))
    return path


def test_no_allow_list_no_token_or_a_bad_token_refuses_to_start_with_exit_3(
    tmp_path: Path, fake: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote_config(tmp_path, fake.url, ids=())
    monkeypatch.setenv("TRADEBOT_TELEGRAM_TOKEN", TOKEN)
    empty = invoke(["remote", "run"])
    assert empty.exit_code == 3 and "remote.allowed_user_ids is empty" in empty.stderr
    remote_config(tmp_path, fake.url)
    monkeypatch.delenv("TRADEBOT_TELEGRAM_TOKEN")
    none = invoke(["remote", "run"])
    assert (
        none.exit_code == 3 and "no Telegram bot token: set TRADEBOT_TELEGRAM_TOKEN" in none.stderr
    )
    monkeypatch.setenv("TRADEBOT_TELEGRAM_TOKEN", TOKEN[:-10])
    short = invoke(["remote", "run"])
    assert short.exit_code == 3 and "is not a token" in short.stderr
    assert TOKEN[:-10].split(":")[1] not in short.stderr + short.stdout
    monkeypatch.delenv("TRADEBOT_TELEGRAM_TOKEN")
    secret = tmp_path / "telegram_token"
    secret.write_text(TOKEN + "\n")
    secret.chmod(0o644)
    remote_config(tmp_path, fake.url, f'token_file = "{secret}"\n')
    loose = invoke(["remote", "run"])
    assert loose.exit_code == 3 and f"run `chmod 600 {secret}`" in loose.stderr
    remote_config(tmp_path, fake.url, 'token_file = "telegram_token"\n', load=False)
    relative = invoke(["remote", "run"])
    assert (
        relative.exit_code == 3 and "remote.token_file: must be an absolute path" in relative.stderr
    )
    remote_config(tmp_path, "http://203.0.113.7:8081", load=False)
    clear = invoke(["remote", "run"])
    assert clear.exit_code == 3 and "plain http:// is allowed only to this machine" in clear.stderr
    for result in (empty, none, short, loose, relative, clear):
        assert SECRET not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr


def test_a_token_from_a_0600_file_or_a_systemd_credential_works(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    secret = tmp_path / "telegram_token"
    secret.write_text(TOKEN + "\n")
    secret.chmod(0o600)
    remote_config(tmp_path, fake.url, f'token_file = "{secret}"\n')
    env = {"TRADEBOT_TELEGRAM_TOKEN": ""}
    checked = run_cli(["remote", "check", "--json"], tmp_path, env=env)
    doc = json.loads(checked.stdout)
    assert checked.returncode == 0, checked.stderr
    assert doc["token"] == "7012345678:**********" and doc["token_source"] == str(secret)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "telegram_token").write_text(TOKEN)
    (creds / "telegram_token").chmod(0o400)
    remote_config(tmp_path, fake.url)
    checked = run_cli(
        ["remote", "check", "--json"], tmp_path, env={**env, "CREDENTIALS_DIRECTORY": str(creds)}
    )
    assert json.loads(checked.stdout)["token_source"] == str(creds / "telegram_token")


def test_remote_check_lists_senders_without_consuming_their_messages(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    remote_config(tmp_path, fake.url, ids=())
    fake.message(STRANGER, "hello")
    fake.message(OPERATOR, "/start", chat_type="group")
    pending = fake.pending()
    checked = run_cli(["remote", "check", "--json"], tmp_path)
    doc = json.loads(checked.stdout)
    assert checked.returncode == 3  # no allow-list yet: `remote run` would not start
    assert {(s["user_id"], s["chat_type"]) for s in doc["senders"]} == {
        (STRANGER, "private"), (OPERATOR, "group"),
    }  # fmt: skip
    assert doc["bot"] == "@tradebot_test_bot" and doc["webhook"] is False
    for key in ("v", "token", "token_source", "bot", "allowed_user_ids", "webhook", "senders",
                "running_remote_pid", "problems"):  # fmt: skip
        assert key in doc
    assert fake.pending() == pending  # nothing confirmed away
    human = run_cli(["remote", "check"], tmp_path)
    assert f"user id {STRANGER} in a private chat" in human.stdout
    fake.webhook = True
    remote_config(tmp_path, fake.url)
    assert run_cli(["remote", "check"], tmp_path).returncode == 4
    remote_config(tmp_path, "http://127.0.0.1:9")  # nothing listens on the discard port
    unreachable = run_cli(["remote", "check"], tmp_path)
    assert unreachable.returncode == 5 and "Telegram unreachable" in unreachable.stdout
    remote_config(tmp_path, fake.url)
    fake.webhook = False
    wrong = run_cli(
        ["remote", "check"], tmp_path, env={"TRADEBOT_TELEGRAM_TOKEN": TOKEN.replace("AAF", "AAX")}
    )
    assert wrong.returncode == 3 and "401" in wrong.stdout


def test_a_second_remote_on_the_same_logs_or_the_same_bot_is_refused_with_exit_4(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    remote_config(tmp_path, fake.url)
    first = start_remote(tmp_path)
    try:
        same_logs = run_cli(["remote", "run"], tmp_path, timeout=30)
        assert same_logs.returncode == 4
        assert f"another tradebot remote (pid {first.pid}) is already running" in same_logs.stderr
        other = {
            "TRADEBOT_PATHS__LOGS_DIR": str(tmp_path / "other"),
            "TRADEBOT_PATHS__STATE_DIR": str(tmp_path / "other" / "state"),
        }
        other_logs = run_cli(["remote", "run"], tmp_path, env=other, timeout=30)
        assert other_logs.returncode == 4
        assert f"(pid {first.pid}) is already polling bot 7012345678" in other_logs.stderr
        checked = run_cli(["remote", "check", "--json"], tmp_path)
        assert json.loads(checked.stdout)["running_remote_pid"] == first.pid
        assert first.poll() is None  # the first one never noticed
    finally:
        assert stop(first) == 0, text_of(tmp_path)


def test_409_conflict_stops_the_remote_with_exit_4_and_says_why(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    remote_config(tmp_path, fake.url)
    fake.fail_next("conflict", 3)
    result = run_cli(["remote", "run"], tmp_path, timeout=30)
    assert result.returncode == 4, result.stderr
    assert (
        "409 Conflict 3 times in a row: another process is polling this bot's token"
        in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_sigterm_stops_a_waiting_remote_at_once_with_exit_0(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    remote_config(tmp_path, fake.url)
    proc = start_remote(tmp_path)
    wait(lambda: "getUpdates" in fake.methods(), 10, "a long poll")
    assert stop(proc) == 0  # inside a 25 s long poll: interrupted, not waited out
    assert journal(tmp_path, "remote_stop")
    assert "remote stopped: 0 update(s) handled" in text_of(tmp_path)


def test_kill_9_and_a_restart_handle_no_command_twice(tmp_path: Path, fake: FakeTelegram) -> None:
    remote_config(tmp_path, fake.url)
    proc = start_remote(tmp_path)
    first = fake.message(OPERATOR, "/halt one")
    fake.wait_sent(lambda m: "HALTED" in m["text"])
    stop(proc, signal.SIGKILL)
    second = fake.message(OPERATOR, "/halt two")  # arrives while no remote runs
    proc = start_remote(tmp_path)
    try:
        fake.wait_sent(lambda m: "two" in m["text"])
    finally:
        assert stop(proc) == 0
    handled = [r["update_id"] for r in journal(tmp_path, "remote_command")]
    assert handled == [first, second]
    assert [r["reason"] for r in journal(tmp_path, "halt")] == ["one", "two"]


def test_config_show_and_every_json_keep_the_token_out(tmp_path: Path, fake: FakeTelegram) -> None:
    remote_config(tmp_path, fake.url)
    commands = [
        ["config", "show", "--json"], ["config", "show"], ["config", "check", "--json"],
        ["remote", "check", "--json"], ["status", "--json"], ["--debug", "remote", "check"],
    ]  # fmt: skip
    for args in commands:
        result = run_cli(args, tmp_path)
        assert SECRET not in result.stdout + result.stderr, args
    shown = json.loads(run_cli(["config", "show", "--json"], tmp_path).stdout)
    assert shown["remote"]["allowed_user_ids"] == [OPERATOR]
    assert set(shown["remote"]) == {"allowed_user_ids", "token_file", "api_url", "send_alerts"}
    assert os.environ.get("TRADEBOT_TELEGRAM_TOKEN") is None  # the suite's own shell is clean
