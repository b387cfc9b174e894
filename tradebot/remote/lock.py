"""One `tradebot remote` per logs directory and per bot.

Two pollers of one token take each other's updates (Telegram answers the older request with
409 Conflict, freqtrade #4871). Two locks, both `flock`, released by the kernel when the process
dies (kill -9 included):

* `state/remote.lock`: one remote per logs directory, whatever the token;
* `tradebot-remote-bot<id>.lock` in `$XDG_RUNTIME_DIR` (else the temporary directory): one remote
  per bot on this machine, whatever the logs directory. The bot id is public (the bot's own user
  id), never the token. If that directory cannot hold the lock (another user's file), the logs
  directory's lock and Telegram's 409 remain.

A poller on another machine cannot be seen by any lock: Telegram's 409 tells (service.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from tradebot.errors import RefusedError
from tradebot.storage.atomic import make_private_dirs

LOCK_FILE = "remote.lock"
log = logging.getLogger(__name__)


def runtime_dir() -> Path:
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    return Path(xdg) if xdg and Path(xdg).is_dir() else Path(tempfile.gettempdir())


def bot_lock_path(bot_id: int) -> Path:
    return runtime_dir() / f"tradebot-remote-bot{bot_id}.lock"


@contextlib.contextmanager
def remote_lock(state_dir: Path, bot_id: int) -> Iterator[None]:
    """Hold both locks, or RefusedError (exit 4) naming the process that holds one."""
    make_private_dirs(state_dir)
    with contextlib.ExitStack() as stack:
        here = _take(state_dir / LOCK_FILE)
        if isinstance(here, str):
            raise RefusedError(
                f"another tradebot remote (pid {here}) is already running for "
                f"{state_dir.parent}; stop it first (one remote per logs directory and per bot)"
            )
        stack.callback(os.close, here)
        try:
            bot = _take(bot_lock_path(bot_id))
        except OSError as exc:
            log.warning(
                "cannot use %s as the per-bot lock (%s); two remotes of this bot with "
                "different logs directories would be stopped by Telegram's 409 instead",
                bot_lock_path(bot_id),
                exc.strerror,
            )
            bot = None
        if isinstance(bot, str):
            raise RefusedError(
                f"another tradebot remote (pid {bot}) is already polling bot {bot_id} on this "
                "machine; stop it first: two pollers of one token take each other's messages"
            )
        if bot is not None:
            stack.callback(os.close, bot)
        yield


def _take(path: Path) -> int | str:
    """The locked fd (our pid written in it), or the pid text of the process holding it."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
        os.close(fd)
        return other
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
    return fd


def holder(state_dir: Path, bot_id: int) -> str | None:
    """The pid of a remote holding either lock now, else None (for `remote check`)."""
    for path in (state_dir / LOCK_FILE, bot_lock_path(bot_id)):
        if not path.exists():
            continue
        try:
            taken = _take(path)
        except OSError:
            continue
        if isinstance(taken, str):
            return taken
        os.close(taken)
    return None
