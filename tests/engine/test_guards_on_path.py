"""Each guard on the real order path: the loop asks them, they refuse with their numbers, and
exits still go through."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from tests.engine.harness import (
    Recorder,
    config,
    entry_intents,
    orders,
    refusals,
    run,
    set_phase,
    sim_state,
    trades,
    ts,
)
from tradebot.books.halt import KillSwitch
from tradebot.books.phase_records import PhaseRecords
from tradebot.books.state_store import StateStore
from tradebot.core.orders import OrderEvent, entries_in_session
from tradebot.core.trades import session_of

DAY = date(2025, 7, 1)
BEFORE = datetime(2025, 6, 30, 20, 0, tzinfo=UTC)


def test_halt_stops_every_entry_and_says_why(tmp_path: Path) -> None:
    loaded = config(tmp_path)
    KillSwitch(loaded.state_dir, loaded.logs_dir).halt(BEFORE, operator="ops", reason="vacation")
    run(loaded, "2025-07-01", "2025-07-01T13:00")
    assert not entry_intents(loaded)
    blocked = refusals(loaded, "blocked")
    assert blocked and all("halt" in e["message"] and "vacation" in e["message"] for e in blocked)


def test_daily_loss_trip_stops_entries_for_the_session(tmp_path: Path) -> None:
    loaded = config(tmp_path)
    # Start-of-day equity 10,600 against a 10,000 account: down 5.66 % ≥ the 5 % limit.
    StateStore(loaded.state_dir).record_start_of_day(DAY, Decimal(10600), "test", BEFORE)
    run(loaded, "2025-07-01", "2025-07-01T13:00")
    assert not entry_intents(loaded)
    blocked = refusals(loaded, "blocked")
    assert blocked and "daily_loss" in blocked[0]["message"]
    assert "5.66 %" in blocked[0]["message"]
    trip = StateStore(loaded.state_dir).daily_loss_trip()
    assert trip is not None and trip[0] == DAY


def test_proof_allows_one_entry_per_session(tmp_path: Path) -> None:
    loaded = config(tmp_path, '[phase.proof]\ncounted_modes = ["sim"]\n')
    set_phase(loaded, "proof", BEFORE)
    run(loaded, "2025-07-01", "2025-07-02")
    events = [OrderEvent.from_record(r) for r in orders(loaded)]
    assert entries_in_session(events, DAY) == 1
    filled = {
        r["order_ref"] for r in orders(loaded) if r["event"] == "fill" and r["role"] == "entry"
    }
    assert len(filled) <= 1
    limit = refusals(loaded, "blocked")
    assert limit and "entry_limit" in limit[0]["message"]
    assert "next allowed at the next session open (2025-07-02 09:35 EDT)" in limit[0]["message"]


def test_position_cap_binds_every_entry(tmp_path: Path) -> None:
    loaded = config(
        tmp_path, "[phase.experience]\nposition_cap_usd = 60\n", base=_without_experience()
    )
    run(loaded, "2025-07-01", "2025-07-01T14:00")
    intents = entry_intents(loaded)
    assert intents
    for r in intents:
        assert Decimal(r["limit"]) * 100 * r["qty"] <= 60
        assert r["position_cap_usd"] == "60"
    over = [e for e in refusals(loaded, "no_contract") if "$60.00 cap" in e["message"]]
    assert all(Decimal(str(e["cheapest_cost"])) > 60 for e in over if e["cheapest_cost"])


def test_tiny_cap_means_no_trade_with_the_cheapest_cost_in_the_reason(tmp_path: Path) -> None:
    loaded = config(
        tmp_path, "[phase.experience]\nposition_cap_usd = 1\n", base=_without_experience()
    )
    run(loaded, "2025-07-01", "2025-07-01T12:00")
    assert not entry_intents(loaded)
    refused = refusals(loaded, "no_contract")
    assert refused and "nothing fits the $1.00 cap" in refused[0]["message"]
    assert "cheapest is" in refused[0]["message"]


def test_an_entry_the_cash_cannot_pay_is_refused_never_sent(tmp_path: Path) -> None:
    """An account whose cash no longer buys one contract sends nothing: before, each signal
    sent a bracket the broker cancelled for want of funds (IB: error 201), every few minutes,
    and the simulated venue's order list grew without end."""
    loaded = config(tmp_path, "[risk]\npaper_equity = 60\n")
    run(loaded, "2025-07-01", "2025-07-01T13:00")
    assert not entry_intents(loaded)
    refused = refusals(loaded, "cash")
    assert refused, "the scenario needs a signal"
    assert "the account has $60.00 in cash" in refused[0]["message"]
    assert "before commission" in refused[0]["message"]
    assert Decimal(str(refused[0]["cash"])) == Decimal(60)


def test_wide_spread_quote_is_refused_and_journaled_with_numbers(tmp_path: Path) -> None:
    loaded = config(tmp_path, "[risk]\nmax_spread_pct = 1\n")
    run(loaded, "2025-07-01", "2025-07-01T12:00")
    assert not entry_intents(loaded)
    refused = refusals(loaded, "liquidity")
    assert refused
    e = refused[0]
    assert "over the 1 % limit" in e["message"] and Decimal(e["spread_pct"]) > 1
    assert Decimal(e["quote"]["bid"]) > 0 and Decimal(e["quote"]["ask"]) > Decimal(
        e["quote"]["bid"]
    )


def test_delayed_quotes_never_open_a_trade(tmp_path: Path) -> None:
    loaded = config(tmp_path, '[broker]\nmarket_data_type = "delayed"\n')
    run(loaded, "2025-07-01", "2025-07-01T12:00")
    assert not entry_intents(loaded)
    refused = refusals(loaded, "quote")
    assert refused and all("the quote is delayed, not live" in e["message"] for e in refused)
    assert refused[0]["quote"]["data_type"] == "delayed"


def test_stale_quotes_never_open_a_trade(tmp_path: Path) -> None:
    loaded = config(tmp_path, "quote_delay_s = 90\n", base=_sim_section_last())
    run(loaded, "2025-07-01", "2025-07-01T12:00")
    assert not entry_intents(loaded)
    refused = refusals(loaded, "quote")
    assert refused and all(
        "90 s old" in e["message"] and "over 10 s" in e["message"] for e in refused
    )


def test_unknown_phase_refuses_entries_while_exits_still_go_through(tmp_path: Path) -> None:
    # Take-profit far away and stop far below: positions stay open until something closes them.
    loaded = config(tmp_path, "[risk]\ntake_profit_pct = 900\nstop_loss_pct = 95\n")
    run(loaded, "2025-07-01", "2025-07-01T12:00")
    open_before = list(sim_state(loaded)["positions"])
    assert open_before, "the scenario needs open positions at noon"
    history = PhaseRecords(loaded.logs_dir).history.path
    history.parent.mkdir(parents=True, exist_ok=True)
    with history.open("a", encoding="utf-8") as fh:
        fh.write('{"v": 1, "transition_id": "a", "this line is damaged\n{"v": 1}\n')
    count = len(entry_intents(loaded))
    run(loaded, "2025-07-01T12:00", "2025-07-02")
    assert len(entry_intents(loaded)) == count  # no new entry after the history broke
    unknown = refusals(loaded, "blocked")
    assert unknown and "phase_unknown" in unknown[0]["message"]
    assert "phase-history.jsonl:1" in unknown[0]["message"]
    flattened = [t for t in trades(loaded) if t.exit_reason == "flatten"]
    assert flattened  # the scalp flatten before the close still happened
    assert not sim_state(loaded)["positions"]


def test_downgrade_after_three_losses_inside_a_session(tmp_path: Path) -> None:
    # Trial, counting simulated trades, with a stop so tight that trades lose.
    loaded = config(
        tmp_path,
        '[phase.trial]\ncounted_modes = ["sim"]\n'
        "[risk]\nstop_loss_pct = 3\ntake_profit_pct = 400\n",
    )
    set_phase(loaded, "trial", BEFORE)
    notes = Recorder()
    run(loaded, "2025-07-01", "2025-07-02", notify=notes)
    history = PhaseRecords(loaded.logs_dir).read_history().transitions
    downgrades = [t for t in history if t.trigger == "auto_downgrade"]
    assert len(downgrades) == 1
    d = downgrades[0]
    assert (d.from_phase, d.to_phase) == ("trial", "proof")
    assert "3 consecutive losses" in (d.reason or "")
    assert len(notes.events("downgrade")) == 1
    before = [t for t in trades(loaded) if t.exit_time <= d.ts]
    assert len(before) >= 3 and all(t.pnl <= 0 for t in before[-3:])
    later = [r for r in entry_intents(loaded) if ts(r) > d.ts and session_of(ts(r)) == DAY]
    assert not later
    assert any("downgraded_this_session" in e["message"] for e in refusals(loaded, "blocked"))


def _without_experience() -> str:
    return """
[broker.sim]
seed = 7

[trading]
mode = "paper"
symbols = ["SPY", "QQQ", "IWM"]
"""


def _sim_section_last() -> str:
    return """
[trading]
mode = "paper"
symbols = ["SPY", "QQQ", "IWM"]

[broker.sim]
seed = 7
"""
