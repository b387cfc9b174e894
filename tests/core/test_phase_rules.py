"""The ladder's pure rules: criteria at their thresholds, windows, triggers, caps, entry limits."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.factories import trade
from tests.phase_helpers import NOW, phase_cfg, run_eval, series_of, transition
from tradebot.config import Settings
from tradebot.core.metrics import TradeSeries, summarize
from tradebot.core.orders import OrderEvent
from tradebot.core.phase_rules import (
    DayLoss,
    entry_decision,
    evaluate_criteria,
    scaling_cap,
)
from tradebot.core.trades import session_of

D = Decimal
EXPERIENCE = Settings().phase.experience
TRIAL = Settings().phase.trial


def _criterion(trades, rules, name):  # type: ignore[no-untyped-def]
    stats = summarize(trades, D(10000))
    return next(c for c in evaluate_criteria(rules, stats) if c.name == name)


# -- each criterion exactly at its threshold and one step below --------------------------------
def test_profitable_sessions_threshold() -> None:
    at = series_of([10] * 20)  # 20 sessions, each +10
    below = series_of([10] * 19 + [-10])
    assert _criterion(at, EXPERIENCE, "profitable_sessions").met
    assert not _criterion(below, EXPERIENCE, "profitable_sessions").met


def test_trades_threshold() -> None:
    assert _criterion(series_of([10] * 20), EXPERIENCE, "trades").met
    assert not _criterion(series_of([10] * 19), EXPERIENCE, "trades").met


def test_sessions_threshold() -> None:
    proof = Settings().phase.proof  # min 30 sessions
    assert _criterion(series_of([10] * 30), proof, "sessions").met
    assert not _criterion(series_of([10] * 29), proof, "sessions").met
    # Two trades in one session count once.
    assert _criterion(series_of([10] * 58, per_session=2), proof, "sessions").actual == 29


def test_win_rate_threshold() -> None:
    # 12 of 20 = exactly 60 %; 11 of 20 = 55 %.
    at = series_of([100] * 12 + [-10] * 8)
    below = series_of([100] * 11 + [-10] * 9)
    c = _criterion(at, EXPERIENCE, "win_rate")
    assert c.met and c.actual == 60
    assert not _criterion(below, EXPERIENCE, "win_rate").met


def test_avg_rr_threshold() -> None:
    # winners average 30, losers average -20: R:R exactly 1.5; one cent less is below.
    at = series_of([30, 30, -20, -20])
    below = series_of(["29.99", 30, -20, -20])
    c = _criterion(at, EXPERIENCE, "avg_rr")
    assert c.met and c.actual == D("1.5")
    assert not _criterion(below, EXPERIENCE, "avg_rr").met


def test_max_drawdown_must_stay_below() -> None:
    # base 10,000: +100 then -505 is a 5.0 % drop from the 10,100 peak: not below 5 %.
    at = series_of([100, -505], entry_price="10.00")
    below = series_of([100, "-504.99"], entry_price="10.00")
    assert not _criterion(at, TRIAL, "max_drawdown").met
    assert _criterion(below, TRIAL, "max_drawdown").met


def test_rr_with_no_losers_is_met_and_no_winners_is_zero() -> None:
    c = _criterion(series_of([5, 5]), EXPERIENCE, "avg_rr")
    assert c.met and c.actual is not None and not c.actual.is_finite()
    c = _criterion(series_of([-5, 0]), EXPERIENCE, "avg_rr")
    assert not c.met and c.actual == 0


def test_eligible_only_when_every_criterion_holds() -> None:
    ev = run_eval(series_of([100] * 20))
    assert ev.eligible and ev.next_phase == "proof" and not ev.unmet
    ev = run_eval(series_of([100] * 19))
    assert not ev.eligible
    assert {c.name for c in ev.unmet} == {"profitable_sessions", "trades"}


def test_scaling_has_no_criteria() -> None:
    ev = run_eval([], history=[transition("scaling", NOW - timedelta(days=1), frm="trial")])
    assert ev.next_phase is None and ev.criteria == [] and not ev.eligible


# -- the window ----------------------------------------------------------------------------------
def test_window_restarts_after_every_transition() -> None:
    before = series_of([100] * 25)  # all before the transition
    t = transition("proof", before[-1].exit_time + timedelta(hours=1))
    after = series_of([-10, 20], mode="live", start_day=40)
    ev = run_eval(before + after, history=[t])
    assert ev.phase == "proof"
    assert ev.stats.trades == 2
    # Back down and up again: the window restarts again.
    t2 = transition("experience", after[-1].exit_time + timedelta(hours=1), frm="proof")
    ev = run_eval(before + after, history=[t, t2])
    assert ev.phase == "experience" and ev.stats.trades == 0


def test_trade_opened_before_the_transition_is_not_counted() -> None:
    t_opened = series_of([50], mode="live")[0]
    ts = t_opened.entry_time + timedelta(minutes=1)  # transition while it was open
    ev = run_eval([t_opened], history=[transition("proof", ts)])
    assert ev.stats.trades == 0


def test_only_counted_modes_count() -> None:
    trades = series_of([100] * 5, mode="paper") + series_of([100] * 3, mode="sim", start_day=10)
    assert run_eval(trades).stats.trades == 5  # experience counts paper only
    cfg = phase_cfg(experience={"counted_modes": ["paper", "sim"]})
    assert run_eval(trades, cfg=cfg).stats.trades == 8
    live = series_of([100] * 4, mode="live", start_day=20)
    ev = run_eval(trades + live, history=[transition("proof", NOW - timedelta(days=400))])
    assert ev.stats.trades == 4  # proof counts live only


def test_sessions_are_exchange_dates_of_exit() -> None:
    # 01:30 UTC on Jul 2 is 21:30 on Jul 1 in New York: same session as a 15:00 UTC Jul 1 exit.
    a = trade(10, exit_time=series_of([1])[0].exit_time)
    late = a.exit_time.replace(hour=1, minute=30) + timedelta(days=1)
    b = trade(10, exit_time=late)
    assert session_of(late) == a.session
    assert run_eval([a, b]).stats.sessions == 1


# -- downgrade triggers ------------------------------------------------------------------------
def _proof_history():  # type: ignore[no-untyped-def]
    return [transition("proof", NOW - timedelta(days=200))]


def _watch(ev, name):  # type: ignore[no-untyped-def]
    return next(w for w in ev.watch if w.name == name)


def test_three_consecutive_losses_alone() -> None:
    trades = series_of([50, -10, -10, -10], mode="live", start_day=70)
    ev = run_eval(trades, history=_proof_history())
    assert ev.downgrade_reasons == ["3 consecutive losses (limit 3)"]
    ev = run_eval(trades[:-1], history=_proof_history())
    assert ev.downgrade_reasons == []


def test_rolling_win_rate_alone() -> None:
    # 20 trades, 10 wins = 50 % < 55 %, no loss streak of 3, no daily loss.
    pnls = [50, -10] * 10
    ev = run_eval(series_of(pnls, mode="live", start_day=70), history=_proof_history())
    assert len(ev.downgrade_reasons) == 1
    assert ev.downgrade_reasons[0].startswith("win rate over the last 20 trades 50.0 %")
    # 11 of 20 = 55 %: not below.
    pnls = [50, -10] * 9 + [50, 50]
    assert (
        run_eval(
            series_of(pnls, mode="live", start_day=70), history=_proof_history()
        ).downgrade_reasons
        == []
    )


def test_rolling_rule_inactive_below_20_trades() -> None:
    pnls = [50, -10] * 9 + [-10]  # 19 trades, 47 %
    ev = run_eval(series_of(pnls, mode="live", start_day=70), history=_proof_history())
    w = _watch(ev, "rolling_win_rate")
    assert not w.active and not w.triggered and "below 20 trades" in w.note
    assert ev.downgrade_reasons == []


def test_daily_loss_alone() -> None:
    hist = _proof_history()
    ev = run_eval([], history=hist, day_loss=DayLoss(D(10000), D(9499)))  # 5.01 %
    assert ev.downgrade_reasons == [
        "today's loss $501.00 = 5.01 % of start-of-day equity $10,000.00 (equity $9,499.00) > 5 %"
    ]
    ev = run_eval([], history=hist, day_loss=DayLoss(D(10000), D(9500)))  # exactly 5 %: not >
    assert ev.downgrade_reasons == []


def test_daily_loss_reason_never_reads_equal_to_its_limit() -> None:
    """Issue 23: "5.0 % > 5.0 %" told the operator nothing; the % gets the digits to differ."""
    hist = _proof_history()
    ev = run_eval([], history=hist, day_loss=DayLoss(D(10000), D("9499.99")))  # 5.0001 %
    (reason,) = ev.downgrade_reasons
    assert "$500.01 = 5.0001 % of start-of-day equity $10,000.00" in reason
    assert reason.endswith("> 5 %")


def test_experience_never_downgrades() -> None:
    trades = series_of([-10] * 25)
    ev = run_eval(trades, day_loss=DayLoss(D(10000), D(5000)))
    assert ev.phase == "experience"
    assert ev.downgrade_reasons == []
    assert all(not w.triggered for w in ev.watch)


# -- position caps -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "profitable,losing,expected",
    [(0, 0, 200), (4, 0, 200), (5, 0, 400), (50, 0, 2000), (7, 3, 200), (0, 9, 200), (12, 2, 600)],
)
def test_scaling_cap_formula(profitable: int, losing: int, expected: int) -> None:
    pnls = [10] * profitable + [-10] * losing
    stats = summarize(series_of(pnls, mode="live"), D(100000))
    assert stats.profitable_sessions == profitable and stats.losing_sessions == losing
    cap = scaling_cap(Settings().phase.scaling, stats, equity=D(1_000_000))
    assert cap == expected


def test_scaling_cap_five_percent_of_equity_binds() -> None:
    stats = summarize(series_of([10] * 50, mode="live"), D(100000))
    rules = Settings().phase.scaling
    assert scaling_cap(rules, stats, equity=D(12000)) == D(600)  # 5 % of 12,000 < 2,000
    assert scaling_cap(rules, stats, equity=D("12345.67")) == D("617.28")  # floored to cents
    assert scaling_cap(rules, stats, equity=None) is None


def test_phase_caps() -> None:
    caps = {}
    for phase, frm in (("proof", "experience"), ("trial", "proof")):
        ev = run_eval([], history=[transition(phase, NOW - timedelta(days=1), frm=frm)])  # type: ignore[arg-type]
        caps[phase] = ev.limits.position_cap_usd
    caps["experience"] = run_eval([]).limits.position_cap_usd
    assert caps == {"experience": 100, "proof": 100, "trial": 200}


# -- entry limits ------------------------------------------------------------------------------
def _event(ref: str, event: str = "intent", **kw):  # type: ignore[no-untyped-def]
    rec = {
        "ts": NOW.isoformat(),
        "event": event,
        "order_ref": ref,
        "role": "entry",
        "session": session_of(NOW).isoformat(),
        "mode": "live",
        **kw,
    }
    return OrderEvent.from_record(rec)


def test_proof_allows_one_entry_per_session() -> None:
    hist = _proof_history()
    ev = run_eval([], history=hist)
    assert entry_decision(ev, mode="live").allowed
    ev = run_eval([], history=hist, events=[_event("A")])
    decision = entry_decision(ev, mode="live", next_session_open=NOW + timedelta(hours=18))
    assert not decision.allowed
    assert decision.refusals[0].rule == "entry_limit"
    assert "allows 1 entry per session and 1 were made" in decision.refusals[0].message
    assert "next session open (2025-09-03 05:00 EDT)" in decision.refusals[0].message


def test_entry_that_died_unfilled_does_not_count() -> None:
    events = [_event("A"), _event("A", "status", status="cancelled")]
    assert run_eval([], history=_proof_history(), events=events).limits.entries_this_session == 0
    events.append(_event("B"))
    events.append(_event("B", "fill", filled_qty=1))
    events.append(_event("B", "status", status="cancelled", filled_qty=1))
    assert run_eval([], history=_proof_history(), events=events).limits.entries_this_session == 1


def test_experience_refuses_live_entries_only() -> None:
    ev = run_eval([])
    assert entry_decision(ev, mode="paper").allowed
    decision = entry_decision(ev, mode="live")
    assert [r.rule for r in decision.refusals] == ["live_not_allowed"]


def test_downgraded_this_session_stops_entries() -> None:
    hist = [
        transition("proof", NOW - timedelta(days=90)),
        transition("experience", NOW - timedelta(hours=1), frm="proof", trigger="auto_downgrade"),
    ]
    ev = run_eval([], history=hist)
    assert ev.downgraded_this_session
    assert "downgraded_this_session" in [r.rule for r in entry_decision(ev, mode="paper").refusals]
    later = run_eval([], history=hist, now=NOW + timedelta(days=1))
    assert entry_decision(later, mode="paper").allowed


# -- invariants --------------------------------------------------------------------------------
pnl_lists = st.lists(st.integers(min_value=-90, max_value=400), min_size=0, max_size=45)


@settings(max_examples=120, deadline=None)
@given(pnl_lists, st.integers(min_value=1, max_value=4), st.randoms(use_true_random=False))
def test_invariants(pnls: list[int], per_session: int, rnd) -> None:  # type: ignore[no-untyped-def]
    trades = series_of(pnls, per_session=per_session, mode="live")  # type: ignore[arg-type]
    ev = run_eval(
        trades,
        history=[transition("scaling", NOW - timedelta(days=900), frm="trial")],
        equity=D(rnd.randint(1000, 100000)),
    )
    s = ev.stats
    if s.win_rate is not None:
        assert 0 <= s.win_rate <= 1
    cap = ev.limits.position_cap_usd
    assert cap is not None and 0 <= cap <= Settings().phase.scaling.cap_max_usd
    shuffled = list(trades)
    rnd.shuffle(shuffled)
    assert TradeSeries.of(shuffled).pnl == TradeSeries.of(trades).pnl
    ev2 = run_eval(
        shuffled,
        history=[transition("scaling", NOW - timedelta(days=900), frm="trial")],
        equity=None,
    )
    assert ev2.stats == s  # line order never changes a metric
