"""`tradebot risk check`: can the bot open a trade right now, and how big."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from tradebot.cli.context import state_of
from tradebot.cli.output import esc, fmt_money, fmt_time, print_json, stdout_console
from tradebot.cli.tables import Column, facts, fit_table, indented
from tradebot.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from tradebot.books.risk_report import RiskReport

app = typer.Typer(
    rich_markup_mode=None,
    help="Risk guards: can the bot open a trade now, and how big.",
    no_args_is_help=True,
)


def _parse_premium(value: str | None) -> Decimal | None:
    if value is None:
        return None
    try:
        premium = Decimal(value)
    except InvalidOperation:
        raise UsageError(f"--premium {value!r} is not a number; write it like 0.80") from None
    if not premium.is_finite() or not Decimal("0.0001") <= premium <= Decimal(100000):
        raise UsageError(
            f"--premium must be an option price between 0.0001 and 100000, got {value}"
        )
    return premium


def _parse_at(value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"--at {value!r} is not an ISO-8601 time; write it like 2025-07-01T14:30:00Z"
        ) from None
    if moment.tzinfo is None:
        raise UsageError("--at needs a timezone (e.g. a trailing Z for UTC)")
    if not 1990 <= moment.year <= 2200:
        raise UsageError(f"--at {value!r} is out of range; use a year between 1990 and 2200")
    return moment.astimezone(UTC)


@app.command("check")
def check(
    ctx: typer.Context,
    premium: Annotated[
        str | None,
        typer.Option(
            help="Option price to preview the position size for (e.g. 0.80).", show_default=False
        ),
    ] = None,
    symbol: Annotated[
        str | None,
        typer.Option(help="Underlying to check (must be in trading.symbols).", show_default=False),
    ] = None,
    multiplier: Annotated[
        int, typer.Option(min=1, help="Contract multiplier for the size preview.")
    ] = 100,
    at: Annotated[
        str | None,
        typer.Option(
            help="Evaluate at this time instead of now (ISO-8601, e.g. ...T14:30:00Z).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document for scripts.")
    ] = False,
) -> None:
    """Every guard with its numbers and a verdict; exit 0 when an entry is allowed, 4 when not."""
    premium_d = _parse_premium(premium)
    now = _parse_at(at)
    from tradebot.books.risk_report import build_risk_report

    report = build_risk_report(
        state_of(ctx).config(), now, symbol=symbol, premium=premium_d, multiplier=multiplier
    )
    if as_json:
        print_json(report.as_record())
    else:
        _render(report)
    if not report.can_open:
        raise typer.Exit(int(ExitCode.REFUSED))


class _Rows:
    """Collects the guard rows for `fit_table`."""

    def __init__(self, rows: list[list[Any]]) -> None:
        self.rows = rows

    def add_row(self, *cells: Any) -> None:
        self.rows.append(list(cells))


def _state(ok: bool, text: str = "") -> Text:
    return Text(text or ("ok" if ok else "BLOCKS"), style="green" if ok else "bold red")


def _render(r: RiskReport) -> None:
    out = stdout_console()
    eq = r.equity
    rows: list[list[Any]] = []
    table = _Rows(rows)
    table.add_row(
        "equity",
        _state(eq is not None and eq.current is not None, "known" if eq and eq.current else ""),
        esc(f"{fmt_money(eq.current if eq else None)} ({eq.source if eq else 'unknown'})"),
    )
    table.add_row(
        "start-of-day equity",
        _state(
            eq is not None and eq.start_of_day is not None,
            "known" if eq and eq.start_of_day else "",
        ),
        esc(
            f"{fmt_money(eq.start_of_day if eq else None)} ({eq.start_source if eq else 'unknown'})"
        ),
    )
    table.add_row("today's realized P&L", Text(""), fmt_money(r.realized_today))
    table.add_row("daily loss", _state(not r.daily_loss.tripped), esc(r.daily_loss.message))
    table.add_row("halt", _state(not r.halt.halted), esc(r.halt.message()))
    table.add_row("entry window", _state(r.window.in_window), esc(r.window.message))
    ev = r.phase
    if ev is None:
        table.add_row("phase", _state(False), esc(r.phase_error or "unknown"))
    else:
        limits = ev.limits
        entries = f"entries this session: {limits.entries_text()}"
        phase_rules = {
            "live_not_allowed",
            "entry_limit",
            "downgraded_this_session",
            "downgrade_pending",
            "position_cap_unknown",
        }
        phase_ok = not any(b.rule in phase_rules for b in r.blocking)
        table.add_row(
            "phase",
            _state(phase_ok),
            f"{ev.phase}: live {'allowed' if limits.live_allowed else 'refused'}, {entries}, "
            f"position cap {fmt_money(limits.position_cap_usd)}",
        )
    if r.symbol:
        ok = not any(b.rule == "symbol_not_configured" for b in r.blocking)
        table.add_row("symbol", _state(ok), esc(r.symbol))
    if r.sizing is not None:
        s = r.sizing
        table.add_row(
            "size",
            _state(s.contracts > 0, f"{s.contracts} contract(s)"),
            esc(
                f"by risk {s.risk_based_contracts}, by cap {s.cap_based_contracts} → "
                f"{s.contracts}: {s.reason}"
            ),
        )
    out.print(
        f"[bold]Risk check[/] at {fmt_time(r.now, seconds=True)} ({r.broker} broker, {r.mode})"
    )
    out.print(
        fit_table(
            None,
            [Column("guard"), Column("state"), Column("numbers", wrap=True)],
            rows,
            out.width,
        )
    )
    if r.can_open:
        out.print("[bold green]can_open: true[/] — an entry is allowed now")
    else:
        out.print(f"[bold red]can_open: false[/] — {len(r.blocking)} blocking reason(s):")
        reasons = [(Text(b.rule, style="red"), esc(b.message)) for b in r.blocking]
        out.print(indented(facts(reasons, out.width)))
    for warning in r.warnings:
        out.print(f"[yellow]warning:[/] {esc(warning)}")
