"""Alerts through Apprise: the right events reach a real endpoint; a dead or sleeping endpoint
never delays the loop; URLs never reach a log."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.cli.conftest import invoke
from tradebot.notify.alerts import PER_MINUTE, Alerts, mask_url


class Endpoint:
    """An HTTP server on 127.0.0.1 collecting Apprise json:// posts. With a `gate`, each post
    is held unanswered until the gate opens; `holding` counts the posts held right now."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        received: list[dict[str, str]] = []
        self.received = received
        self.holding = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if gate is not None:
                    endpoint.holding += 1
                    gate.wait(120)
                    endpoint.holding -= 1
                received.append(json.loads(body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"json://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def titles(self) -> list[str]:
        return [r["title"] for r in self.received]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    made = Endpoint()
    yield made
    made.close()


def _config(write_config, urls: list[str]) -> None:  # type: ignore[no-untyped-def]
    write_config(
        '[trading]\nmode = "paper"\nsymbols = ["SPY", "QQQ"]\n'
        f"[monitoring]\nnotify_urls = {json.dumps(urls)}\n"
        'notify_on = ["start", "stop", "entry", "exit", "summary"]\n'
    )


def test_the_loops_alerts_reach_a_real_endpoint(write_config, endpoint: Endpoint) -> None:  # type: ignore[no-untyped-def]
    _config(write_config, [endpoint.url])
    result = invoke(["run", "--start", "2025-07-01", "--until", "2025-07-01T12:00"])
    assert result.exit_code == 0, result.stderr
    deadline = time.monotonic() + 10
    while "tradebot: stop" not in endpoint.titles() and time.monotonic() < deadline:
        time.sleep(0.05)
    titles = endpoint.titles()
    assert titles[0] == "tradebot: start" and titles[-1] == "tradebot: stop"
    assert "tradebot: entry" in titles and "tradebot: exit" in titles
    assert all(t.split(": ")[1] in ("start", "stop", "entry", "exit", "summary") for t in titles)
    exits = [r["message"] for r in endpoint.received if r["title"] == "tradebot: exit"]
    assert all("P&L" in m for m in exits)


def test_dead_and_sleeping_endpoints_never_delay_the_loop(write_config) -> None:  # type: ignore[no-untyped-def]
    """The endpoint holds every post unanswered, and Apprise is told to wait 100 s for an
    answer (rto): a loop that waited on its alerts could not end its session before the gate
    opens (after 90 s, the test's safety net). It ends with the first alert still held."""
    gate = threading.Event()
    sleeper = Endpoint(gate)
    dead = "json://127.0.0.1:9/hook"  # the discard port: nothing listens
    safety = threading.Timer(90, gate.set)
    safety.start()
    try:
        _config(write_config, [f"{sleeper.url}?rto=100", dead])
        result = invoke(["run", "--start", "2025-07-01", "--until", "2025-07-01T12:00"])
        held_at_the_end, answered = sleeper.holding, len(sleeper.received)
    finally:
        gate.set()
        safety.cancel()
        sleeper.close()
    assert result.exit_code == 0, result.stderr
    assert "entries sent" in result.stdout and "0 entries sent" not in result.stdout
    assert held_at_the_end == 1  # the start alert, sent and never answered during the run
    assert answered == 0
    log = Path("logs/tradebot.log").read_text(encoding="utf-8")
    assert "127.0.0.1:9" not in log and sleeper.url.split("//")[1] not in log
    assert "json://" not in log


def test_notify_test_reports_each_url(write_config, endpoint: Endpoint) -> None:  # type: ignore[no-untyped-def]
    _config(write_config, [endpoint.url, "json://127.0.0.1:9/hook"])
    result = invoke(["notify", "test", "--json"])
    assert result.exit_code == 4
    doc = json.loads(result.stdout)
    assert [r["ok"] for r in doc["results"]] == [True, False]
    # Which one failed can be told (its place and its server), never its secret parts.
    assert [r["url"] for r in doc["results"]] == [
        f"json://127.0.0.1:{endpoint.server.server_address[1]}/***",
        "json://127.0.0.1:9/***",
    ]
    assert [r["index"] for r in doc["results"]] == [1, 2]
    assert endpoint.titles() == ["tradebot: test"]
    assert "hook" not in result.stdout + result.stderr
    shown = invoke(["notify", "test"])
    assert shown.exit_code == 4
    assert "#2 json://127.0.0.1:9/***" in shown.stdout and "failed" in shown.stdout
    assert "hook" not in shown.stdout


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("tgram://123456:SECRET/987", "tgram://***"),  # the "host" is the bot token
        (
            "json://user:pw@hooks.example.com:8443/path/TOKEN?x=1",
            "json://***@hooks.example.com:8443/***",
        ),
        ("mailto://me:app-password@gmail.com", "mailto://***@gmail.com"),
        ("ntfy://my-secret-topic", "ntfy://***"),
        ("ntfys://ntfy.sh/my-secret-topic", "ntfys://ntfy.sh/***"),
        ("discord://webhook_id/webhook_token", "discord://***"),
        ("json://localhost:8765", "json://localhost:8765"),
        ("not a url", "url://***"),
    ],
)
def test_a_url_is_shown_without_its_secret_parts(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_notify_test_without_urls_is_a_usage_error(write_config) -> None:  # type: ignore[no-untyped-def]
    write_config("")
    result = invoke(["notify", "test"])
    assert result.exit_code == 2 and "notify_urls is empty" in result.stderr


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def _sent(alerts: Alerts, sent: list[tuple[str, str]]) -> list[tuple[str, str]]:
    alerts.close(timeout=5)
    return sent


def test_filter_dedupe_and_throttle() -> None:
    sent: list[tuple[str, str]] = []
    clock = FakeClock()
    alerts = Alerts(
        ["json://x"],
        ["entry", "exit"],
        sender=lambda title, body: sent.append((title, body)) or True,
        clock=clock,
    )
    alerts("start", "not listed: dropped")
    alerts("entry", "A")
    alerts("entry", "A")  # same message within the window: once
    for i in range(PER_MINUTE + 3):
        alerts("exit", f"exit {i}")
    clock.t = 61
    alerts("exit", "after a minute")
    out = _sent(alerts, sent)
    assert out[0] == ("tradebot: entry", "A")
    assert len(out) == PER_MINUTE + 1
    assert out[-1][1].startswith("after a minute (4 earlier alert(s) were throttled)")


def test_a_failing_sender_is_logged_once_without_the_url() -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("tradebot.notify.alerts")
    logger.addHandler(handler)
    try:
        alerts = Alerts(["tgram://SECRET-TOKEN/123"], ["exit"], sender=lambda t, b: False)
        for i in range(3):
            alerts("exit", f"e{i}")
        alerts.close(timeout=5)
    finally:
        logger.removeHandler(handler)
    warnings = [r.getMessage() for r in records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "SECRET" not in warnings[0]
    assert alerts.failed == 3
    assert mask_url("tgram://SECRET-TOKEN/123") == "tgram://***"
