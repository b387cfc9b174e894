"""Contract selection (spec §5) on two real chains and on small synthetic ones.

Expectations below are worked out by hand from the files' numbers (see each comment). Premiums
are the mid rounded to the tick, ties up; cost = premium × 100.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from tests.core.data_loaders import lean_goog_chain, yahoo_chain
from tradebot.config import OptionsConfig
from tradebot.core.option_selection import (
    ChainSnapshot,
    ContractChoice,
    NoContract,
    OptionQuote,
    entry_premium,
    round_to_tick,
    select_contract,
)
from tradebot.core.trades import Right

D = Decimal
CFG = OptionsConfig()  # DTE 1–7, 3 % OTM, mid
SPY_DAY = date(2024, 7, 31)
SPY_EXPIRY = date(2024, 8, 1)
GOOG_DAY = date(2015, 12, 23)
TEN_AM = 36_000_000  # ms after midnight: the 10:00 minute bar


def parity_underlying(chain: ChainSnapshot, expiry: date) -> Decimal:
    """Underlying implied by put-call parity at the strike where call and put mids are closest.

    S ≈ K + C − P. With one day to expiry the carry (K·r·t ≈ $0.08 at 5 %) and the early-exercise
    premium are negligible, and no dividend goes ex before expiry.
    """
    mids: dict[tuple[Decimal, str], Decimal] = {}
    for q in chain.quotes:
        if q.expiry == expiry and q.mid is not None:
            mids[(q.strike, q.right)] = q.mid
    pairs = [(k, mids[(k, "C")], mids[(k, "P")]) for k, r in mids if r == "C" and (k, "P") in mids]
    strike, call, put = min(pairs, key=lambda p: abs(p[1] - p[2]))
    return strike + call - put


@pytest.fixture(scope="module")
def spy() -> ChainSnapshot:
    # The quotes were last updated ~16:15 ET, when SPY options stop trading, after the stock's
    # 16:00 close (550.81; Yahoo's inTheMoney flags put it between 550 and 551). Parity prices
    # the underlying at the moment of the quotes: 552 C mid 2.16, 552 P mid 2.66 → 551.50.
    raw = yahoo_chain("SPY", D(0))
    last = parity_underlying(raw, SPY_EXPIRY)
    return ChainSnapshot(raw.symbol, last, raw.as_of, raw.quotes)


def choice(result: ContractChoice | NoContract) -> ContractChoice:
    assert isinstance(result, ContractChoice), result.reason
    return result


def no_trade(result: ContractChoice | NoContract) -> NoContract:
    assert isinstance(result, NoContract), result.reason
    return result


@pytest.mark.shared_data
def test_spy_underlying_from_parity(spy: ChainSnapshot) -> None:
    assert spy.underlying_last == D("551.50")
    assert len(spy.quotes) == 137
    assert {q.expiry for q in spy.quotes} == {SPY_EXPIRY}


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("right", "cap", "strike", "premium"),
    [
        # Calls: 551 and 552 are both 0.50 from 551.50; the tie goes out of the money → 552.
        ("C", "1000", "552", "2.16"),  # 2.14/2.18 → $216 fits $1,000
        # $100: 552 $216, 553 (1.67/1.71) $169, 554 (1.26/1.29 → 1.275 → 1.28) $128,
        # 555 (0.92/0.95 → 0.935 → 0.94) $94 fits.
        ("C", "100", "555", "0.94"),
        ("C", "50", "557", "0.44"),  # 556 (0.64/0.66) $65, 557 (0.43/0.45) $44
        # Puts: the tie goes to 551 (out of the money for a put).
        ("P", "1000", "551", "2.19"),  # 2.17/2.21
        # $100: 551 $219, 550 (1.79/1.80 → 1.795 → 1.80) $180, 549 (1.45/1.46 → 1.46) $146,
        # 548 (1.14/1.16) $115, 547 (0.89/0.90 → 0.895 → 0.90) $90 fits.
        ("P", "100", "547", "0.90"),
    ],
)
def test_spy_selection(
    spy: ChainSnapshot, right: Right, cap: str, strike: str, premium: str
) -> None:
    got = choice(select_contract(spy, right, SPY_DAY, CFG, D(cap)))
    assert got.quote.expiry == SPY_EXPIRY and got.dte == 1
    assert got.quote.strike == D(strike) and got.quote.right == right
    assert got.premium == D(premium)
    assert got.cost == D(premium) * 100 <= D(cap)


@pytest.mark.shared_data
def test_spy_selection_reason_and_ask_rule(spy: ChainSnapshot) -> None:
    got = choice(select_contract(spy, "C", SPY_DAY, CFG, D(100)))
    assert got.reason == (
        "SPY 2024-08-01 555 C (DTE 1): mid 0.94 × 100 = $94.00 within the $100.00 cap; "
        "nearer strikes over the cap: 552 $216.00, 553 $169.00, 554 $128.00"
    )
    # Paying the ask: 552 $218, 553 $171, 554 $129, 555 $95 fits.
    by_ask = choice(select_contract(spy, "C", SPY_DAY, CFG, D(100), price_rule="ask"))
    assert (by_ask.quote.strike, by_ask.premium) == (D(555), D("0.95"))


@pytest.mark.shared_data
def test_spy_nothing_fits_names_cheapest_and_cap(spy: ChainSnapshot) -> None:
    # Calls 552 … 568 (3 % of 551.50 = 16.545): the cheapest priced ones are 0.01/0.02 → 0.015 →
    # 0.02 → $2.00 (564 first); 567 and 568 have bid 0 and cannot be priced.
    got = no_trade(select_contract(spy, "C", SPY_DAY, CFG, D(1)))
    assert got.cheapest_cost == D("2.00")
    assert got.cheapest is not None and got.cheapest.strike == D(564)
    assert got.unpriced == 2
    assert got.reason == (
        "nothing fits the $1.00 cap among SPY 2024-08-01 calls (DTE 1) from the 552 strike "
        "nearest 551.50 out to 3 % (568.04): cheapest is 564 C at $2.00; 2 unpriced quote(s) "
        "(no bid or ask) skipped: no trade"
    )


@pytest.mark.shared_data
def test_spy_no_expiry_in_the_window(spy: ChainSnapshot) -> None:
    later = OptionsConfig(min_days_to_expiry=2, max_days_to_expiry=7)
    got = no_trade(select_contract(spy, "P", SPY_DAY, later, D(100)))
    assert got.reason == (
        "no SPY put expiry with 2 ≤ DTE ≤ 7 on 2024-07-31 (chain has: 2024-08-01 (DTE 1)): no trade"
    )
    expiry_day = no_trade(select_contract(spy, "C", SPY_EXPIRY, CFG, D(100)))
    assert "with 1 ≤ DTE ≤ 7" in expiry_day.reason and "(DTE 0)" in expiry_day.reason


@pytest.fixture(scope="module")
def goog() -> ChainSnapshot:
    return lean_goog_chain(TEN_AM)


@pytest.mark.shared_data
def test_goog_chain_snapshot(goog: ChainSnapshot) -> None:
    # GOOG's 10:00 minute bar closes at 750.29 (7502900 deci-cents); data.md: 750 C 3.10/3.50.
    assert goog.underlying_last == D("750.29")
    assert len(goog.quotes) == 118
    c750 = next(q for q in goog.quotes if q.strike == 750 and q.right == "C")
    assert (c750.bid, c750.ask) == (D("3.1"), D("3.5"))


@pytest.mark.shared_data
@pytest.mark.parametrize(
    ("right", "cap", "strike", "premium", "unpriced"),
    [
        # 750 is 0.29 from 750.29 — nearest, and 0.29 in the money for a call: it is eligible.
        ("C", "1000", "750", "3.30", 0),  # 3.10/3.50 → $330
        # $100 (tick 0.05): 750 $330; 752.5 1.90/2.25 → 2.075 → 2.10 $210; 755 1.00/1.30 → 1.15
        # $115; 757.5 0.45/0.70 → 0.575 → 0.60 $60 fits.
        ("C", "100", "757.5", "0.60", 0),
        # Puts: 750 (0.29 out of the money) 2.85/3.40 → 3.125 → 3.15 $315.
        ("P", "1000", "750", "3.15", 0),
        # $100: 750 $315; 747.5 has no bid (skipped); 745 1.25/1.60 → 1.425 → 1.45 $145;
        # 742.5 0.80/1.10 → 0.95 $95 fits.
        ("P", "100", "742.5", "0.95", 1),
    ],
)
def test_goog_selection(
    goog: ChainSnapshot, right: Right, cap: str, strike: str, premium: str, unpriced: int
) -> None:
    got = choice(select_contract(goog, right, GOOG_DAY, CFG, D(cap)))
    assert got.quote.expiry == date(2015, 12, 24) and got.dte == 1
    assert (got.quote.strike, got.premium) == (D(strike), D(premium))
    assert got.cost == D(premium) * 100
    assert ("unpriced" in got.reason) == bool(unpriced)


@pytest.mark.shared_data
def test_goog_nothing_fits(goog: ChainSnapshot) -> None:
    # Puts 750 … 730 (3 % of 750.29 = 22.51 → ≥ 727.78): priced 750 $315, 745 $145,
    # 742.5 $95, 740 0.50/0.70 → $60; 747.5, 737.5, 735, 732.5, 730 lack a bid or an ask.
    got = no_trade(select_contract(goog, "P", GOOG_DAY, CFG, D(10)))
    assert (got.cheapest_cost, got.unpriced, got.cap) == (D("60.00"), 5, D(10))
    assert got.reason == (
        "nothing fits the $10.00 cap among GOOG 2015-12-24 puts (DTE 1) from the 750 strike "
        "nearest 750.29 out to 3 % (727.78): cheapest is 740 P at $60.00; 5 unpriced quote(s) "
        "(no bid or ask) skipped: no trade"
    )


# --------------------------------------------------------------------------------- synthetic


def chain(spot: str, strikes: range, *, expiry: date = date(2025, 7, 3)) -> ChainSnapshot:
    """A one-expiry chain; every contract 0.50/0.52 so the cap never decides."""
    quotes = tuple(
        OptionQuote(
            contract_id=f"X{k}{r}",
            expiry=expiry,
            strike=D(k),
            right=r,
            bid=D("0.50"),
            ask=D("0.52"),
            volume=500,
        )
        for k in strikes
        for r in ("C", "P")
    )
    return ChainSnapshot("XYZ", D(spot), datetime(2025, 7, 1, 15, tzinfo=UTC), quotes)


@pytest.mark.parametrize(
    ("spot", "call", "put"),
    [
        ("550.40", 550, 550),  # the 550 call is 0.40 ITM but nearest: it is tried first
        ("550.60", 551, 551),  # the 551 put is 0.40 ITM but nearest
        ("550.50", 551, 550),  # exact tie: the out-of-the-money strike
        ("550.00", 550, 550),
    ],
)
def test_nearest_strike_may_be_slightly_in_the_money(spot: str, call: int, put: int) -> None:
    snap = chain(spot, range(540, 561))
    today = date(2025, 7, 1)
    assert choice(select_contract(snap, "C", today, CFG, D(100))).quote.strike == call
    assert choice(select_contract(snap, "P", today, CFG, D(100))).quote.strike == put


def test_deeper_strikes_are_never_tried_and_otm_reach_is_bounded() -> None:
    today = date(2025, 7, 1)
    # Spot 100, 3 % reach → calls 100 … 103. A (bogus) cheap 99 call is in the money beyond the
    # nearest strike and never tried; 104 and 105 are cheap but out of reach.
    premiums = {99: "0.10", 100: "4.00", 101: "3.00", 102: "2.00", 103: "1.00", 104: "0.50"}
    premiums[105] = "0.25"
    quotes = tuple(
        OptionQuote(f"C{k}", date(2025, 7, 3), D(k), "C", D(p), D(p), volume=500)
        for k, p in premiums.items()
    )
    snap = ChainSnapshot("XYZ", D(100), datetime(2025, 7, 1, tzinfo=UTC), quotes)
    assert choice(select_contract(snap, "C", today, CFG, D(100))).quote.strike == 103
    beyond = no_trade(select_contract(snap, "C", today, CFG, D(99)))
    assert beyond.cheapest_cost == D(100)
    assert "from the 100 strike nearest 100 out to 3 % (103.00)" in beyond.reason
    assert "cheapest is 103 C at $100.00" in beyond.reason
    wider = OptionsConfig(max_otm_pct=D(5))
    assert choice(select_contract(snap, "C", today, wider, D(99))).quote.strike == 104


def test_first_expiry_in_window_only_and_unpriced_quotes() -> None:
    today = date(2025, 7, 1)
    near = [
        OptionQuote("n1", date(2025, 7, 1), D(100), "C", D("0.10"), D("0.12")),  # DTE 0
        OptionQuote("n2", date(2025, 7, 2), D(100), "C", D("5.00"), D("5.20")),  # DTE 1, too dear
        OptionQuote("n3", date(2025, 7, 2), D(101), "C", D(0), D("0.30")),  # no bid
        OptionQuote("n4", date(2025, 7, 2), D(102), "C", D("0.40"), D("0.30")),  # crossed
        OptionQuote("n5", date(2025, 7, 8), D(100), "C", D("0.10"), D("0.12")),  # DTE 7, cheap
    ]
    snap = ChainSnapshot("XYZ", D(100), datetime(2025, 7, 1, tzinfo=UTC), tuple(near))
    got = no_trade(select_contract(snap, "C", today, CFG, D(100)))
    assert got.cheapest_cost == D(510) and got.unpriced == 2
    assert "2025-07-02" in got.reason


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("multiplier", 0, "multiplier must be positive"),
        ("strike", D(0), "strike must be positive"),
        ("tick", D(0), "tick must be positive"),
        ("volume", -1, "volume must not be negative"),
    ],
)
def test_quotes_that_would_break_the_cap_check_are_refused(
    field: str, value: object, words: str
) -> None:
    fields: dict[str, object] = {
        "contract_id": "Q",
        "expiry": date(2025, 7, 3),
        "strike": D(100),
        "right": "C",
        "bid": D("1.00"),
        "ask": D("1.10"),
    }
    fields[field] = value
    with pytest.raises(ValueError, match=words):
        OptionQuote(**fields)  # type: ignore[arg-type]


def test_rounding_helpers() -> None:
    assert round_to_tick(D("0.935"), D("0.01")) == D("0.94")
    assert round_to_tick(D("2.075"), D("0.05")) == D("2.10")
    assert round_to_tick(D("2.07"), D("0.05")) == D("2.05")
    q = OptionQuote("q", date(2025, 7, 3), D(100), "C", D("1.00"), D("1.07"), tick=D("0.05"))
    assert entry_premium(q, "mid") == D("1.05")  # 1.035 → 1.05
    assert entry_premium(q, "ask") == D("1.10")  # off-tick ask 1.07: up, to stay marketable
    with pytest.raises(ValueError, match="tick"):
        round_to_tick(D(1), D(0))
