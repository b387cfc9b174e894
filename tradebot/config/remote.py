"""`[remote]`: `tradebot remote`, status and halt from a phone through a Telegram bot.

The bot's token is never a key here: `TRADEBOT_TELEGRAM_TOKEN`, a 0600 `token_file`, or
systemd's `LoadCredential=` (tradebot/remote/token.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, field_validator

from tradebot.config.fields import Bool, Int, Section, Text, plain_text
from tradebot.core.network import is_loopback

TELEGRAM_API = "https://api.telegram.org"


class RemoteConfig(Section):
    # Numeric Telegram user ids allowed to command the bot, in their private chat only. Empty:
    # `tradebot remote run` refuses to start.
    allowed_user_ids: list[Annotated[Int, Field(ge=1, le=2**53)]] = Field(
        default_factory=list, max_length=20
    )
    token_file: Annotated[Path, BeforeValidator(plain_text)] | None = None
    api_url: Annotated[Text, Field(max_length=200)] = TELEGRAM_API
    # Alerts (and each session's summary) also go to every allowed user's private chat.
    send_alerts: Bool = True

    @field_validator("allowed_user_ids")
    @classmethod
    def _unique_ids(cls, value: list[int]) -> list[int]:
        repeated = sorted({i for i in value if value.count(i) > 1})
        if repeated:
            raise ValueError(f"lists {', '.join(map(str, repeated))} more than once")
        return value

    @field_validator("token_file")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError("must be an absolute path (e.g. /etc/tradebot/telegram_token)")
        return value

    @field_validator("api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        return check_api_url(value)


def check_api_url(value: str) -> str:
    """https, or plain http to this machine only (a local Bot API server, or the tests' fake):
    the token is in the request path and must never cross a network in clear."""
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("must be an https:// URL such as https://api.telegram.org")
    if parts.query or parts.fragment or parts.username or parts.password:
        raise ValueError("must be a plain https://host[:port][/path] URL")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError(
            "plain http:// is allowed only to this machine (127.0.0.1, ::1, localhost): the "
            "token would cross the network in clear; use https://"
        )
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("has a port that is not a number from 1 to 65535") from None
    return value.rstrip("/")
