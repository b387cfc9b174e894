"""`tradebot status`: is a loop running, and what is it doing (heartbeat + journals)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from tradebot.cli.book_tables import order_line, orders_table, position_line, positions_table
from tradebot.cli.context import state_of
from tradebot.cli.output import (
    esc,
    fmt_money,
    fmt_time,
    parse_time,
    print_json,
    stdout_console,
)
from tradebot.cli.tables import facts, indented, print_table
from tradebot.errors import ExitCode


def status(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document for scripts.")
    ] = False,
    wide: Annotated[
        bool, typer.Option("--wide", help="Every column of the tables, wider than the terminal.")
    ] = False,
) -> None:
    """Is a loop running? Phase, halt, today's P&L, positions, orders.

    The pid and heartbeat age, the working orders and the last error, from files only.

    Exit 0; 4 when the heartbeat is stale or the loop died without stopping. Never talks to
    the broker.
    """
    from tradebot.engine.status_view import loop_report

    loaded = state_of(ctx).config(log_to_file=False)
    report = loop_report(loaded)  # its `now`: just after the heartbeat was read
    if as_json:
        print_json(report)
    else:
        _render(report, wide=wide)
    if report["stale"]:
        raise typer.Exit(int(ExitCode.REFUSED))


def _render(r: dict[str, Any], *, wide: bool = False) -> None:
    """One story: is the loop running, what time it lives at, then its book."""
    console = stdout_console()
    for line in r.get("urgent") or []:
        console.print(f"[bold red]![/] [bold]{esc(line)}[/]", highlight=False)
    state = {
        "running": "[green]running[/]",
        "stale": "[bold red]STALE[/]",
        "died": "[bold red]DIED[/]",
        "not running": "[yellow]not running[/]",
    }[r["state"]]
    age = "" if r["heartbeat_age_s"] is None else f", last heartbeat {r['heartbeat_age_s']} s ago"
    pid = f" (pid {r['pid']})" if r["pid"] else ""
    console.print(f"Loop: {state}{pid}{esc(age)}", highlight=False)
    rows: list[tuple[str, Any]] = [(("[red]![/]"), esc(p)) for p in r["problems"]]
    clock = parse_time(r["clock"])
    if clock is not None:
        note = r.get("clock_note") or "this machine's"
        label = "its clock" if r["running"] else "its clock at the end"
        rows.append((label, f"{fmt_time(clock, seconds=True)} ({esc(note)})"))
    rows.append(("phase", esc(r["phase"] or "unknown: " + str(r["phase_error"]))))
    rows.append(("halt", "[bold red]HALTED[/] " + esc(r["halt"]) if r["halted"] else "not halted"))
    today = r["today"]
    rows.append(
        ("today", f"realized P&L {fmt_money(today['realized_pnl'])} (session {today['session']})")
    )
    if r["equity"] is not None:
        rows.append(("equity", fmt_money(_dec(r["equity"]))))
    if r["last_error"]:
        rows.append(("last error", esc(_error_text(r["last_error"]))))
    console.print(indented(facts(rows, console.width)))
    if r["positions"]:
        lines = [position_line(p) for p in r["positions"]]
        table = positions_table("Open positions", lines, console.width, wide=wide)
        print_table(console, table, wide=wide)
    else:
        console.print("No open positions.")
    if r["working_orders"]:
        orders = [order_line(o) for o in r["working_orders"]]
        table = orders_table("Working orders", orders, console.width, wide=wide)
        print_table(console, table, wide=wide)


def _error_text(text: str) -> str:
    """`2025-07-01T15:03:00Z: message` (from the events journal) with its time in New York."""
    stamp, sep, rest = text.partition(": ")
    try:
        moment = parse_time(stamp)
    except ValueError:
        return text
    return f"{fmt_time(moment, seconds=True)}: {rest}" if sep and moment else text


def _dec(value: Any) -> Any:
    from decimal import Decimal

    return None if value is None else Decimal(str(value))
