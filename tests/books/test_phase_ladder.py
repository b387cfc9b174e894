"""The phase ladder service over real files: transitions, downgrades, sessions, fail-safe."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.phase_helpers import NOW, series_of
from tradebot.books.ladder import PhaseLadder
from tradebot.books.order_journal import OrderJournal
from tradebot.books.trade_journal import TradeJournal
from tradebot.config import load_config
from tradebot.core.trades import session_of
from tradebot.storage import JsonlFile


@pytest.fixture
def loaded(tmp_path: Path):  # type: ignore[no-untyped-def]
    return load_config(tmp_path / "config.toml")


def _journal(loaded, trades) -> None:  # type: ignore[no-untyped-def]
    j = TradeJournal(loaded.logs_dir)
    for t in trades:
        j.append(t)


def _history_lines(loaded) -> list[dict]:  # type: ignore[no-untyped-def, type-arg]
    return JsonlFile(loaded.logs_dir / "phase" / "phase-history.jsonl").read().records


def _to_proof(loaded) -> PhaseLadder:  # type: ignore[no-untyped-def]
    _journal(loaded, series_of([100] * 20))
    ladder = PhaseLadder(loaded)
    ladder.advance(NOW - timedelta(days=5), to=None, operator="alice", reason="earned")
    return ladder


def test_earned_advance_is_one_durable_record(loaded) -> None:  # type: ignore[no-untyped-def]
    ladder = _to_proof(loaded)
    lines = _history_lines(loaded)
    assert len(lines) == 1
    rec = lines[0]
    assert rec["v"] == 1
    assert (rec["from_phase"], rec["to_phase"], rec["trigger"]) == (
        "experience",
        "proof",
        "advance",
    )
    assert rec["validation_passed"] is True and rec["failures"] == []
    assert rec["metrics"]["trades"] == 20 and rec["metrics"]["win_rate"] == "1.0000"
    assert rec["operator"] == "alice" and rec["reason"] == "earned"
    assert rec["ts"].endswith("Z")
    snap = ladder.snapshot(NOW)
    assert snap.evaluation is not None and snap.evaluation.phase == "proof"
    assert snap.evaluation.stats.trades == 0  # the window restarted


def test_auto_downgrade_once_with_notice_and_entries_stopped(loaded) -> None:  # type: ignore[no-untyped-def]
    ladder = _to_proof(loaded)
    notices: list[tuple[str, str]] = []
    ladder.notify = lambda event, msg: notices.append((event, msg))
    _journal(loaded, series_of([-10, -10, -10], mode="live", start_day=60))  # to Sep 1
    assert ladder.check_entry(NOW, "live").refusals[0].rule == "downgrade_pending"
    result = ladder.on_tick(NOW)
    assert result.transition is not None
    assert (result.transition.from_phase, result.transition.to_phase) == ("proof", "experience")
    assert result.transition.trigger == "auto_downgrade"
    assert result.transition.failures == ("3 consecutive losses (limit 3)",)
    assert [e for e, _ in notices] == ["downgrade"]
    lines = _history_lines(loaded)
    assert len(lines) == 2 and lines[-1]["trigger"] == "auto_downgrade"
    # Entries stop for the rest of the session, even paper ones in the lower phase ...
    decision = ladder.check_entry(NOW + timedelta(minutes=5), "paper")
    assert [r.rule for r in decision.refusals] == ["downgraded_this_session"]
    # ... a second tick changes nothing, and exits are never blocked.
    assert ladder.on_tick(NOW + timedelta(minutes=5)).transition is None
    assert PhaseLadder.check_exit().allowed
    # Next session: entries resume.
    assert ladder.check_entry(NOW + timedelta(days=1), "paper").allowed


def test_daily_loss_does_not_cascade_through_phases(loaded) -> None:  # type: ignore[no-untyped-def]
    _journal(loaded, series_of([100] * 20))
    ladder = PhaseLadder(loaded)
    ladder.advance(NOW - timedelta(days=5), to=None, operator="a", reason=None)
    # Straight to trial with a forced history line is not needed: proof -> experience is enough
    # to show one step per session. Start-of-day equity 10,000, current 9,000: a 10 % loss.
    ladder.state.record_start_of_day(session_of(NOW), Decimal(10000), "test", NOW)
    first = ladder.on_tick(NOW, equity=Decimal(9000))
    assert first.transition is not None and first.transition.to_phase == "experience"
    assert (
        "today's loss $1,000.00 = 10.00 % of start-of-day equity $10,000.00"
        in (first.transition.failures[0])
    )
    assert ladder.on_tick(NOW + timedelta(minutes=3), equity=Decimal(9000)).transition is None
    assert len(_history_lines(loaded)) == 2


def test_proof_entry_limit_survives_a_restart(loaded) -> None:  # type: ignore[no-untyped-def]
    ladder = _to_proof(loaded)
    assert ladder.check_entry(NOW, "live").allowed
    OrderJournal(loaded.logs_dir).append(
        {
            "v": 1,
            "ts": NOW,
            "event": "intent",
            "order_ref": "tb-1",
            "role": "entry",
            "session": session_of(NOW),
            "mode": "live",
            "symbol": "SPY",
        }
    )
    restarted = PhaseLadder(load_config(loaded.path))  # a new process would do exactly this
    decision = restarted.check_entry(NOW + timedelta(minutes=30), "live")
    assert [r.rule for r in decision.refusals] == ["entry_limit"]
    assert restarted.check_exit().allowed


def test_corrupt_middle_line_refuses_entries_and_names_the_line(loaded) -> None:  # type: ignore[no-untyped-def]
    _to_proof(loaded)
    path = loaded.logs_dir / "phase" / "phase-history.jsonl"
    good = path.read_text()
    path.write_text("{oops\n" + good)
    ladder = PhaseLadder(loaded)
    decision = ladder.check_entry(NOW, "live")
    assert not decision.allowed
    assert decision.refusals[0].rule == "phase_unknown"
    assert "phase-history.jsonl:1" in decision.refusals[0].message
    assert not ladder.check_entry(NOW, "paper").allowed
    assert PhaseLadder.check_exit().allowed  # exits still go through


def test_torn_last_history_line_is_a_warning(loaded) -> None:  # type: ignore[no-untyped-def]
    _to_proof(loaded)
    path = loaded.logs_dir / "phase" / "phase-history.jsonl"
    with path.open("a") as fh:
        fh.write('{"v":1,"transition_id":"x","ts":"2025-')
    snap = PhaseLadder(loaded).snapshot(NOW)
    assert snap.evaluation is not None and snap.evaluation.phase == "proof"
    assert any("torn last line" in w for w in snap.warnings)


def test_closed_sessions_are_recorded_once(tmp_path: Path) -> None:
    (tmp_path / "sim.toml").write_text('[phase.experience]\ncounted_modes = ["sim"]\n')
    loaded = load_config(tmp_path / "sim.toml")
    trades = series_of([100, -40, 60], per_session=2, mode="sim")
    _journal(loaded, trades + series_of([5], start_day=60, mode="sim"))
    ladder = PhaseLadder(loaded)
    # NOW is 2025-09-02; sessions 07-01, 07-02 and 08-30 are closed.
    assert ladder.close_sessions(NOW) == 3
    assert ladder.close_sessions(NOW) == 0
    lines = JsonlFile(loaded.logs_dir / "phase" / "session-metrics.jsonl").read().records
    first = lines[0]
    assert set(first) == {
        "v",
        "session",
        "phase",
        "trades",
        "wins",
        "losses",
        "win_rate",
        "avg_rr",
        "pnl",
        "start_equity",
        "end_equity",
    }
    assert (first["session"], first["trades"], first["wins"], first["pnl"]) == (
        "2025-07-01",
        2,
        1,
        "60",
    )
    assert first["start_equity"] == "10000" and first["end_equity"] == "10060"
    assert lines[1]["start_equity"] == "10060" and lines[1]["end_equity"] == "10120"


def test_eligibility_notice_is_sent_once(loaded) -> None:  # type: ignore[no-untyped-def]
    _journal(loaded, series_of([100] * 20))
    notices: list[str] = []
    ladder = PhaseLadder(loaded, notify=lambda e, m: notices.append(e))
    ladder.on_tick(NOW)
    ladder.on_tick(NOW + timedelta(minutes=3))
    assert notices == ["eligible"]


def test_no_earned_advance_while_a_downgrade_trigger_holds(loaded) -> None:  # type: ignore[no-untyped-def]
    from tradebot.errors import RefusedError

    # A proof -> trial table that 3 live trades can meet, so only the downgrade stands in the way.
    (loaded.path).write_text(
        "[phase.proof]\nmin_sessions = 1\nmin_trades = 3\nmin_win_rate_pct = 0\nmin_avg_rr = 0\n"
    )
    relaxed = load_config(loaded.path)
    _journal(relaxed, series_of([100] * 20))
    ladder = PhaseLadder(relaxed)
    ladder.advance(NOW - timedelta(days=5), to=None, operator="a", reason=None)
    _journal(relaxed, series_of([50, -10, -10, -10], mode="live", start_day=59))
    snap = ladder.snapshot(NOW)
    assert snap.evaluation is not None and snap.evaluation.eligible
    assert snap.evaluation.downgrade_reasons
    with pytest.raises(RefusedError, match="refused while a downgrade holds"):
        ladder.advance(NOW, to=None, operator="a", reason=None)
    assert len(_history_lines(relaxed)) == 1


def test_unknown_equity_never_meets_the_drawdown_criterion(tmp_path: Path) -> None:
    from tests.phase_helpers import transition
    from tradebot.books.phase_records import PhaseRecords

    (tmp_path / "c.toml").write_text(
        '[broker]\nkind = "ibkr"\n[phase]\ninitial = "proof"\n[phase.trial]\nmin_sessions = 1\n'
        "min_trades = 1\nmin_win_rate_pct = 0\nmin_avg_rr = 0\n"
    )
    loaded = load_config(tmp_path / "c.toml")
    PhaseRecords(loaded.logs_dir).history.append(
        transition("trial", NOW - timedelta(days=90), frm="proof").as_record()
    )
    _journal(loaded, series_of([100, -300, 400], mode="live", start_day=40, entry_price="10.00"))
    ladder = PhaseLadder(loaded)
    ev = ladder.snapshot(NOW).evaluation
    assert ev is not None
    dd = next(c for c in ev.criteria if c.name == "max_drawdown")
    assert dd.actual is None and not dd.met and not ev.eligible
    assert any("max drawdown % cannot be measured" in w for w in ev.warnings)
    # With a fresh broker reading of $2,000 the $300 drop is 14 %: measured, and not met.
    ladder.state.record_equity(Decimal(2000), "NetLiquidation", NOW)
    ev = ladder.snapshot(NOW).evaluation
    assert ev is not None
    dd = next(c for c in ev.criteria if c.name == "max_drawdown")
    assert dd.actual is not None and dd.actual > 14 and not dd.met


def test_no_lock_is_held_while_the_password_is_typed(loaded) -> None:  # type: ignore[no-untyped-def]
    import fcntl
    import os

    from tradebot.core.override_password import hash_password

    ladder = PhaseLadder(loaded)
    ladder.state.set_password_hash(hash_password("a long password"), NOW)
    audit_path = ladder.records.overrides.path

    def typing_slowly() -> str:
        fd = os.open(audit_path, os.O_RDWR | os.O_CREAT)
        try:  # another process could take the exclusive lock right now
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
        return "a long password"

    t = ladder.force(NOW, to="proof", password=typing_slowly, operator="o", reason=None)
    assert t.to_phase == "proof"
    # A forced move down needs no criteria.
    down = ladder.force(
        NOW + timedelta(minutes=1),
        to="experience",
        password=lambda: "a long password",
        operator="o",
        reason=None,
    )
    assert down.validation_passed is True and down.failures == ()


def test_reserve_entry_gives_proofs_one_entry_to_exactly_one_caller(loaded) -> None:  # type: ignore[no-untyped-def]
    import threading

    ladder = _to_proof(loaded)
    barrier = threading.Barrier(4)
    results: list[bool] = []

    def try_entry(n: int) -> None:
        mine = PhaseLadder(load_config(loaded.path))  # each as if its own process: own fds
        barrier.wait()
        intent = {
            "v": 1,
            "ts": NOW,
            "event": "intent",
            "order_ref": f"tb-{n}",
            "role": "entry",
            "session": session_of(NOW),
            "mode": "live",
            "symbol": "SPY",
        }
        results.append(mine.reserve_entry(NOW, "live", intent).allowed)

    threads = [threading.Thread(target=try_entry, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [False, False, False, True]
    assert len(OrderJournal(loaded.logs_dir).read_events()) == 1
    assert [r.rule for r in ladder.check_entry(NOW, "live").refusals] == ["entry_limit"]


def _live(pnl: int, at: timedelta, trade_id: str):  # type: ignore[no-untyped-def]
    from tests.factories import trade

    return trade(pnl, exit_time=NOW + at, mode="live", trade_id=trade_id)


def test_simultaneous_loss_and_win_after_two_losses_downgrade_at_that_tick(loaded) -> None:  # type: ignore[no-untyped-def]
    """Issue 23: two losses, then a loss and a win exiting in the same second (the loop
    journals the win first). Three losses in a row in one order of the tie: the streak reaches
    three and the downgrade fires at the tick that journals the pair, with the losing trades in
    its record in the canonical order."""
    ladder = _to_proof(loaded)
    first, second = _live(-10, timedelta(hours=-3), "L1"), _live(-12, timedelta(hours=-2), "L2")
    win = _live(23, timedelta(hours=-1), "A-SPY")  # its id sorts before the loss's
    loss = _live(-31, timedelta(hours=-1), "B-QQQ")
    for t in (first, second):
        _journal(loaded, [t])
        assert ladder.on_tick(NOW).transition is None
    _journal(loaded, [win])  # the win of the pair is journaled (and checked) first
    assert ladder.on_tick(NOW).transition is None
    _journal(loaded, [loss])
    result = ladder.on_tick(NOW)
    assert result.transition is not None, "the tied win must not hide the third loss"
    d = result.transition
    assert (d.from_phase, d.to_phase) == ("proof", "experience")
    assert d.failures == ("3 consecutive losses (limit 3), reached 3 at B-QQQ",)
    assert d.inputs is not None
    run = d.inputs["consecutive_losses"]
    assert run["limit"] == 3
    assert [t["trade_id"] for t in run["trades"]] == ["L1", "L2", "B-QQQ"]
    assert [Decimal(t["pnl"]) for t in run["trades"]] == [-10, -12, -31]
    assert d.metrics["consecutive_losses"] == 1  # as the trades stand: the tied loss may be last
    stored = _history_lines(loaded)[-1]
    assert stored["inputs"] == dict(d.inputs)  # the record holds exactly what was decided on


def test_a_batch_with_the_tied_pair_downgrades_too(loaded) -> None:  # type: ignore[no-untyped-def]
    """The same trades adopted in one batch (after a restart): one check after all of them
    still finds the run, since the rule is judged at every trade of the window."""
    ladder = _to_proof(loaded)
    _journal(
        loaded,
        [
            _live(-10, timedelta(hours=-3), "L1"),
            _live(-12, timedelta(hours=-2), "L2"),
            _live(23, timedelta(hours=-1), "A-SPY"),
            _live(-31, timedelta(hours=-1), "B-QQQ"),
            _live(40, timedelta(minutes=-30), "W2"),  # and a later win
        ],
    )
    result = ladder.on_tick(NOW)
    assert result.transition is not None
    assert result.transition.inputs is not None
    run = result.transition.inputs["consecutive_losses"]
    assert [t["trade_id"] for t in run["trades"]] == ["L1", "L2", "B-QQQ"]


def test_a_downgrade_record_is_always_readable_back(loaded) -> None:  # type: ignore[no-untyped-def]
    """Whatever its reasons hold, a downgrade is written so the history can be read back (an
    unreadable history would refuse every entry): texts are clipped to what a record may hold,
    and the inputs are plain JSON that the strict reader accepts."""
    from tradebot.books.ladder.evaluation import transition_from
    from tradebot.core.phase_history import PhaseTransition
    from tradebot.core.validation import MAX_TEXT

    ladder = _to_proof(loaded)
    snap = ladder.snapshot(NOW)
    assert snap.evaluation is not None
    long = "x" * (MAX_TEXT + 500)
    made = transition_from(
        snap.evaluation, NOW, to="experience", trigger="auto_downgrade", passed=False,
        failures=[long], operator="tradebot", reason=long,
        inputs={"daily_loss": {"equity": Decimal("9.5"), "at": NOW, "positions": [()]}},
    )  # fmt: skip
    assert len(made.reason or "") == MAX_TEXT and made.failures[0].endswith("…")
    ladder.records.history.append(made.as_record())
    (last,) = [t for t in ladder.records.read_history().transitions if t.trigger != "advance"]
    assert last.inputs == {"daily_loss": {"equity": "9.5", "at": "2025-09-02T15:00:00Z",
                                          "positions": [[]]}}  # fmt: skip
    assert PhaseTransition.from_record(made.as_record()) == made


@pytest.mark.parametrize(
    ("inputs", "problem"),
    [
        ("3 losses", "inputs must be an object"),
        ({"a": {"b": {"c": {"d": {"e": 1}}}}}, "nested deeper than 4"),
        ({"a": "x" * 2001}, "longer than 2000"),
    ],
)
def test_a_damaged_downgrade_inputs_is_named(loaded, inputs, problem) -> None:  # type: ignore[no-untyped-def]
    from tests.phase_helpers import transition
    from tradebot.errors import CorruptRecordError

    record = transition("experience", NOW, frm="experience", trigger="manual_override")
    line = {**record._replace(to_phase="proof").as_record(), "inputs": inputs}
    JsonlFile(loaded.logs_dir / "phase" / "phase-history.jsonl").append(line)
    with pytest.raises(CorruptRecordError, match=problem) as caught:
        PhaseLadder(loaded).records.read_history()
    assert "phase-history.jsonl:1" in caught.value.message
