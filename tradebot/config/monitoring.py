"""`[monitoring]`: alerts (Apprise URLs, which are secrets) and the heartbeat."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import (
    Field,
    SecretStr,
    field_validator,
)

from tradebot.config.fields import Int, Section

NotifyEvent = Literal[
    "critical",
    "start",
    "stop",
    "entry",
    "exit",
    "refusal",
    "daily_loss",
    "downgrade",
    "eligible",
    "halt",
    "resume",
    "disconnect",
    "reconnect",
    "error",
    "summary",
    "remote",
]
NOTIFY_EVENTS: tuple[str, ...] = get_args(NotifyEvent)
DEFAULT_NOTIFY_ON: tuple[NotifyEvent, ...] = (
    "critical",  # an option expiring today still held near the close, a position IB changed
    "start",
    "stop",
    "entry",
    "exit",
    "daily_loss",
    "downgrade",
    "eligible",
    "halt",
    "resume",
    "disconnect",
    "reconnect",
    "error",
    "summary",
    "remote",
)


class MonitoringConfig(Section):
    # Apprise URLs carry tokens, so they are secrets: masked in `config show` and never logged.
    notify_urls: list[SecretStr] = Field(default_factory=list, max_length=20)
    heartbeat_s: Int = Field(60, ge=1, le=3600)
    notify_on: list[NotifyEvent] = Field(default_factory=lambda: list(DEFAULT_NOTIFY_ON))

    @field_validator("notify_urls")
    @classmethod
    def _short_urls(cls, value: list[SecretStr]) -> list[SecretStr]:
        if any(not 0 < len(url.get_secret_value()) <= 2000 for url in value):
            raise ValueError("each URL must have 1 to 2000 characters (the value is not shown)")
        return value
