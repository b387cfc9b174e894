"""Run the real loop in-process on the simulated broker, with faults injected into the broker.

The broker is the real `SimBroker`; a test replaces one of its coroutines on the instance to
model what a real gateway does now and then (a timeout, a late commission report) and checks
what the loop does about it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

from tests.engine.harness import Recorder
from tradebot.brokers.sim import SimBroker
from tradebot.config import LoadedConfig
from tradebot.engine.context import EngineContext
from tradebot.engine.loop import RunSummary, TradingLoop
from tradebot.engine.runner import RunOptions, default_until, make_clock, make_context, parse_when

# Positions stay open until something closes them (take-profit far away, stop far below).
HOLD = "[risk]\ntake_profit_pct = 900\nstop_loss_pct = 95\n"


def trading(extra: str, symbols: str = '"SPY", "QQQ", "IWM"') -> str:
    """A base config (as tests.engine.harness.BASE) with more keys in its [trading] table."""
    return f"""
[broker.sim]
seed = 7

[trading]
mode = "paper"
symbols = [{symbols}]
{extra}

[phase.experience]
counted_modes = ["paper", "sim"]
"""


def prepare(
    loaded: LoadedConfig,
    start: str,
    until: str | None = None,
    *,
    notify: Recorder | None = None,
    speed: float | None = None,
) -> tuple[EngineContext, datetime | None]:
    """The loop's context on a simulated clock from `start` (not run yet) and where it stops."""
    options = RunOptions(
        speed=speed,
        start=parse_when(start, "--start"),
        until=None if until is None else parse_when(until, "--until"),
        simulated=True,
    )
    clock = make_clock(loaded, options)
    stop_at = default_until(loaded, options, clock) if until is not None else None
    ctx = make_context(loaded, options, clock, notify or Recorder())
    return ctx, stop_at


def sim(ctx: EngineContext) -> SimBroker:
    broker = ctx.broker
    assert isinstance(broker, SimBroker)
    return broker


def run_loop(ctx: EngineContext, until: datetime | None) -> RunSummary:
    return asyncio.run(TradingLoop(ctx, until=until).run())


def positions(ctx: EngineContext) -> dict[str, int]:
    """The simulated broker's option positions now: contract label → quantity."""
    return {p.contract.label: p.qty for p in sim(ctx).exchange.positions.values()}


def events_named(records: list[dict[str, Any]], *names: str) -> list[dict[str, Any]]:
    return [e for e in records if e["event"] in names]
