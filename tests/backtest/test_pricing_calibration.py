"""How far the modelled option prices are from real ones, before and after the calibration
(docs/backtest-pricing.md): the fit on every real option record in ../shared/data, and each
source measured out of sample (fitted on the others). The numbers the doc states are asserted
here, so the doc cannot silently go stale; `benchmarks/calibrate_pricing.py` prints them.
"""

from __future__ import annotations

import pytest

from tests.market.real_options import Calibration, run_calibration
from tradebot.market.calibration import SourceErrors
from tradebot.market.volatility import pricing_params

# source: (records, [(mean |error|, median |error|, mean error, share inside bid/ask)] for
# before, after in sample, after out of sample), as in the doc's table (percent).
DOCUMENTED = {
    "alpaca_prints": (
        65,
        [(41.8, 40.2, -41.8, 0), (8.9, 4.1, -6.3, 14), (9.1, 3.3, -8.1, 31)],
    ),
    "lean_goog_minute": (
        7960,
        [(44, 11, 43.9, 34), (4.2, 1.6, 1.4, 54), (24.7, 6.6, 24.5, 26)],
    ),
    "lean_spy_minute": (
        1620,
        [(59.9, 9.2, 47.8, 32), (8.2, 4, 0.8, 6), (30.8, 6.4, 14.7, 18)],
    ),
    "lean_universe": (
        183,
        [(32.2, 24.5, 31.2, 8), (44.4, 30.8, 43.8, 3), (44.9, 31.8, 44.3, 3)],
    ),
    "yahoo_chain": (
        507,
        [(35.6, 22, -19.1, 22), (35.2, 17.9, -2.2, 17), (34.6, 18.5, -0.8, 15)],
    ),
}
SUBSETS = {
    "yahoo_chain SPY, QQQ (1 day)": (
        135,
        [(27.9, 11.3, -27.8, 37), (16, 4.8, -15.3, 36), (14.4, 4.9, -13, 33)],
    ),
    "yahoo_chain single stocks": (
        294,
        [(42.4, 30.2, -14.0, 13), (50.5, 34.3, 6.1, 2), (50.5, 32.2, 7.1, 2)],
    ),
    "lean_spy_minute 430 P, 470 C (out of the money)": (
        810,
        [(116, 97.6, 96.3, 0), (13.3, 9, 4.6, 7), (58.4, 41.6, 32.2, 1)],
    ),
}
# The modelled spread over the real one (median), where the source has bid/ask: after.
SPREAD_CHECK = {"lean_goog_minute": 0.27, "lean_spy_minute": 1.56, "yahoo_chain": 0.53}


@pytest.fixture(scope="module")
def calibration(tmp_path_factory: pytest.TempPathFactory) -> Calibration:
    return run_calibration(tmp_path_factory.mktemp("calibration"))


def _check(errors: SourceErrors, records: int, numbers: tuple[float, ...]) -> None:
    mean, median, bias, inside = numbers
    assert errors.records == records
    assert errors.mean_abs * 100 == pytest.approx(mean, abs=0.051)
    assert errors.median_abs * 100 == pytest.approx(median, abs=0.051)
    assert errors.bias * 100 == pytest.approx(bias, abs=0.051)
    assert errors.inside * 100 == pytest.approx(inside, abs=0.51)


@pytest.mark.shared_data
def test_the_documented_before_and_after_per_source(calibration: Calibration) -> None:
    for source, (records, (before, inside, outside)) in DOCUMENTED.items():
        _check(calibration.before[source], records, before)
        _check(calibration.in_sample[source], records, inside)
        _check(calibration.out_of_sample[source][1], records, outside)
    for name, (records, rows) in SUBSETS.items():
        for errors, numbers in zip(calibration.subsets[name], rows, strict=True):
            _check(errors, records, numbers)
    assert calibration.excluded == {
        "lean_goog_minute": 9497,
        "yahoo_chain": 1660,
        "lean_universe": 972,
    }


@pytest.mark.shared_data
def test_the_target_spy_short_dated_out_of_sample(calibration: Calibration) -> None:
    """The issue's target: mean |error| ≤ 10 % out of sample on short-dated SPY/QQQ options
    priced from their bars (the Alpaca prints, 11–14 days), and the sign of what remains: the
    model is still below the real prices (the backtest's options a little cheap)."""
    spy = calibration.out_of_sample["alpaca_prints"][1]
    assert spy.mean_abs <= 0.10
    assert spy.bias < 0
    before = calibration.before["alpaca_prints"]
    assert before.mean_abs > 0.40 and before.bias < 0  # the 42 % low the issue started from


@pytest.mark.shared_data
def test_the_spread_model_against_real_bid_ask(calibration: Calibration) -> None:
    for source, ratio in SPREAD_CHECK.items():
        width = calibration.in_sample[source].width_ratio
        assert width is not None and width == pytest.approx(ratio, abs=0.005)


@pytest.mark.shared_data
def test_the_config_defaults_are_the_fit_on_every_source(calibration: Calibration) -> None:
    """`broker.sim.pricing`'s defaults are what the fit gives today (re-run
    `benchmarks/calibrate_pricing.py` and update config when the data or the model change)."""
    assert calibration.params == pricing_params()


@pytest.mark.shared_data
def test_the_fitted_prices_are_the_running_model(calibration: Calibration) -> None:
    """The array formulas the fit measures give what `MarketModel.option_value` gives."""
    assert calibration.scalar_check < 1e-5
