"""Run the real trading loop in-process on the simulated broker and read what it wrote."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from tests.phase_helpers import transition
from tradebot.books.phase_records import PhaseRecords
from tradebot.books.trade_journal import TradeJournal
from tradebot.config import LoadedConfig, load_config
from tradebot.core.phase_history import PhaseTransition
from tradebot.core.trades import ClosedTrade, PhaseName
from tradebot.engine.context import EngineContext
from tradebot.engine.loop import RunSummary, TradingLoop
from tradebot.engine.runner import RunOptions, default_until, make_clock, make_context, parse_when

BASE = """
[broker.sim]
seed = 7

[trading]
mode = "paper"
symbols = ["SPY", "QQQ", "IWM"]

[phase.experience]
counted_modes = ["paper", "sim"]
"""


def config(tmp_path: Path, extra: str = "", *, base: str = BASE) -> LoadedConfig:
    """A config.toml in `tmp_path` (later tables in `extra` may not repeat `base`'s)."""
    path = tmp_path / "config.toml"
    path.write_text(base + "\n" + extra, encoding="utf-8")
    return load_config(path)


@dataclass
class Recorder:
    """A notify hook that remembers every call."""

    calls: list[tuple[str, str]] = field(default_factory=list)

    def __call__(self, event: str, message: str) -> None:
        self.calls.append((event, message))

    def events(self, name: str) -> list[str]:
        return [m for e, m in self.calls if e == name]


def run(
    loaded: LoadedConfig,
    start: str,
    until: str | None = None,
    *,
    notify: Recorder | None = None,
    bars: Path | None = None,
) -> tuple[RunSummary, EngineContext]:
    options = RunOptions(
        bars=bars,
        speed=None,
        start=parse_when(start, "--start"),
        until=None if until is None else parse_when(until, "--until"),
        simulated=True,
    )
    clock = make_clock(loaded, options)
    stop_at = default_until(loaded, options, clock)
    ctx = make_context(loaded, options, clock, notify or Recorder())
    summary = asyncio.run(TradingLoop(ctx, until=stop_at).run())
    return summary, ctx


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def orders(loaded: LoadedConfig) -> list[dict[str, Any]]:
    return read_jsonl(loaded.logs_dir / "journal" / "orders.jsonl")


def events(loaded: LoadedConfig) -> list[dict[str, Any]]:
    return read_jsonl(loaded.logs_dir / "journal" / "events.jsonl")


def trades(loaded: LoadedConfig) -> list[ClosedTrade]:
    return TradeJournal(loaded.logs_dir).read().trades


def sim_state(loaded: LoadedConfig) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((loaded.state_dir / "sim-broker.json").read_text())
    return data


def entry_intents(loaded: LoadedConfig) -> list[dict[str, Any]]:
    return [r for r in orders(loaded) if r["event"] == "intent" and r["role"] == "entry"]


def refusals(loaded: LoadedConfig, rule: str | None = None) -> list[dict[str, Any]]:
    return [
        e
        for e in events(loaded)
        if e["event"] == "entry_refused" and (rule is None or e["rule"] == rule)
    ]


def ts(record: dict[str, Any], key: str = "ts") -> datetime:
    return datetime.fromisoformat(str(record[key]).replace("Z", "+00:00"))


def set_phase(loaded: LoadedConfig, phase: PhaseName, at: datetime) -> PhaseTransition:
    """Move the ladder to `phase` by a manual-override record dated `at`."""
    record = transition(phase, at, frm=loaded.settings.phase.initial, trigger="manual_override")
    PhaseRecords(loaded.logs_dir).history.append(record.as_record())
    return record


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


# A dry run on the simulated broker: would-be positions, nothing sent.
DRY = """
[broker.sim]
seed = 1

[trading]
mode = "dry_run"
symbols = ["SPY", "QQQ"]
"""
