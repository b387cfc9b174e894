"""`tradebot gateway sim`: run the local IB Gateway simulator in the foreground.

It prints one banner line on stdout, logs connections and orders on stderr, and reads fault
commands on stdin (and, with `--control-port`, from a loopback socket). Ctrl-C, SIGTERM or the
`quit` command stop it cleanly (exit 0, state saved with `--state`). A port already in use, an
address other than loopback without `--unsafe-bind`, or a bad option is a usage error (exit 2).
"""

from __future__ import annotations

import logging
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from tradebot.cli.context import state_of
from tradebot.errors import UsageError

if TYPE_CHECKING:
    from tradebot.gateway_sim import SimSettings

app = typer.Typer(help="The IB gateway: a local simulator to rehearse with.", no_args_is_help=True)


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
