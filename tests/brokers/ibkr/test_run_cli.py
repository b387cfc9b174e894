"""`tradebot run --once` with broker.kind = "ibkr", as an operator runs it, against a gateway
simulator in another thread (the loop's clock follows the simulator's: broker.clock =
"gateway", the rehearsal setting)."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.brokers.ibkr.conftest import CLIENT_ID, ThreadedSim, config_text
from tests.cli.conftest import invoke
from tradebot.core.ticks import TickLadder
from tradebot.gateway_sim.requests import PlaceOrderRequest


def _write(tmp_path: Path, sim: ThreadedSim) -> Path:
    path = tmp_path / "config.toml"
    # A 45 % stop: 55 % of the entry is off the tick, so the stop's rounding shows.
    extra = "[risk]\nstop_loss_pct = 45\n"
    path.write_text(
        config_text(sim.port, extra=extra, broker='clock = "gateway"'), encoding="utf-8"
    )
    return path


def _orders(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "logs" / "journal" / "orders.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_once_places_a_correct_bracket_journaled_before_it_is_sent(
    tmp_path: Path, threaded_sim: ThreadedSim
) -> None:
    _write(tmp_path, threaded_sim)
    journal = tmp_path / "logs" / "journal" / "orders.jsonl"
    arrivals: list[tuple[PlaceOrderRequest, str]] = []
    book = threaded_sim.sim.book
    place = book.place

    def spy(client_id: int, req: PlaceOrderRequest, now: Any) -> Any:
        # What the order journal holds at the moment the order reaches the "gateway".
        arrivals.append((req, journal.read_text() if journal.exists() else ""))
        return place(client_id, req, now)

    book.place = spy  # type: ignore[method-assign]
    result = invoke(["run", "--once"])
    assert result.exit_code == 0, result.stderr
    assert "run ended at 2025-07-01 11:00 EDT (once): 1 tick(s), 2 entries sent" in result.stdout

    intents = {r["order_ref"]: r for r in _orders(tmp_path) if r["event"] == "intent"}
    assert len(arrivals) == 6
    for i in range(0, 6, 3):
        parent, tp, sl = (req for req, _ in arrivals[i : i + 3])
        ref = parent.order_ref
        # Structure: parent LMT BUY DAY held, take-profit LMT SELL GTC held, stop STP SELL GTC
        # transmitted last; both legs point at the parent; one account; our orderRefs.
        assert (parent.action, parent.order_type, parent.tif, parent.transmit) == (
            "BUY", "LMT", "DAY", False,
        )  # fmt: skip
        assert (tp.action, tp.order_type, tp.tif, tp.transmit) == ("SELL", "LMT", "GTC", False)
        assert (sl.action, sl.order_type, sl.tif, sl.transmit) == ("SELL", "STP", "GTC", True)
        assert parent.parent_id == 0 and tp.parent_id == sl.parent_id == parent.order_id
        assert (tp.order_ref, sl.order_ref) == (f"{ref}.tp", f"{ref}.sl")
        assert {parent.account, tp.account, sl.account} == {"DUSIM0001"}
        assert parent.quantity == tp.quantity == sl.quantity == intents[ref]["qty"]
        # Prices: what was journaled, on the contract's market rule (reqMarketRule, not minTick).
        grid = TickLadder.of(intents[ref]["contract"]["ladder"])
        assert parent.limit == Decimal(intents[ref]["limit"])
        assert tp.limit == Decimal(intents[f"{ref}.tp"]["limit"]) == parent.limit * 2
        assert sl.aux == Decimal(intents[f"{ref}.sl"]["stop"])
        for price in (parent.limit, tp.limit, sl.aux):
            assert price is not None and grid.contains(price)
        assert sl.aux >= parent.limit * Decimal("0.55")  # rounds up: never more loss than planned
        # Journaled before sending: each order's intent was on disk when it arrived.
        for req, seen in arrivals[i : i + 3]:
            assert f'"order_ref":"{req.order_ref}"' in seen.replace(" ", "")
    by_ref = {req.order_ref: req for req, _ in arrivals}
    # SPY's stop, 55 % of 3.98 = 2.189, rounds up to the cent; TSLA's options are in the penny
    # program: IB's minTick is 0.01, its market rule 0.01 below $3 and 0.05 from $3 — the entry
    # 4.40 on the nickel step, its stop 2.42 on pennies.
    spy, tsla = by_ref["SPY-250701-s1"], by_ref["TSLA-250701-s1"]
    assert (spy.limit, by_ref["SPY-250701-s1.sl"].aux) == (Decimal("3.98"), Decimal("2.19"))
    tsla_contract = intents["TSLA-250701-s1"]["contract"]
    assert tsla_contract["tick"] == "0.01"
    assert tsla_contract["ladder"] == [["0", "0.01"], ["3", "0.05"]]
    assert (tsla.limit, by_ref["TSLA-250701-s1.sl"].aux) == (Decimal("4.40"), Decimal("2.42"))
    # The journal says what IB acknowledged (ids and permIds from the gateway).
    submitted = [r for r in _orders(tmp_path) if r["event"] == "submitted"]
    assert len(submitted) == 6 and all(r["perm_id"] > 0 for r in submitted)
    assert {r["order_id"] for r in submitted} == {req.order_id for req, _ in arrivals}


def test_a_restarted_run_adopts_the_working_brackets(
    tmp_path: Path, threaded_sim: ThreadedSim
) -> None:
    _write(tmp_path, threaded_sim)
    assert invoke(["run", "--once"]).exit_code == 0
    sim = threaded_sim.sim
    venue_before = len(sim.exchange.orders)
    entry = next(o for o in sim.exchange.orders.values() if o.order_ref == "SPY-250701-s1")
    order_id = sim.book.owners[entry.order_id][1]
    # While no tradebot is running, the SPY entry fills.
    assert threaded_sim.call(sim.faults.fill_order, CLIENT_ID, order_id)

    result = invoke(["run", "--once"])
    assert result.exit_code == 0, result.stderr
    assert "1 tick(s), 0 entries sent" in result.stdout  # both symbols held: nothing doubled
    assert len(sim.exchange.orders) == venue_before  # no order sent again
    records = _orders(tmp_path)
    fills = [r for r in records if r["event"] == "fill"]
    assert [f["order_ref"] for f in fills] == ["SPY-250701-s1"]
    assert Decimal(fills[0]["commission"]) == Decimal("1")
    events = [
        json.loads(line)
        for line in (tmp_path / "logs" / "journal" / "events.jsonl").read_text().splitlines()
    ]
    assert not [e for e in events if e["event"] in ("unknown_order", "unknown_execution")]
    [second] = [e for e in events if e["event"] == "reconciled"][1:]
    assert "1 fill(s) adopted" in second["message"] and "1 open position(s)" in second["message"]
    legs = {
        r["order_ref"]: r["status"]
        for r in records
        if r["event"] in ("status", "submitted") and r["order_ref"].startswith("SPY")
    }
    assert legs["SPY-250701-s1"] == "filled"
    assert legs["SPY-250701-s1.tp"] == legs["SPY-250701-s1.sl"] == "submitted"
