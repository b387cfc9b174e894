"""`tradebot journal`: closed trades and their metrics as tables, JSON or CSV."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from tradebot.cli.context import state_of
from tradebot.cli.output import (
    csv_text,
    esc,
    fmt_money,
    fmt_pct,
    fmt_price,
    fmt_ratio,
    fmt_time,
    parse_day,
    print_json,
    stdout_console,
    write_csv,
)
from tradebot.cli.tables import Column, fit_table, print_table
from tradebot.errors import UsageError

# The core (pydantic models) loads only when a command runs, keeping `tradebot --help` fast.
if TYPE_CHECKING:
    from decimal import Decimal

    from tradebot.core.metrics import TradeStats
    from tradebot.core.trades import ClosedTrade


def journal(
    ctx: typer.Context,
    since: Annotated[
        str | None, typer.Option(help="First session to include (YYYY-MM-DD).", show_default=False)
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Last session to include (YYYY-MM-DD).", show_default=False)
    ] = None,
    symbol: Annotated[
        str | None, typer.Option(help="Only this underlying, e.g. SPY.", show_default=False)
    ] = None,
    strategy: Annotated[
        str | None, typer.Option(help="Only this strategy (scalp, whale).", show_default=False)
    ] = None,
    mode: Annotated[
        str | None, typer.Option(help="Only this mode (paper, live, sim).", show_default=False)
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document for scripts.")
    ] = False,
    csv_target: Annotated[
        str | None,
        typer.Option("--csv", metavar="PATH|-", help="Write the trades as CSV ('-' = stdout)."),
    ] = None,
    chart: Annotated[
        bool, typer.Option("--chart", help="Draw the equity curve in the terminal.")
    ] = False,
    limit: Annotated[
        int, typer.Option(min=0, help="Rows in the trades table (most recent; 0 = all).")
    ] = 50,
    wide: Annotated[
        bool,
        typer.Option(
            "--wide", help="Every column (strategy, qty, prices, mode), wider than the terminal."
        ),
    ] = False,
) -> None:
    """Show closed trades and summary metrics: overall, by strategy and by symbol."""
    if ctx.invoked_subcommand is not None:
        return  # `journal close …`
    if as_json and csv_target == "-":
        raise UsageError("--json and --csv - both write to stdout; choose one")
    if mode is not None and mode not in ("paper", "live", "sim"):
        raise UsageError(f"--mode {mode!r} is not one of paper, live, sim")
    since_d = parse_day(since, "--since")
    until_d = parse_day(until, "--until")
    loaded = state_of(ctx).config()
    from tradebot.books.trade_journal import TradeJournal
    from tradebot.core.metrics import (
        chronological,
        equity_curve,
        filter_trades,
        group_by,
        summarize,
    )
    from tradebot.core.trades import TRADE_FIELDS

    trade_journal = TradeJournal(loaded.logs_dir)
    contents = trade_journal.read()
    # The canonical order (exit time, losers first at the same time, trade id) everywhere.
    trades = chronological(
        filter_trades(
            contents.trades,
            since=since_d,
            until=until_d,
            symbol=symbol,
            strategy=strategy,
            mode=mode,
        )
    )
    base_equity = loaded.settings.risk.paper_equity
    filters = {
        "since": since_d,
        "until": until_d,
        "symbol": symbol,
        "strategy": strategy,
        "mode": mode,
    }

    if csv_target is not None:
        path = write_csv(csv_target, csv_text(TRADE_FIELDS, (_row(t) for t in trades)))
        if path is not None and not as_json:
            stdout_console().print(f"wrote {len(trades)} trade(s) to {esc(path)}")
    if as_json:
        print_json(journal_document(trades, base_equity, filters, contents.warnings))
        return
    if csv_target == "-":
        return

    out = stdout_console()
    if not trades:
        if contents.trades:
            out.print(
                f"No trades match the filters ({len(contents.trades)} in "
                f"{esc(trade_journal.path)})."
            )
        else:
            out.print(f"No closed trades yet: {esc(trade_journal.path)} is empty or absent.")
        return
    if csv_target is None:
        shown = trades if limit == 0 else _most_recent(trades, limit)
        print_table(out, _trades_table(shown, len(trades), out.width, wide=wide), wide=wide)
    stats = summarize(trades, base_equity)
    out.print(_summary_table(stats, base_equity))
    by_strategy = group_by(trades, lambda t: t.strategy)
    by_symbol = group_by(trades, lambda t: t.symbol)
    for title, groups in (("By strategy", by_strategy), ("By symbol", by_symbol)):
        print_table(out, _group_table(title, groups, base_equity, out.width, wide), wide=wide)
    if chart:
        from tradebot.cli.charts import equity_chart

        points = [e for _, e in equity_curve(trades, base_equity)]
        width = max(20, min(out.width - 12, 120))
        out.print(equity_chart([base_equity, *points], width=width, height=12))


def journal_document(
    trades: list[ClosedTrade],
    base_equity: Decimal,
    filters: dict[str, Any],
    warnings: list[str],
) -> dict[str, Any]:
    """The `journal --json` contract (version 1)."""
    from tradebot.core.metrics import breakdown_records

    return {
        "v": 1,
        "filters": filters,
        "base_equity": base_equity,
        "drawdown_anchor": JOURNAL_DRAWDOWN_ANCHOR,
        **breakdown_records(trades, base_equity),
        "trades": [_row(t) for t in trades],
        "warnings": warnings,
    }


# The journal's drawdown curve starts at risk.paper_equity (the phase ladder's starts at the
# equity when its window began: `phase status`).
JOURNAL_DRAWDOWN_ANCHOR = "risk.paper_equity"


def _row(trade: ClosedTrade) -> dict[str, Any]:
    return trade.model_dump(mode="json")


def _most_recent(trades: list[ClosedTrade], limit: int) -> list[ClosedTrade]:
    from tradebot.core.metrics import chronological

    return chronological(trades)[-limit:]


def _trades_table(
    trades: list[ClosedTrade], total: int, width: int, *, wide: bool = False
) -> Table:
    """The trades, most recent last: the exit time, the trade id, the contract, the P&L and the
    exit reason always; strategy, R, quantity, prices and mode as the width allows."""
    title = (
        "Closed trades"
        if len(trades) == total
        else f"Closed trades (last {len(trades)} of {total})"
    )
    columns = [
        Column("exit (New York)"),
        Column("trade"),
        Column("contract"),
        Column("strategy", priority=3),
        Column("qty", "right", priority=4),
        Column("entry", "right", priority=5),
        Column("exit", "right", priority=5),
        Column("P&L", "right"),
        Column("R", "right", priority=2),
        Column("reason"),
        Column("mode", priority=6),
    ]
    rows = []
    for t in trades:
        pnl_style = "green" if t.pnl > 0 else "red"
        rows.append(
            [
                fmt_time(t.exit_time),
                esc(t.trade_id),
                esc(t.contract),
                esc(t.strategy),
                str(t.qty),
                fmt_price(t.entry_price),
                fmt_price(t.exit_price),
                f"[{pnl_style}]{fmt_money(t.pnl)}[/]",
                fmt_ratio(t.pnl / t.risk),
                t.exit_reason,
                t.mode,
            ]
        )
    return fit_table(title, columns, rows, width, wide=wide)


def _summary_table(stats: TradeStats, base_equity: Decimal) -> Table:
    table = Table(title="Summary", title_justify="left", show_header=False)
    table.add_column("metric")
    table.add_column("value", justify="right")
    rows = [
        ("trades", f"{stats.trades} ({stats.wins} won, {stats.losses} lost)"),
        ("win rate", fmt_pct(stats.win_rate)),
        ("avg R:R (realized)", fmt_ratio(stats.avg_rr)),
        ("expectancy", f"{fmt_ratio(stats.expectancy_r)} R"),
        ("profit factor", fmt_ratio(stats.profit_factor)),
        ("total P&L", fmt_money(stats.total_pnl)),
        ("max drawdown $", f"{fmt_money(stats.max_drawdown_usd)} (largest peak − equity)"),
        (
            "max drawdown %",
            f"{fmt_ratio(stats.max_drawdown_pct)} % (largest (peak − equity) / peak)",
        ),
        ("drawdown curve", f"paper_equity {fmt_money(base_equity)} + closed P&L"),
        ("best / worst trade", f"{fmt_money(stats.best_pnl)} / {fmt_money(stats.worst_pnl)}"),
        (
            "sessions",
            f"{stats.sessions} ({stats.profitable_sessions} profitable, "
            f"{stats.losing_sessions} losing, {stats.flat_sessions} flat)",
        ),
        ("consecutive losses now", str(stats.consecutive_losses)),
    ]
    for name, value in rows:
        table.add_row(name, value)
    return table


def _group_table(
    title: str,
    groups: dict[str, list[ClosedTrade]],
    base_equity: Decimal,
    width: int = 80,
    wide: bool = False,
) -> Table:
    from tradebot.core.metrics import summarize

    columns = [
        Column(""),
        Column("trades", "right"),
        Column("win rate", "right"),
        Column("avg R:R", "right", priority=2),
        Column("expectancy R", "right", priority=4),
        Column("profit factor", "right", priority=3),
        Column("P&L", "right"),
        Column("max DD", "right", priority=1),
    ]
    rows = []
    for key, trades in groups.items():
        s = summarize(trades, base_equity)
        rows.append(
            [
                esc(key),
                str(s.trades),
                fmt_pct(s.win_rate),
                fmt_ratio(s.avg_rr),
                fmt_ratio(s.expectancy_r),
                fmt_ratio(s.profit_factor),
                fmt_money(s.total_pnl),
                fmt_money(s.max_drawdown_usd),
            ]
        )
    return fit_table(title, columns, rows, width, wide=wide)


def _journal_app() -> typer.Typer:
    """`tradebot journal` (the trades and metrics) with its sub-command `journal close`."""
    from tradebot.cli.journal_close_cmd import close

    group = typer.Typer(
        rich_markup_mode=None,
        help="Closed trades and metrics; `journal close` records an exit.",
        no_args_is_help=False,
    )
    group.callback(invoke_without_command=True)(journal)
    group.command(name="close")(close)
    return group


app = _journal_app()
