"""Shared fixtures: every test runs in its own directory with no TRADEBOT_* variables."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.remote.fake_telegram import FakeTelegram

SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def isolated(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """A clean working directory and environment, so the developer's shell cannot leak in."""
    for name in list(os.environ):
        if name.upper().startswith("TRADEBOT_"):
            monkeypatch.delenv(name)
    # Locks on IB gateways and accounts live in the user's runtime directory: one per test, so
    # tests running side by side (pytest-xdist) never refuse each other's runs.
    runtime = tmp_path_factory.mktemp("runtime")
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    # A CLI run configures the `tradebot` logger for its (captured, now closed) streams.
    logger = logging.getLogger("tradebot")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()
    logger.propagate = True


@pytest.fixture(scope="session", autouse=True)
def no_bot_token_in_any_output(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the whole suite (each worker): the Telegram bot token of the remote tests is in no
    file any test left — logs, journals, state, saved command outputs (issue 24)."""
    yield
    from tests.remote.fake_telegram import scan_for_token

    leaks = scan_for_token(tmp_path_factory.getbasetemp())
    assert leaks == [], f"the bot token leaked into {leaks}"


@pytest.fixture
def write_config(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write a config.toml (the default path) with the given body and return its path."""

    def _write(body: str = "", name: str = "config.toml") -> Path:
        path = tmp_path / name
        path.write_text(body, encoding="utf-8")
        return path

    return _write


def shared_data(relative: str) -> Path:
    """A file in ../shared/data, or skip the test with the reason when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"real market data not available: {path} is absent (see README, Tests)")
    return path


@pytest.fixture
def fake() -> Iterator[FakeTelegram]:
    """The fake Telegram Bot API on loopback (tests/remote/fake_telegram.py), for the remote's
    tests and the screen tests of `tradebot remote check`."""
    from tests.remote.fake_telegram import FakeTelegram

    server = FakeTelegram().start()
    try:
        yield server
    finally:
        server.stop()
