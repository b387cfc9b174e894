"""The Bot API client and the channel's poller under network trouble, against the fake server:
dropped and reset connections, a stalled and a slowloris server, a proxy's 502 page, 429, 409
Conflict, a webhook, a rejected token."""

from __future__ import annotations

import gc
import json
import logging
import threading
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.remote.conftest import OPERATOR, SECRET, Clock, Sleeps, loaded_config
from tests.remote.fake_telegram import TOKEN, FakeTelegram
from tradebot.errors import ConfigError, RefusedError
from tradebot.remote.bot_api import ApiError, BotApi, NetworkError, check_api_url
from tradebot.remote.service import Backoff, RemoteChannel
from tradebot.remote.token import Token

MakeChannel = Callable[..., RemoteChannel]


def api(fake: FakeTelegram, token: str = TOKEN) -> BotApi:
    return BotApi(Token(token, "test"), fake.url, connect_timeout=2)


def events(tmp_path: Path, name: str) -> list[dict[str, Any]]:
    path = tmp_path / "logs" / "journal" / "events.jsonl"
    lines = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [e for e in lines if e["event"] == name]


@pytest.mark.parametrize(
    ("fault", "kw", "expected"),
    [
        ("drop", {}, "getMe: connection closed without an answer"),
        ("reset", {}, "getMe: connection dropped|getMe: connection closed without an answer"),
        ("stall", {}, "getMe: timed out"),
        ("slowloris", {"interval": 0.02}, "getMe: timed out"),
        ("status", {"status": 502}, "getMe: HTTP 502, not a Bot API answer"),
    ],
)
def test_each_network_failure_is_a_network_error_within_the_deadline(
    fake: FakeTelegram, fault: str, kw: dict[str, Any], expected: str
) -> None:
    """A slowloris server sends a byte every 20 ms, so no read ever times out on its own: only
    the request's total deadline ends it (the liveness bound below is generous on purpose)."""
    fake.fail_next(fault, **kw)
    started = time.monotonic()
    with pytest.raises(NetworkError) as caught:
        api(fake).get_me(deadline_s=0.5)
    assert time.monotonic() - started < 5
    assert str(caught.value) in expected.split("|")  # a reset may be seen as either
    assert SECRET not in repr(caught.value)
    assert api(fake).get_me()["username"] == "tradebot_test_bot"  # the next request works


def test_bot_api_errors_carry_telegrams_code_and_never_the_token(fake: FakeTelegram) -> None:
    with pytest.raises(ApiError) as rejected:
        api(fake, TOKEN.replace("AAF", "AAX")).get_me()
    assert rejected.value.unauthorized and "Unauthorized" in str(rejected.value)
    fake.fail_next("conflict")
    with pytest.raises(ApiError) as conflict:
        api(fake).get_updates(None, timeout_s=0)
    assert conflict.value.conflict and conflict.value.code == 409
    fake.fail_next("429")
    with pytest.raises(ApiError) as slow_down:
        api(fake).get_updates(None, timeout_s=0)
    assert slow_down.value.code == 429 and slow_down.value.retry_after == 3
    for exc in (rejected.value, conflict.value, slow_down.value):
        assert SECRET not in str(exc) and SECRET not in repr(exc)


def test_long_polling_waits_for_an_update_and_the_offset_confirms(fake: FakeTelegram) -> None:
    client = api(fake)
    assert client.get_updates(None, timeout_s=0) == []
    timer = threading.Timer(0.2, lambda: fake.message(OPERATOR, "/status"))
    timer.start()
    updates = client.get_updates(None, timeout_s=5)  # held until the message arrives
    timer.join()
    assert [u["message"]["text"] for u in updates] == ["/status"]
    assert client.get_updates(updates[0]["update_id"] + 1, timeout_s=0) == []
    assert fake.pending() == []


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://api.telegram.org", True),
        ("https://tg.example.com:8443/proxy/", True),
        ("http://127.0.0.1:8081", True),
        ("http://[::1]:8081", True),
        ("http://localhost:8081", True),
        ("http://api.telegram.org", False),
        ("http://10.0.0.5:8081", False),
        ("ftp://api.telegram.org", False),
        ("https://user:pw@api.telegram.org", False),
        ("https://api.telegram.org?x=1", False),
        ("api.telegram.org", False),
    ],
)
def test_the_api_url_is_https_or_plain_http_to_this_machine_only(url: str, ok: bool) -> None:
    if ok:
        assert check_api_url(url) == url.rstrip("/")
    else:
        with pytest.raises(ValueError):
            check_api_url(url)


def _run_until(channel: RemoteChannel, done: Callable[[], bool], limit: int = 10_000) -> int:
    """Run the channel's real loop until `done()`; the number of iterations."""
    count = 0

    def beat(_status: str) -> None:
        nonlocal count
        count += 1
        if done() or count >= limit:
            channel.stop_requested = True

    channel.heartbeat = beat
    channel.stop_requested = False
    channel.run()
    return count


def test_network_drops_and_a_slowloris_server_back_off_boundedly_and_recover(
    tmp_path: Path, fake: FakeTelegram, make_channel: MakeChannel
) -> None:
    clock = Clock()
    sleeps = Sleeps()
    channel = make_channel(wall=clock, sleep=sleeps, poll_slack_s=0.3)
    for kind in ("drop", "reset", "slowloris", "stall", "drop", "status", "drop", "drop", "drop"):
        fake.fail_next(kind, interval=0.02)
    fake.message(OPERATOR, "/status", date=clock.epoch())
    _run_until(channel, lambda: bool(fake.texts(OPERATOR)))
    # rand() = 1.0: the top of each jittered interval, doubling from 1 s, capped at 60 s.
    assert sleeps.calls == [1, 2, 4, 8, 16, 32, 60, 60, 60]
    assert "Loop: not running" in fake.texts(OPERATOR)[0]  # recovered and answered
    assert len(events(tmp_path, "remote_network")) == 1  # once per streak, not per retry
    recovered = events(tmp_path, "remote_network_recovered")
    assert len(recovered) == 1 and "(9 failure(s))" in recovered[0]["message"]
    # The next failure starts again from 1 s.
    fake.fail_next("drop")
    fake.message(OPERATOR, "/help", date=clock.epoch())
    _run_until(channel, lambda: len(fake.texts(OPERATOR)) == 2)
    assert sleeps.calls[-1] == 1


def test_backoff_delays_stay_within_their_bounds_whatever_the_jitter() -> None:
    backoff = Backoff()
    delays = [backoff.next(r / 10) for r in range(10) for _ in range(3)]
    assert all(0.5 <= d <= 60 for d in delays)
    assert max(delays) <= 60 and min(delays[-5:]) >= 30  # capped, not growing for ever


def test_memory_stays_flat_over_hundreds_of_failed_polls(
    tmp_path: Path, fake: FakeTelegram, make_channel: MakeChannel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="tradebot")  # the test's log capture must not grow
    channel = make_channel(sleep=Sleeps(), poll_slack_s=0.3)
    fake.record_calls = False  # the fake runs in this process: its own records would count
    fake.fail_next("drop", 1000)

    def failing(n: int) -> None:
        done = channel.failures + n
        _run_until(channel, lambda: channel.failures >= done)

    failing(100)  # warm up: imports, caches
    gc.collect()
    tracemalloc.start()
    try:
        failing(100)
        gc.collect()
        first, _ = tracemalloc.get_traced_memory()
        failing(300)
        gc.collect()
        second, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert channel.failures == 500
    assert second - first < 64 * 1024, f"grew {second - first} bytes over 300 failed polls"


def test_429_waits_what_telegram_asks(
    tmp_path: Path, fake: FakeTelegram, make_channel: MakeChannel
) -> None:
    sleeps = Sleeps()
    channel = make_channel(sleep=sleeps)
    fake.fail_next("429")
    fake.message(OPERATOR, "/help")
    _run_until(channel, lambda: bool(fake.texts(OPERATOR)))
    assert sleeps.calls == [3]


def test_409_conflict_three_times_in_a_row_stops_with_a_clear_error(
    tmp_path: Path, fake: FakeTelegram, make_channel: MakeChannel
) -> None:
    sleeps = Sleeps()
    channel = make_channel(sleep=sleeps)
    fake.fail_next("conflict", 3)
    with pytest.raises(RefusedError, match="409 Conflict 3 times in a row: another process"):
        channel.run()
    assert len(sleeps.calls) == 2
    assert events(tmp_path, "remote_conflict")


def test_one_conflict_then_success_goes_on(
    tmp_path: Path, fake: FakeTelegram, make_channel: MakeChannel
) -> None:
    """A single 409 can be a previous connection of ours that Telegram has not closed yet
    (freqtrade #43): it is retried, not fatal."""
    channel = make_channel(sleep=Sleeps())
    fake.fail_next("conflict", 2)
    fake.message(OPERATOR, "/help")
    _run_until(channel, lambda: bool(fake.texts(OPERATOR)))
    assert channel.conflicts == 0


def test_two_pollers_of_one_token_stop_each_other_with_409(
    tmp_path: Path, fake: FakeTelegram
) -> None:
    """Telegram answers the older of two getUpdates with 409 (freqtrade #4871): two channels
    on one token (different logs directories, so no lock sees it) cannot both go on."""
    outcomes: list[str] = []
    channels = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        loaded = loaded_config(tmp_path / name, fake.url)
        channel = RemoteChannel(
            loaded, api(fake), notify=lambda e, m: None, sleep=lambda s: time.sleep(0.01),
            poll_timeout_s=2,
        )  # fmt: skip
        channel.start()
        channels.append(channel)

    def poll(channel: RemoteChannel) -> None:
        try:
            channel.run()
            outcomes.append("stopped")
        except RefusedError as exc:
            outcomes.append(exc.message)

    threads = [threading.Thread(target=poll, args=(c,)) for c in channels]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while not outcomes and time.monotonic() < deadline:
        time.sleep(0.01)
    for c in channels:
        c.stop_requested = True
    fake.message(OPERATOR, "/help")  # ends a survivor's long poll
    for t in threads:
        t.join(10)
    assert any("409 Conflict 3 times in a row" in o for o in outcomes), outcomes


def test_a_webhook_stops_the_channel_at_once(
    tmp_path: Path, fake: FakeTelegram, make_channel: MakeChannel
) -> None:
    channel = make_channel(sleep=Sleeps())
    fake.webhook = True
    with pytest.raises(RefusedError, match="a webhook is set for this bot"):
        channel.run()


def test_a_rejected_token_is_a_configuration_error(tmp_path: Path, fake: FakeTelegram) -> None:
    loaded = loaded_config(tmp_path, fake.url)
    wrong = Token(TOKEN.replace("AAF", "AAX"), "TRADEBOT_TELEGRAM_TOKEN")
    channel = RemoteChannel(loaded, BotApi(wrong, fake.url), notify=lambda e, m: None)
    with pytest.raises(ConfigError) as caught:
        channel.start()
    assert "rejected the bot token from TRADEBOT_TELEGRAM_TOKEN (401" in caught.value.message
    assert wrong.value.split(":")[1] not in caught.value.message
