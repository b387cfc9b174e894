"""CLI test helpers: invoke the real app with CliRunner, stdout and stderr kept apart."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from tradebot.books.trade_journal import TradeJournal
from tradebot.cli import app
from tradebot.core.trades import ClosedTrade


def invoke(args: Sequence[str], input: str | None = None) -> Result:
    return CliRunner().invoke(app, list(args), input=input, catch_exceptions=False)


def run_process(
    args: Sequence[str], cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`python -m tradebot ARGS` as a real, separate process (no TRADEBOT_* from this shell)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEBOT_")}
    return subprocess.run(
        [sys.executable, "-m", "tradebot", *args],
        cwd=cwd,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def journal(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Append trades to the journal the default config reads (./logs/journal/trades.jsonl)."""

    def _add(*trades: ClosedTrade) -> Path:
        j = TradeJournal(tmp_path / "logs")
        for t in trades:
            j.append(t)
        return j.path

    return _add
