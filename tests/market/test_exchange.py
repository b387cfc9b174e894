"""The simulated venue: IB's bracket semantics, fills that cross the spread, expiry, persistence."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from tradebot.core.instruments import OptionContract
from tradebot.market import make_market
from tradebot.market.exchange import ErrorEvent, FillEvent, SimExchange, SimOrder
from tradebot.market.model import MarketModel
from tradebot.storage.records import dumps_record, loads_record

OPEN = datetime(2025, 7, 1, 13, 30, tzinfo=UTC)
EXPIRY = date(2025, 7, 3)


def _setup(seed: int = 4) -> tuple[MarketModel, SimExchange, OptionContract, datetime]:
    market = make_market(seed=seed)
    now = OPEN + timedelta(minutes=30)
    spot = market.last_price("SPY", now)
    assert spot is not None
    strike = min(market.strikes("SPY", now.date()), key=lambda k: abs(float(k) - spot * 1.005))
    contract = market.option("SPY", EXPIRY, strike, "C", now.date())
    assert contract is not None
    ex = SimExchange(market, cash=Decimal(10000))
    ex.advance(now)
    return market, ex, contract, now


def _bracket(
    ex: SimExchange, contract: OptionContract, now: datetime, entry: Decimal, qty: int = 1
) -> tuple[SimOrder, SimOrder, SimOrder]:
    parent = SimOrder(1, contract, "BUY", qty, "LMT", limit=entry, order_ref="E")
    tp = SimOrder(2, contract, "SELL", qty, "LMT", limit=entry * 2, order_ref="TP", parent_id=1)
    tp.tif = "GTC"
    stop = (entry / 2).quantize(contract.tick)
    sl = SimOrder(3, contract, "SELL", qty, "STP", stop=stop, order_ref="SL", parent_id=1)
    sl.tif = "GTC"
    for order in (parent, tp, sl):
        ex.submit(order, now)
    return parent, tp, sl


def test_marketable_buy_fills_at_the_ask_and_pays_commission() -> None:
    _, ex, contract, now = _setup()
    q = ex.quote(contract, now)
    assert q is not None
    events = ex.submit(SimOrder(1, contract, "BUY", 2, "LMT", limit=q.ask + 1), now)
    fills = [e.fill for e in events if isinstance(e, FillEvent)]
    assert len(fills) == 1 and fills[0].price == q.ask and fills[0].commission == Decimal("1.30")
    assert ex.cash == Decimal(10000) - q.ask * 200 - Decimal("1.30")
    assert ex.positions[contract.con_id].qty == 2


def test_bracket_children_wait_then_one_fill_cancels_the_other() -> None:
    _, ex, contract, now = _setup()
    q = ex.quote(contract, now)
    assert q is not None
    parent, tp, sl = _bracket(ex, contract, now, q.ask)  # marketable: fills on arrival
    assert parent.status == "Filled"
    assert tp.status == "Submitted" and sl.status == "Submitted"
    ex.advance(datetime(2025, 7, 3, 17, 0, tzinfo=UTC))  # through the expiry close
    finished = {o.order_ref: o.status for o in (tp, sl)}
    assert sorted(finished.values()) in (["Cancelled", "Filled"], ["Cancelled", "Cancelled"])
    assert contract.con_id not in ex.positions  # sold by a leg or settled at expiry


def test_children_of_an_unfilled_parent_are_presubmitted_and_cancelled_with_it() -> None:
    _, ex, contract, now = _setup()
    q = ex.quote(contract, now)
    assert q is not None
    low = (q.bid / 4).quantize(contract.tick)
    parent, tp, sl = _bracket(ex, contract, now, low)
    assert parent.status == "Submitted" and tp.status == sl.status == "PreSubmitted"
    events = ex.cancel(1, now + timedelta(minutes=1))
    assert parent.status == tp.status == sl.status == "Cancelled"
    assert any(isinstance(e, ErrorEvent) and e.code == 202 for e in events)
    again = ex.cancel(1, now + timedelta(minutes=2))
    assert [e.code for e in again if isinstance(e, ErrorEvent)] == [161]


def test_cancel_of_a_filled_order_is_error_10148() -> None:
    _, ex, contract, now = _setup()
    q = ex.quote(contract, now)
    assert q is not None
    ex.submit(SimOrder(1, contract, "BUY", 1, "LMT", limit=q.ask), now)
    codes = [e.code for e in ex.cancel(1, now) if isinstance(e, ErrorEvent)]
    assert codes == [10148]


def test_a_sell_never_takes_the_position_short() -> None:
    _, ex, contract, now = _setup()
    q = ex.quote(contract, now)
    assert q is not None
    order = SimOrder(1, contract, "SELL", 1, "MKT")
    ex.submit(order, now)
    assert order.status == "Cancelled" and "exceed the position" in order.reason
    assert not ex.positions


def test_day_orders_expire_at_the_close_and_options_settle_at_intrinsic() -> None:
    market, ex, contract, now = _setup()
    q = ex.quote(contract, now)
    assert q is not None
    resting = SimOrder(1, contract, "BUY", 1, "LMT", limit=contract.tick)
    ex.submit(resting, now)
    ex.submit(SimOrder(2, contract, "BUY", 1, "LMT", limit=q.ask), now)
    ex.advance(datetime(2025, 7, 1, 21, 0, tzinfo=UTC))
    assert resting.status == "Cancelled" and "DAY" in resting.reason
    close = datetime(2025, 7, 3, 17, 0, tzinfo=UTC)  # 13:00 New York early close
    ex.advance(close + timedelta(hours=1))
    expiry = [f for f in ex.fills if f.kind == "expiry"]
    assert len(expiry) == 1 and expiry[0].time == close
    assert expiry[0].price == market.intrinsic(contract, close)
    assert not ex.positions


def test_fills_do_not_depend_on_how_often_time_is_advanced() -> None:
    runs = []
    for step in (timedelta(seconds=7), timedelta(minutes=3), timedelta(hours=30)):
        _, ex, contract, now = _setup(seed=9)
        q = ex.quote(contract, now)
        assert q is not None
        _bracket(ex, contract, now, q.ask - contract.tick)  # rests one tick under the ask
        end = now + timedelta(hours=30)
        t = now
        while t < end:
            t = min(end, t + step)
            ex.advance(t)
        runs.append([(f.order_ref, f.price, f.time) for f in ex.fills])
    assert runs[0] == runs[1] == runs[2]
    assert runs[0]  # something filled


def test_state_round_trips_through_json() -> None:
    market, ex, contract, now = _setup()
    q = ex.quote(contract, now)
    assert q is not None
    _bracket(ex, contract, now, q.ask)
    text = dumps_record(ex.to_state())
    copy = SimExchange(market, cash=Decimal(0))
    copy.load_state(loads_record(text))
    assert dumps_record(copy.to_state()) == text
    assert json.loads(text)["positions"][0]["qty"] == 1
    later = now + timedelta(hours=3)
    assert [f.fill.exec_id for f in copy.advance(later) if isinstance(f, FillEvent)] == [
        f.fill.exec_id for f in ex.advance(later) if isinstance(f, FillEvent)
    ]


@pytest.mark.parametrize(
    ("order", "code"),
    [
        ({"qty": 0, "order_type": "MKT"}, 201),
        ({"qty": 1, "order_type": "LMT", "limit": Decimal("1.005")}, 110),
        ({"qty": 1, "order_type": "LMT"}, 201),
        ({"qty": 1, "order_type": "LMT", "limit": Decimal("1.00"), "parent_id": 99}, 201),
    ],
)
def test_bad_orders_are_rejected_with_ibs_codes(order: dict[str, object], code: int) -> None:
    _, ex, contract, now = _setup()
    sim = SimOrder(1, contract, "BUY", **order)  # type: ignore[arg-type]
    events = ex.submit(sim, now)
    assert [e.code for e in events if isinstance(e, ErrorEvent)] == [code]
    assert not sim.working


def test_refuse_brackets_fault_rejects_attached_orders() -> None:
    _, ex, contract, now = _setup()
    ex.refuse_brackets = True
    q = ex.quote(contract, now)
    assert q is not None
    ex.submit(SimOrder(1, contract, "BUY", 1, "LMT", limit=q.bid), now)
    child = SimOrder(2, contract, "SELL", 1, "LMT", limit=q.ask * 2, parent_id=1)
    events = ex.submit(child, now)
    assert [e.code for e in events if isinstance(e, ErrorEvent)] == [201]


# -- fault injection used by the gateway simulator ----------------------------------------------
def test_reject_refuses_any_order_with_201_and_the_reason() -> None:
    _, ex, contract, now = _setup()
    order = SimOrder(1, contract, "BUY", 1, "LMT", limit=contract.tick)
    events = ex.submit(order, now, reject="insufficient margin")
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert [(e.code, e.message) for e in errors] == [
        (201, "Order rejected - reason: insufficient margin")
    ]
    assert order.status == "Cancelled" and order.perm_id > 0 and not ex.working_orders()


def test_force_fill_fills_a_resting_limit_at_its_limit_and_releases_children() -> None:
    _, ex, contract, now = _setup()
    q = ex.quote(contract, now)
    assert q is not None
    low = (q.bid / 2).quantize(contract.tick)
    parent, tp, sl = _bracket(ex, contract, now, low)
    assert tp.status == "PreSubmitted"
    assert ex.force_fill(tp.order_id, now) == []  # a child waits for its parent
    events = ex.force_fill(parent.order_id, now)
    fills = [e.fill for e in events if isinstance(e, FillEvent)]
    assert [(f.order_ref, f.price) for f in fills] == [("E", low)]
    assert parent.status == "Filled" and tp.status == sl.status == "Submitted"
    assert ex.force_fill(parent.order_id, now) == []  # not working any more


def test_force_fill_of_a_stop_takes_the_worse_of_touch_and_stop() -> None:
    _, ex, contract, now = _setup()
    q = ex.quote(contract, now)
    assert q is not None
    ex.submit(SimOrder(1, contract, "BUY", 1, "LMT", limit=q.ask), now)
    high_stop = q.bid + 10 * contract.tick  # above the bid: a sell stop would fill at the bid
    stop = SimOrder(2, contract, "SELL", 1, "STP", stop=high_stop)
    ex.submit(stop, now)
    assert stop.status == "Filled"  # already through its stop on arrival
    ex.submit(SimOrder(3, contract, "BUY", 1, "LMT", limit=q.ask), now)
    low_stop = (q.bid / 2).quantize(contract.tick)
    resting = SimOrder(4, contract, "SELL", 1, "STP", stop=low_stop)
    ex.submit(resting, now)
    assert resting.status == "Submitted"
    [fill] = [e.fill for e in ex.force_fill(4, now) if isinstance(e, FillEvent)]
    assert fill.price == low_stop
