"""The live panel of `tradebot run` on a terminal: drawn from the loop's `LoopStatus` at most
twice a second (a Pi over SSH must not flicker or burn CPU)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.text import Text

from tradebot.cli.book_tables import orders_table, positions_table
from tradebot.cli.output import fmt_clock, fmt_money, fmt_time, stdout_console
from tradebot.cli.tables import Column, fit_table
from tradebot.engine.status import LoopStatus


def render(s: LoopStatus, width: int = 80) -> RenderableType:
    """Everything an operator glances at, for any state (halted, disconnected, no positions),
    within `width` columns: ids, money, times and reasons whole (reasons wrap)."""
    inner = max(40, width - 4)  # the panel's border and padding
    clock = fmt_time(s.clock, seconds=True)
    head = Text()
    head.append("tradebot ", style="bold")
    head.append(f"{s.mode} on {s.broker} · {clock}")
    if s.clock_note:
        head.append(f" ({s.clock_note})", style="dim")
    head.append(" · ")
    head.append(
        "connected" if s.connected else "DISCONNECTED", "green" if s.connected else "bold red"
    )
    if s.halted:
        head.append(" · HALTED", "bold red")
    if s.next_wake is not None:
        head.append(f" · next {fmt_clock(s.next_wake, seconds=True)}")
    limits = s.limits or {}
    cap = limits.get("position_cap_usd")
    entries = limits.get("max_entries_per_session")
    phase = Text(
        f"phase {s.phase or 'unknown'} · live {'allowed' if limits.get('live_allowed') else 'no'}"
        f" · entries {limits.get('entries_this_session', '?')}/"
        f"{'∞' if entries is None else entries} · cap {fmt_money(cap) if cap is not None else '—'}"
        f" · equity {fmt_money(s.equity)} · day {fmt_money(s.day_pnl)}"
    )
    parts: list[RenderableType] = [Text(f"! {line}", style="bold red") for line in s.urgent]
    parts += [head, phase]
    if s.halted and s.halt_reason:
        parts.append(Text(s.halt_reason, style="red"))
    for blocked in s.blocking:
        parts.append(Text(f"blocked: {blocked}", style="yellow"))
    if s.stuck_for_s:
        parts.append(Text(f"current step running for {s.stuck_for_s:.0f} s", style="yellow"))
    if s.last_error:
        parts.append(Text(f"last error: {s.last_error}", style="red"))
    if s.positions:
        parts.append(positions_table("positions", s.positions, inner))
    else:
        parts.append(Text("no open positions", style="dim"))
    if s.orders:
        parts.append(orders_table("working orders", s.orders, inner))
    if s.signals:
        parts.append(
            fit_table(
                "last signal per symbol",
                [Column("symbol"), Column("at"), Column("signal"), Column("reason", wrap=True)],
                [[Text(g.symbol), fmt_clock(g.at), g.signal, Text(g.reason)] for g in s.signals],
                inner,
            )
        )
    return Panel(
        Group(*parts),
        title="tradebot run",
        border_style="red" if s.halted else "blue",
        width=width,
    )


@contextmanager
def live_view(console: Console | None = None) -> Iterator[LiveUpdater]:
    """A rich Live region on the terminal; yields the callback the loop's supervisor calls."""
    live = Live(console=console or stdout_console(), auto_refresh=False, transient=False)
    with live:
        yield LiveUpdater(live)


class LiveUpdater:
    def __init__(self, live: Live) -> None:
        self.live = live

    def __call__(self, status: LoopStatus) -> None:
        self.live.update(render(status, self.live.console.width), refresh=True)
