"""The simulated market shared by the simulated broker and the IB Gateway simulator.

* `MarketModel`: underlying prices and option quotes at any moment (`model`);
* bar sources: `SyntheticBars` (deterministic, seeded) and `CsvBars` (`--bars DIR`);
* `volatility`: the calibrated implied-volatility model; `pricing`: Black–Scholes, spread and
  volume models; `option_quotes`: real option quotes (`backtest --options`); `calibration`: the
  fit of the model's parameters on real quotes; `fills`: how orders fill against quotes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tradebot.core.sessions import DEFAULT_CALENDAR
from tradebot.market.model import BarSource, MarketModel
from tradebot.market.volatility import PricingParams


def make_market(
    *,
    seed: int = 1,
    bars_dir: Path | None = None,
    calendar: str = DEFAULT_CALENDAR,
    params: PricingParams | None = None,
    symbols: Sequence[str] | None = None,
) -> MarketModel:
    """The synthetic market (seeded) or, with `bars_dir`, one modelled on CSV bars (only the
    files of `symbols` when given); options priced with `params` (default: the calibrated
    ones)."""
    source: BarSource
    if bars_dir is not None:
        from tradebot.market.csv_bars import CsvBars

        source = CsvBars(bars_dir, calendar, symbols=symbols)
    else:
        from tradebot.market.synthetic import SyntheticBars

        source = SyntheticBars(seed, calendar)
    return MarketModel(source, calendar, params)


__all__ = ["BarSource", "MarketModel", "make_market"]
