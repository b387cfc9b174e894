"""Where the token comes from and how it is kept out of text; the persisted offset; the locks."""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.remote.conftest import SECRET
from tests.remote.fake_telegram import BOT_ID, TOKEN
from tradebot.errors import ConfigError, RefusedError
from tradebot.logging_setup import configure_logging
from tradebot.remote.lock import holder, remote_lock
from tradebot.remote.offset import OFFSET_FILE, OffsetStore
from tradebot.remote.token import ENV_TOKEN, Token, find_token, redact, redact_logs

NOW = datetime(2025, 7, 1, 14, 0, tzinfo=UTC)


def _private(path: Path) -> None:
    path.write_text(TOKEN)
    path.chmod(0o600)


def test_the_environment_wins_then_the_file_then_the_systemd_credential(tmp_path: Path) -> None:
    secret = tmp_path / "telegram_token"
    secret.write_text(f"  {TOKEN}\n")
    secret.chmod(0o600)
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "telegram_token").write_text(TOKEN)
    (creds / "telegram_token").chmod(0o400)
    env = {ENV_TOKEN: TOKEN, "CREDENTIALS_DIRECTORY": str(creds)}
    assert find_token(secret, env) == Token(TOKEN, ENV_TOKEN)
    assert find_token(secret, {**env, ENV_TOKEN: " "}) == Token(TOKEN, str(secret))
    assert find_token(None, {"CREDENTIALS_DIRECTORY": str(creds)}) == Token(
        TOKEN, str(creds / "telegram_token")
    )
    assert find_token(None, {}) is None


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: (p.write_text(TOKEN), p.chmod(0o640)), "can be read by others (mode 0640)"),
        (lambda p: None, "does not exist; create it (mode 0600)"),
        (lambda p: p.mkdir(), "is not a regular file"),
        (lambda p: (_private(p.with_name("telegram_token.real")),
                    p.symlink_to(p.with_name("telegram_token.real"))), "cannot be read"),
        (lambda p: (p.write_bytes(b"\xff\xfe"), p.chmod(0o600)), "is not a token"),
        (lambda p: (p.write_text("not-a-token"), p.chmod(0o600)), "is not a token"),
    ],
    ids=["group-readable", "missing", "directory", "symlink", "binary", "malformed"],
)  # fmt: skip
def test_an_unusable_token_file_is_a_named_configuration_error(
    tmp_path: Path, setup: object, message: str
) -> None:
    path = tmp_path / "telegram_token"
    setup(path)  # type: ignore[operator]
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        find_token(path, {})
    assert SECRET not in caught.value.message


def test_the_token_prints_masked_and_is_redacted_from_any_text() -> None:
    token = Token(TOKEN, ENV_TOKEN)
    assert str(token) == f"{BOT_ID}:**********" and SECRET not in repr(token)
    assert (
        redact(f"GET /bot{TOKEN}/getMe failed", token)
        == f"GET /bot{BOT_ID}:**********/getMe failed"
    )
    assert SECRET not in redact(f"secret {SECRET}", token)


def test_a_library_log_line_with_the_token_is_redacted_in_the_log_file(tmp_path: Path) -> None:
    configure_logging(tmp_path, console_level=logging.CRITICAL)
    redact_logs(Token(TOKEN, ENV_TOKEN))
    logging.getLogger("tradebot.somewhere").warning("POST https://x/bot%s/getUpdates", TOKEN)
    for handler in logging.getLogger("tradebot").handlers:
        handler.flush()
    text = (tmp_path / "tradebot.log").read_text()
    assert f"/bot{BOT_ID}:**********/getUpdates" in text and SECRET not in text


def test_the_offset_is_kept_for_this_bot_for_six_days(tmp_path: Path) -> None:
    store = OffsetStore(tmp_path, BOT_ID)
    assert store.load(NOW).offset is None
    store.save(501, NOW)
    saved = json.loads((tmp_path / OFFSET_FILE).read_text())
    assert saved == {"v": 1, "bot_id": BOT_ID, "offset": 501, "seen": "2025-07-01T14:00:00Z"}
    assert store.load(NOW + timedelta(days=5, hours=23)).offset == 501
    stale = store.load(NOW + timedelta(days=6, seconds=1))
    assert stale.offset is None and "numbers updates afresh" in (stale.note or "")
    other = OffsetStore(tmp_path, BOT_ID + 1).load(NOW)
    assert other.offset is None and f"belongs to bot {BOT_ID}" in (other.note or "")


def test_a_damaged_offset_file_is_kept_aside_and_never_stops_the_channel(tmp_path: Path) -> None:
    (tmp_path / OFFSET_FILE).write_text('{"v": 1, "offset": ')
    loaded = OffsetStore(tmp_path, BOT_ID).load(NOW)
    assert loaded.offset is None and "kept as remote-offset.json.damaged-" in (loaded.note or "")
    assert not (tmp_path / OFFSET_FILE).exists()
    assert list(tmp_path.glob("remote-offset.json.damaged-*"))
    (tmp_path / OFFSET_FILE).write_text('{"v": 1, "offset": "x", "bot_id": 1, "seen": "now"}')
    assert OffsetStore(tmp_path, BOT_ID).load(NOW).offset is None


def test_one_remote_per_logs_directory_and_per_bot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    a, b = tmp_path / "a" / "state", tmp_path / "b" / "state"
    with remote_lock(a, BOT_ID):
        assert holder(a, BOT_ID) == str(os.getpid())
        same_logs = pytest.raises(RefusedError, match="already running for")
        with same_logs, remote_lock(a, BOT_ID + 1):
            pass
        same_bot = pytest.raises(RefusedError, match=f"already polling bot {BOT_ID} on this")
        with same_bot, remote_lock(b, BOT_ID):
            pass
        with remote_lock(b, BOT_ID + 1):  # another bot, other logs: fine
            pass
    assert holder(a, BOT_ID) is None
    with remote_lock(b, BOT_ID):  # released with the first
        pass
