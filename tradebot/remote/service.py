"""The remote channel's loop: long-poll `getUpdates`, decide (`commands.decide`), act, repeat.

No broker connection, no open port: the process only reads what `tradebot status` reads and
writes what `tradebot halt` writes. For each update, in this order: the offset is saved (so a
restart never handles it again), the `remote_command` line is journaled, then the actions run.

Failures and what happens:

* network errors, Telegram's 5xx, an answer that is not the Bot API's: retry after a bounded
  exponential backoff (1 s doubling to 60 s, with jitter), reset by the first success; the first
  failure and the recovery are logged and journaled, not every retry;
* 429 Too Many Requests: wait what Telegram says (at most 2 minutes);
* 401 Unauthorized (a revoked or mistyped token): ConfigError, exit 3;
* 409 Conflict: another process polls this token (or a webhook is set): three in a row stop the
  remote with RefusedError, exit 4; a webhook stops it at once.

Why one module: the long-poll loop and its failure handling (backoff, 429, 409, the saved offset,
journaling before acting) are one state machine whose order is the safety argument.
"""

from __future__ import annotations

import logging
import random
import secrets
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from tradebot.books.halt import EVENTS_FILE, request_halt
from tradebot.errors import ConfigError, CorruptRecordError, RefusedError, TradebotError
from tradebot.remote import messages
from tradebot.remote.bot_api import ApiError, BotApi, TelegramError
from tradebot.remote.commands import (
    Action,
    ChannelState,
    RaiseAlert,
    Reply,
    RequestHalt,
    ShowPositions,
    ShowStatus,
    decide,
    parse_update,
)
from tradebot.remote.offset import TRUST_FOR, OffsetStore
from tradebot.remote.token import redact
from tradebot.storage import JsonlFile

log = logging.getLogger(__name__)

POLL_TIMEOUT_S = 25  # Telegram holds an idle getUpdates this long (its maximum is 50)
CONFLICT_LIMIT = 3  # 409 answers in a row before giving up
MAX_RETRY_AFTER_S = 120.0  # below the unit's WatchdogSec (180)


class Interrupted(Exception):
    """SIGTERM or Ctrl-C while waiting on the network or in a backoff sleep."""


@dataclass
class Backoff:
    """Bounded exponential backoff with jitter: each delay is in [d/2, d], d = initial × 2^n,
    never more than `maximum`."""

    initial: float = 1.0
    maximum: float = 60.0
    _current: float | None = None

    def next(self, rand: float) -> float:
        self._current = (
            self.initial if self._current is None else min(self.maximum, self._current * 2)
        )
        return self._current * (0.5 + rand / 2)

    def reset(self) -> None:
        self._current = None


def new_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


class RemoteChannel:
    def __init__(
        self,
        loaded: Any,
        api: BotApi,
        *,
        notify: Callable[[str, str], None],
        chat_alerts: bool = False,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
        sleep: Callable[[float], None] = time.sleep,
        rand: Callable[[], float] = random.random,
        codes: Callable[[], str] = new_code,
        poll_timeout_s: int = POLL_TIMEOUT_S,
        poll_slack_s: float = 10.0,
        backoff: Backoff | None = None,
        heartbeat: Callable[[str], object] | None = None,
    ) -> None:
        self.loaded = loaded
        self.api = api
        self.notify = notify
        # True when `notify` already reaches the allowed users' chats for the `remote` event.
        self.chat_alerts = chat_alerts
        self.wall = wall
        self.sleep = sleep
        self.rand = rand
        self.codes = codes
        self.poll_timeout_s = poll_timeout_s
        self.poll_slack_s = poll_slack_s  # a poll's deadline: poll_timeout_s + this
        self.backoff = backoff or Backoff()
        self.heartbeat: Callable[[str], object] = heartbeat or (lambda status: None)
        self.allowed = frozenset(loaded.settings.remote.allowed_user_ids)
        self.state = ChannelState()
        self.events = JsonlFile(Path(loaded.logs_dir) / EVENTS_FILE)
        self.offsets = OffsetStore(Path(loaded.state_dir), api.token.bot_id)
        self.offset: int | None = None
        self.seen_at: datetime | None = None  # when the last update was handled
        self.bot_username: str | None = None
        self.conflicts = 0
        self.failing_since: datetime | None = None
        self.failures = 0
        self.handled = 0
        self.stop_requested = False
        self._interruptible = False

    # -- life cycle -------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        def on_signal(signum: int, frame: FrameType | None) -> None:
            self.stop_requested = True
            if self._interruptible:
                raise Interrupted

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

    def start(self) -> None:
        """Who the bot is (getMe, retried while the network is down) and where to resume."""
        now = self.wall()
        loaded_offset = self.offsets.load(now)
        self.offset = loaded_offset.offset
        self.seen_at = loaded_offset.seen
        if loaded_offset.note:
            log.warning("remote: %s", loaded_offset.note)
            self._journal("remote_offset_reset", loaded_offset.note)
        while not self.stop_requested:
            self.heartbeat("asking Telegram who the bot is")
            try:
                me = self._net(lambda: self.api.get_me())
            except Interrupted:
                return
            except TelegramError as exc:
                try:
                    self._failed(exc)
                except Interrupted:
                    return
                continue
            self._recovered()
            username = me.get("username")
            self.bot_username = username if isinstance(username, str) else None
            break
        else:
            return
        self._journal(
            "remote_start",
            f"polling as @{self.bot_username} for {len(self.allowed)} allowed user(s)",
            offset=self.offset,
        )
        log.warning(
            "tradebot remote: polling as @%s for user id(s) %s",
            self.bot_username,
            ", ".join(map(str, sorted(self.allowed))),
        )

    def run(self) -> str:
        """Poll until stopped; returns why it stopped. Raises ConfigError / RefusedError when
        Telegram says this process must not poll (401, 409)."""
        while not self.stop_requested:
            self.heartbeat(self.status_line())
            try:
                self.poll_once()
            except Interrupted:
                break
            except TelegramError as exc:
                try:
                    self._failed(exc)
                except Interrupted:
                    break
        self._journal("remote_stop", "stopped (signal)", handled=self.handled)
        return "signal"

    def poll_once(self) -> int:
        """One getUpdates and every update in it; the number of updates."""
        offset = self.offset
        if self.seen_at is not None and self.wall() - self.seen_at > TRUST_FOR:
            offset = None  # a week without updates: Telegram may number the next ones afresh
        updates = self._net(
            lambda: self.api.get_updates(
                offset, timeout_s=self.poll_timeout_s, slack_s=self.poll_slack_s
            )
        )
        self._recovered()
        for raw in updates:
            self.handle(raw, offset)
        return len(updates)

    def status_line(self) -> str:
        state = "polling" if self.failing_since is None else "Telegram unreachable, retrying"
        return f"{state} as @{self.bot_username} · {self.handled} update(s) handled"

    # -- one update -------------------------------------------------------------------------

    def handle(self, raw: dict[str, Any], sent_offset: int | None = None) -> None:
        now = self.wall()
        update = parse_update(raw)
        if update is None:
            log.warning("remote: an update without an update_id was skipped")
            return
        if sent_offset is not None and update.update_id < sent_offset:
            return  # confirmed already: Telegram never returns these
        self.offset = update.update_id + 1
        self.offsets.save(self.offset, now)  # before acting: never twice
        self.seen_at = now
        outcome = decide(
            update,
            allowed=self.allowed,
            now=now,
            state=self.state,
            fresh_code=self.codes(),
            bot_username=self.bot_username,
        )
        self.state = outcome.state
        try:
            self.events.append(outcome.record)
        except TradebotError as exc:  # never a reason not to halt: act, and say so
            log.error("remote: cannot journal update %s: %s", update.update_id, exc.message)
        self.handled += 1
        level = logging.INFO if outcome.record["outcome"] == "accepted" else logging.WARNING
        log.log(
            level,
            "remote: %s from user %s (%s): %s, %s",
            outcome.record["command"] or "a message",
            update.user_id,
            update.chat_type,
            outcome.record["outcome"],
            outcome.record["detail"],
        )
        for action in outcome.actions:
            self.execute(action, now)

    def execute(self, action: Action, now: datetime) -> None:
        try:
            if isinstance(action, Reply):
                self.send(action.chat_id, action.text)
            elif isinstance(action, ShowStatus):
                report, halt = self._report(now)
                self.send(action.chat_id, messages.status_text(report, halt, now))
            elif isinstance(action, ShowPositions):
                report, _ = self._report(now)
                self.send(action.chat_id, messages.positions_text(report, now))
            elif isinstance(action, RequestHalt):
                self._halt(action, now)
            elif isinstance(action, RaiseAlert):
                self.notify("remote", action.text)
                if not self.chat_alerts:
                    for chat in sorted(self.allowed):
                        self.send(chat, f"tradebot: remote\n{action.text}")
        except TradebotError as exc:
            log.error("remote: %s failed: %s", type(action).__name__, exc.message)
            self._journal("remote_error", f"{type(action).__name__}: {exc.message}")
            chat = getattr(action, "chat_id", None)
            if chat is not None:
                lines = [f"FAILED: {exc.message}"]
                if isinstance(action, RequestHalt) and self._halted():
                    lines.append(
                        "The halt itself is in place (state/halt.json): the loop acts on it."
                    )
                self.send(chat, messages.fit(lines))

    def _halt(self, action: RequestHalt, now: datetime) -> None:
        state = request_halt(
            Path(self.loaded.state_dir),
            Path(self.loaded.logs_dir),
            now,
            operator=f"telegram:{action.user_id}",
            reason=action.reason,
            flatten=action.flatten,
            notify=self.notify,
        )
        report, _ = self._report(now)
        running = report.get("pid") if report.get("running") else None
        lines = [messages.halt_line(state, "")]
        if action.flatten:
            lines.append(
                "Flatten requested: the loop cancels working entries and sells every position "
                "at market at its next wake. /positions shows the progress."
            )
        lines.append(
            f"A running loop (pid {running}) stops new entries within a second."
            if running
            else "No loop is running now; the halt holds when one starts."
        )
        lines.append("Lift it on the machine: `tradebot resume`.")
        self.send(action.chat_id, messages.fit(lines))

    def _halted(self) -> bool:
        from tradebot.books.state_store import StateStore

        try:
            return StateStore(Path(self.loaded.state_dir)).halt().halted
        except TradebotError:
            return False

    def _report(self, now: datetime) -> tuple[dict[str, Any], Any]:
        from tradebot.books.state_store import StateStore
        from tradebot.engine.status_view import loop_report

        report = loop_report(self.loaded, now)
        try:
            halt = StateStore(Path(self.loaded.state_dir)).halt()
        except CorruptRecordError:
            halt = None
        return report, halt

    def send(self, chat_id: int, text: str) -> bool:
        try:
            self._net(lambda: self.api.send_message(chat_id, text))
        except TelegramError as exc:
            log.warning(
                "remote: a reply to %s was not delivered: %s", chat_id, self._safe(str(exc))
            )
            return False
        return True

    # -- failures ---------------------------------------------------------------------------

    def _net(self, call: Callable[[], Any]) -> Any:
        """A network call that SIGTERM may interrupt (nothing is half-done while waiting)."""
        self._interruptible = True
        try:
            if self.stop_requested:
                raise Interrupted
            return call()
        finally:
            self._interruptible = False

    def _failed(self, exc: TelegramError) -> None:
        """Classify a failed poll: give up (raise) or wait and let the caller retry."""
        if isinstance(exc, ApiError):
            if exc.unauthorized:
                raise ConfigError(
                    f"Telegram rejected the bot token from {self.api.token.source} ({exc.code} "
                    f"{self._safe(exc.description)}): it was revoked or mistyped; copy the "
                    "current one from BotFather"
                )
            if exc.conflict:
                self._conflict(exc)
            else:
                self.conflicts = 0
            if exc.code == 429:
                wait = min(MAX_RETRY_AFTER_S, exc.retry_after or 5.0)
                log.warning("remote: Telegram asks to wait %.0f s (429)", wait)
                self._sleep(wait)
                return
        else:
            self.conflicts = 0
        self.failures += 1
        delay = self.backoff.next(self.rand())
        text = self._safe(str(exc))
        if self.failing_since is None:
            self.failing_since = self.wall()
            log.warning("remote: %s; retrying in %.1f s (backing off up to 60 s)", text, delay)
            self._journal("remote_network", text)
        else:
            log.info("remote: %s; retrying in %.1f s", text, delay)
        self._sleep(delay)

    def _conflict(self, exc: ApiError) -> None:
        if "webhook" in exc.description.lower():
            raise RefusedError(
                "Telegram answered 409 Conflict: a webhook is set for this bot, so its updates "
                "go there and cannot be polled; remove it (Bot API deleteWebhook) or use "
                "another bot for tradebot remote"
            )
        self.conflicts += 1
        if self.conflicts >= CONFLICT_LIMIT:
            self._journal("remote_conflict", self._safe(exc.description))
            raise RefusedError(
                f"Telegram answered 409 Conflict {self.conflicts} times in a row: another "
                "process is polling this bot's token (a second tradebot remote, on this or "
                "another machine, or another program); stop it, then start this one again "
                "(one poller per bot)"
            )

    def _recovered(self) -> None:
        self.backoff.reset()
        self.conflicts = 0
        if self.failing_since is not None:
            took = (self.wall() - self.failing_since).total_seconds()
            text = f"Telegram reachable again after {took:.0f} s ({self.failures} failure(s))"
            log.warning("remote: %s", text)
            self._journal("remote_network_recovered", text)
        self.failing_since = None
        self.failures = 0

    def _sleep(self, seconds: float) -> None:
        self._interruptible = True
        try:
            if self.stop_requested:
                raise Interrupted
            self.sleep(seconds)
        finally:
            self._interruptible = False

    def _safe(self, text: str) -> str:
        return redact(text, self.api.token)

    def _journal(self, event: str, message: str, **extra: Any) -> None:
        record = {"v": 1, "ts": self.wall(), "event": event, "message": message, **extra}
        try:
            self.events.append(record)
        except TradebotError as exc:
            log.error("remote: cannot journal %s: %s", event, exc.message)
