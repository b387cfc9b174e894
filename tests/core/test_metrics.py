"""Metrics against hand-computed numbers, and invariants with hypothesis."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.factories import trade
from tradebot.core.metrics import (
    INFINITY,
    TradeSeries,
    chronological,
    equity_curve,
    filter_trades,
    group_by,
    losing_streak,
    rolling_win_rate_low,
    summarize,
    trade_order,
)
from tradebot.core.trades import ClosedTrade

D = Decimal
BASE = D(10000)


def _at(day: int, minute: int) -> datetime:
    return datetime(2025, 7, day, 14, 0, tzinfo=UTC) + timedelta(minutes=minute)


def test_hand_computed_example() -> None:
    # risk per trade = 1.00 × 1 × 100 × 50 % = $50, so R = pnl / 50
    trades = [
        trade(100, exit_time=_at(1, 0)),
        trade(-50, exit_time=_at(1, 10)),
        trade(200, exit_time=_at(2, 0)),
        trade(-50, exit_time=_at(3, 0)),
        trade(50, exit_time=_at(3, 10)),
    ]
    s = summarize(trades, BASE)
    assert (s.trades, s.wins, s.losses) == (5, 3, 2)
    assert s.win_rate == D("0.6")
    assert s.avg_win == D(350) / 3
    assert s.avg_loss == D(-50)
    assert s.avg_rr is not None
    assert s.avg_rr.quantize(D("1e-20")) == (D(350) / 150).quantize(D("1e-20"))  # 2.333…
    assert s.expectancy_r == D(1)  # mean of 2, -1, 4, -1, 1
    assert s.profit_factor == D("3.5")
    assert s.total_pnl == D(250)
    # equity 10100, 10050, 10250, 10200, 10250: worst drop 50 from the 10100 peak
    assert s.max_drawdown_usd == D(50)
    assert s.max_drawdown_pct is not None
    assert s.max_drawdown_pct.quantize(D("1e-20")) == (D(5000) / D(10100)).quantize(D("1e-20"))
    assert (s.best_pnl, s.worst_pnl) == (D(200), D(-50))
    # sessions: 07-01 +50, 07-02 +200, 07-03 0 (not profitable, not losing)
    assert (s.sessions, s.profitable_sessions, s.losing_sessions) == (3, 2, 0)
    assert s.consecutive_losses == 0


def test_no_losers_gives_infinite_rr_and_profit_factor() -> None:
    s = summarize([trade(10), trade(20)], BASE)
    assert s.win_rate == 1
    assert s.avg_rr == INFINITY
    assert s.profit_factor == INFINITY
    assert s.avg_loss is None
    assert s.max_drawdown_usd == 0


def test_no_winners_gives_zero_rr() -> None:
    s = summarize([trade(-10, exit_time=_at(1, 0)), trade(0, exit_time=_at(1, 5))], BASE)
    assert s.win_rate == 0
    assert s.avg_rr == 0
    assert s.profit_factor == 0
    assert s.losses == 2  # break-even counts as a loss
    assert s.consecutive_losses == 2
    assert s.avg_win is None


def test_empty() -> None:
    s = summarize([], BASE)
    assert s.trades == 0
    assert s.win_rate is None and s.avg_rr is None and s.expectancy_r is None
    assert s.total_pnl == 0 and s.best_pnl is None
    assert s.as_record()["win_rate"] is None


def test_trailing_loss_run() -> None:
    trades = [trade(p, exit_time=_at(1, i)) for i, p in enumerate([-5, 10, -5, -5, -1])]
    assert summarize(trades, BASE).consecutive_losses == 3


def test_session_is_exchange_date_of_exit() -> None:
    # 23:30 UTC on 07-01 is 19:30 in New York: still the 07-01 session, not 07-02.
    late = trade(10, exit_time=datetime(2025, 7, 1, 23, 30, tzinfo=UTC))
    early = trade(10, exit_time=datetime(2025, 7, 1, 14, 0, tzinfo=UTC))
    assert late.session == date(2025, 7, 1)
    assert summarize([late, early], BASE).sessions == 1


def test_as_record_is_json_ready() -> None:
    rec = summarize([trade(100), trade(-50)], BASE).as_record()
    assert rec["win_rate"] == "0.5000"
    assert rec["avg_rr"] == "2.0000"
    assert rec["total_pnl"] == "50.00"
    assert summarize([trade(1)], BASE).as_record()["avg_rr"] == "Infinity"


def test_groups_filters_and_curve() -> None:
    trades = [
        trade(10, symbol="SPY", strategy="scalp", session=date(2025, 7, 1)),
        trade(-5, symbol="QQQ", strategy="whale", session=date(2025, 7, 2), mode="live"),
        trade(7, symbol="SPY", strategy="whale", session=date(2025, 7, 3)),
    ]
    assert list(group_by(trades, lambda t: t.symbol)) == ["QQQ", "SPY"]
    assert len(filter_trades(trades, symbol="spy")) == 2
    assert len(filter_trades(trades, strategy="whale", mode="paper")) == 1
    assert len(filter_trades(trades, since=date(2025, 7, 2), until=date(2025, 7, 2))) == 1
    assert [e for _, e in equity_curve(trades, BASE)] == [D(10010), D(10005), D(10012)]


pnls = st.lists(
    st.decimals(min_value=-95, max_value=500, places=2, allow_nan=False, allow_infinity=False),
    min_size=0,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(pnls, st.randoms(use_true_random=False))
def test_invariants(values: list[Decimal], rnd) -> None:  # type: ignore[no-untyped-def]
    trades = [trade(v, exit_time=_at(1 + i % 5, i)) for i, v in enumerate(values)]
    s = summarize(trades, BASE)
    if trades:
        assert s.win_rate is not None and 0 <= s.win_rate <= 1
    assert s.wins + s.losses == s.trades == len(values)
    assert s.total_pnl == sum(values, D(0))
    assert s.max_drawdown_usd >= 0 and s.max_drawdown_pct >= 0
    assert s.profitable_sessions + s.losing_sessions <= s.sessions
    shuffled = list(trades)
    rnd.shuffle(shuffled)
    assert summarize(shuffled, BASE) == s  # line order never changes a number


def _naive_drawdowns(values: list[Decimal]) -> tuple[Decimal, Decimal]:
    equity = peak = BASE
    worst_usd = worst_pct = D(0)
    for v in values:
        equity += v
        peak = max(peak, equity)
        worst_usd = max(worst_usd, peak - equity)
        worst_pct = max(worst_pct, (peak - equity) / peak * 100)
    return worst_usd, worst_pct


@settings(max_examples=200, deadline=None)
@given(st.lists(st.decimals(min_value=-95, max_value=300, places=2), max_size=60))
def test_drawdown_matches_naive_reference(values: list[Decimal]) -> None:
    trades = [trade(v, exit_time=_at(1, i)) for i, v in enumerate(values)]
    s = summarize(trades, BASE)
    usd, pct = _naive_drawdowns(values)
    assert s.max_drawdown_usd == usd
    assert s.max_drawdown_pct is not None
    assert s.max_drawdown_pct.quantize(D("1e-20")) == pct.quantize(D("1e-20"))
    assert s.profitable_sessions + s.losing_sessions <= 1


def test_more_than_six_decimal_places_is_rejected() -> None:
    import pytest
    from pydantic import ValidationError

    good = trade(10).model_dump()
    good["pnl"] = "10.0000001"
    with pytest.raises(ValidationError, match="6 decimal places"):
        type(trade(1)).model_validate(good)
    good["pnl"] = "10.0000000"  # trailing zeros are fine
    assert type(trade(1)).model_validate(good).pnl == D("10")


def test_avg_rr_exactly_at_a_threshold_is_exact() -> None:
    """21 winners totalling $49 and 9 losers totalling -$14: R:R is exactly 1.5, not 1.4999…"""
    wins = [D("2.33")] * 20 + [D("2.40")]
    losses = [D("-1.56")] * 8 + [D("-1.52")]
    assert sum(wins) == 49 and sum(losses) == -14
    s = summarize([trade(p, exit_time=_at(1, i)) for i, p in enumerate(wins + losses)], BASE)
    assert s.avg_rr == D("1.5")


def test_unknown_base_equity_leaves_drawdown_percent_unknown() -> None:
    s = summarize([trade(100, exit_time=_at(1, 0)), trade(-50, exit_time=_at(1, 5))], None)
    assert s.max_drawdown_usd == 50
    assert s.max_drawdown_pct is None
    assert s.as_record()["max_drawdown_pct"] is None


def test_an_extended_series_equals_one_built_whole() -> None:
    """Issue 19: a trade closing extends the series (and the windows already taken) instead of
    rebuilding it from every trade; the result is the series built whole."""
    from datetime import timedelta

    from tradebot.core.metrics import TradeSeries

    trades = []
    for i, pnl in enumerate([10, -5, 7, -3, 12, -8, 4]):
        t = trade(Decimal(pnl))
        t = t.model_copy(update={
            "trade_id": f"T{i}",
            "exit_time": t.exit_time + timedelta(minutes=i),
            "mode": "paper" if i % 3 else "live",
        })  # fmt: skip
        trades.append(t)
    series = TradeSeries.of(trades[:4])
    series.window(["paper"], None)
    series.window(["paper", "live"], None)
    grown = series.extended(trades[4:])
    whole = TradeSeries.of(trades)
    for modes in (["paper"], ["paper", "live"], ["live"]):
        a, b = grown.window(modes, None), whole.window(modes, None)
        assert (a.pnl, a.mode, a.session, a.r, a.entry_us) == (
            b.pnl,
            b.mode,
            b.session,
            b.r,
            b.entry_us,
        )
        assert summarize(a, None) == summarize(b, None)
    assert grown.pnl == whole.pnl and series.extended([]) is series
    late = trades[2].model_copy(update={"trade_id": "T9"})  # exits before the last: sorted whole
    assert series.extended([late]).pnl == TradeSeries.of([*trades[:4], late]).pnl


# -- one order for simultaneous exits (issue 23) ---------------------------------------------
def _same_second(*pnls: int, at: datetime, ids: tuple[str, ...]) -> list[ClosedTrade]:
    return [trade(p, exit_time=at, trade_id=i) for p, i in zip(pnls, ids, strict=True)]


def test_canonical_order_puts_losers_before_winners_at_the_same_exit_time() -> None:
    """At 19:50:00 a QQQ loss and a SPY win (the audit's case): whatever the ids or the
    journal's line order, the loss is listed first; otherwise exit time, then trade id."""
    at = _at(1, 30)
    win = trade(23, exit_time=at, trade_id="A-win")  # its id sorts first
    loss = trade(-31, exit_time=at, trade_id="Z-loss")
    earlier = trade(5, exit_time=_at(1, 0), trade_id="ZZ")
    flat = trade(0, exit_time=at, trade_id="M-flat")  # break-even is a loss
    for lines in ([win, loss, earlier, flat], [flat, earlier, loss, win]):
        assert [t.trade_id for t in chronological(lines)] == ["ZZ", "M-flat", "Z-loss", "A-win"]
        assert sorted(lines, key=trade_order) == chronological(lines)
        assert [e for _, e in equity_curve(lines, BASE)] == [
            D(10005), D(10005), D(9974), D(9997)
        ]  # fmt: skip


def test_a_simultaneous_win_never_hides_the_run_before_it() -> None:
    """L, L, then {L, W} in the same second: three losses in a row in one of the two possible
    orders, so the streak reaches three (the win, journaled first, hid it before)."""
    trades = [
        trade(-10, exit_time=_at(1, 0), trade_id="L1"),
        trade(-10, exit_time=_at(1, 5), trade_id="L2"),
        *_same_second(23, -31, at=_at(1, 9), ids=("A-win", "B-loss")),
    ]
    series = TradeSeries.of(trades)
    assert losing_streak(series, 3) == [0, 1, 2]
    assert [series.trades[i].trade_id for i in losing_streak(series, 3) or []] == [
        "L1", "L2", "B-loss"
    ]  # fmt: skip
    assert summarize(series, BASE).consecutive_losses == 1  # the tied loss may be the last


def test_a_simultaneous_win_never_hides_the_run_after_it() -> None:
    """{W, L} in one second then L, L: the tied loss can be the first of three."""
    trades = [
        *_same_second(23, -31, at=_at(1, 0), ids=("A-win", "B-loss")),
        trade(-10, exit_time=_at(1, 5), trade_id="L2"),
        trade(-10, exit_time=_at(1, 9), trade_id="L3"),
    ]
    series = TradeSeries.of(trades)
    found = losing_streak(series, 3)
    assert found is not None
    assert [series.trades[i].trade_id for i in found] == ["B-loss", "L2", "L3"]
    assert summarize(series, BASE).consecutive_losses == 3


def test_a_win_in_between_breaks_the_run() -> None:
    trades = [
        trade(-10, exit_time=_at(1, 0)),
        trade(-10, exit_time=_at(1, 1)),
        trade(10, exit_time=_at(1, 2)),
        trade(-10, exit_time=_at(1, 3)),
        trade(-10, exit_time=_at(1, 4)),
    ]
    series = TradeSeries.of(trades)
    assert losing_streak(series, 3) is None
    assert losing_streak(series, 2) == [0, 1]  # the first run that reached two
    assert summarize(series, BASE).consecutive_losses == 2


def test_rolling_win_rate_is_judged_after_every_trade() -> None:
    """3 of the last 4 won, then a loss (2 of 4) and a win (3 of 4 again) in the same second:
    the dip is found at the loss, listed before the win."""
    trades = [trade(p, exit_time=_at(1, i)) for i, p in enumerate([10, -5, 10, 10])]
    trades += _same_second(-5, 10, at=_at(1, 30), ids=("Z-loss", "A-win"))
    series = TradeSeries.of(trades)
    assert [series.trades[i].trade_id for i in (4, 5)] == ["Z-loss", "A-win"]
    assert rolling_win_rate_low(series, 4, D("0.55")) == (4, 2)  # at Z-loss: 2 wins of 4
    now = sum(1 for p in series.pnl[-4:] if p > 0)
    assert now == 3  # as the trades stand now, the rate is back above 55 %
    assert rolling_win_rate_low(series, 4, D("0.50")) is None  # 2 of 4 is not below 50 %
    assert rolling_win_rate_low(series, 7, D("0.55")) is None  # fewer trades than the window


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 3), st.sampled_from([-20, 0, 20])), min_size=1, max_size=12),
    st.integers(1, 4),
)
def test_the_streak_is_the_worst_over_every_order_of_simultaneous_exits(
    steps: list[tuple[int, int]], limit: int
) -> None:
    """Invariant: a run reaches `limit` exactly when it does in some order of the trades that
    exited at the same moment (brute force over each group's orders)."""
    import itertools

    moment = _at(1, 0)
    trades = []
    for n, (gap, pnl) in enumerate(steps):
        moment += timedelta(seconds=gap)
        trades.append(trade(pnl, exit_time=moment, trade_id=f"T{n:03d}"))
    groups = [list(g) for _, g in itertools.groupby(chronological(trades), lambda t: t.exit_time)]

    def longest(order: list[ClosedTrade]) -> int:
        best = run = 0
        for t in order:
            run = run + 1 if t.pnl <= 0 else 0
            best = max(best, run)
        return best

    # Within a group only the pattern of losses and wins matters: try each group's losses
    # first and last (the extremes), which is every case a run can use.
    def arrangements(group: list[ClosedTrade]) -> list[list[ClosedTrade]]:
        losses = [t for t in group if t.pnl <= 0]
        wins = [t for t in group if t.pnl > 0]
        return [losses + wins, wins + losses] if losses and wins else [group]

    worst = max(
        longest([t for g in choice for t in g])
        for choice in itertools.product(*(arrangements(g) for g in groups))
    )
    found = losing_streak(TradeSeries.of(trades), limit)
    assert (found is not None) == (worst >= limit)
    if found is not None:
        assert len(found) == limit
