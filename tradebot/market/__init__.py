"""The simulated market shared by the simulated broker and the IB Gateway simulator.

* `MarketModel`: underlying prices and option quotes at any moment (`model`);
* bar sources: `SyntheticBars` (deterministic, seeded) and `CsvBars` (`--bars DIR`);
* `pricing`: Black–Scholes, spread and volume models; `fills`: how orders fill against quotes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tradebot.core.sessions import DEFAULT_CALENDAR
from tradebot.market.model import BarSource, MarketModel


def make_market(
    *,
    seed: int = 1,
    bars_dir: Path | None = None,
    calendar: str = DEFAULT_CALENDAR,
    symbols: Sequence[str] | None = None,
) -> MarketModel:
    """The synthetic market (seeded) or, with `bars_dir`, one modelled on CSV bars (only the
    files of `symbols` when given)."""
    source: BarSource
    if bars_dir is not None:
        from tradebot.market.csv_bars import CsvBars

        source = CsvBars(bars_dir, calendar, symbols=symbols)
    else:
        from tradebot.market.synthetic import SyntheticBars

        source = SyntheticBars(seed, calendar)
    return MarketModel(source, calendar)


__all__ = ["BarSource", "MarketModel", "make_market"]
