"""Fixtures for `tradebot remote`: the fake Bot API, a config pointing at it, an in-process
channel with an injectable clock, and the token check that runs after every test here."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.remote.fake_telegram import SECRET, TOKEN, FakeTelegram, scan_for_token
from tradebot.config import LoadedConfig, load_config
from tradebot.remote.bot_api import BotApi
from tradebot.remote.service import Backoff, RemoteChannel
from tradebot.remote.token import Token

OPERATOR = 111_222_333  # the allow-listed user
STRANGER = 999_888_777


def assert_no_token(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text, "the bot token leaked"


@pytest.fixture(autouse=True)
def no_token_anywhere(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> Iterator[None]:
    """After each test: the token is in no file it left (logs, journals, state, the outputs
    of the processes it ran, saved by `run_cli`) and in nothing it printed."""
    yield
    out, err = capfd.readouterr()
    assert_no_token(out, err)
    assert scan_for_token(tmp_path) == []


def remote_config(
    tmp_path: Path,
    url: str,
    extra: str = "",
    *,
    ids: Sequence[int] = (OPERATOR,),
    load: bool = True,
) -> LoadedConfig | None:
    """config.toml in `tmp_path` with a [remote] table pointing at `url`; loaded unless
    `load` is false (a config the test wants the command to refuse)."""
    path = tmp_path / "config.toml"
    path.write_text(
        '[broker.sim]\nseed = 7\n[trading]\nmode = "paper"\nsymbols = ["SPY", "QQQ", "IWM"]\n'
        '[phase.experience]\ncounted_modes = ["paper", "sim"]\n'
        f'[remote]\nallowed_user_ids = {list(ids)}\napi_url = "{url}"\n{extra}',
        encoding="utf-8",
    )
    return load_config(path) if load else None


def loaded_config(tmp_path: Path, url: str, extra: str = "", **kw: Any) -> LoadedConfig:
    loaded = remote_config(tmp_path, url, extra, **kw)
    assert loaded is not None
    return loaded


class Clock:
    """The remote's wall clock, moved by the test."""

    def __init__(self, start: datetime | None = None) -> None:
        self.now = start or datetime.now(UTC).replace(microsecond=0)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)

    def epoch(self, ago: float = 0) -> float:
        return (self.now - timedelta(seconds=ago)).timestamp()


class Sleeps:
    """The backoff's sleep: recorded, never waited for."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


class Notified:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, event: str, message: str) -> None:
        self.calls.append((event, message))


@pytest.fixture
def make_channel(tmp_path: Path, fake: FakeTelegram) -> Callable[..., RemoteChannel]:
    codes = iter(f"{n:06d}" for n in range(123456, 999999, 111))

    def _make(loaded: LoadedConfig | None = None, **kw: Any) -> RemoteChannel:
        loaded = loaded or loaded_config(tmp_path, fake.url)
        channel = RemoteChannel(
            loaded,
            BotApi(Token(TOKEN, "test"), loaded.settings.remote.api_url, connect_timeout=2),
            notify=kw.pop("notify", Notified()),
            wall=kw.pop("wall", Clock()),
            sleep=kw.pop("sleep", Sleeps()),
            rand=kw.pop("rand", lambda: 1.0),
            codes=kw.pop("codes", lambda: next(codes)),
            poll_timeout_s=kw.pop("poll_timeout_s", 0),
            backoff=kw.pop("backoff", Backoff()),
            **kw,
        )
        channel.start()
        return channel

    return _make


def run_cli(
    args: Sequence[str], cwd: Path, *, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m tradebot ARGS` in its own process with the token in its environment; its
    stdout and stderr are also saved under `cwd`, so the token scan reads them."""
    result = subprocess.run(
        [sys.executable, "-m", "tradebot", *args],
        cwd=cwd,
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    save_output(cwd, args, result.stdout, result.stderr)
    return result


def cli_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    env["TRADEBOT_TELEGRAM_TOKEN"] = TOKEN
    env.update(extra or {})
    return env


def save_output(cwd: Path, args: Sequence[str], stdout: str, stderr: str) -> None:
    outputs = cwd / "outputs"
    outputs.mkdir(exist_ok=True)
    n = len(list(outputs.iterdir()))
    (outputs / f"{n:03d}-{'-'.join(args)[:40].replace('/', '_')}.txt").write_text(
        f"$ tradebot {' '.join(args)}\n{stdout}\n--- stderr ---\n{stderr}", encoding="utf-8"
    )
