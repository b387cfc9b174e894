"""`tradebot remote run | check`: status and halt from a phone, through a Telegram bot."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from tradebot.cli.context import state_of
from tradebot.cli.output import esc, fmt_time, print_json, stdout_console
from tradebot.errors import ConfigError, ExitCode

if TYPE_CHECKING:
    from tradebot.config import LoadedConfig

app = typer.Typer(
    rich_markup_mode=None,
    help="Status and halt from a phone (Telegram): reduces risk only.",
    no_args_is_help=True,
)


def _allow_list(loaded: LoadedConfig) -> list[int]:
    ids = list(loaded.settings.remote.allowed_user_ids)
    if not ids:
        raise ConfigError(
            "remote.allowed_user_ids is empty: the remote channel accepts commands only from "
            "listed numeric Telegram user ids, so it does not start without one; add yours "
            "(`tradebot remote check` shows who has written to the bot)"
        )
    return ids


@app.command("run")
def run(ctx: typer.Context) -> None:
    """Poll the bot and answer /status, /positions, /halt, /flatten, /help; until stopped.

    Exit 0 on SIGTERM or Ctrl-C; 3 without an allow-list or a usable token (or when Telegram
    rejects it); 4 when another remote polls the same bot (lock, or Telegram's 409 Conflict).
    """
    state = state_of(ctx)
    loaded = state.config()
    from tradebot.logging_setup import configure_logging
    from tradebot.notify.systemd import SystemdNotifier
    from tradebot.remote.bot_api import BotApi
    from tradebot.remote.lock import remote_lock
    from tradebot.remote.outbound import alerts_for
    from tradebot.remote.service import RemoteChannel
    from tradebot.remote.token import redact_logs, require_token

    remote = loaded.settings.remote
    _allow_list(loaded)
    token = require_token(remote.token_file)
    configure_logging(loaded.logs_dir, debug=state.debug, console_level=logging.INFO)
    redact_logs(token)
    alerts = alerts_for(loaded.settings)
    systemd = SystemdNotifier()
    try:
        with remote_lock(loaded.state_dir, token.bot_id):
            channel = RemoteChannel(
                loaded,
                BotApi(token, remote.api_url),
                notify=alerts,
                chat_alerts=alerts.also_enabled
                and "remote" in loaded.settings.monitoring.notify_on,
                heartbeat=systemd.watchdog,
            )
            channel.install_signal_handlers()
            systemd.ready("starting: asking Telegram who the bot is")
            channel.start()
            channel.run()
            systemd.stopping()
            stdout_console().print(
                f"remote stopped: {channel.handled} update(s) handled", highlight=False
            )
    finally:
        alerts.close(timeout=5)


@app.command("check")
def check(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document for scripts.")
    ] = False,
) -> None:
    """Check the set-up: token (masked), bot, webhook, allow-list, recent senders' ids.

    Who has written to the bot lately is listed with their numeric ids (for
    remote.allowed_user_ids), without consuming the messages: they stay for `remote run`, which
    ignores them once older than 60 s.

    Exit 0 ready; 3 no token, a rejected token or no allow-list; 4 a webhook is set (polling
    impossible); 5 Telegram unreachable.
    """
    loaded = state_of(ctx).config(log_to_file=False)
    from tradebot.remote.bot_api import ApiError, BotApi, TelegramError
    from tradebot.remote.lock import holder
    from tradebot.remote.token import redact, require_token

    remote = loaded.settings.remote
    token = require_token(remote.token_file)
    api = BotApi(token, remote.api_url)
    problems: list[str] = []
    doc: dict[str, Any] = {
        "v": 1,
        "token": token.masked(),
        "token_source": token.source,
        "bot": None,
        "allowed_user_ids": list(remote.allowed_user_ids),
        "webhook": False,
        "senders": [],
        "running_remote_pid": None,
        "problems": problems,
    }
    code = ExitCode.OK
    try:
        me = api.get_me()
        doc["bot"] = f"@{me.get('username')}"
        doc["webhook"] = bool(api.get_webhook_info().get("url"))
        pid = holder(loaded.state_dir, token.bot_id)
        doc["running_remote_pid"] = int(pid) if pid and pid.isdigit() else pid
        if pid is None:
            # timeout 0 and no offset: look, never confirm (the updates stay pending).
            doc["senders"] = _senders(api.get_updates(None, timeout_s=0))
    except ApiError as exc:
        problems.append(redact(str(exc), token))
        code = ExitCode.BAD_CONFIG if exc.unauthorized else ExitCode.REFUSED
    except TelegramError as exc:
        problems.append(f"Telegram unreachable: {redact(str(exc), token)}")
        code = ExitCode.GATEWAY_UNREACHABLE
    if doc["webhook"]:
        problems.append("a webhook is set for this bot: remove it (deleteWebhook) to poll")
        code = max(code, ExitCode.REFUSED)
    if not remote.allowed_user_ids:
        problems.append("remote.allowed_user_ids is empty: `remote run` will not start")
        if code == ExitCode.OK:
            code = ExitCode.BAD_CONFIG
    if as_json:
        print_json(doc)
    else:
        _render_check(doc)
    if code != ExitCode.OK:
        raise typer.Exit(int(code))


def _senders(updates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from tradebot.remote.commands import parse_update

    seen: dict[tuple[int | None, str | None], dict[str, Any]] = {}
    for raw in updates:
        update = parse_update(raw)
        if update is None or update.date is None:
            continue
        seen[(update.user_id, update.chat_type)] = {
            "user_id": update.user_id,
            "chat_type": update.chat_type,
            "last": update.date,
        }
    return list(seen.values())


def _render_check(doc: dict[str, Any]) -> None:
    from tradebot.remote.messages import ny

    out = stdout_console()
    out.print(f"token: {esc(doc['token'])} (from {esc(doc['token_source'])})", highlight=False)
    out.print(f"bot: {esc(doc['bot'] or 'unknown')}", highlight=False)
    ids = ", ".join(map(str, doc["allowed_user_ids"])) or "none"
    out.print(f"allowed user ids: {ids}", highlight=False)
    if doc["running_remote_pid"]:
        out.print(
            f"a tradebot remote (pid {doc['running_remote_pid']}) is polling: recent senders "
            "are not listed (reading them would interrupt it)",
            highlight=False,
        )
    elif doc["senders"]:
        out.print("recent messages to the bot (not consumed):", highlight=False)
        for s in doc["senders"]:
            when = ny(s["last"]) if isinstance(s["last"], datetime) else s["last"]
            out.print(f"  user id {s['user_id']} in a {s['chat_type']} chat, {when}")
    else:
        out.print("no recent messages to the bot (send it one to see your user id here)")
    for p in doc["problems"]:
        out.print(f"[red]![/] {esc(p)}", highlight=False)
    if not doc["problems"]:
        out.print(
            f"[green]ready[/] at {fmt_time(datetime.now(UTC), seconds=True)}", highlight=False
        )
