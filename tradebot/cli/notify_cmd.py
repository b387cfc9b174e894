"""`tradebot notify test`: one test alert to every configured URL, with each result."""

from __future__ import annotations

from typing import Annotated

import typer

from tradebot.cli.context import state_of
from tradebot.cli.output import esc, print_json, stdout_console
from tradebot.errors import ExitCode, UsageError

app = typer.Typer(help="Alerts (Apprise): check the configured URLs.", no_args_is_help=True)


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
        print_json({"v": 1, "results": [vars(r) for r in results]})
    else:
        console = stdout_console()
        for r in results:
            mark = "[green]ok[/]" if r.ok else "[red]failed[/]"
            console.print(f"{esc(r.url)}: {mark} ({esc(r.detail)})", highlight=False)
    if not all(r.ok for r in results):
        raise typer.Exit(int(ExitCode.REFUSED))
