"""Re-fit the simulated market's option pricing on the real option data in ../shared/data.

    .venv/bin/python -m benchmarks.calibrate_pricing

Prints the fitted `[broker.sim.pricing]` block (the defaults in
`tradebot/config/broker.py` and config.toml) and the tables of docs/backtest-pricing.md: per
source, the errors of the previous model, of the fitted one in sample, and out of sample (fitted
on the other sources). tests/backtest/test_pricing_calibration.py asserts the documented numbers,
so a change to the model or the data that moves them fails there first. The records, the
sources and the "before" model are in tests/market/real_options.py; the fit is
`tradebot.market.calibration`.
"""

from __future__ import annotations

import tempfile
from dataclasses import fields
from pathlib import Path

from tests.market.real_options import SOURCES, run_calibration
from tradebot.market.calibration import SourceErrors


def _cells(e: SourceErrors) -> str:
    width = "–" if e.width_ratio is None else f"{e.width_ratio:.2f}"
    return (
        f"{e.mean_abs:.1%} | {e.median_abs:.1%} | {e.bias:+.1%} | ${e.mean_abs_usd:.2f} | "
        f"{e.inside:.0%} | {width}"
    ).replace("%", " %")


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        result = run_calibration(Path(tmp))
    print("[broker.sim.pricing]  # fitted on every source")
    for field in fields(result.params):
        if field.name not in ("rate", "lookback_sessions"):
            print(f"{field.name} = {getattr(result.params, field.name):g}")
    header = (
        "| source | records | model | mean \\|error\\| | median \\|error\\| | mean error | "
        "mean \\|error\\| $ | real inside modelled bid/ask | modelled / real spread |"
    )
    print()
    print(header)
    print("|---|---|---|---|---|---|---|---|---|")
    for source in SOURCES:
        rows = (
            ("before", result.before[source]),
            ("after, in sample", result.in_sample[source]),
            ("after, out of sample", result.out_of_sample[source][1]),
        )
        for label, errors in rows:
            print(f"| {source} | {errors.records} | {label} | {_cells(errors)} |")
    print()
    for name, (before, inside, outside) in result.subsets.items():
        for label, errors in (
            ("before", before),
            ("after, in sample", inside),
            ("after, out of sample", outside),
        ):
            print(f"| {name} | {errors.records} | {label} | {_cells(errors)} |")
    print()
    print("out-of-sample fits (the parameters fitted without each source):")
    for source, (params, _) in result.out_of_sample.items():
        print(f"  without {source}: {params}")
    print(f"records out of scope: {result.excluded}")
    print(f"largest array/scalar price difference: {result.scalar_check:.2e} of the price")


if __name__ == "__main__":
    main()
