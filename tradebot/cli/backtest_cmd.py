"""`tradebot backtest`: the trading loop over history, and a replay of the phase ladder."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.text import Text

if TYPE_CHECKING:
    from tradebot.backtest.engine import BacktestResult
    from tradebot.backtest.plan import BacktestPlan
    from tradebot.core.trades import ClosedTrade

from tradebot.cli.context import state_of
from tradebot.cli.output import (
    esc,
    fmt_money,
    parse_day,
    print_json,
    stderr_console,
    stdout_console,
)
from tradebot.cli.tables import Column, fit_table


def backtest(
    ctx: typer.Context,
    bars: Annotated[
        Path | None,
        typer.Option(
            help="Folder of 1-minute bars, one <SYMBOL>.csv per symbol (see README).",
            show_default=False,
            readable=False,  # our own check says what is wrong (exit 3)
        ),
    ] = None,
    options: Annotated[
        Path | None,
        typer.Option(
            help="Folder of real option quotes (Lean minute quote zips, or CSVs of time, "
            "contract, bid, ask): used instead of the model where they exist (see README).",
            show_default=False,
        ),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option("--from", help="First session (YYYY-MM-DD).", show_default=False),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--to", help="Last session (YYYY-MM-DD).", show_default=False),
    ] = None,
    symbols: Annotated[
        str | None,
        typer.Option(
            help="Symbols to trade, e.g. SPY,QQQ (default: trading.symbols).", show_default=False
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="New folder for the backtest's journals (default: a new folder under "
            "<logs>/backtests/).",
            show_default=False,
            readable=False,  # our own check says what is wrong (exit 3)
        ),
    ] = None,
    synthetic: Annotated[
        bool, typer.Option("--synthetic", help="Use the seeded synthetic market (no data needed).")
    ] = False,
    sessions: Annotated[
        int | None,
        typer.Option(help="With --synthetic: how many sessions.", show_default=False),
    ] = None,
    seed: Annotated[
        int | None,
        typer.Option(
            help="With --synthetic: the market's seed (default broker.sim.seed).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as one JSON document for scripts.")
    ] = False,
) -> None:
    """Replay sessions through the real loop on the simulated broker.

    Reports what it would have done and how the phase ladder would have moved. Writes only into
    --out."""
    from tradebot.backtest.plan import BacktestRequest, parse_symbols, prepare
    from tradebot.errors import UsageError

    if seed is not None and not 0 <= seed <= 2_147_483_647:
        raise UsageError(f"--seed must be 0–2147483647, got {seed}")
    request = BacktestRequest(
        bars=bars,
        synthetic=synthetic,
        sessions=sessions,
        seed=seed,
        start=parse_day(start, "--from"),
        end=parse_day(end, "--to"),
        symbols=parse_symbols(symbols),
        out=out,
        options=options,
    )
    state = state_of(ctx)
    # The live logs directory is never written: no log file there, console only.
    loaded = state.config(log_to_file=False)
    plan = prepare(request, loaded, datetime.now(UTC))
    from tradebot.backtest.engine import INCOMPLETE, incomplete_note
    from tradebot.backtest.report import build_report
    from tradebot.backtest.report_html import REPORT_HTML, TRADES_CSV, write_report_files
    from tradebot.books.trade_journal import TradeJournal
    from tradebot.errors import ExitCode, TradebotError
    from tradebot.storage import write_json_state

    try:
        result = _run(plan, show_progress=not as_json and sys.stderr.isatty())
    except KeyboardInterrupt:
        if not (plan.out / INCOMPLETE).exists():
            raise
        sys.stderr.write(f"\ninterrupted: {incomplete_note(plan)}\n")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except TradebotError as exc:
        if (plan.out / INCOMPLETE).exists():
            exc.message = f"{exc.message}; {incomplete_note(plan)}"
        raise
    except Exception:
        if (plan.out / INCOMPLETE).exists():
            stderr_console().print(f"{esc(incomplete_note(plan))}", soft_wrap=True)
        raise
    report = build_report(result)
    write_json_state(plan.out / "report.json", report)
    trades = TradeJournal(plan.loaded.logs_dir).read().trades
    write_report_files(plan.out, report, trades)
    if as_json:
        print_json(report)
        return
    render(report, trades)
    screen = stdout_console()
    screen.print(f"Report: {esc(plan.out / REPORT_HTML)} (open it in a browser; works offline)")
    screen.print(f"Trades: {esc(plan.out / TRADES_CSV)}")


def _run(plan: BacktestPlan, *, show_progress: bool) -> BacktestResult:
    from tradebot.backtest.engine import run_backtest

    if show_progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        with Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            transient=True,
            console=stderr_console(),
        ) as bar:
            task = bar.add_task("backtest", total=len(plan.sessions))

            def progress(done: int, total: int, session: date) -> None:
                bar.update(task, completed=done, description=f"session {session}")

            return run_backtest(plan, progress=progress)
    return run_backtest(plan)


# -- rendering ---------------------------------------------------------------------------------
def render(report: dict[str, Any], trades: list[ClosedTrade]) -> None:
    """The report on a terminal: the journal's own tables for the metrics (from the trades)."""
    from tradebot.cli.journal_cmd import _group_table, _summary_table
    from tradebot.core.metrics import group_by, summarize

    out = stdout_console()
    rng, run = report["range"], report["run"]
    out.print(
        f"[bold]Backtest[/] {esc(', '.join(report['symbols']))} · {rng['from']} … {rng['to']} "
        f"({rng['sessions']} sessions, {run['bars']:,} bars) · "
        f"{esc(report['source']['description'])}"
    )
    out.print(
        f"  {run['trades']} trade(s), {run['entries_sent']} entr"
        f"{'y' if run['entries_sent'] == 1 else 'ies'} sent · {run['ticks']:,} ticks "
        f"({run['ticks_skipped']:,} idle ones left out) · {run['seconds']:.1f} s, "
        f"{run['bars_per_second']:,.0f} bars/s · journals in {esc(report['out'])}"
    )
    out.print(Text(report["pricing"], style="dim"))
    base = Decimal(str(report["base_equity"]))
    if trades:
        out.print(_summary_table(summarize(trades, base), base))
        by_strategy = group_by(trades, lambda t: t.strategy)
        by_symbol = group_by(trades, lambda t: t.symbol)
        for title, groups in (("By strategy", by_strategy), ("By symbol", by_symbol)):
            out.print(_group_table(title, groups, base, out.width))
    else:
        out.print("No trades: no signal passed every rule in these sessions.")
    if report["equity_curve"]:
        from tradebot.cli.charts import equity_chart

        points = [base, *(Decimal(str(p["equity"])) for p in report["equity_curve"])]
        width = max(20, min(out.width - 12, 120))
        out.print(equity_chart(points, width=width, height=10))
    _render_ladder(report["ladder"], rng["sessions"])
    for warning in report["warnings"]:
        out.print(f"[yellow]warning:[/] {esc(warning)}")


def _d(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))


def _render_ladder(ladder: dict[str, Any], sessions: int) -> None:
    out = stdout_console()
    counted = ", ".join(f"{p}: {'/'.join(m)}" for p, m in ladder["counted_modes"].items())
    out.print(
        f"[bold]Ladder replay[/] from {ladder['initial']} (counted modes {esc(counted)}; the "
        "backtest advances as soon as a phase is eligible)"
    )
    if not ladder["steps"]:
        out.print(f"  no phase became eligible and nothing was downgraded in {sessions} sessions")
    for step in ladder["steps"]:
        when = f"session {step['session']} (#{step['session_number']})"
        if step["kind"] == "eligible":
            text = (
                f"  {when}: {step['from_phase']} eligible for {step['to_phase']} — "
                f"{esc(step['note'])}"
            )
            out.print(Text.from_markup(text, style="green"))
        else:
            reasons = "; ".join(step["reasons"]) or step["note"]
            label = "downgrade" if step["kind"] == "auto_downgrade" else step["kind"]
            out.print(
                f"  [red]{when}: {label} {step['from_phase']} → {step['to_phase']}[/]: "
                f"{esc(reasons)}"
            )
    end = ladder["end"]
    if end is None:
        return
    limits = end["limits"]
    cap = limits["position_cap_usd"]
    out.print(
        f"  at the end: [bold]{end['phase']}[/] (live "
        f"{'allowed' if limits['live_allowed'] else 'refused'}, cap "
        f"{fmt_money(_d(cap)) if cap is not None else 'n/a'})"
    )
    if end["next_phase"] is None:
        return
    from tradebot.core.phase_rules import _show

    rows = []
    for c in end["criteria"]:
        mark = Text("✔ met", style="green") if c["met"] else Text("✘ not met", style="red")
        required, actual = _d(c["required"]), _d(c["actual"])
        rows.append(
            [
                c["name"],
                f"{'≥' if c['op'] == '>=' else '<'} {_show(required, c['unit'])}",
                _show(actual, c["unit"]),
                mark,
            ]
        )
    table = fit_table(
        f"Criteria for {end['next_phase']} at the end",
        [Column("criterion"), Column("required"), Column("actual"), Column("")],
        rows,
        out.width,
    )
    verdict = (
        Text(f"eligible for {end['next_phase']}", style="green")
        if end["eligible"]
        else Text("not eligible", style="yellow")
    )
    out.print(Group(table, verdict))
