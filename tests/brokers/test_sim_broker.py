"""The simulated broker over the shared venue: brackets, rejections, fills, and its account
surviving a restart (fills that happened while it was away included)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import Coroutine
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tradebot.brokers.base import (
    BracketRefused,
    BracketSpec,
    BrokerOrder,
    OrderRejected,
    OrderSpec,
)
from tradebot.brokers.sim import STATE_FILE, SimBroker
from tradebot.core.instruments import DataType, OptionContract, Quote
from tradebot.errors import UsageError
from tradebot.market import make_market
from tradebot.market.model import MarketModel

T0 = datetime(2025, 7, 1, 14, 0, tzinfo=UTC)  # 10:00 New York, a regular session
EXPIRY = date(2025, 7, 3)  # the first weekly expiry (a 13:00 early close)
AFTER_EXPIRY = datetime(2025, 7, 3, 18, 0, tzinfo=UTC)
CASH = Decimal(10000)
SEED = 4


class Now:
    """A clock the test moves by hand."""

    def __init__(self, t: datetime) -> None:
        self.t = t

    def __call__(self) -> datetime:
        return self.t


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


@pytest.fixture(scope="module")
def market() -> MarketModel:
    return make_market(seed=SEED)


@pytest.fixture(scope="module")
def contract(market: MarketModel) -> OptionContract:
    spot = market.last_price("SPY", T0)
    assert spot is not None
    strike = min(market.strikes("SPY", T0.date()), key=lambda k: abs(float(k) - spot))
    listed = market.option("SPY", EXPIRY, strike, "C", T0.date())
    assert listed is not None
    return listed


def _broker(
    market: MarketModel,
    state_dir: Path,
    now: Now,
    *,
    cash: Decimal = CASH,
    connect: bool = True,
    **options: Any,
) -> SimBroker:
    broker = SimBroker(market, now, state_dir, starting_cash=cash, **options)
    if connect:
        _run(broker.connect())
    return broker


def _quote(broker: SimBroker, contract: OptionContract) -> Quote:
    [q] = _run(broker.quotes([contract]))
    assert q is not None
    return q


def _spec(
    contract: OptionContract,
    ref: str,
    action: str = "BUY",
    *,
    qty: int = 1,
    order_type: str = "LMT",
    limit: Decimal | None = None,
    stop: Decimal | None = None,
    tif: str = "DAY",
) -> OrderSpec:
    return OrderSpec(ref, contract, action, qty, order_type, tif, limit, stop)  # type: ignore[arg-type]


def _bracket(contract: OptionContract, entry: Decimal, *, qty: int = 1) -> BracketSpec:
    return BracketSpec(
        entry=_spec(contract, "E", limit=entry, qty=qty),
        take_profit=_spec(contract, "TP", "SELL", limit=entry * 2, qty=qty, tif="GTC"),
        stop_loss=_spec(
            contract,
            "SL",
            "SELL",
            order_type="STP",
            stop=(entry / 2).quantize(contract.tick),
            qty=qty,
            tif="GTC",
        ),
    )


def _state(state_dir: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((state_dir / "sim-broker.json").read_text())
    return data


def _by_ref(orders: list[BrokerOrder]) -> dict[str, BrokerOrder]:
    return {o.order_ref: o for o in orders}


# -- a new account -------------------------------------------------------------------------------


def test_a_new_account_starts_with_the_starting_cash(market: MarketModel, tmp_path: Path) -> None:
    broker = _broker(market, tmp_path, Now(T0))
    assert broker.is_connected()
    account = _run(broker.account())
    assert account.cash == CASH and account.net_liquidation == Decimal("10000.00")
    assert account.time == T0
    assert _run(broker.positions()) == []
    assert _run(broker.orders()) == []
    assert _run(broker.executions(T0 - timedelta(days=30))) == []
    state = _state(tmp_path)
    assert Decimal(state["cash"]) == CASH and state["orders"] == [] and state["positions"] == []


# -- brackets ------------------------------------------------------------------------------------


def test_a_bracket_is_three_orders_linked_by_parent_id(
    market: MarketModel, contract: OptionContract, tmp_path: Path
) -> None:
    broker = _broker(market, tmp_path, Now(T0))
    low = (_quote(broker, contract).bid / 4).quantize(contract.tick)  # rests, does not fill
    placed = _run(broker.place_bracket(_bracket(contract, low)))
    assert [p.order_ref for p in placed] == ["E", "TP", "SL"]
    assert [p.status for p in placed] == ["submitted", "presubmitted", "presubmitted"]
    entry_id = placed[0].order_id
    assert [p.order_id for p in placed] == [entry_id, entry_id + 1, entry_id + 2]
    assert len({p.perm_id for p in placed}) == 3
    orders = _by_ref(_run(broker.orders()))
    assert orders["E"].parent_id == 0
    assert orders["TP"].parent_id == orders["SL"].parent_id == entry_id
    assert (orders["TP"].limit, orders["SL"].stop) == (low * 2, (low / 2).quantize(contract.tick))
    assert (orders["TP"].tif, orders["SL"].order_type) == ("GTC", "STP")
    assert _run(broker.account()).cash == CASH  # nothing filled
    assert len(_state(tmp_path)["orders"]) == 3  # persisted at once


def test_a_marketable_entry_fills_at_the_ask_and_releases_its_legs(
    market: MarketModel, contract: OptionContract, tmp_path: Path
) -> None:
    broker = _broker(market, tmp_path, Now(T0))
    ask = _quote(broker, contract).ask
    placed = _run(broker.place_bracket(_bracket(contract, ask, qty=2)))
    assert [p.status for p in placed] == ["filled", "submitted", "submitted"]
    [fill] = _run(broker.executions(T0))
    assert (fill.order_ref, fill.side, fill.qty, fill.price) == ("E", "BOT", 2, ask)
    assert fill.commission == Decimal("1.30") and fill.kind == "trade" and fill.time == T0
    [position] = _run(broker.positions())
    assert (position.contract, position.qty, position.avg_cost) == (contract, 2, ask)
    assert _run(broker.account()).cash == CASH - ask * 200 - Decimal("1.30")


def _off_tick(price: Decimal) -> Decimal:
    return price + Decimal("0.005")


_BAD_LEGS = {
    "entry limit off the tick": (lambda b, c: {"entry": _off(b.entry, limit=_off_tick)}, 110),
    "take-profit limit off the tick": (
        lambda b, c: {"take_profit": _off(b.take_profit, limit=_off_tick)},
        110,
    ),
    "stop without a stop price": (
        lambda b, c: {"stop_loss": dataclasses.replace(b.stop_loss, stop=None)},
        201,
    ),
    "stop with no quantity": (
        lambda b, c: {"stop_loss": dataclasses.replace(b.stop_loss, qty=0)},
        201,
    ),
    "take-profit on an unknown contract": (
        lambda b, c: {
            "take_profit": dataclasses.replace(
                b.take_profit, contract=dataclasses.replace(c, con_id=0)
            )
        },
        200,
    ),
}


def _off(spec: OrderSpec, *, limit: Any) -> OrderSpec:
    assert spec.limit is not None
    return dataclasses.replace(spec, limit=limit(spec.limit))


@pytest.mark.parametrize("marketable", [False, True], ids=["resting", "marketable"])
@pytest.mark.parametrize("bad", list(_BAD_LEGS))
def test_an_invalid_leg_refuses_the_whole_bracket_and_places_nothing(
    market: MarketModel,
    contract: OptionContract,
    tmp_path: Path,
    bad: str,
    marketable: bool,
) -> None:
    broker = _broker(market, tmp_path, Now(T0))
    q = _quote(broker, contract)
    good = _bracket(contract, q.ask if marketable else (q.bid / 4).quantize(contract.tick))
    change, code = _BAD_LEGS[bad]
    broken = dataclasses.replace(good, **change(good, contract))
    before = _state(tmp_path)
    with pytest.raises(BracketRefused) as err:
        _run(broker.place_bracket(broken))
    assert err.value.code == code
    assert "E" in str(err.value)  # names the bracket
    assert _run(broker.orders()) == []
    assert _run(broker.positions()) == []
    assert _run(broker.executions(T0 - timedelta(days=1))) == []
    assert _run(broker.account()).cash == CASH
    assert _state(tmp_path)["orders"] == before["orders"] == []
    # Nothing was used up: the valid bracket then gets the first order ids.
    placed = _run(broker.place_bracket(good))
    assert [p.order_id for p in placed] == [1, 2, 3]


def test_a_leg_that_fills_on_arrival_cancels_its_sibling(
    market: MarketModel, contract: OptionContract, tmp_path: Path
) -> None:
    broker = _broker(market, tmp_path, Now(T0))
    q = _quote(broker, contract)
    bracket = _bracket(contract, q.ask)
    bracket = dataclasses.replace(  # the market moved up through the target as the order went in
        bracket, take_profit=dataclasses.replace(bracket.take_profit, limit=q.bid)
    )
    placed = _run(broker.place_bracket(bracket))
    assert [p.status for p in placed[:2]] == ["filled", "filled"]
    assert _run(broker.positions()) == []
    assert _by_ref(_run(broker.orders()))["SL"].status == "cancelled"


def test_refuse_brackets_refuses_every_bracket_but_not_single_orders(
    market: MarketModel, contract: OptionContract, tmp_path: Path
) -> None:
    broker = _broker(market, tmp_path, Now(T0), refuse_brackets=True)
    ask = _quote(broker, contract).ask
    with pytest.raises(BracketRefused) as err:
        _run(broker.place_bracket(_bracket(contract, ask)))
    assert err.value.code == 201
    assert _run(broker.orders()) == [] and _run(broker.positions()) == []
    placed = _run(broker.place_order(_spec(contract, "E", limit=ask)))
    assert placed.status == "filled"


# -- single orders -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"limit": Decimal("1.005")}, 110),
        ({"limit": Decimal("0")}, 110),
        ({"qty": 0}, 201),
        ({"limit": None}, 201),  # a limit order with no limit
        ({"order_type": "STP", "limit": None}, 201),  # a stop order with no stop
    ],
)
def test_a_rejected_order_raises_with_the_broker_code(
    market: MarketModel,
    contract: OptionContract,
    tmp_path: Path,
    change: dict[str, Any],
    code: int,
) -> None:
    broker = _broker(market, tmp_path, Now(T0))
    spec = dataclasses.replace(_spec(contract, "X", limit=Decimal("1.00")), **change)
    with pytest.raises(OrderRejected) as err:
        _run(broker.place_order(spec))
    assert not isinstance(err.value, BracketRefused)
    assert err.value.code == code
    assert "X" in str(err.value)
    assert _run(broker.positions()) == [] and _run(broker.account()).cash == CASH
    assert all(o.status in ("inactive", "cancelled") for o in _run(broker.orders()))


def test_an_order_for_an_unknown_contract_is_rejected_with_200(
    market: MarketModel, contract: OptionContract, tmp_path: Path
) -> None:
    broker = _broker(market, tmp_path, Now(T0))
    unknown = dataclasses.replace(contract, con_id=0)
    with pytest.raises(OrderRejected) as err:
        _run(broker.place_order(_spec(unknown, "X", limit=Decimal("1.00"))))
    assert err.value.code == 200


def test_cancel_by_order_ref(market: MarketModel, contract: OptionContract, tmp_path: Path) -> None:
    now = Now(T0)
    broker = _broker(market, tmp_path, now)
    low = (_quote(broker, contract).bid / 4).quantize(contract.tick)
    _run(broker.place_bracket(_bracket(contract, low)))
    _run(broker.place_order(_spec(contract, "lonely", limit=low)))
    now.t += timedelta(minutes=1)
    _run(broker.cancel("no-such-order"))  # nothing to cancel: nothing changes
    assert all(o.status != "cancelled" for o in _run(broker.orders()))
    _run(broker.cancel("E"))  # an unfilled parent takes its legs with it
    statuses = {o.order_ref: o.status for o in _run(broker.orders())}
    assert statuses == {
        "E": "cancelled",
        "TP": "cancelled",
        "SL": "cancelled",
        "lonely": "submitted",
    }
    _run(broker.cancel("lonely"))
    assert _by_ref(_run(broker.orders()))["lonely"].status == "cancelled"
    assert {o["status"] for o in _state(tmp_path)["orders"]} == {"Cancelled"}  # persisted


def test_executions_since(market: MarketModel, contract: OptionContract, tmp_path: Path) -> None:
    now = Now(T0)
    broker = _broker(market, tmp_path, now)
    ask = _quote(broker, contract).ask
    _run(broker.place_order(_spec(contract, "first", limit=ask)))
    now.t = T0 + timedelta(minutes=5)
    second_ask = _quote(broker, contract).ask
    _run(broker.place_order(_spec(contract, "second", limit=second_ask)))
    assert [e.order_ref for e in _run(broker.executions(T0))] == ["first", "second"]
    assert [e.order_ref for e in _run(broker.executions(T0 + timedelta(seconds=1)))] == ["second"]
    assert _run(broker.executions(now.t + timedelta(seconds=1))) == []
    [position] = _run(broker.positions())
    assert position.qty == 2
    assert position.avg_cost == (ask + second_ask) / 2


def test_an_option_held_through_its_expiry_settles_at_intrinsic(
    market: MarketModel, contract: OptionContract, tmp_path: Path
) -> None:
    now = Now(T0)
    broker = _broker(market, tmp_path, now)
    ask = _quote(broker, contract).ask
    _run(broker.place_order(_spec(contract, "held", limit=ask)))
    now.t = AFTER_EXPIRY
    settled = [e for e in _run(broker.executions(T0)) if e.kind == "expiry"]
    assert len(settled) == 1
    [expiry] = settled
    close = datetime(2025, 7, 3, 17, 0, tzinfo=UTC)  # the 13:00 early close
    assert (expiry.side, expiry.qty, expiry.time) == ("SLD", 1, close)
    assert expiry.price == market.intrinsic(contract, close)
    assert expiry.commission == 0
    assert _run(broker.positions()) == []
    cash = _run(broker.account()).cash
    assert cash == CASH - ask * 100 - Decimal("1.00") + expiry.price * 100


def test_account_is_cash_plus_positions_at_mid(
    market: MarketModel, contract: OptionContract, tmp_path: Path
) -> None:
    now = Now(T0)
    broker = _broker(market, tmp_path, now)
    ask = _quote(broker, contract).ask
    _run(broker.place_order(_spec(contract, "buy", limit=ask, qty=3)))
    for minutes in (0, 17, 95):
        now.t = T0 + timedelta(minutes=minutes)
        account = _run(broker.account())
        q = _quote(broker, contract)
        assert q.mid is not None
        assert account.cash == CASH - ask * 300 - Decimal("1.95")
        assert account.net_liquidation == (account.cash + q.mid * 300).quantize(Decimal("0.01"))
        assert account.time == now.t


# -- market data ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "age", "data_type"),
    [
        ({"data_type": "delayed"}, timedelta(minutes=15), "delayed"),
        ({"quote_delay_s": 90}, timedelta(seconds=90), "live"),
        ({}, timedelta(0), "live"),
    ],
)
def test_quotes_are_as_old_as_the_data_asks(
    market: MarketModel,
    contract: OptionContract,
    tmp_path: Path,
    options: dict[str, Any],
    age: timedelta,
    data_type: DataType,
) -> None:
    now = T0 + timedelta(minutes=47)
    broker = _broker(market, tmp_path / "delayed", Now(now), **options)
    live_then = _broker(market, tmp_path / "live", Now(now - age))
    q = _quote(broker, contract)
    assert q.time == now - age
    assert q.data_type == data_type
    then = _quote(live_then, contract)
    assert (q.bid, q.ask, q.last) == (then.bid, then.ask, then.last)


def test_bars_never_include_a_minute_not_yet_over(market: MarketModel, tmp_path: Path) -> None:
    now = T0 + timedelta(minutes=30, seconds=20)
    broker = _broker(market, tmp_path, Now(now))
    bars = _run(broker.bars("SPY", T0 - timedelta(hours=1), now + timedelta(hours=2)))
    assert len(bars) > 0
    last_start = bars.index[-1].to_pydatetime()
    assert last_start + timedelta(minutes=1) <= now < last_start + timedelta(minutes=2)


# -- the account survives a restart --------------------------------------------------------------


def test_a_new_broker_on_the_same_directory_resumes_the_account(
    market: MarketModel, contract: OptionContract, tmp_path: Path
) -> None:
    now = Now(T0)
    first = _broker(market, tmp_path, now)
    q = _quote(first, contract)
    _run(first.place_order(_spec(contract, "held", limit=q.ask, qty=2)))
    low = (q.bid / 4).quantize(contract.tick)
    _run(first.place_order(_spec(contract, "resting", limit=low, tif="GTC")))
    _run(first.disconnect())
    assert not first.is_connected()
    now.t += timedelta(minutes=1)
    second = _broker(market, tmp_path, now, cash=Decimal(1))  # the file wins
    assert _run(second.account()) == _run(first.account())
    assert _run(second.positions()) == _run(first.positions())
    assert _run(second.orders()) == _run(first.orders())
    assert _by_ref(_run(second.orders()))["resting"].status == "submitted"
    _run(second.cancel("resting"))  # its working orders are the new broker's to manage
    assert _by_ref(_run(second.orders()))["resting"].status == "cancelled"
    placed = _run(second.place_order(_spec(contract, "next", limit=low)))
    assert placed.order_id == 3  # order ids carry on


@pytest.mark.parametrize("clean_stop", [True, False], ids=["disconnected", "crashed"])
def test_fills_while_away_appear_after_a_restart(
    market: MarketModel, contract: OptionContract, tmp_path: Path, clean_stop: bool
) -> None:
    now = Now(T0)
    away = _broker(market, tmp_path / "away", now)
    stayed = _broker(market, tmp_path / "stayed", now)  # the same orders, never stopped
    entry = _quote(away, contract).ask
    for broker in (away, stayed):
        _run(broker.place_bracket(_bracket(contract, entry, qty=2)))
    seen_before = _run(away.executions(T0))
    if clean_stop:
        _run(away.disconnect())
    del away
    # Through the expiry close: the position is sold by a leg or settled, so fills must happen.
    now.t = AFTER_EXPIRY
    back = _broker(market, tmp_path / "away", now)
    fills = _run(back.executions(T0))
    assert fills == _run(stayed.executions(T0))
    assert len(fills) > len(seen_before)
    assert [f for f in fills if f.time > T0]  # happened while away
    assert _run(back.positions()) == [] == _run(stayed.positions())
    assert _run(back.account()) == _run(stayed.account())
    assert _run(back.orders()) == _run(stayed.orders())
    assert all(o.status in ("filled", "cancelled") for o in _run(back.orders()))


def test_a_clock_before_the_accounts_last_use_is_refused(
    market: MarketModel, contract: OptionContract, tmp_path: Path
) -> None:
    now = Now(T0)
    first = _broker(market, tmp_path, now)
    _run(first.place_order(_spec(contract, "buy", limit=_quote(first, contract).ask)))
    now.t = T0 + timedelta(hours=2)
    _run(first.account())
    _run(first.disconnect())
    with pytest.raises(UsageError) as err:
        _broker(market, tmp_path, Now(T0))
    assert str(tmp_path / STATE_FILE) in str(err.value)
    assert "--start" in str(err.value)
    again = _broker(market, tmp_path, Now(now.t))  # the same moment is fine
    assert _run(again.positions()) == _run(first.positions())


def test_a_clock_before_the_last_use_is_refused_after_a_crash_too(
    market: MarketModel, contract: OptionContract, tmp_path: Path
) -> None:
    now = Now(T0)
    first = _broker(market, tmp_path, now)
    _run(first.place_order(_spec(contract, "resting", limit=contract.tick, tif="GTC")))
    now.t = T0 + timedelta(hours=3)  # the loop ticks on: quotes and the account, no fills
    _run(first.account())
    _run(first.quotes([contract]))
    assert _by_ref(_run(first.orders()))["resting"].status == "submitted"  # nothing happened
    del first  # killed: no disconnect
    with pytest.raises(UsageError):
        _broker(market, tmp_path, Now(T0 + timedelta(hours=1)))
