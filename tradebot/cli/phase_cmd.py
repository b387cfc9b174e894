"""`tradebot phase status | advance | set-password | export`.

Why one module: the four sub-commands of one Typer group share the ladder's loading, the password
prompt and the rendering of criteria; each command is a short function over `books.ladder`.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.text import Text

from tradebot.cli.context import state_of
from tradebot.cli.output import (
    MAX_OPERATOR,
    MAX_REASON,
    check_text,
    esc,
    fmt_money,
    fmt_pct,
    fmt_ratio,
    fmt_time,
    parse_day,
    print_json,
    stdout_console,
    write_csv,
)
from tradebot.cli.tables import Column, facts, fit_table, indented, print_table
from tradebot.errors import (
    CorruptRecordError,
    ExitCode,
    RefusedError,
    TradebotError,
    UsageError,
)

if TYPE_CHECKING:
    from tradebot.books.ladder import LadderSnapshot, PhaseLadder
    from tradebot.core.phase_rules import Criterion, PhaseEvaluation, WatchItem

app = typer.Typer(
    rich_markup_mode=None,
    help="The phase ladder: status, advance, override, history export.",
    no_args_is_help=True,
)

PHASE_CHOICES = ("experience", "proof", "trial", "scaling")


class PhaseUnknownError(TradebotError):
    """`phase status` cannot know the phase: a file it depends on is unreadable (exit 4)."""

    exit_code = ExitCode.REFUSED


def _now() -> datetime:
    return datetime.now(UTC)


def _ladder(ctx: typer.Context) -> PhaseLadder:
    from tradebot.books.ladder import PhaseLadder

    return PhaseLadder(state_of(ctx).config())


# -- status ------------------------------------------------------------------------------------
@app.command("status")
def status(
    ctx: typer.Context,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document for scripts.")
    ] = False,
) -> None:
    """Current phase, its limits, progress toward the next phase, and the downgrade watch."""
    from tradebot.books.journal_cache import CachedTradeJournal

    ladder = _ladder(ctx)
    # Read once: the snapshot and the count of trades that do not count share the series.
    ladder.trades = CachedTradeJournal(ladder.loaded.logs_dir)
    now = _now()
    snap = ladder.snapshot(now)
    if snap.evaluation is None:
        raise PhaseUnknownError(
            f"{snap.error}. Until then the phase is unknown and every new entry is refused "
            "(exits still go through)"
        )
    stored, source = ladder.password_hash()
    try:
        lockout = ladder.lockout(now)
    except CorruptRecordError as exc:
        # Overrides are refused anyway while the audit cannot be read; status still shows.
        snap.warnings.append(f"override audit unreadable, overrides refused: {exc.message}")
        lockout = None
    document = status_document(snap, password_source=source if stored else None, lockout=lockout)
    document["not_counted"] = _not_counted(ladder, snap)
    if as_json:
        print_json(document)
        return
    _render_status(snap.evaluation, snap, document)


def _not_counted(ladder: PhaseLadder, snap: LadderSnapshot) -> dict[str, int]:
    """Trades in the window (opened since the phase began) whose mode the phase does not count,
    by mode: a first run on the simulated broker makes `sim` trades, which experience (counting
    `paper`) leaves out."""
    ev = snap.evaluation
    assert ev is not None
    series, _ = ladder.trades.series()
    other = sorted(set(series.mode) - set(ev.counted_modes))
    counts = {mode: len(series.window([mode], ev.since)) for mode in other}
    return {mode: n for mode, n in counts.items() if n}


def status_document(
    snap: LadderSnapshot, *, password_source: str | None, lockout: datetime | None
) -> dict[str, Any]:
    """The `phase status --json` contract (version 1)."""
    from tradebot.core.phase_rules import metrics_record

    ev = snap.evaluation
    assert ev is not None
    eq = snap.equity
    return {
        "v": 1,
        "phase": ev.phase,
        "next_phase": ev.next_phase,
        "since": ev.since,
        "session": ev.session,
        "counted_modes": list(ev.counted_modes),
        "eligible": ev.eligible,
        "criteria": [c.as_record() for c in ev.criteria],
        "metrics": metrics_record(ev.stats),
        "limits": ev.limits.as_record(),
        "drawdown": drawdown_record(ev),
        "downgrade": {"reasons": ev.downgrade_reasons} if ev.downgrade_reasons else None,
        "downgrade_watch": [w.as_record() for w in ev.watch],
        "downgraded_this_session": ev.downgraded_this_session,
        "equity": None if eq is None else eq.as_record(),
        "override": {
            "password_set": password_source is not None,
            "password_source": password_source,
            "locked_until": lockout,
        },
        "warnings": snap.warnings,
    }


def drawdown_record(ev: PhaseEvaluation) -> dict[str, Any]:
    """The ladder's drawdown and its anchor (`phase status --json`'s `drawdown`)."""
    s = ev.stats
    base = ev.drawdown_base
    return {
        "anchor": "equity_at_window_start",
        "base_equity": base,
        "window_pnl": s.total_pnl,
        "equity_now": None if base is None else base + s.total_pnl,
        "max_drawdown_usd": s.max_drawdown_usd,
        "max_drawdown_pct": s.max_drawdown_pct,
        "description": ev.drawdown_anchor,
    }


def _criterion_row(c: Criterion, width: int = 20) -> list[Any]:
    from tradebot.core.phase_rules import _show

    if c.op == ">=":
        actual = c.actual if c.actual is not None and c.actual.is_finite() else None
        done = c.required if c.met else min(actual or 0, c.required)
        bar: Any = ProgressBar(total=float(c.required), completed=float(done), width=width)
    else:
        bar = Text("stay below", style="dim")
    mark = Text("✔ met", style="green") if c.met else Text("✘ not met", style="red")
    shown = _show(c.actual, c.unit, against=c.required)
    return [c.name, f"{c.op} {_show(c.required, c.unit)}", shown, bar, mark]


def _watch_row(w: WatchItem) -> list[Any]:
    from tradebot.core.phase_rules import _show

    unit: Any = "count" if w.name == "consecutive_losses" else "percent"
    rule = {
        "consecutive_losses": f"drop at {_show(w.threshold, unit)} in a row",
        "rolling_win_rate": f"drop below {_show(w.threshold, unit)}",
        "daily_loss": f"drop above {_show(w.threshold, unit)}",
    }[w.name]
    if w.triggered:
        state = Text("TRIGGERED" + (f" ({w.note})" if w.note else ""), style="bold red")
    elif not w.active:
        state = Text(w.note or "inactive", style="dim")
    else:
        state = Text("ok", style="green")
    return [w.name, _show(w.actual, unit, against=w.threshold), rule, state]


def _render_status(ev: PhaseEvaluation, snap: LadderSnapshot, doc: dict[str, Any]) -> None:
    out = stdout_console()
    since = f"since {fmt_time(ev.since)}" if ev.since else "since the start: no history"
    out.print(f"[bold]Phase: {ev.phase}[/] ({since})")
    limits = ev.limits
    entries = limits.entries_text()
    cap = fmt_money(limits.position_cap_usd) if limits.position_cap_usd is not None else "unknown"
    s = ev.stats
    counted = ", ".join(ev.counted_modes)
    rows: list[tuple[str, Any]] = [
        ("live trading", "allowed" if limits.live_allowed else "refused (paper only)"),
        ("entries", f"{entries} in the {ev.session} session"),
        ("position cap", cap),
        (
            "window",
            f"{s.trades} trade(s) in {counted} mode over {s.sessions} session(s) · win rate "
            f"{fmt_pct(s.win_rate)} · avg R:R {fmt_ratio(s.avg_rr)} · P&L "
            f"{fmt_money(s.total_pnl)}",
        ),
    ]
    if any(c.name == "max_drawdown" for c in ev.criteria):
        dd_pct = "unknown" if s.max_drawdown_pct is None else f"{fmt_ratio(s.max_drawdown_pct)} %"
        rows.append(
            (
                "max drawdown",
                Text(
                    f"{dd_pct} (largest (peak − equity) / peak; {fmt_money(s.max_drawdown_usd)} "
                    f"at most in dollars), on the window's trades from {ev.drawdown_anchor}"
                ),
            )
        )
    for mode, count in doc["not_counted"].items():
        rows.append(
            (
                "not counted",
                Text(
                    f'{count} {mode} trade(s): counted_modes = {counted}; add "{mode}" to '
                    f"[phase.{ev.phase}] counted_modes to count them",
                    style="yellow",
                ),
            )
        )
    out.print(indented(facts(rows, out.width)))
    if ev.next_phase is None:
        out.print("  [green]top of the ladder[/]: the position cap grows with profitable sessions")
    else:
        bar = 20 if out.width >= 100 else 10
        table = fit_table(
            f"Criteria for {ev.next_phase}",
            [
                Column("criterion"),
                Column("required"),
                Column("actual"),
                Column("progress", priority=1, width=bar),
                Column(""),
            ],
            [_criterion_row(c, bar) for c in ev.criteria],
            out.width,
        )
        verdict = (
            Text(f"eligible: `tradebot phase advance` moves to {ev.next_phase}", style="green")
            if ev.eligible
            else Text(f"not yet eligible ({len(ev.unmet)} criterion(s) not met)", style="yellow")
        )
        out.print(Group(table, verdict))
    watch = fit_table(
        "Downgrade watch",
        [Column("trigger"), Column("now"), Column("rule"), Column("state", wrap=True)],
        [_watch_row(w) for w in ev.watch],
        out.width,
    )
    out.print(watch)
    if ev.downgraded_this_session:
        out.print("[red]Downgraded during this session: new entries resume next session.[/]")
    override = doc["override"]
    if override["locked_until"] is not None:
        out.print(f"[red]Overrides locked until {fmt_time(override['locked_until'])}[/]")
    elif not override["password_set"]:
        out.print("[dim]No override password set (`tradebot phase set-password`).[/]")
    for warning in snap.warnings:
        out.print(f"[yellow]warning:[/] {esc(warning)}")


# -- advance -----------------------------------------------------------------------------------
class _NoInputError(UsageError):
    """stdin ended before the password line."""


def _read_secret(prompt: str, from_stdin: bool, *, confirm: bool = False) -> str:
    try:
        if from_stdin:
            line = sys.stdin.readline()
            if not line:
                raise _NoInputError("--password-stdin: nothing to read on stdin")
            return line.rstrip("\r\n")
        if not sys.stdin.isatty():
            raise UsageError("stdin is not a terminal: pipe the password with --password-stdin")
        value: str = typer.prompt(prompt, hide_input=True, confirmation_prompt=confirm, err=True)
    except UnicodeDecodeError:
        raise UsageError(
            "the password is not UTF-8 text (check the terminal's or the file's encoding); "
            "nothing changed"
        ) from None
    return value


# A password must never be an argument: it would sit in the shell history and the process list.
# These commands accept extra arguments only to refuse them here without echoing them back.
NO_ARGUMENTS: dict[str, Any] = {"allow_extra_args": True}


def _refuse_arguments(extra: list[str], command: str) -> None:
    if extra:
        raise UsageError(
            f"{command} takes no arguments ({len(extra)} given, not shown: one may be a "
            "password); type the password at the prompt or pipe it with --password-stdin. If "
            "you typed a password on the command line, change it: it is in your shell history"
        )


@app.command("advance", context_settings=NO_ARGUMENTS)
def advance(
    ctx: typer.Context,
    to: Annotated[
        str | None,
        typer.Option(
            "--to",
            help="Target phase (experience, proof, trial, scaling). Needed with --force.",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Move to --to (up or down, any distance); needs the override password."
        ),
    ] = False,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the override password from stdin.")
    ] = False,
    operator: Annotated[
        str | None,
        typer.Option(help="Who is acting (default: the OS user).", show_default=False),
    ] = None,
    reason: Annotated[
        str | None, typer.Option(help="Why; stored in the history.", show_default=False)
    ] = None,
) -> None:
    """Move up one phase when every criterion is met; or --force to any phase (password)."""
    from tradebot.books.ladder import default_operator

    _refuse_arguments(ctx.args, "phase advance")
    check_text(operator, "--operator", MAX_OPERATOR)
    check_text(reason, "--reason", MAX_REASON)
    if to is not None and to not in PHASE_CHOICES:
        raise UsageError(f"--to {to!r} is not a phase; choose one of {', '.join(PHASE_CHOICES)}")
    if force and to is None:
        raise UsageError("--force needs --to PHASE")
    if password_stdin and not force:
        raise UsageError("--password-stdin only applies with --force")
    ladder = _ladder(ctx)
    who = operator or default_operator()
    if force:
        transition = ladder.force(
            _now(),
            to=to,  # type: ignore[arg-type]
            password=lambda: _read_secret("Override password", password_stdin),
            operator=who,
            reason=reason,
        )
    else:
        transition = ladder.advance(_now(), to=to, operator=who, reason=reason)  # type: ignore[arg-type]
    out = stdout_console()
    out.print(
        f"phase: {transition.from_phase} → [bold]{transition.to_phase}[/] "
        f"({transition.trigger}, by {esc(who)})"
    )
    if transition.trigger == "manual_override" and not transition.validation_passed:
        out.print("[yellow]criteria were not met; recorded in the history:[/]")
        for failure in transition.failures:
            out.print(f"  {failure}", markup=False)


# -- set-password -----------------------------------------------------------------------------
@app.command("set-password", context_settings=NO_ARGUMENTS)
def set_password(
    ctx: typer.Context,
    password_stdin: Annotated[
        bool,
        typer.Option(
            "--password-stdin",
            help="Read from stdin: the current password first (when one is set), then the new one.",
        ),
    ] = False,
) -> None:
    """Set or change the override password (only a salted scrypt hash is stored)."""
    from tradebot.books.ladder import default_operator

    _refuse_arguments(ctx.args, "phase set-password")
    ladder = _ladder(ctx)
    stored, source = ladder.password_hash()
    if source == "config":
        raise RefusedError(
            "the override password hash is set in the configuration "
            "(phase.override_password_hash or its TRADEBOT_ variable); change it there"
        )
    current = ""
    if stored is not None:
        current = _read_secret("Current override password", password_stdin)
    try:
        new = _read_secret("New override password", password_stdin, confirm=not password_stdin)
    except _NoInputError:
        if stored is None:
            raise
        raise UsageError(
            "--password-stdin: a password is already set, so stdin needs two lines: the "
            "current password, then the new one (only one line was given); nothing changed"
        ) from None
    unconfirmed = ladder.set_password(
        _now(),
        new_password=new,
        current_password=lambda: current,
        operator=default_operator(),
        expected_hash=stored,
    )
    stdout_console().print(
        f"override password {'changed' if stored else 'set'} (salted scrypt hash in "
        f"{esc(ladder.state.dir)})"
    )
    if unconfirmed is not None:
        from tradebot.cli.output import warning_line

        warning_line(unconfirmed)


# -- export ------------------------------------------------------------------------------------
@app.command("export")
def export(
    ctx: typer.Context,
    csv_target: Annotated[
        str | None,
        typer.Option("--csv", metavar="PATH|-", help="Write CSV to PATH ('-' = stdout)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document for scripts.")
    ] = False,
    since: Annotated[
        str | None, typer.Option(help="First date to include (YYYY-MM-DD, New York).")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Last date to include (YYYY-MM-DD, New York).")
    ] = None,
    wide: Annotated[
        bool,
        typer.Option("--wide", help="Every column (criteria, trades, win rate, by), unwrapped."),
    ] = False,
) -> None:
    """The phase history (transitions) as a table, CSV or JSON."""
    if as_json and csv_target == "-":
        raise UsageError("--json and --csv - both write to stdout; choose one")
    since_d = parse_day(since, "--since")
    until_d = parse_day(until, "--until")
    from tradebot.books.phase_records import PhaseRecords, export_history_csv, select_history

    loaded = state_of(ctx).config()
    records = PhaseRecords(loaded.logs_dir)
    initial = loaded.settings.phase.initial
    if csv_target is not None:
        count, text = export_history_csv(records, since_d, until_d, initial=initial)
        path = write_csv(csv_target, text)
        if path is not None and not as_json:
            stdout_console().print(f"wrote {count} transition(s) to {esc(path)}")
        if not as_json:
            return
    transitions = select_history(records, since_d, until_d, initial=initial).transitions
    if as_json:
        print_json({"v": 1, "transitions": [t.as_record() for t in transitions]})
        return
    out = stdout_console()
    if not transitions:
        out.print(f"No phase transitions recorded ({esc(records.history.path)}).")
        return
    columns = [
        Column("time (New York)"),
        Column("from → to"),
        Column("trigger"),
        Column("criteria", priority=2),
        Column("trades", "right", priority=3),
        Column("win rate", "right", priority=3),
        Column("by", priority=4),
        Column("reason", wrap=True),
    ]
    rows = []
    for t in transitions:
        m = t.metrics
        rows.append(
            [
                fmt_time(t.ts),
                f"{t.from_phase} → {t.to_phase}",
                t.trigger,
                "met" if t.validation_passed else "not met",
                esc(m.get("trades", "")),
                _win_rate(m.get("win_rate")),
                esc(t.operator or ""),
                esc(t.reason or ""),
            ]
        )
    print_table(out, fit_table("Phase history", columns, rows, out.width, wide=wide), wide=wide)


def _win_rate(value: Any) -> str:
    """A recorded win rate (a fraction, as text) as everywhere else: `76.7 %`."""
    from decimal import Decimal, InvalidOperation

    if value in (None, ""):
        return "—"
    try:
        return fmt_pct(Decimal(str(value)))
    except InvalidOperation:
        return esc(value)
