"""How far the modelled option prices are from real ones (docs/backtest-pricing.md).

The real prints: Alpaca 1-minute bars of three SPY $551 options (put 2025-05-06, calls
2025-05-07 and 2025-05-08) on 2025-04-24/25, against the model over the same days' SPY 1-minute
bars (`SPY_1min.csv~`, the same vendor). Each bar's close (a trade in that minute) is compared
with the model's fair value at the end of that minute, as a backtest would quote it: Black–Scholes
with the realized volatility of the previous sessions (only 2025-04-24 before 2025-04-25; the
symbol's 16 % before that), the smile, the 4 % rate.

The numbers the doc states are asserted here, so the doc cannot silently go stale.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.conftest import shared_data
from tradebot.core.trades import session_of
from tradebot.market import make_market
from tradebot.market.model import MarketModel
from tradebot.market.pricing import black_scholes, smile_vol

DATA = "dawsh2-admf-trader/data"
OPTIONS = (
    ("SPY250506P00551000_1min.csv", date(2025, 5, 6), "P"),
    ("SPY250507C00551000_1min.csv", date(2025, 5, 7), "C"),
    ("SPY250508C00551000_1min.csv", date(2025, 5, 8), "C"),
)
YEAR = 365.0 * 24 * 3600


def _prints(tmp_path: Path) -> tuple[MarketModel, list[dict[str, object]]]:
    underlying = shared_data(f"{DATA}/SPY_1min.csv~")
    (tmp_path / "SPY.csv").symlink_to(underlying)
    market = make_market(bars_dir=tmp_path)
    rows: list[dict[str, object]] = []
    for name, expiry, right in OPTIONS:
        lines = shared_data(f"{DATA}/{name}").read_text().splitlines()[1:]
        for line in lines:
            stamp, _symbol, _o, _h, _l, close, *_ = line.split(",")
            t = datetime.fromisoformat(stamp) + timedelta(minutes=1)
            contract = market.option("SPY", expiry, Decimal(551), right, session_of(t))  # type: ignore[arg-type]
            assert contract is not None
            quote = market.option_quote(contract, t)
            spot = market.last_price("SPY", t)
            assert quote is not None and spot is not None
            real = float(close)
            years = (market.expiry_close(expiry) - t).total_seconds() / YEAR
            rows.append(
                {
                    "t": t,
                    "right": right,
                    "real": real,
                    "model": market.option_value(contract, spot, t),
                    "bid": float(quote.bid),
                    "ask": float(quote.ask),
                    "vol": market.volatility("SPY", session_of(t)),
                    "implied": _implied(real, spot, years, right),
                    "spot": spot,
                    "years": years,
                }
            )
    return market, rows


def _implied(price: float, spot: float, years: float, right: str) -> float:
    """The volatility (before the smile) at which the model's formula gives `price`."""
    lo, hi = 0.01, 3.0
    for _ in range(60):
        mid = (lo + hi) / 2
        value = black_scholes(spot, 551.0, years, smile_vol(mid, spot, 551.0), right)
        lo, hi = (mid, hi) if value < price else (lo, mid)
    return (lo + hi) / 2


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


@pytest.mark.shared_data
def test_modelled_option_prices_against_real_spy_prints(tmp_path: Path) -> None:
    _, rows = _prints(tmp_path)
    assert len(rows) == 65
    rel = [(float(r["model"]) - float(r["real"])) / float(r["real"]) for r in rows]  # type: ignore[arg-type]
    abs_err = [abs(float(r["model"]) - float(r["real"])) for r in rows]  # type: ignore[arg-type]
    # The model is below every real print: realized volatility (13.8 % on 04-25, the 16 %
    # default on 04-24) is far below what the market was paying (about 22–24 % implied).
    assert all(x < 0 for x in rel)
    assert 0.40 <= sum(map(abs, rel)) / len(rel) <= 0.44  # mean |relative error| 42 %
    assert 3.2 <= sum(abs_err) / len(abs_err) <= 3.5  # mean |error| $3.35
    inside = [float(r["bid"]) <= float(r["real"]) <= float(r["ask"]) for r in rows]  # type: ignore[arg-type]
    assert not any(inside)  # no real print inside the modelled bid/ask
    vols = {session_of(r["t"]): float(r["vol"]) for r in rows}  # type: ignore[arg-type]
    assert vols == {date(2025, 4, 24): 0.16, date(2025, 4, 25): pytest.approx(0.1377, abs=1e-4)}
    implied = {
        day: _median([float(r["implied"]) for r in rows if session_of(r["t"]) == day])  # type: ignore[arg-type]
        for day in vols
    }
    assert implied[date(2025, 4, 24)] == pytest.approx(0.239, abs=0.002)
    assert implied[date(2025, 4, 25)] == pytest.approx(0.223, abs=0.002)
    # The formula itself (Black–Scholes, smile, rate) is close once the level of volatility is
    # right: with each day's median implied volatility, mean |relative error| is 2.9 %.
    structural = [
        abs(
            black_scholes(
                float(r["spot"]),  # type: ignore[arg-type]
                551.0,
                float(r["years"]),  # type: ignore[arg-type]
                smile_vol(implied[session_of(r["t"])], float(r["spot"]), 551.0),  # type: ignore[arg-type]
                str(r["right"]),
            )
            / float(r["real"])  # type: ignore[arg-type]
            - 1
        )
        for r in rows
    ]
    assert sum(structural) / len(structural) < 0.035
    assert max(structural) < 0.13
    assert not math.isnan(sum(structural))
