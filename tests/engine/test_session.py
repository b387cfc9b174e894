"""Whole simulated sessions through the real loop: the invariants an operator relies on."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.engine.harness import (
    config,
    entry_intents,
    events,
    orders,
    read_jsonl,
    run,
    sim_state,
    trades,
    ts,
)
from tradebot.config import LoadedConfig
from tradebot.core.sessions import sessions_between
from tradebot.core.trades import session_of
from tradebot.engine.schedule import session_plan


@pytest.fixture(scope="module")
def three_sessions(tmp_path_factory: pytest.TempPathFactory) -> LoadedConfig:
    """2025-07-02 … 07-07: a normal day, the 13:00 early close, the July 4 holiday, a weekend."""
    loaded = config(tmp_path_factory.mktemp("session"))
    summary, _ = run(loaded, "2025-07-02", "2025-07-08")
    assert summary.entries_sent > 5 and len(summary.trades) > 5
    return loaded


def _plan(loaded: LoadedConfig, day: date):  # type: ignore[no-untyped-def]
    s = loaded.settings
    return session_plan(
        day,
        s.schedule.calendar,
        interval_s=s.trading.interval_s,
        open_delay_minutes=s.schedule.open_delay_minutes,
        close_buffer_minutes=s.schedule.close_buffer_minutes,
        flatten_minutes=s.trading.flatten_minutes_before_close,
    )


def test_every_trade_pnl_is_exact_and_matches_the_brokers_fills(
    three_sessions: LoadedConfig,
) -> None:
    loaded = three_sessions
    fills = {f["exec_id"]: f for f in sim_state(loaded)["fills"]}
    by_ref: dict[str, list[dict]] = defaultdict(list)  # type: ignore[type-arg]
    for r in orders(loaded):
        if r["event"] == "fill":
            by_ref[r["order_ref"].split(".")[0]].append(r)
    for t in trades(loaded):
        expected = (t.exit_price - t.entry_price) * t.qty * t.multiplier - t.commission
        assert t.pnl == expected
        cash = Decimal(0)
        commission = Decimal(0)
        for f in by_ref[t.trade_id]:
            broker = fills[f["exec_id"]]
            assert Decimal(broker["price"]) == Decimal(f["price"])
            sign = 1 if broker["side"] == "SLD" else -1
            cash += sign * Decimal(broker["price"]) * f["qty"] * t.multiplier
            commission += Decimal(broker["commission"])
        assert commission == t.commission
        assert (cash - commission).quantize(Decimal("0.01")) == t.pnl.quantize(Decimal("0.01"))


def test_no_entry_outside_the_entry_window_or_on_a_holiday(three_sessions: LoadedConfig) -> None:
    loaded = three_sessions
    intents = entry_intents(loaded)
    days = {session_of(ts(r)) for r in intents}
    assert date(2025, 7, 4) not in days  # Independence Day
    assert days <= set(sessions_between(date(2025, 7, 2), date(2025, 7, 7)))
    for r in intents:
        moment = ts(r)
        plan = _plan(loaded, session_of(moment))
        assert plan.window_open <= moment < plan.window_close, r["order_ref"]
    early = [ts(r) for r in intents if session_of(ts(r)) == date(2025, 7, 3)]
    assert early and max(early) < datetime.fromisoformat("2025-07-03T16:45:00+00:00")


def test_every_entry_sent_has_both_bracket_legs_at_the_broker(
    three_sessions: LoadedConfig,
) -> None:
    loaded = three_sessions
    broker_orders = {o["order_ref"]: o for o in sim_state(loaded)["orders"]}
    sent = [
        r["order_ref"] for r in orders(loaded) if r["event"] == "submitted" and r["role"] == "entry"
    ]
    assert sent
    for ref in sent:
        entry = broker_orders[ref]
        for leg, kind in ((f"{ref}.tp", "LMT"), (f"{ref}.sl", "STP")):
            child = broker_orders[leg]
            assert child["parent_id"] == entry["order_id"]
            assert child["order_type"] == kind and child["tif"] == "GTC"
            assert child["qty"] == entry["qty"] and child["action"] == "SELL"
            if entry["status"] == "Filled":
                assert child["status"] in ("Submitted", "Filled", "Cancelled")
            else:  # an entry that never filled took its legs with it
                assert child["status"] == "Cancelled"


def test_no_scalp_position_is_open_at_a_close(three_sessions: LoadedConfig) -> None:
    loaded = three_sessions
    closed = {t.trade_id: t for t in trades(loaded)}
    filled_entries = {
        r["order_ref"]: r for r in orders(loaded) if r["event"] == "fill" and r["role"] == "entry"
    }
    for ref, fill in filled_entries.items():
        strategy = next(r["strategy"] for r in entry_intents(loaded) if r["order_ref"] == ref)
        if strategy != "scalp":
            continue
        t = closed[ref]  # every filled scalp entry was closed
        plan = _plan(loaded, session_of(ts(fill, "time")))
        assert t.exit_time <= plan.closes and t.session == plan.session
    whale_contracts = {
        r["contract"]["con_id"] for r in entry_intents(loaded) if r["strategy"] == "whale"
    }
    held = {p["contract"]["con_id"] for p in sim_state(loaded)["positions"]}
    assert held <= whale_contracts  # only whale positions are carried overnight


def test_at_most_one_position_per_symbol_and_strategy(three_sessions: LoadedConfig) -> None:
    loaded = three_sessions
    records = orders(loaded)
    closed = {t.trade_id: t.exit_time for t in trades(loaded)}
    ends: dict[str, datetime] = {}
    for r in records:
        if (
            r["role"] == "entry"
            and r["event"] == "status"
            and r["status"]
            in (
                "cancelled",
                "rejected",
                "abandoned",
            )
        ):
            ends.setdefault(r["order_ref"], ts(r))
    spans: dict[tuple[str, str], list[tuple[datetime, datetime]]] = defaultdict(list)
    for r in entry_intents(loaded):
        ref = r["order_ref"]
        end = closed.get(ref, ends.get(ref, datetime.max.replace(tzinfo=ts(r).tzinfo)))
        spans[(r["symbol"], r["strategy"])].append((ts(r), end))
    for key, intervals in spans.items():
        intervals.sort()
        for (_, end), (start, _) in itertools.pairwise(intervals):
            assert start >= end, key


def test_restart_mid_session_adopts_fills_and_never_duplicates(tmp_path: Path) -> None:
    """Stop at 11:00 with brackets working; restart at 12:30: what filled while away is adopted."""
    loaded = config(tmp_path)
    run(loaded, "2025-07-01", "2025-07-01T11:00")
    working = [
        o for o in sim_state(loaded)["orders"] if o["status"] in ("Submitted", "PreSubmitted")
    ]
    before = {o["order_ref"] for o in sim_state(loaded)["orders"]}
    summary, _ = run(loaded, "2025-07-01T12:30", "2025-07-02")
    assert summary.reconcile[0].startswith("reconciled:")
    after = sim_state(loaded)["orders"]
    refs = [o["order_ref"] for o in after]
    assert len(refs) == len(set(refs))  # no order sent twice
    assert before <= set(refs)
    journal_fills = {r["exec_id"] for r in orders(loaded) if r["event"] == "fill"}
    broker_fills = {f["exec_id"] for f in sim_state(loaded)["fills"]}
    assert journal_fills == broker_fills  # every fill adopted once, including while away
    assert working or summary.trades  # the scenario had something in flight
    ids = [t.trade_id for t in trades(loaded)]
    assert len(ids) == len(set(ids))


def test_dry_run_journals_orders_and_sends_none(tmp_path: Path) -> None:
    loaded = config(tmp_path, base=BASE_DRY)
    run(loaded, "2025-07-01", "2025-07-01T13:00")
    intents = entry_intents(loaded)
    assert intents
    statuses = {r["order_ref"]: r["status"] for r in orders(loaded) if r["event"] == "status"}
    assert all(statuses[r["order_ref"]] == "not_sent" for r in intents)
    assert not sim_state(loaded)["orders"]


BASE_DRY = """
[broker.sim]
seed = 7

[trading]
mode = "dry_run"
symbols = ["SPY", "QQQ"]
"""


def _metrics_sessions(loaded: LoadedConfig) -> list[str]:
    return [r["session"] for r in read_jsonl(loaded.logs_dir / "phase" / "session-metrics.jsonl")]


def test_every_session_with_a_trade_has_its_metrics_line(three_sessions: LoadedConfig) -> None:
    """Issue 23: the run stops at midnight after its last session; that session's line is
    written at its close, not left for a next day the run never sees."""
    traded = sorted({t.session.isoformat() for t in trades(three_sessions)})
    assert traded[-1] == "2025-07-07"
    assert _metrics_sessions(three_sessions) == traded


@pytest.mark.parametrize("until", ["2025-07-01T16:00", "2025-07-03T13:00"])
def test_run_until_a_close_closes_the_session_first(tmp_path: Path, until: str) -> None:
    """`run --until` exactly at a close (a normal one, and the 13:00 early close): the session
    is closed as a run that goes on would close it — its summary event and its metrics line."""
    loaded = config(tmp_path)
    day = until[:10]
    summary, _ = run(loaded, day, until)
    assert summary.stopped_by == "until" and summary.trades
    ended = [e for e in events(loaded) if e["event"] == "session_end"]
    assert [e["session"] for e in ended] == [day]
    assert _metrics_sessions(loaded) == [day]
    line = read_jsonl(loaded.logs_dir / "phase" / "session-metrics.jsonl")[0]
    assert line["trades"] == len(summary.trades)
    assert Decimal(line["pnl"]) == sum(t.pnl for t in summary.trades)
