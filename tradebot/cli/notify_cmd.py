"""`tradebot notify test`: one test alert to every configured URL, with each result."""

from __future__ import annotations

from typing import Annotated

import typer

from tradebot.cli.context import state_of
from tradebot.cli.output import esc, print_json, stdout_console
from tradebot.cli.tables import facts
from tradebot.errors import ExitCode, UsageError

app = typer.Typer(
    rich_markup_mode=None, help="Alerts (Apprise): check the configured URLs.", no_args_is_help=True
)


@app.command("test")
def test(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document for scripts.")
    ] = False,
) -> None:
    """Send one test message to each `monitoring.notify_urls` entry; exit 4 if any failed."""
    from tradebot.notify.alerts import send_test

    loaded = state_of(ctx).config()
    urls = [u.get_secret_value() for u in loaded.settings.monitoring.notify_urls]
    if not urls:
        raise UsageError(
            "monitoring.notify_urls is empty; add Apprise URLs (e.g. in "
            "TRADEBOT_MONITORING__NOTIFY_URLS='[\"ntfy://mytopic\"]') and run this again"
        )
    results = send_test(urls, "tradebot test alert: if you read this, alerts reach you.")
    if as_json:
        print_json({"v": 1, "results": [{"index": i, **vars(r)} for i, r in enumerate(results, 1)]})
    else:
        console = stdout_console()
        rows = [
            (
                f"#{i} {esc(r.url)}",
                f"{'[green]ok[/]' if r.ok else '[red]failed[/]'} ({esc(r.detail)})",
            )
            for i, r in enumerate(results, 1)
        ]
        console.print(facts(rows, console.width + 2))
        if not all(r.ok for r in results):
            console.print(
                "#N is the URL's place in monitoring.notify_urls; the secret parts (tokens, "
                "passwords, paths) are never shown"
            )
    if not all(r.ok for r in results):
        raise typer.Exit(int(ExitCode.REFUSED))
