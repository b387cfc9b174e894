"""Liquidity guard, position size and bracket prices (spec §5)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.core.data_loaders import lean_goog_chain, yahoo_chain
from tradebot.config import RiskConfig
from tradebot.core.option_selection import OptionQuote
from tradebot.core.sizing import bracket_prices, cash_shortfall, liquidity_check, position_size

D = Decimal
RISK = RiskConfig()  # 1 % risk, 50 % stop, 100 % target, 10 % spread, 100 contracts volume


def quote(bid: str, ask: str, volume: int = 500) -> OptionQuote:
    return OptionQuote("Q", date(2025, 7, 3), D(620), "C", D(bid), D(ask), volume=volume)


# ----------------------------------------------------------------------------------- sizing


def test_worked_example() -> None:
    # Risk budget 10,000 × 1 % = $100; risk per contract 0.80 × 100 × 50 % = $40 →
    # floor(2.5) = 2 contracts by risk. One contract costs $80: a $100 cap allows 1.
    capped = position_size(D(10_000), D("0.80"), 100, RISK, D(100))
    assert (capped.risk_based_contracts, capped.cap_based_contracts, capped.contracts) == (2, 1, 1)
    assert capped.cost == D(80) and capped.contract_cost == D(80)
    assert capped.risk_budget == D(100) and capped.risk_per_contract == D(40)
    assert capped.reason == (
        "1 contract(s): risk $100.00 (1 % of $10,000.00) / $40.00 per contract (0.80 × 100 × "
        "50 % stop) → 2, capped at 1 by the $100.00 position cap ($80.00 each)"
    )
    roomy = position_size(D(10_000), D("0.80"), 100, RISK, D(200))
    assert (roomy.contracts, roomy.cost) == (2, D(160))


def test_at_least_one_contract_by_risk_but_never_over_the_cap() -> None:
    # $1,000 equity risks $10; one 0.80 contract risks $40, yet the rule buys 1 (max(1, 0)).
    small = position_size(D(1_000), D("0.80"), 100, RISK, D(100))
    assert (small.risk_based_contracts, small.contracts) == (1, 1)
    too_dear = position_size(D(10_000), D("1.20"), 100, RISK, D(100))
    assert too_dear.contracts == 0 and too_dear.cost == 0
    assert too_dear.reason == (
        "one contract costs $120.00 (1.20 × 100), more than the $100.00 position cap: no trade"
    )


@pytest.mark.parametrize(
    ("equity", "premium", "multiplier", "words"),
    [
        (D(0), D("0.80"), 100, "equity $0.00 is not positive"),
        (D(-5), D("0.80"), 100, "equity $-5.00 is not positive"),
        (D(10_000), D(0), 100, "premium 0 is not positive"),
        (D(10_000), D("0.80"), 0, "multiplier 0 is not positive"),
        (D("NaN"), D("0.80"), 100, "equity is not a number"),
    ],
)
def test_no_trade_on_nonsense(
    equity: Decimal, premium: Decimal, multiplier: int, words: str
) -> None:
    got = position_size(equity, premium, multiplier, RISK, D(100))
    assert got.contracts == 0 and words in got.reason and got.reason.endswith("no trade")


money = st.decimals(min_value=D("0.01"), max_value=D("100000"), places=2)
premiums = st.decimals(min_value=D("0.01"), max_value=D("50"), places=2)
percents = st.decimals(min_value=D("0.1"), max_value=D("100"), places=1)


@settings(max_examples=300, deadline=None)
@given(equity=money, premium=premiums, cap=money, risk_pct=percents, stop_pct=percents)
def test_size_invariants(
    equity: Decimal, premium: Decimal, cap: Decimal, risk_pct: Decimal, stop_pct: Decimal
) -> None:
    risk = RiskConfig(max_risk_pct=risk_pct, stop_loss_pct=stop_pct)
    got = position_size(equity, premium, 100, risk, cap)
    assert got.cost == premium * 100 * got.contracts <= cap
    assert got.contracts >= 0 and got.reason
    if got.contracts == 0:
        assert "no trade" in got.reason
        assert premium * 100 > cap  # the only way positive inputs give 0
    else:
        assert got.contracts == min(got.risk_based_contracts, got.cap_based_contracts)
        assert got.contracts >= 1
    more = position_size(equity + D(1000), premium, 100, risk, cap)
    assert more.contracts >= got.contracts  # monotone in equity
    assert more.risk_based_contracts >= got.risk_based_contracts


# -------------------------------------------------------------------------------- liquidity


def test_liquid_quote_passes_with_its_numbers() -> None:
    got = liquidity_check(quote("0.95", "1.00", volume=250), RISK)
    assert got.ok
    assert got.spread_pct is not None and got.spread_pct.quantize(D("0.01")) == D("5.13")
    assert got.reason == (
        "2025-07-03 620 C liquid: bid 0.95 / ask 1.00, spread 5.1 % ≤ 10 %, volume 250 ≥ 100"
    )


@pytest.mark.parametrize(
    ("q", "words"),
    [
        (quote("0", "0.10"), "no bid (0)"),
        (quote("0.10", "0"), "no ask (0)"),
        (quote("0.50", "0.45"), "crossed quote: ask 0.45 < bid 0.50"),
        (quote("0.80", "1.00"), "spread 0.80/1.00 is 22.2 % of mid 0.90, over the 10 % limit"),
        (quote("0.95", "1.00", volume=99), "volume 99 is below the minimum 100 contracts"),
    ],
)
def test_each_liquidity_rule_refuses_alone(q: OptionQuote, words: str) -> None:
    got = liquidity_check(q, RISK)
    assert not got.ok
    assert got.reason.startswith("2025-07-03 620 C refused: ")
    assert words in got.reason
    assert ";" not in got.reason  # exactly one rule failed


def test_spread_at_the_limit_passes() -> None:
    # (1.05 − 0.95) / 1.00 = 10 % exactly: allowed (≤).
    assert liquidity_check(quote("0.95", "1.05"), RISK).ok


@pytest.mark.shared_data
def test_liquidity_on_real_quotes() -> None:
    spy = {q.contract_id: q for q in yahoo_chain("SPY", D("551.50")).quotes}
    # 555 C 0.92/0.95: spread 3.2 % of 0.935, volume 48,028.
    assert liquidity_check(spy["SPY240801C00555000"], RISK).ok
    # 567 C 0.00/0.01: no bid.
    assert "no bid" in liquidity_check(spy["SPY240801C00567000"], RISK).reason
    goog = lean_goog_chain(36_000_000)
    c757 = next(q for q in goog.quotes if q.strike == D("757.5") and q.right == "C")
    # 0.45/0.70: 43.5 % of mid 0.575; 31 contracts traded by 10:01.
    got = liquidity_check(c757, RISK)
    assert not got.ok
    assert "spread 0.45/0.70 is 43.5 % of mid 0.575" in got.reason
    assert "volume 31 is below the minimum 100" in got.reason


# ---------------------------------------------------------------------------------- bracket


def test_bracket_prices() -> None:
    b = bracket_prices(D("0.80"), D("0.01"), D(100), D(50))
    assert (b.entry, b.take_profit, b.stop_loss) == (D("0.80"), D("1.60"), D("0.40"))
    # Off-tick premium: entry 0.935 → 0.94; TP 1.88; stop 0.47 (0.94 × 0.5, exactly on tick).
    b = bracket_prices(D("0.935"), D("0.01"), D(100), D(50))
    assert (b.entry, b.take_profit, b.stop_loss) == (D("0.94"), D("1.88"), D("0.47"))
    # Nickel tick: entry 1.45; TP 2.90; stop 0.725 rounds UP to 0.75 (loss 0.70 ≤ 50 % of 1.45).
    b = bracket_prices(D("1.45"), D("0.05"), D(100), D(50))
    assert (b.entry, b.take_profit, b.stop_loss) == (D("1.45"), D("2.90"), D("0.75"))
    # TP 30 % of 0.55 = 0.715 → nearest 0.72 (tie up); stop 0.55 × 0.7 = 0.385 → up to 0.39.
    b = bracket_prices(D("0.55"), D("0.01"), D(30), D(30))
    assert (b.take_profit, b.stop_loss) == (D("0.72"), D("0.39"))


def test_bracket_stop_stays_above_zero_and_below_entry() -> None:
    # A 100 % stop would be 0: one tick instead.
    assert bracket_prices(D("0.50"), D("0.01"), D(100), D(100)).stop_loss == D("0.01")
    # Two ticks: the stop is one tick.
    assert bracket_prices(D("0.02"), D("0.01"), D(100), D(50)).stop_loss == D("0.01")
    # A tiny take-profit still ends one tick above the entry.
    assert bracket_prices(D("0.50"), D("0.01"), D("0.1"), D(50)).take_profit == D("0.51")
    with pytest.raises(ValueError, match="no stop fits"):
        bracket_prices(D("0.01"), D("0.01"), D(100), D(50))
    with pytest.raises(ValueError, match="no stop fits"):
        bracket_prices(D("0.50"), D("0.01"), D(100), D("1"))  # 0.495 → 0.50 = entry
    with pytest.raises(ValueError, match="premium must be positive"):
        bracket_prices(D(0), D("0.01"), D(100), D(50))


@settings(max_examples=200, deadline=None)
@given(premium=premiums, tp=percents, sl=percents)
def test_bracket_invariants(premium: Decimal, tp: Decimal, sl: Decimal) -> None:
    tick = D("0.01")
    try:
        b = bracket_prices(premium, tick, tp, sl)
    except ValueError as exc:
        assert "no trade" in str(exc)
        return
    assert 0 < b.stop_loss < b.entry < b.take_profit
    for price in (b.entry, b.take_profit, b.stop_loss):
        assert price % tick == 0
    assert b.entry - b.stop_loss <= b.entry * sl / 100  # never more loss than planned


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 50),
    st.decimals(min_value="0.01", max_value="50", places=2),
    st.sampled_from([1, 10, 100]),
    st.decimals(min_value="0", max_value="100000", places=2),
)
def test_an_entry_is_refused_for_cash_exactly_when_it_costs_more_than_the_cash(
    contracts: int, entry: Decimal, multiplier: int, cash: Decimal
) -> None:
    reason = cash_shortfall(contracts, entry, multiplier, cash)
    cost = entry * multiplier * contracts
    assert (reason is not None) == (cost > cash)
    if reason is not None:  # the refusal names its numbers
        assert f"${cost:,.2f}" in reason and f"${cash:,.2f}" in reason


def test_unknown_cash_refuses_nothing() -> None:
    assert cash_shortfall(3, Decimal("9.99"), 100, None) is None
