"""The bot's token: from the environment or a 0600 file, never from config.toml, never shown.

Where it is looked for, first found wins:

1. `TRADEBOT_TELEGRAM_TOKEN` (an `EnvironmentFile=` of the systemd unit, a tmux shell);
2. `remote.token_file`, an absolute path to a file only its owner can read (mode 0600 or 0400);
3. `$CREDENTIALS_DIRECTORY/telegram_token`, systemd's `LoadCredential=telegram_token:...`.

The token is `<bot id>:<secret>`. Only the bot id (public: it is the bot's own user id) is ever
shown; `Token.__str__` and `__repr__` mask the rest, and `redact` scrubs it from any text.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from tradebot.errors import ConfigError

ENV_TOKEN = "TRADEBOT_TELEGRAM_TOKEN"
CREDENTIAL_NAME = "telegram_token"
# BotFather's tokens: a numeric bot id, a colon, 35 characters of [A-Za-z0-9_-] (a little slack
# either way, Telegram has not promised the length).
_TOKEN = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{30,80}")
MASK = "**********"


@dataclass(frozen=True)
class Token:
    value: str
    source: str  # where it came from, for `remote check` (never the value)

    @property
    def bot_id(self) -> int:
        return int(self.value.split(":", 1)[0])

    def masked(self) -> str:
        return f"{self.bot_id}:{MASK}"

    def __str__(self) -> str:
        return self.masked()

    def __repr__(self) -> str:
        return f"Token({self.masked()!r}, source={self.source!r})"


def redact(text: str, token: Token | None) -> str:
    """`text` with the token's secret part replaced by asterisks."""
    if token is None:
        return text
    return text.replace(token.value, token.masked()).replace(token.value.split(":", 1)[1], MASK)


def find_token(token_file: Path | None, environ: Mapping[str, str] | None = None) -> Token | None:
    """The configured token, or None when none is set anywhere.

    A token that is set but unusable (malformed, a file others can read, unreadable) is a
    ConfigError naming where it came from and what to do; its value is never in the message.
    """
    env = os.environ if environ is None else environ
    raw = env.get(ENV_TOKEN)
    if raw is not None and raw.strip():
        return _checked(raw.strip(), ENV_TOKEN)
    if token_file is not None:
        return _checked(_read_secret_file(token_file, "remote.token_file"), str(token_file))
    creds = env.get("CREDENTIALS_DIRECTORY")
    if creds:
        path = Path(creds) / CREDENTIAL_NAME
        if path.exists():
            return _checked(_read_secret_file(path, "the systemd credential"), str(path))
    return None


def require_token(token_file: Path | None, environ: Mapping[str, str] | None = None) -> Token:
    token = find_token(token_file, environ)
    if token is None:
        raise ConfigError(
            f"no Telegram bot token: set {ENV_TOKEN} (e.g. in the systemd EnvironmentFile) or "
            "remote.token_file to a file only you can read; BotFather gives the token (README)"
        )
    return token


def _checked(value: str, source: str) -> Token:
    if not _TOKEN.fullmatch(value):
        raise ConfigError(
            f"the Telegram bot token from {source} is not a token (BotFather's look like "
            "123456789:AA…, about 46 characters); the value is not shown: copy it again from "
            "BotFather"
        )
    return Token(value, source)


def _read_secret_file(path: Path, what: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise ConfigError(f"{what} {path} does not exist; create it (mode 0600)") from None
    except OSError as exc:
        raise ConfigError(
            f"{what} {path} cannot be read ({exc.strerror}); it must be a regular file (not a "
            "symlink) readable by the user running tradebot, mode 0600"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{what} {path} is not a regular file; make it one, mode 0600")
        if info.st_mode & 0o077:
            raise ConfigError(
                f"{what} {path} can be read by others (mode {stat.S_IMODE(info.st_mode):04o}); "
                f"run `chmod 600 {path}`, and give BotFather's /revoke a thought if others "
                "could read it"
            )
        data = os.read(fd, 4096)
    finally:
        os.close(fd)
    try:
        return data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not a token (not plain text)") from None


class RedactingFilter(logging.Filter):
    """Scrubs the token from every record a handler writes (defence in depth: no tradebot code
    formats it, but a library's message might)."""

    def __init__(self, token: Token) -> None:
        super().__init__()
        self.token = token
        self.secret = token.value.split(":", 1)[1]

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if self.secret in text:
            record.msg = redact(text, self.token)
            record.args = ()
        return True


def redact_logs(token: Token, logger_name: str = "tradebot") -> None:
    """Add the filter to every handler of `logger_name` (filters on handlers also see the
    records of child loggers)."""
    for handler in logging.getLogger(logger_name).handlers:
        handler.addFilter(RedactingFilter(token))
