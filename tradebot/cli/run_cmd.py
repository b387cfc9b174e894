"""`tradebot run`: the trading loop (spec §6)."""

from __future__ import annotations

import logging
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tradebot.cli.context import state_of
from tradebot.cli.output import esc, fmt_money, stdout_console

if TYPE_CHECKING:
    from tradebot.engine.loop import RunSummary


def run(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="One tick (after reconciling), then exit.")
    ] = False,
    bars: Annotated[
        Path | None,
        typer.Option(
            help="Replay 1-minute bars from CSV files in this folder (<SYMBOL>.csv); simulated "
            "broker only.",
            show_default=False,
        ),
    ] = None,
    speed: Annotated[
        str | None,
        typer.Option(
            help="Simulated seconds per real second, or 'max'. Default: real time, or max when "
            "--start or --bars is given.",
            show_default=False,
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            help="Start a simulated clock here: ISO date or datetime (New York unless it has "
            "an offset).",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            help="Stop when the clock reaches this date or datetime. Default for a simulated "
            "clock: the end of its day (or of the bars).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the trading loop: signals, guards, sizing, brackets, journal (simulated broker)."""
    state = state_of(ctx)
    loaded = state.config()
    from tradebot.engine import runner
    from tradebot.logging_setup import configure_logging
    from tradebot.remote.outbound import alerts_for

    options = runner.build_options(once=once, bars=bars, speed=speed, start=start, until=until)
    configure_logging(loaded.logs_dir, debug=state.debug, console_level=logging.INFO)
    log = logging.getLogger("tradebot.notify")
    alerts = alerts_for(loaded.settings)

    def notify(event: str, message: str) -> None:
        log.info("[%s] %s", event, message)
        alerts(event, message)

    try:
        if sys.stdout.isatty() and not runner.fast_replay(options) and not once:
            from tradebot.cli.live_view import live_view

            with live_view() as view:
                summary = runner.run(loaded, options, notify, view=view)
        else:
            summary = runner.run(loaded, options, notify)
    finally:
        alerts.close(timeout=5)
    _render(summary)


def _render(summary: RunSummary) -> None:
    console = stdout_console()
    ended = summary.ended.strftime("%Y-%m-%d %H:%M UTC") if summary.ended else "?"
    pnl = sum((t.pnl for t in summary.trades), start=Decimal(0))
    console.print(
        f"[bold]run ended[/] at {ended} ({esc(summary.stopped_by)}): {summary.ticks} tick(s), "
        f"{summary.entries_sent} entr{'y' if summary.entries_sent == 1 else 'ies'} sent, "
        f"{len(summary.trades)} trade(s) closed, P&L {fmt_money(pnl)}, equity "
        f"{fmt_money(summary.equity)}",
        highlight=False,
    )
    for line in summary.reconcile[1:]:
        console.print(f"  reconcile: {esc(line)}", highlight=False)
