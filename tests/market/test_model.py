"""The market model: prices at a moment, no look-ahead, listed options and their quotes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from tradebot.market import make_market

T0 = datetime(2025, 7, 1, 13, 30, tzinfo=UTC)  # 09:30 New York


def test_last_price_never_looks_ahead() -> None:
    m = make_market(seed=4)
    bars = m.session_bars("SPY", date(2025, 7, 1))
    assert m.last_price("SPY", T0 + timedelta(seconds=30)) == bars["open"].iat[0]
    assert m.last_price("SPY", T0 + timedelta(minutes=1)) == bars["close"].iat[0]
    assert m.last_price("SPY", T0 + timedelta(minutes=2, seconds=59)) == bars["close"].iat[1]
    before_open = m.last_price("SPY", T0 - timedelta(hours=2))
    assert before_open == m.session_bars("SPY", date(2025, 6, 30))["close"].iat[-1]


def test_completed_bars_and_bars_between() -> None:
    m = make_market(seed=4)
    assert len(m.completed_bars("SPY", date(2025, 7, 1), T0 + timedelta(minutes=10))) == 10
    span = m.bars_between("SPY", T0 - timedelta(days=4), T0 + timedelta(minutes=5))
    assert len(span) == 390 + 390 + 5  # 06-27 (Fri) and 06-30 (Mon) plus 5 minutes today
    assert span.index.is_monotonic_increasing


def test_weekly_expiries_are_sessions() -> None:
    m = make_market()
    assert m.expiries(date(2025, 7, 1))[:2] == [date(2025, 7, 3), date(2025, 7, 11)]
    assert m.expiries(date(2025, 4, 14))[0] == date(2025, 4, 17)  # Good Friday → Thursday
    assert m.expiries(date(2025, 7, 11))[0] == date(2025, 7, 11)  # expiry day: DTE 0
    assert m.expiries(date(2025, 7, 1), "AAPL")[:2] == [date(2025, 7, 3), date(2025, 7, 11)]


def test_index_etfs_list_an_expiry_every_session() -> None:
    m = make_market()
    assert m.expiries(date(2025, 7, 2), "SPY")[:3] == [
        date(2025, 7, 2),
        date(2025, 7, 3),
        date(2025, 7, 7),  # the July 4 holiday and the weekend have none
    ]
    assert m.chain("QQQ", date(2025, 7, 3)).expiries[:2] == (date(2025, 7, 3), date(2025, 7, 7))


def test_listed_options_are_qualified_and_unlisted_ones_are_not() -> None:
    m = make_market(seed=4)
    day = date(2025, 7, 1)
    strike = m.strikes("SPY", day)[100]
    opt = m.option("SPY", date(2025, 7, 3), strike, "C", day)
    assert opt is not None and opt.con_id > 0 and opt.tick == Decimal("0.01")
    assert opt.local_symbol.startswith("SPY   250703C")
    assert m.option("AAPL", date(2025, 7, 2), strike, "C", day) is None  # not an expiry
    assert m.option("SPY", date(2025, 7, 3), strike + Decimal("0.5"), "C", day) is None
    aapl = m.option("AAPL", date(2025, 7, 3), m.strikes("AAPL", day)[60], "P", day)
    # AAPL is in the penny program: IB's minTick 0.01, nickels from $3 (its market rule).
    assert aapl is not None and aapl.tick == Decimal("0.01")
    assert aapl.grid.increment(Decimal("3.40")) == Decimal("0.05")
    assert aapl.grid.increment(Decimal("2.99")) == Decimal("0.01")


def test_option_quotes_live_delayed_and_expired() -> None:
    m = make_market(seed=4)
    day = date(2025, 7, 1)
    spot = m.last_price("SPY", T0 + timedelta(hours=2))
    assert spot is not None
    strike = min(m.strikes("SPY", day), key=lambda k: abs(float(k) - spot * 1.01))
    opt = m.option("SPY", date(2025, 7, 3), strike, "C", day)
    assert opt is not None
    t = T0 + timedelta(hours=2)
    live = m.option_quote(opt, t)
    assert live is not None and live.data_type == "live" and live.time == t
    assert 0 < live.bid < live.ask and live.volume > 100
    delayed = m.option_quote(opt, t, "delayed")
    assert delayed is not None and delayed.data_type == "delayed"
    assert delayed.time == t - timedelta(minutes=15)
    after_expiry = datetime(2025, 7, 3, 17, 1, tzinfo=UTC)  # 13:01 New York, early close
    assert m.option_quote(opt, after_expiry) is None
    assert m.intrinsic(opt, after_expiry) >= 0
