"""The ladder replay: the real ladder over backtest trades, advanced by the simulated operator
as soon as it is eligible, read back session by session."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from tests.backtest.helpers import NOW, backtest, operated_ladder
from tests.engine.harness import config, entry_intents, orders
from tests.factories import trade
from tradebot.backtest.ladder import BacktestOperator, ladder_replay
from tradebot.backtest.plan import backtest_config
from tradebot.books.ladder import PhaseLadder
from tradebot.books.trade_journal import TradeJournal
from tradebot.core.sessions import sessions_between
from tradebot.core.trades import ClosedTrade, TradeMode

SESSIONS = sessions_between(date(2025, 3, 3), date(2025, 5, 30))


class Replay:
    """Feeds crafted trades to the backtest's ladder the way the loop does: each closed trade
    is journaled, the ladder's tick runs, then the simulated operator acts."""

    def __init__(self, root: Path) -> None:
        (root / "cfg").mkdir(parents=True)
        operator_config = config(root / "cfg", "", base="")
        self.loaded = backtest_config(operator_config, root / "out", ("SPY",), None)
        self.operator = BacktestOperator(ladder=None)  # type: ignore[arg-type]
        self.ladder = PhaseLadder(self.loaded, notify=self.operator.notify, cached=True)
        self.operator.ladder = self.ladder
        self.journal = TradeJournal(self.loaded.logs_dir)
        self.count = 0

    def close(self, session: date, pnl: int, mode: TradeMode = "sim", phase: str = "") -> None:
        self.count += 1
        exit_time = datetime(session.year, session.month, session.day, 15, tzinfo=UTC)
        exit_time += timedelta(minutes=self.count % 300)
        t: ClosedTrade = trade(pnl, exit_time=exit_time, mode=mode, trade_id=f"T{self.count}")
        self.journal.append(t)
        self.ladder.on_tick(exit_time)
        self.operator.act(exit_time)

    def report(self) -> dict[str, object]:
        return ladder_replay(self.ladder, self.operator, NOW, SESSIONS)


def test_eligible_on_the_exact_session_then_downgraded_after_three_losses(
    tmp_path: Path,
) -> None:
    replay = Replay(tmp_path)
    for i, day in enumerate(SESSIONS[:20]):
        replay.close(day, 100)  # one winner a session: the 20th profitable session is #20
        if i < 14:
            # Live trades do not count in experience (paper, sim): were these 14 losers
            # counted, the win rate would be 20/34 = 59 % < 60 % and nothing eligible.
            replay.close(day, -40, mode="live")
        if i == 18:
            steps = replay.report()["steps"]
            assert steps == []  # 19 sessions: not yet
    report = replay.report()
    steps = report["steps"]
    assert isinstance(steps, list)
    assert [(s["kind"], s["session"], s["session_number"]) for s in steps] == [
        ("eligible", SESSIONS[19], 20)
    ]
    assert steps[0]["from_phase"] == "experience" and steps[0]["to_phase"] == "proof"
    assert steps[0]["note"] == "advanced to proof"
    assert {c["name"]: c["met"] for c in steps[0]["criteria"]}["profitable_sessions"]

    # In proof (counted: live, sim) paper losers do not count: three of them change nothing.
    for _ in range(3):
        replay.close(SESSIONS[21], -40, mode="paper")
    assert len(replay.report()["steps"]) == 1  # type: ignore[arg-type]
    # Three counted losers in a row: downgraded at the third, in that session.
    replay.close(SESSIONS[22], -40)
    replay.close(SESSIONS[22], -40)
    assert len(replay.report()["steps"]) == 1  # type: ignore[arg-type]
    replay.close(SESSIONS[23], -40)
    report = replay.report()
    steps = report["steps"]
    assert isinstance(steps, list) and len(steps) == 2
    down = steps[1]
    assert (down["kind"], down["session"], down["session_number"]) == (
        "auto_downgrade",
        SESSIONS[23],
        24,
    )
    assert (down["from_phase"], down["to_phase"]) == ("proof", "experience")
    assert any("3 consecutive losses" in r for r in down["reasons"])
    end = report["end"]
    assert isinstance(end, dict)
    assert end["phase"] == "experience" and end["next_phase"] == "proof"
    assert report["counted_modes"] == {
        "experience": ["paper", "sim"],
        "proof": ["live", "sim"],
        "trial": ["live", "sim"],
        "scaling": ["live", "sim"],
    }


LAX = """
[phase.experience]
min_profitable_sessions = 1
min_trades = 1
min_win_rate_pct = 0
min_avg_rr = 0
"""


def test_the_loop_obeys_each_phase_the_operator_advances_to(tmp_path: Path) -> None:
    (tmp_path / "cfg").mkdir()
    loaded = config(
        tmp_path / "cfg", LAX, base='[broker.sim]\nseed = 7\n[trading]\nsymbols = ["SPY"]\n'
    )
    result = backtest(loaded, tmp_path / "out", start=date(2025, 7, 1), sessions=3)
    eligible = result.operator.eligible
    assert eligible and eligible[0].phase == "experience" and eligible[0].advanced
    advanced_at = eligible[0].at
    # Proof allows one entry per session (an entry cancelled unfilled does not use it up):
    # after the advance, at most one filled entry a session.
    out_config = result.plan.loaded
    filled = {r["order_ref"] for r in orders(out_config) if r["event"] == "fill"}
    after = [r for r in entry_intents(out_config) if r["ts"] > advanced_at.isoformat()[:19]]
    sessions = [r["session"] for r in after if r["phase"] == "proof" and r["order_ref"] in filled]
    assert sessions and len(sessions) == len(set(sessions))
    assert len(entry_intents(out_config)) > len(sessions)


def test_a_notice_the_advance_then_refuses_is_shown_not_dropped(tmp_path: Path) -> None:
    """The ladder sends its eligibility notice only when the advance would be granted (see
    test_engine_findings.py), but the journal can still change between the notice and the
    operator's step. The replay then shows the notice, not advanced, with the unmet criterion;
    it once showed nothing at all."""
    ladder, operator, journal = operated_ladder(tmp_path)
    day = datetime(2025, 7, 1, 15, tzinfo=UTC)
    for minutes in (0, 5):
        journal.append(trade(100, exit_time=day + timedelta(minutes=minutes), mode="sim",
                             entry_price="10", trade_id=f"T{minutes}"))  # fmt: skip
    now = day + timedelta(minutes=10)
    ladder.on_tick(now)
    assert [event for event, _ in operator.notices] == ["eligible"]
    # A loss lands in the journal before the operator acts: the drawdown is now 600 / 10,200.
    journal.append(trade(-600, exit_time=now, mode="sim", entry_price="10", trade_id="T10"))
    operator.act(now)
    assert len(operator.eligible) == 1
    seen = operator.eligible[0]
    assert (seen.phase, seen.next_phase, seen.advanced) == ("trial", "scaling", False)
    assert "max_drawdown" in seen.note and "not advanced" in seen.note
    steps = ladder_replay(ladder, operator, now, SESSIONS)["steps"]
    assert isinstance(steps, list) and steps[0]["note"] == seen.note
