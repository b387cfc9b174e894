"""Alerts to the operator's phone or chat through Apprise (`monitoring.notify_urls`).

* `Alerts(...)(event, message)` never blocks and never raises: messages go on a bounded queue and
  a daemon thread sends them, each send bounded by Apprise's socket timeouts (4 s connect, 4 s
  read by default). A dead or slow endpoint delays other alerts, never a tick.
* Only events listed in `monitoring.notify_on` are sent; the same event and message within
  `DEDUPE_WINDOW` is sent once; at most `PER_MINUTE` alerts a minute (the rest are counted and
  reported in the next one that goes out).
* URLs carry tokens: they are never logged, shown only as `mask_url` keeps them (the scheme
  and the server, never a token), and Apprise's own logger — which names URLs when a send
  fails — is silenced. A failed send is logged once per failure streak, without the URL.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

DEDUPE_WINDOW = 600.0  # seconds
PER_MINUTE = 10
# What the operator must always hear about, however busy the minute was.
NEVER_THROTTLED = frozenset(
    {
        "critical",
        "halt",
        "resume",
        "downgrade",
        "daily_loss",
        "error",
        "disconnect",
        "reconnect",
        "stop",
        "summary",
        "remote",
    }
)
QUEUE_SIZE = 200
TITLE = "tradebot"


def mask_url(url: str) -> str:
    """What tells one URL from another without its secrets: the scheme and the server (host
    name or address, with its port) stay; a user, a password, the path and the query (where
    tokens live) become `***`, and so does a "host" that is a token itself (`tgram://TOKEN/…`,
    `ntfy://topic`): `json://hooks.example.com:8443/***`, `mailto://***@gmail.com`,
    `tgram://***`."""
    from urllib.parse import urlsplit

    scheme, sep, _rest = url.partition("://")
    if not sep or not scheme.isascii() or not scheme.replace("+", "").isalnum():
        return "url://***"
    try:
        parts = urlsplit(url)
        host, port = parts.hostname, parts.port
    except ValueError:
        return f"{scheme}://***"
    server = host is not None and (host == "localhost" or "." in host or ":" in host)
    if not server:
        return f"{scheme}://***"
    shown = f"[{host}]" if ":" in (host or "") else str(host)
    if port is not None:
        shown += f":{port}"
    user = "***@" if parts.username or parts.password else ""
    tail = "/***" if parts.path.strip("/") or parts.query else ""
    return f"{scheme}://{user}{shown}{tail}"


def quiet_apprise() -> None:
    """Apprise logs the URL of a failed send at WARNING: keep it out of every log."""
    apprise_log = logging.getLogger("apprise")
    apprise_log.setLevel(logging.CRITICAL + 1)
    apprise_log.propagate = False
    if not apprise_log.handlers:
        apprise_log.addHandler(logging.NullHandler())


Sender = Callable[[str, str], bool]


def _apprise() -> Any:
    """The apprise module, imported lazily (~0.3 s, only when alerts are configured); its
    import of the deprecated `imghdr` module warns on Python 3.11+, which is not ours to fix."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import imghdr  # noqa: F401  (imported here once, so apprise's later import is silent)

        import apprise
    quiet_apprise()
    return apprise


def apprise_sender(urls: Sequence[str]) -> Sender:
    """A function sending (title, body) to every URL; False when any send failed."""
    apprise = _apprise()
    client = apprise.Apprise()
    for url in urls:
        client.add(url)

    def send(title: str, body: str) -> bool:
        return bool(client.notify(title=title, body=body))

    return send


@dataclass
class _Item:
    event: str
    message: str


class Alerts:
    """The `notify(event, message)` hook of the loop and the operator commands."""

    def __init__(
        self,
        urls: Sequence[str],
        notify_on: Iterable[str],
        *,
        sender: Sender | None = None,
        also: Sender | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # `also`: a second destination beside the URLs (the Telegram chat of `tradebot remote`).
        self.enabled = bool(urls) or also is not None
        self._also = also
        self.notify_on = frozenset(notify_on)
        self._urls = list(urls)
        self._sender = sender
        self._clock = clock
        self._queue: queue.Queue[_Item | None] = queue.Queue(QUEUE_SIZE)
        self._recent: dict[tuple[str, str], float] = {}
        self._sent_times: list[float] = []
        self._dropped = 0
        self._failing = False
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.sent = 0
        self.failed = 0

    @property
    def also_enabled(self) -> bool:
        return self._also is not None

    def __call__(self, event: str, message: str) -> None:
        if not self.enabled or event not in self.notify_on:
            return
        now = self._clock()
        with self._lock:
            key = (event, message)
            last = self._recent.get(key)
            if last is not None and now - last < DEDUPE_WINDOW:
                return
            self._recent = {k: t for k, t in self._recent.items() if now - t < DEDUPE_WINDOW}
            self._recent[key] = now
            self._sent_times = [t for t in self._sent_times if now - t < 60]
            if len(self._sent_times) >= PER_MINUTE and event not in NEVER_THROTTLED:
                self._dropped += 1
                return
            self._sent_times.append(now)
            if self._dropped:
                message = f"{message} ({self._dropped} earlier alert(s) were throttled)"
                self._dropped = 0
        self._start()
        try:
            self._queue.put_nowait(_Item(event, message))
        except queue.Full:
            log.warning("alert queue full: dropped a %s alert", event)

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="tradebot-alerts", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        sender: Sender | None = self._sender
        if sender is None and self._urls:
            try:
                sender = apprise_sender(self._urls)
            except Exception as exc:  # a bad URL set must not take the loop down
                log.warning("alerts disabled: Apprise could not be set up (%s)", type(exc).__name__)
                if self._also is None:
                    return
        senders = [s for s in (sender, self._also) if s is not None]
        while True:
            item = self._queue.get()
            if item is None:
                return
            ok = True
            for send in senders:
                try:
                    ok = send(f"{TITLE}: {item.event}", item.message) and ok
                except Exception as exc:
                    ok = False
                    log.debug("alert send raised %s", type(exc).__name__)
            if ok:
                self.sent += 1
                if self._failing:
                    log.warning("alerts are delivered again")
                self._failing = False
            else:
                self.failed += 1
                if not self._failing:
                    log.warning(
                        "an alert could not be delivered to every notify URL (URLs are not "
                        "logged); check them with `tradebot notify test`"
                    )
                self._failing = True

    def close(self, timeout: float = 2.0) -> None:
        """Let queued alerts go out, waiting at most `timeout` seconds."""
        if self._thread is None:
            return
        try:
            self._queue.put_nowait(None)
        except queue.Full:
            return
        self._thread.join(timeout)


@dataclass(frozen=True)
class TestResult:
    url: str  # masked
    ok: bool
    detail: str


TEST_DEADLINE_S = 15.0  # one URL's whole send (Apprise's timeouts are per socket operation)


def send_test(
    urls: Sequence[str], message: str, *, deadline: float = TEST_DEADLINE_S
) -> list[TestResult]:
    """One message to each URL separately, with its own result (`tradebot notify test`).

    Each send has one overall `deadline`: Apprise's socket timeouts start again with every
    byte, so a server dripping its answer would hold the command for minutes. A send still
    running at its deadline is reported and left to finish in the background (a daemon
    thread; the command exits without waiting for it)."""
    apprise = _apprise()
    results = []
    for url in urls:
        client = apprise.Apprise()
        if not client.add(url):
            results.append(TestResult(mask_url(url), False, "not a URL Apprise understands"))
            continue
        outcome: list[TestResult] = []

        def send(client: Any = client, url: str = url, outcome: list[TestResult] = outcome) -> None:
            try:
                ok = bool(client.notify(title=f"{TITLE}: test", body=message))
            except Exception as exc:
                outcome.append(TestResult(mask_url(url), False, type(exc).__name__))
                return
            outcome.append(TestResult(mask_url(url), ok, "delivered" if ok else "delivery failed"))

        worker = threading.Thread(target=send, name="tradebot-notify-test", daemon=True)
        worker.start()
        worker.join(deadline)
        if outcome:
            results.append(outcome[0])
        else:
            results.append(
                TestResult(mask_url(url), False, f"no answer within {deadline:g} s (timed out)")
            )
    return results


def alerts_for(settings: object, also: Sender | None = None) -> Alerts:
    """The configured alerts (`[monitoring]`): nothing is sent when no URL is set."""
    monitoring = settings.monitoring  # type: ignore[attr-defined]
    urls = [u.get_secret_value() for u in monitoring.notify_urls]
    return Alerts(urls, monitoring.notify_on, also=also)
