"""The live panel of `tradebot run` on a terminal: drawn from the loop's `LoopStatus` at most
twice a second (a Pi over SSH must not flicker or burn CPU)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from zoneinfo import ZoneInfo

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from tradebot.cli.output import fmt_money, stdout_console
from tradebot.engine.status import LoopStatus

NEW_YORK = ZoneInfo("America/New_York")


def render(s: LoopStatus) -> RenderableType:
    """Everything an operator glances at, for any state (halted, disconnected, no positions)."""
    clock = s.clock.astimezone(NEW_YORK).strftime("%Y-%m-%d %H:%M:%S %Z")
    head = Text()
    head.append("tradebot ", style="bold")
    head.append(f"{s.mode} on {s.broker} · {clock} · ")
    head.append(
        "connected" if s.connected else "DISCONNECTED", "green" if s.connected else "bold red"
    )
    if s.halted:
        head.append(" · HALTED", "bold red")
    if s.next_wake is not None:
        head.append(f" · next {s.next_wake.astimezone(NEW_YORK):%H:%M:%S}")
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
    if s.blocking:
        parts.append(Text("blocked: " + "; ".join(s.blocking)[:300], style="yellow"))
    if s.stuck_for_s:
        parts.append(Text(f"current step running for {s.stuck_for_s:.0f} s", style="yellow"))
    if s.last_error:
        parts.append(Text(f"last error: {s.last_error}"[:200], style="red"))
    positions = Table(title="positions", title_justify="left", expand=False)
    for col in ("ref", "contract", "strategy", "qty", "entry", "mark", "unrealized"):
        positions.add_column(col)
    for p in s.positions:
        positions.add_row(
            p.ref, p.contract, p.strategy, str(p.qty), str(p.entry_price),
            "—" if p.mark is None else str(p.mark), fmt_money(p.unrealized),
        )  # fmt: skip
    parts.append(positions if s.positions else Text("no open positions", style="dim"))
    if s.orders:
        orders = Table(title="working orders", title_justify="left")
        for col in ("ref", "role", "contract", "side", "qty", "type", "price", "status"):
            orders.add_column(col)
        for o in s.orders:
            orders.add_row(
                o.ref, o.role, o.contract, o.action, str(o.qty), o.order_type,
                "—" if o.price is None else str(o.price), o.status,
            )  # fmt: skip
        parts.append(orders)
    if s.signals:
        signals = Table(title="last signal per symbol", title_justify="left")
        for col in ("symbol", "at", "signal", "reason"):
            signals.add_column(col)
        for g in s.signals:
            signals.add_row(g.symbol, f"{g.at.astimezone(NEW_YORK):%H:%M}", g.signal, g.reason[:90])
        parts.append(signals)
    return Panel(Group(*parts), title="tradebot run", border_style="red" if s.halted else "blue")


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
        self.live.update(render(status), refresh=True)
