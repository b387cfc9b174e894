"""`tradebot gateway`: `test` an IB Gateway read-only, or run the local simulator (`sim`).

`gateway test` connects read-only with its own client id and reports what works (exit 0 ok, 4
degraded, 5 unreachable; `--json` for scripts). `gateway sim` prints one banner line on stdout,
logs connections and orders on stderr, and reads fault commands on stdin (and, with
`--control-port`, from a loopback socket). Ctrl-C, SIGTERM or the `quit` command stop it
cleanly (exit 0, state saved with `--state`). A port already in use, an address other than
loopback without `--unsafe-bind`, or a bad option is a usage error (exit 2).
"""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tradebot.cli.context import state_of
from tradebot.cli.output import esc, fmt_time, parse_time, print_json, stdout_console
from tradebot.errors import UsageError

if TYPE_CHECKING:
    from tradebot.brokers.ibkr.probe import ProbeReport
    from tradebot.gateway_sim import SimSettings

app = typer.Typer(
    rich_markup_mode=None,
    help="IB Gateway: test the connection, or run a local simulator.",
    no_args_is_help=True,
)


@app.command("test")
def test(
    ctx: typer.Context,
    symbol: Annotated[
        str | None,
        typer.Option(
            help="Symbol to check market data and the option chain for (default: the first of "
            "trading.symbols).",
            show_default=False,
        ),
    ] = None,
    client_id: Annotated[
        int | None,
        typer.Option(
            help="Client id for this read-only connection (default: broker.client_id + 1, so "
            "it can run next to `tradebot run`).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print one JSON document for scripts.")
    ] = False,
) -> None:
    """Connect read-only to the gateway in [broker] and report what works: exit 0 ok, 4
    degraded (what is missing), 5 unreachable."""
    loaded = state_of(ctx).config()
    s = loaded.settings
    chosen = (symbol or s.trading.symbols[0]).strip().upper()
    if not chosen or not chosen.replace(".", "").isalnum():
        raise UsageError(f"--symbol {symbol!r} is not a symbol like SPY")
    cid = s.broker.client_id + 1 if client_id is None else client_id
    if not 0 <= cid <= 2**31 - 1:
        raise UsageError(f"--client-id {client_id} is not a client id (0 to 2147483647)")
    import asyncio

    from tradebot.brokers.ibkr.probe import probe
    from tradebot.brokers.ibkr.settings import IbkrSettings

    settings = IbkrSettings.from_config(s, client_id=cid)
    report = asyncio.run(probe(settings, chosen))
    if as_json:
        print_json(report.as_json())
    else:
        _render_probe(report)
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def _render_probe(r: ProbeReport) -> None:
    out = stdout_console()
    where = f"{r.host}:{r.port} (client id {r.client_id})"
    if r.status == "unreachable":
        # The error names the address and the usual causes already; a bare one gets the list.
        out.print(f"[bold red]unreachable[/]: {esc(r.error or where)}")
        if not r.error:
            out.print("usual causes:")
            for cause in r.causes:
                out.print(f"  - {esc(cause)}")
        return
    out.print(f"IB Gateway at {esc(where)}: server version {r.server_version}")
    for a in r.accounts:
        mark = " (traded)" if a["id"] == r.account else ""
        out.print(f"  account {esc(a['id'])}: {esc(a['kind'])}{mark}")
    out.print(f"  net liquidation: {esc(r.net_liquidation or 'unknown')}")
    md = r.market_data or {}
    if md:
        out.print(
            f"  market data for {esc(md.get('symbol'))}: {esc(md.get('received'))} "
            f"({esc(md.get('requested'))} requested), bid {esc(md.get('bid'))}, ask "
            f"{esc(md.get('ask'))}, last {esc(md.get('last'))}"
        )
    oc = r.option_chain or {}
    if oc.get("available"):
        out.print(
            f"  option chain of {esc(oc['symbol'])}: {esc(oc['trading_class'])}, "
            f"{oc['expiries']} expiries from {esc(oc['first_expiry'])}, {oc['strikes']} strikes"
        )
    elif oc:
        out.print(f"  option chain of {esc(oc.get('symbol'))}: none")
    om = r.option_market_data or {}
    if om:
        out.print(
            f"  option market data for {esc(om.get('contract'))}: {esc(om.get('received'))}, "
            f"bid {esc(om.get('bid'))}, ask {esc(om.get('ask'))}"
        )
    if r.orders:
        if r.orders.get("read_only"):
            verdict = "refused: the API is Read-Only"
        elif r.orders.get("checked"):
            verdict = "accepted (what-if order)"
        else:
            verdict = f"not checked ({r.orders.get('error')})"
        out.print(f"  orders: {esc(verdict)}")
    if r.clock:
        gateway = fmt_time(parse_time(r.clock["gateway"]), seconds=True)
        if r.clock.get("follows_gateway"):
            out.print(
                f"  clock: gateway {gateway}, followed by `tradebot run` (broker.clock = "
                "'gateway': a rehearsal, so this machine's clock is not compared)"
            )
        else:
            out.print(f"  clock: gateway {gateway}, {r.clock['skew_s']:+.1f} s from this machine's")
    if r.status == "ok":
        out.print("[bold green]ok[/]: everything the bot needs is there")
        return
    out.print(f"[bold yellow]degraded[/]: {len(r.problems)} problem(s)")
    for problem in r.problems:
        out.print(f"  - {esc(problem)}")


@app.command("sim")
def sim(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port to listen on (4002 = IB's paper port).")] = 4002,
    version: Annotated[
        int, typer.Option(help="Highest server version offered (157 to 178).")
    ] = 178,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic market.")] = 1,
    bars: Annotated[
        Path | None,
        typer.Option(help="Folder of <SYMBOL>.csv 1-minute bars instead of the synthetic market."),
    ] = None,
    symbols: Annotated[
        str | None,
        typer.Option(help="Symbols to serve, comma-separated (default: SPY,QQQ,IWM,… or --bars)."),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(help="Keep the account (orders, fills, positions, cash) in this file."),
    ] = None,
    start: Annotated[
        str | None,
        typer.Option(
            help="Simulated start: a date (its 09:30 open) or a date-time with zone. Default: now.",
            show_default=False,
        ),
    ] = None,
    speed: Annotated[
        float, typer.Option(help="Simulated seconds per real second (0 freezes the clock).")
    ] = 1.0,
    account: Annotated[str, typer.Option(help="Account id the simulator reports.")] = "DUSIM0001",
    cash: Annotated[str, typer.Option(help="Starting cash of a new account (USD).")] = "10000",
    host: Annotated[str, typer.Option(help="Address to bind (loopback only by default).")] = (
        "127.0.0.1"
    ),
    unsafe_bind: Annotated[
        bool,
        typer.Option(
            "--unsafe-bind", help="Allow a non-loopback address (the protocol has no password)."
        ),
    ] = False,
    control_port: Annotated[
        int | None,
        typer.Option(help="Also accept fault commands on this loopback port.", show_default=False),
    ] = None,
) -> None:
    """Run a local IB Gateway simulator that ib_async (and tradebot) connect to."""
    debug = state_of(ctx).debug
    settings = _settings(
        port=port,
        version=version,
        seed=seed,
        bars=bars,
        symbols=symbols,
        state=state,
        start=start,
        speed=speed,
        account=account,
        cash=cash,
        host=host,
        unsafe_bind=unsafe_bind,
    )
    if control_port is not None and not 0 < control_port < 65536:
        raise UsageError(f"--control-port {control_port} is not a port number (1 to 65535)")
    # Options are priced like the simulated broker prices them: `broker.sim.pricing`.
    from dataclasses import replace

    from tradebot.market.volatility import pricing_params

    loaded = state_of(ctx).config(log_to_file=False)
    settings = replace(settings, pricing=pricing_params(loaded.settings.broker.sim.pricing))
    from tradebot.logging_setup import configure_logging

    configure_logging(None, debug=debug, console_level=logging.INFO)
    from tradebot.gateway_sim.runner import run_foreground

    run_foreground(settings, control_port)


def _settings(
    *,
    port: int,
    version: int,
    seed: int,
    bars: Path | None,
    symbols: str | None,
    state: Path | None,
    start: str | None,
    speed: float,
    account: str,
    cash: str,
    host: str,
    unsafe_bind: bool,
) -> SimSettings:
    from tradebot.core.sessions import DEFAULT_CALENDAR
    from tradebot.gateway_sim import SimSettings
    from tradebot.gateway_sim.clock import parse_moment
    from tradebot.gateway_sim.server import MAX_VERSION, MIN_VERSION

    if not 0 <= port < 65536:
        raise UsageError(f"--port {port} is not a port number (0 to 65535)")
    if not MIN_VERSION <= version <= MAX_VERSION:
        raise UsageError(
            f"--version {version} is not supported; use {MIN_VERSION} to {MAX_VERSION} "
            "(what ib_async 2.x accepts)"
        )
    if not speed >= 0:
        raise UsageError(f"--speed {speed} must be 0 or more (1 = real time, 0 = frozen)")
    try:
        money = Decimal(cash)
    except InvalidOperation:
        raise UsageError(f"--cash {cash!r} is not a number; write it like 10000") from None
    if not money.is_finite() or money <= 0:
        raise UsageError("--cash must be a positive amount")
    moment = None
    if start is not None:
        try:
            moment = parse_moment(start, DEFAULT_CALENDAR)
        except ValueError as exc:
            raise UsageError(f"--start: {exc}") from None
    chosen = None
    if symbols is not None:
        chosen = tuple(s.strip().upper() for s in symbols.split(",") if s.strip())
        if not chosen:
            raise UsageError("--symbols is empty; give symbols like SPY,QQQ")
    if not account.strip() or "," in account:
        raise UsageError("--account must be one account id, like DUSIM0001")
    return SimSettings(
        host=host,
        port=port,
        version=version,
        seed=seed,
        bars_dir=bars,
        symbols=chosen,
        account=account.strip(),
        cash=money,
        start=moment,
        speed=speed,
        state_file=state,
        unsafe_bind=unsafe_bind,
    )
