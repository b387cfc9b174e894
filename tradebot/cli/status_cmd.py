"""`tradebot status`: is a loop running, and what is it doing (heartbeat + journals)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from tradebot.cli.context import state_of
from tradebot.cli.output import esc, fmt_money, print_json, stdout_console
from tradebot.errors import ExitCode


def status(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document for scripts.")
    ] = False,
) -> None:
    """Loop running (pid, heartbeat age), phase, halt, today's P&L, positions, working orders.

    Exit 0; 4 when the heartbeat is stale or the loop died without stopping. Never talks to
    the broker.
    """
    from tradebot.engine.status_view import loop_report

    loaded = state_of(ctx).config(log_to_file=False)
    report = loop_report(loaded)  # its `now`: just after the heartbeat was read
    if as_json:
        print_json(report)
    else:
        _render(report)
    if report["stale"]:
        raise typer.Exit(int(ExitCode.REFUSED))


def _render(r: dict[str, Any]) -> None:
    console = stdout_console()
    state = {
        "running": "[green]running[/]",
        "stale": "[bold red]STALE[/]",
        "died": "[bold red]DIED[/]",
        "not running": "[yellow]not running[/]",
    }[r["state"]]
    age = "" if r["heartbeat_age_s"] is None else f", last heartbeat {r['heartbeat_age_s']} s ago"
    pid = f" (pid {r['pid']})" if r["pid"] else ""
    console.print(f"Loop: {state}{pid}{esc(age)}", highlight=False)
    for problem in r["problems"]:
        console.print(f"  [red]![/] {esc(problem)}", highlight=False)
    if r["status"]:
        console.print(f"  {esc(r['status'])}", highlight=False)
    console.print(
        f"Phase: {esc(r['phase'] or 'unknown: ' + str(r['phase_error']))}  ·  "
        + ("[bold red]HALTED[/] " + esc(r["halt"]) if r["halted"] else "not halted")
        + f"  ·  today's realized P&L {fmt_money(r['today']['realized_pnl'])}",
        highlight=False,
    )
    if r["positions"]:
        table = Table(title="Open positions", title_justify="left")
        for col in ("ref", "contract", "strategy", "qty", "entry", "mark", "unrealized"):
            table.add_column(col)
        for p in r["positions"]:
            table.add_row(
                esc(p["ref"]), esc(p["contract"]), esc(p["strategy"]), str(p["qty"]),
                str(p["entry_price"]), str(p["mark"] or "—"),
                "—" if p["unrealized"] is None else fmt_money(_dec(p["unrealized"])),
            )  # fmt: skip
        console.print(table)
    else:
        console.print("No open positions.")
    if r["working_orders"]:
        table = Table(title="Working orders", title_justify="left")
        for col in ("ref", "role", "contract", "side", "qty", "type", "price", "status"):
            table.add_column(col)
        for o in r["working_orders"]:
            table.add_row(
                esc(o["ref"]), o["role"], esc(o["contract"]), o["action"], str(o["qty"]),
                o["order_type"], str(o["price"] or "—"), o["status"],
            )  # fmt: skip
        console.print(table)
    if r["last_error"]:
        console.print(f"Last error: {esc(r['last_error'])}", highlight=False)


def _dec(value: Any) -> Any:
    from decimal import Decimal

    return Decimal(str(value))
