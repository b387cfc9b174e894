"""`tradebot halt` / `tradebot resume`: the kill switch, from any terminal."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from tradebot.cli.context import state_of
from tradebot.cli.output import MAX_OPERATOR, MAX_REASON, check_text, esc, stdout_console

Reason = Annotated[
    str | None, typer.Option(help="Why (journaled and in the alert).", show_default=False)
]
Operator = Annotated[
    str | None, typer.Option(help="Who (default: your OS user).", show_default=False)
]


def halt(
    ctx: typer.Context,
    flatten: Annotated[
        bool,
        typer.Option(
            "--flatten",
            help="Also cancel every working entry and sell every position at market.",
        ),
    ] = False,
    reason: Reason = None,
    operator: Operator = None,
) -> None:
    """Stop new entries now (a running loop notices within a second).

    Exit 0, loop or not."""
    from tradebot.books.halt import request_halt
    from tradebot.books.ladder import default_operator
    from tradebot.remote.outbound import alerts_for

    check_text(operator, "--operator", MAX_OPERATOR)
    check_text(reason, "--reason", MAX_REASON)
    loaded = state_of(ctx).config()
    who = operator or default_operator()
    running, at = _loop(loaded)
    alerts = alerts_for(loaded.settings)
    state = request_halt(
        loaded.state_dir, loaded.logs_dir, at,
        operator=who, reason=reason, flatten=flatten, notify=alerts,
    )  # fmt: skip
    alerts.close(timeout=5)
    console = stdout_console()
    console.print(f"[bold red]{esc(state.message())}[/]", highlight=False)
    if flatten:
        console.print(
            "flatten requested: the loop cancels working entries and sells every position at "
            "market (see journal/events.jsonl)",
            highlight=False,
        )
    console.print(
        f"a running loop (pid {running}) stops new entries within a second"
        if running
        else "no loop is running now; the halt holds when one starts",
        highlight=False,
    )


def resume(ctx: typer.Context, reason: Reason = None, operator: Operator = None) -> None:
    """Lift the halt: entries may start again (positions untouched)."""
    from tradebot.books.halt import KillSwitch
    from tradebot.books.ladder import default_operator
    from tradebot.remote.outbound import alerts_for

    check_text(operator, "--operator", MAX_OPERATOR)
    check_text(reason, "--reason", MAX_REASON)
    loaded = state_of(ctx).config()
    who = operator or default_operator()
    _running, at = _loop(loaded)
    was = KillSwitch(loaded.state_dir, loaded.logs_dir).resume(at, operator=who, reason=reason)
    if was.halted:
        alerts = alerts_for(loaded.settings)
        alerts("resume", f"resumed by {who}: {reason or 'no reason'}")
        alerts.close(timeout=5)
    stdout_console().print(
        "resumed: entries may start again" if was.halted else "was not halted; nothing to lift",
        highlight=False,
    )


def _loop(loaded: object) -> tuple[int | None, datetime]:
    """The running loop's pid (None when none runs) and the time to stamp the change with:
    the loop's own when it runs on a simulated or the gateway's clock (a halt stamped with this
    machine's time would be dated in that loop's future), else now."""
    from tradebot.cli.output import parse_time
    from tradebot.engine.status_view import loop_report

    now = datetime.now(UTC)
    report = loop_report(loaded, now)
    pid = report["pid"]
    if not (report["running"] and pid):
        return None, now
    clock = parse_time(report["clock"]) if report.get("clock_note") else None
    return int(pid), clock or now
