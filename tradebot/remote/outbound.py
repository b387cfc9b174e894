"""Alerts to the remote channel's chat: the phone has one place for what the loop says and for
what it is told.

With `remote.send_alerts` (default) and a token in this process's environment (or
`remote.token_file`), every alert `monitoring.notify_on` selects — the session summary included
— also goes to each allowed user's private chat, through the same client as `tradebot remote`.
Without a token here nothing is sent this way (logged once, at INFO): the loop and the remote
may run with different environments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from tradebot.errors import ConfigError
from tradebot.notify import alerts as notify_alerts
from tradebot.remote.token import find_token, redact

log = logging.getLogger(__name__)
SEND_DEADLINE_S = 8.0


def telegram_sender(
    settings: Any, environ: Mapping[str, str] | None = None
) -> Callable[[str, str], bool] | None:
    """A (title, body) → delivered-to-all sender, or None when this channel is not set up."""
    remote = settings.remote
    if not remote.send_alerts or not remote.allowed_user_ids:
        return None
    try:
        token = find_token(remote.token_file, environ)
    except ConfigError as exc:
        log.warning("alerts are not sent to Telegram: %s", exc.message)
        return None
    if token is None:
        log.info(
            "remote.allowed_user_ids is set but this process has no Telegram token: alerts "
            "go to monitoring.notify_urls only"
        )
        return None
    from tradebot.remote.bot_api import BotApi, TelegramError

    api = BotApi(token, remote.api_url)
    chats = list(remote.allowed_user_ids)

    def send(title: str, body: str) -> bool:
        ok = True
        for chat in chats:
            try:
                api.send_message(chat, f"{title}\n{body}", deadline_s=SEND_DEADLINE_S)
            except TelegramError as exc:
                ok = False
                log.debug("Telegram alert to %s not delivered: %s", chat, redact(str(exc), token))
        return ok

    return send


def alerts_for(settings: Any) -> notify_alerts.Alerts:
    """The configured alerts (`[monitoring]`) plus the allowed users' Telegram chats
    (`remote.send_alerts`): what every command that alerts uses."""
    return notify_alerts.alerts_for(settings, also=telegram_sender(settings))
