"""`tradebot run`: the trading loop (spec §6)."""

from __future__ import annotations

import logging
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tradebot.cli.context import state_of
from tradebot.cli.output import esc, fmt_money, fmt_time, stdout_console
from tradebot.cli.tables import facts, indented

if TYPE_CHECKING:
    from tradebot.engine.loop import RunSummary


# Alerts whose news the loop, the journal or the broker adapter already logs in its own line.
LOGGED_AT_SOURCE = frozenset(
    {"start", "stop", "entry", "exit", "summary", "error", "disconnect", "reconnect"}
)


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
            readable=False,  # our own check says what is wrong (exit 3)
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
    symbols: Annotated[
        str | None,
        typer.Option(
            help="Trade these symbols instead of trading.symbols, e.g. SPY,QQQ.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Run the trading loop: signals, guards, sizing, brackets, exits.

    On the simulated broker or on Interactive Brokers (broker.kind); every order journaled."""
    state = state_of(ctx)
    loaded = state.config()
    from tradebot.engine import runner
    from tradebot.logging_setup import configure_logging
    from tradebot.remote.outbound import alerts_for

    if symbols is not None:
        from tradebot.backtest.plan import parse_symbols
        from tradebot.config import with_symbols

        chosen = parse_symbols(symbols)
        assert chosen is not None
        loaded = with_symbols(loaded, chosen)
    options = runner.build_options(
        once=once,
        bars=bars,
        speed=speed,
        start=start,
        until=until,
        calendar=loaded.settings.schedule.calendar,
    )
    configure_logging(loaded.logs_dir, debug=state.debug, console_level=logging.INFO)
    log = logging.getLogger("tradebot.notify")
    alerts = alerts_for(loaded.settings)

    def notify(event: str, message: str) -> None:
        # One line per event: most alerts repeat a line their source has logged already.
        level = logging.DEBUG if event in LOGGED_AT_SOURCE else logging.INFO
        log.log(level, "%s", message)
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
    ended = fmt_time(summary.ended) if summary.ended else "?"
    pnl = sum((t.pnl for t in summary.trades), start=Decimal(0))
    console.print(
        f"[bold]run ended[/] at {ended} ({esc(summary.stopped_by)}): {summary.ticks} tick(s), "
        f"{summary.entries_sent} entr{'y' if summary.entries_sent == 1 else 'ies'} sent, "
        f"{len(summary.trades)} trade(s) closed, P&L {fmt_money(pnl)}, equity "
        f"{fmt_money(summary.equity)}",
        highlight=False,
    )
    if len(summary.reconcile) > 1:
        rows = [("reconcile", esc(line)) for line in summary.reconcile[1:]]
        console.print(indented(facts(rows, console.width)))
