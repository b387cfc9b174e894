"""`phase/session-metrics.jsonl`: one line per finished session, written when the loop sees it
close (or, after downtime, once the day has changed)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from tradebot.books.ladder.evaluation import LadderReader
from tradebot.core.metrics import TradeSeries, summarize
from tradebot.core.phase_history import (
    PhaseTransition,
)
from tradebot.core.trades import PhaseName, session_of


class SessionRecords(LadderReader):
    """Closed sessions written down for the operator and the ladder replay."""

    def close_sessions(self, now: datetime, *, closed: date | None = None) -> int:
        """Append a `session-metrics.jsonl` line for each finished session not yet recorded.

        A session is finished once the day has changed, or when the caller saw it close
        (`closed`: the loop at the session's close, so the last session of a run that stops
        there, a backtest's included, has its line)."""
        today = session_of(now)
        last = today - timedelta(days=1)
        if closed is not None and closed > last:
            last = closed
        if self._sessions_closed_on == last:
            return 0  # finished sessions only change when the day does or one closes
        with self.records.session_metrics.locked() as locked:
            done = {str(r.get("session")) for r in locked.read().records}
            history = self._read_history().transitions
            contents = self.trades.read()
            by_session: dict[str, list[Any]] = {}
            for t in contents.trades:
                if t.session <= last and t.session.isoformat() not in done:
                    by_session.setdefault(t.session.isoformat(), []).append(t)
            lines = []
            all_trades = TradeSeries.of(contents.trades)
            for key in sorted(by_session):
                day = by_session[key][0].session
                phase = _phase_at(history, day, self.cfg.initial)
                counted = [
                    t for t in by_session[key] if t.mode in self.cfg.rules(phase).counted_modes
                ]
                start = self._start_equity(all_trades, day)
                stats = summarize(counted, start or self.loaded.settings.risk.paper_equity)
                rec = stats.as_record()
                lines.append(
                    {
                        "v": 1,
                        "session": key,
                        "phase": phase,
                        "trades": stats.trades,
                        "wins": stats.wins,
                        "losses": stats.losses,
                        "win_rate": rec["win_rate"],
                        "avg_rr": rec["avg_rr"],
                        "pnl": stats.total_pnl,
                        "start_equity": start,
                        "end_equity": None if start is None else start + stats.total_pnl,
                    }
                )
            locked.append_many(lines)
        self._sessions_closed_on = last
        return len(lines)

    def _start_equity(self, trades: TradeSeries, day: Any) -> Decimal | None:
        recorded = self.state.start_of_day_equity(day)
        if recorded is not None:
            return recorded.amount
        if self.loaded.settings.broker.kind == "sim":
            from tradebot.books.equity import sim_equity

            return sim_equity(self.loaded.settings.risk.paper_equity, trades, before=day)
        return None


def _phase_at(history: list[PhaseTransition], day: Any, initial: PhaseName) -> PhaseName:
    phase = initial
    for t in history:
        if session_of(t.ts) <= day:
            phase = t.to_phase
    return phase
