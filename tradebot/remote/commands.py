"""What a Telegram update means: a pure function of (update, allow-list, now, state) → actions.

Deny by default, in this order:

1. only messages are commands (edits, callbacks and the rest are ignored);
2. a channel post is refused whoever wrote it;
3. the sender must be in the allow-list (numeric user ids), and
4. the chat must be that user's private chat (a group is refused even for an allowed user:
   every member of a group would see, and in freqtrade's case could send, the commands);
5. the message must be at most `MAX_AGE` old by Telegram's `date` (a stale `/flatten` delivered
   after a reconnect is never executed);
6. only `/status`, `/positions`, `/halt`, `/flatten` (with its one-time code) and `/help` do
   anything; every other command is "not available remotely".

Every update yields exactly one journal record. Refusals get no detail back; the senders of
refused messages are counted, and a burst raises one alert.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from tradebot.core.trades import EXCHANGE_TZ
from tradebot.core.validation import escape_control

MAX_AGE = timedelta(seconds=60)  # older messages are ignored
CODE_TTL = timedelta(seconds=60)  # a /flatten code must come back within this
BURST_WINDOW = timedelta(seconds=60)
BURST_COUNT = 5  # refusals within the window that raise an alert
ALERT_EVERY = timedelta(minutes=10)  # at most one burst alert this often
REPLY_UNKNOWN_EVERY = timedelta(minutes=10)  # "Refused." to one unknown user at most this often
MAX_REMEMBERED = 1000  # unknown users remembered for the reply limit
MAX_REASON = 500
MAX_COMMAND = 40  # characters of the command word kept in the journal

ALLOWED = ("/status", "/positions", "/halt", "/flatten", "/help")
HELP = (
    "tradebot remote: this channel can only reduce risk.\n"
    "/status: what `tradebot status` shows\n"
    "/positions: open positions and working orders\n"
    "/halt [reason]: stop new entries now (the loop notices within a second)\n"
    "/flatten: halt, cancel working entries and sell every position; asks for a one-time code\n"
    "/help: this text\n"
    "Resume, entries, phase and configuration changes are done on the machine itself."
)
REFUSED = "Refused."


@dataclass(frozen=True)
class Incoming:
    """The parts of a Telegram update that decide what it may do."""

    update_id: int
    kind: str  # message, edited_message, channel_post, edited_channel_post, or another type
    user_id: int | None
    chat_id: int | None
    chat_type: str | None  # private, group, supergroup, channel
    date: datetime | None
    text: str | None


MESSAGE_KINDS = ("message", "edited_message", "channel_post", "edited_channel_post")


def parse_update(raw: Mapping[str, Any]) -> Incoming | None:
    """The update as `Incoming`; None when it has no integer `update_id` (not an update)."""
    update_id = raw.get("update_id")
    if not isinstance(update_id, int) or isinstance(update_id, bool):
        return None
    kind = next((k for k in MESSAGE_KINDS if isinstance(raw.get(k), dict)), None)
    if kind is None:
        other = next((k for k in raw if k != "update_id"), "empty")
        return Incoming(update_id, str(other)[:40], None, None, None, None, None)
    msg = raw[kind]
    sender = msg.get("from")
    chat = msg.get("chat")
    user_id = _int(sender.get("id")) if isinstance(sender, dict) else None
    chat_id = _int(chat.get("id")) if isinstance(chat, dict) else None
    chat_type = chat.get("type") if isinstance(chat, dict) else None
    date = _int(msg.get("date"))
    text = msg.get("text")
    return Incoming(
        update_id=update_id,
        kind=kind,
        user_id=user_id,
        chat_id=chat_id,
        chat_type=str(chat_type)[:20] if isinstance(chat_type, str) else None,
        date=None if date is None else _from_epoch(date),
        text=text if isinstance(text, str) else None,
    )


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _from_epoch(seconds: int) -> datetime | None:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


# -- actions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    chat_id: int
    text: str


@dataclass(frozen=True)
class RequestHalt:
    """Exactly `tradebot halt [--flatten]`, by `telegram:<user_id>`."""

    chat_id: int
    user_id: int
    reason: str | None
    flatten: bool


@dataclass(frozen=True)
class ShowStatus:
    chat_id: int


@dataclass(frozen=True)
class ShowPositions:
    chat_id: int


@dataclass(frozen=True)
class RaiseAlert:
    """To every allowed user's chat and the configured alerts (`remote` event)."""

    text: str


Action = Reply | RequestHalt | ShowStatus | ShowPositions | RaiseAlert


@dataclass(frozen=True)
class Pending:
    code: str
    issued: datetime


@dataclass(frozen=True)
class ChannelState:
    """What the channel remembers between updates (in memory only: a restart forgets pending
    codes, which only ever means asking for a new one)."""

    pending: Mapping[int, Pending] = field(default_factory=dict)  # user id → flatten code
    refusals: tuple[datetime, ...] = ()  # times of recent refusals (burst detection)
    replied: Mapping[int, datetime] = field(default_factory=dict)  # unknown user → last reply
    alerted: datetime | None = None


class _Out(Protocol):
    def __call__(
        self, outcome: str, detail: str, *actions: Action, new: ChannelState | None = ...
    ) -> Outcome: ...


@dataclass(frozen=True)
class Outcome:
    record: dict[str, Any]  # the `remote_command` line of journal/events.jsonl
    actions: tuple[Action, ...]
    state: ChannelState


def decide(
    update: Incoming,
    *,
    allowed: frozenset[int],
    now: datetime,
    state: ChannelState,
    fresh_code: str,
    bot_username: str | None = None,
) -> Outcome:
    """What to do with one update. `fresh_code` is a new random code, used only when this update
    asks for a flatten confirmation."""
    command = _command_word(update.text)

    def out(
        outcome: str, detail: str, *actions: Action, new: ChannelState | None = None
    ) -> Outcome:
        record = {
            "v": 1,
            "ts": now,
            "event": "remote_command",
            "update_id": update.update_id,
            "user_id": update.user_id,
            "chat_type": update.chat_type,
            "command": command,
            "outcome": outcome,
            "detail": detail,
        }
        return Outcome(record, actions, state if new is None else new)

    if update.kind not in MESSAGE_KINDS:
        return out("ignored", f"not a message ({update.kind})")
    if update.kind in ("channel_post", "edited_channel_post") or update.chat_type == "channel":
        return _refuse(update, now, state, out, "channel post", reply=False)
    if update.user_id is None or update.user_id not in allowed:
        private = update.chat_type == "private" and update.chat_id == update.user_id
        return _refuse(update, now, state, out, "user not in the allow-list", reply=private)
    if update.chat_type != "private" or update.chat_id != update.user_id:
        return _refuse(update, now, state, out, f"not a private chat ({update.chat_type})")
    chat = update.chat_id
    if update.user_id in state.pending and not (command or "").startswith("/flatten"):
        # Anything else from that user (another command, text, a stale or edited message)
        # cancels a pending flatten.
        pending = {k: v for k, v in state.pending.items() if k != update.user_id}
        state = replace(state, pending=pending)
    if update.date is None:
        return out("ignored", "message without a date")
    age = (now - update.date).total_seconds()
    if age > MAX_AGE.total_seconds():
        return out(
            "ignored",
            f"sent {age:.0f} s ago (more than {MAX_AGE.seconds} s)",
            Reply(chat, stale_text(command, update.date, age)),
        )
    if age < -MAX_AGE.total_seconds():
        return out(
            "ignored",
            f"dated {-age:.0f} s in the future: this machine's clock may be wrong",
            Reply(chat, "Ignored: your message is dated ahead of this machine's clock; check "
                  "its time (NTP), then send it again."),
        )  # fmt: skip
    if update.kind == "edited_message":
        edit = Reply(chat, "Edits are not commands: send it again.")
        return out("ignored", "edited message", edit)
    if update.text is None or not update.text.startswith("/"):
        return out("not_available", "not a command", Reply(chat, not_available_text(None)))
    name, _, target = (command or "").partition("@")
    if target and bot_username and target.lower() != bot_username.lower():
        return out("ignored", f"addressed to another bot (@{target})")
    arg = _argument(update.text)
    if name.startswith("/flatten_"):  # the tappable form of the confirmation: /flatten_123456
        name, arg = "/flatten", name.removeprefix("/flatten_") + (f" {arg}" if arg else "")
    user = update.user_id
    if name in ("/help", "/start"):
        return out("accepted", "help", Reply(chat, HELP))
    if name == "/status":
        return out("accepted", "status", ShowStatus(chat))
    if name == "/positions":
        return out("accepted", "positions", ShowPositions(chat))
    if name == "/halt":
        return out("accepted", "halt", RequestHalt(chat, user, _reason(arg), flatten=False))
    if name == "/flatten":
        return _flatten(update, chat, user, arg, now, state, fresh_code, out)
    return out("not_available", "not available remotely", Reply(chat, not_available_text(name)))


def _flatten(
    update: Incoming,
    chat: int,
    user: int,
    arg: str,
    now: datetime,
    state: ChannelState,
    fresh_code: str,
    out: _Out,
) -> Outcome:
    pending = dict(state.pending)
    asked = pending.pop(user, None)
    code, _, reason = arg.partition(" ")
    if not code:
        pending[user] = Pending(fresh_code, now)
        return out(
            "accepted",
            f"confirmation code sent (valid {CODE_TTL.seconds} s)",
            Reply(chat, confirm_text(fresh_code)),
            new=replace(state, pending=pending),
        )
    new = replace(state, pending=pending)  # any answer uses up the pending code
    again = "Nothing done. Send /flatten for a new code."
    if asked is None:
        none = Reply(chat, f"No confirmation pending. {again}")
        return out("refused", "no confirmation pending", none, new=new)
    if now - asked.issued > CODE_TTL:
        return out("refused", "code expired", Reply(chat, f"Code expired. {again}"), new=new)
    if not hmac.compare_digest(code.encode(), asked.code.encode()):
        return out("refused", "wrong code", Reply(chat, f"Wrong code. {again}"), new=new)
    return out(
        "accepted",
        "flatten confirmed",
        RequestHalt(chat, user, _reason(reason), flatten=True),
        new=new,
    )


def _refuse(
    update: Incoming,
    now: datetime,
    state: ChannelState,
    out: _Out,
    detail: str,
    *,
    reply: bool = False,
) -> Outcome:
    recent = (*(t for t in state.refusals if now - t < BURST_WINDOW), now)
    actions: list[Action] = []
    replied = dict(state.replied)
    user = update.user_id
    burst = len(recent) >= BURST_COUNT
    if reply and user is not None and update.chat_id is not None and not burst:
        last = replied.get(user)
        if last is None or now - last >= REPLY_UNKNOWN_EVERY:
            actions.append(Reply(update.chat_id, REFUSED))
            replied[user] = now
    if len(replied) > MAX_REMEMBERED:  # keep the newest only
        replied = dict(sorted(replied.items(), key=lambda kv: kv[1])[-MAX_REMEMBERED:])
    alerted = state.alerted
    if burst and (alerted is None or now - alerted >= ALERT_EVERY):
        actions.append(RaiseAlert(burst_text(len(recent), update)))
        alerted = now
    new = replace(state, refusals=recent[-BURST_COUNT * 4 :], replied=replied, alerted=alerted)
    return out("refused", detail, *actions, new=new)


def _command_word(text: str | None) -> str | None:
    if not text or not text.startswith("/"):
        return None
    word = text.split(maxsplit=1)[0].lower()
    return escape_control(word)[:MAX_COMMAND]


def _argument(text: str) -> str:
    parts = text.split(maxsplit=1)
    return parts[1].strip() if len(parts) > 1 else ""


def _reason(text: str) -> str | None:
    text = " ".join(text.split())  # newlines and tabs become spaces
    if not text:
        return None
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


# -- texts --------------------------------------------------------------------------------------


def confirm_text(code: str) -> str:
    return (
        "Flatten sells every position at market and cancels working entries (it also halts "
        f"new entries).\nTo confirm, send /flatten {code} within {CODE_TTL.seconds} s "
        f"(or tap /flatten_{code}). Anything else cancels it."
    )


def not_available_text(command: str | None) -> str:
    what = f"{command} is not available remotely." if command else "Not a command."
    return (
        f"{what} From here: /status, /positions, /halt, /flatten, /help. Resume, entries, "
        "phase and configuration changes are done on the machine itself."
    )


def stale_text(command: str | None, sent: datetime, age: float) -> str:
    local = sent.astimezone(EXCHANGE_TZ).strftime("%H:%M:%S %Z")
    return (
        f"Ignored {command or 'your message'} sent at {local} ({age:.0f} s ago; "
        f"commands older than {MAX_AGE.seconds} s are never run). Send it again if you still "
        "want it."
    )


def burst_text(count: int, update: Incoming) -> str:
    who = f"user {update.user_id}" if update.user_id is not None else "a channel"
    return (
        f"{count} refused messages to the bot within {BURST_WINDOW.seconds} s (the latest from "
        f"{who}, {update.chat_type or update.kind}). Nothing was done; each is in "
        "journal/events.jsonl. If this is not you, consider a new token (BotFather /revoke)."
    )
