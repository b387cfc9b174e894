"""The phase ladder's rules (spec §3) as pure functions of trades, history, config and `now`.

Nothing here reads a file or the clock: the service (`tradebot.books.ladder`) gathers the inputs
and acts on the verdicts.

Why one module: the spec's ladder rules (§3) as one list of pure functions — criteria, limits,
downgrade watch, entry decision — read side by side against the spec.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Literal

from tradebot.core.guards import DayLoss, pct_text
from tradebot.core.market_time import market_datetime
from tradebot.core.metrics import (
    TradeSeries,
    TradeStats,
    losing_streak,
    rolling_win_rate_low,
    summarize,
)
from tradebot.core.orders import OrderEvent, session_entries
from tradebot.core.phase_history import (
    PhaseTransition,
    current_phase,
    next_phase,
    previous_phase,
)
from tradebot.core.settings import PhaseRulesSettings, PhaseSettings, ScalingRulesSettings
from tradebot.core.trades import PhaseName, session_of
from tradebot.core.validation import in_future

HUNDRED = Decimal(100)
Unit = Literal["count", "percent", "ratio"]


@dataclass(frozen=True)
class Criterion:
    """One advancement criterion: required / actual / met."""

    name: str
    op: Literal[">=", "<"]
    required: Decimal
    actual: Decimal | None
    met: bool
    unit: Unit
    note: str = ""  # how the actual is measured, when it needs saying (the drawdown's anchor)

    def describe(self) -> str:
        """E.g. 'win_rate 57.9 % (needs >= 60.0 %)'; never '60.0 % (needs >= 60.0 %)' for an
        unmet 59.96 %: a number shown beside its threshold gets the digits to differ."""
        shown = _show(self.actual, self.unit, against=self.required)
        note = f"; {self.note}" if self.note else ""
        return f"{self.name} {shown} (needs {self.op} {_show(self.required, self.unit)}{note})"

    def as_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "op": self.op,
            "required": _num(self.required),
            "actual": _num(self.actual),
            "met": self.met,
            "unit": self.unit,
            "note": self.note,
        }


def _show(value: Decimal | None, unit: Unit, *, against: Decimal | None = None) -> str:
    """A value for people; with `against` (a threshold it is compared with), percents and
    ratios get as many digits as it takes not to read the same as the threshold."""
    if value is None:
        return "n/a"
    if not value.is_finite():
        return "∞"
    if unit == "count":
        return str(int(value))
    if unit == "percent":
        if against is not None and against.is_finite():
            return pct_text(value, against, places=1)
        return f"{value.quantize(Decimal('0.1'))} %"
    if against is not None and against.is_finite():
        return pct_text(value, against, places=2).removesuffix(" %")
    return str(value.quantize(Decimal("0.01")))


def _num(value: Decimal | None) -> str | None:
    if value is None:
        return None
    if not value.is_finite() or value == value.to_integral_value():
        return str(value) if not value.is_finite() else str(int(value))
    return str(value.quantize(Decimal("0.0001")))


@dataclass(frozen=True)
class WatchItem:
    """A downgrade trigger and how close it is."""

    name: str
    threshold: Decimal
    actual: Decimal | None  # where it stands now
    active: bool
    triggered: bool
    note: str = ""
    # What a downgrade on this trigger used, to recompute it by hand (None: nothing to show):
    # the trades of a losing run or of a rolling window, the daily loss's equity and marks.
    inputs: dict[str, Any] | None = None

    def as_record(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "threshold": _num(self.threshold),
            "actual": _num(self.actual),
            "active": self.active,
            "triggered": self.triggered,
            "note": self.note,
            "inputs": self.inputs,
        }


@dataclass(frozen=True)
class Limits:
    live_allowed: bool
    max_entries_per_session: int | None  # None = unlimited
    entries_this_session: int
    position_cap_usd: Decimal | None  # None when it depends on an unknown equity
    # Entries of this session that ended (cancelled, rejected, not sent) without any fill: they
    # did not happen, so they are not counted above; shown so the count can be checked.
    entries_cancelled_unfilled: int = 0

    def as_record(self) -> dict[str, Any]:
        return {
            "live_allowed": self.live_allowed,
            "max_entries_per_session": self.max_entries_per_session,
            "entries_this_session": self.entries_this_session,
            "entries_cancelled_unfilled": self.entries_cancelled_unfilled,
            "position_cap_usd": self.position_cap_usd,
        }

    def entries_text(self) -> str:
        """E.g. "0 of 1 (1 cancelled unfilled, not counted)"."""
        limit = self.max_entries_per_session
        if limit:
            text = f"{self.entries_this_session} of {limit}"
        else:
            text = f"{self.entries_this_session} (unlimited)"
        n = self.entries_cancelled_unfilled
        if n:
            text += f" ({n} cancelled unfilled, not counted)"
        return text


@dataclass(frozen=True)
class PhaseEvaluation:
    """Everything `phase status`, `risk check` and the loop need to know about the ladder."""

    phase: PhaseName
    next_phase: PhaseName | None
    since: datetime | None  # when the current phase (and its metrics window) began
    session: date  # the exchange session `now` belongs to
    counted_modes: tuple[str, ...]
    stats: TradeStats
    criteria: list[Criterion]
    eligible: bool
    downgrade_reasons: list[str]
    watch: list[WatchItem]
    limits: Limits
    downgraded_this_session: bool
    warnings: list[str] = field(default_factory=list)
    # Records dated after `now` (beyond FUTURE_TOLERANCE): the clock or a file cannot be
    # trusted, so no new entry is allowed. One line per problem, also in `warnings`.
    future_records: list[str] = field(default_factory=list)
    # The ladder's drawdown: the window's closed-trade curve starts at `drawdown_base` (None:
    # unknown), described by `drawdown_anchor`.
    drawdown_base: Decimal | None = None
    drawdown_anchor: str = ""

    @property
    def unmet(self) -> list[Criterion]:
        return [c for c in self.criteria if not c.met]


@dataclass(frozen=True)
class Refusal:
    """A rule that said no, with its numbers."""

    rule: str
    message: str

    def as_record(self) -> dict[str, str]:
        return {"rule": self.rule, "message": self.message}


@dataclass(frozen=True)
class EntryDecision:
    allowed: bool
    refusals: list[Refusal]
    position_cap_usd: Decimal | None


def metrics_record(stats: TradeStats) -> dict[str, Any]:
    """The §3 metrics as stored in a phase-history record."""
    rec = stats.as_record()
    keys = (
        "trades",
        "wins",
        "losses",
        "sessions",
        "profitable_sessions",
        "losing_sessions",
        "win_rate",
        "avg_rr",
        "total_pnl",
        "consecutive_losses",
        "max_drawdown_pct",
        "expectancy_r",
    )
    return {k: rec[k] for k in keys}


def evaluate_criteria(
    rules: PhaseRulesSettings, stats: TradeStats, drawdown_anchor: str = ""
) -> list[Criterion]:
    """Every criterion to leave `rules`' phase upward (thresholds of 0 are not criteria)."""
    out: list[Criterion] = []

    def at_least(name: str, required: Decimal, actual: Decimal | None, unit: Unit) -> None:
        if required > 0:
            met = actual is not None and actual >= required
            out.append(Criterion(name, ">=", required, actual, met, unit))

    at_least("sessions", Decimal(rules.min_sessions), Decimal(stats.sessions), "count")
    at_least(
        "profitable_sessions",
        Decimal(rules.min_profitable_sessions),
        Decimal(stats.profitable_sessions),
        "count",
    )
    at_least("trades", Decimal(rules.min_trades), Decimal(stats.trades), "count")
    win_pct = None if stats.win_rate is None else stats.win_rate * HUNDRED
    at_least("win_rate", rules.min_win_rate_pct, win_pct, "percent")
    at_least("avg_rr", rules.min_avg_rr, stats.avg_rr, "ratio")
    if rules.max_drawdown_pct > 0:
        actual = stats.max_drawdown_pct if stats.trades else None
        met = actual is not None and actual < rules.max_drawdown_pct
        out.append(
            Criterion(
                "max_drawdown",
                "<",
                rules.max_drawdown_pct,
                actual,
                met,
                "percent",
                drawdown_anchor,
            )
        )
    return out


def scaling_cap(
    rules: ScalingRulesSettings, stats: TradeStats, equity: Decimal | None
) -> Decimal | None:
    """min(cap_max, cap_equity_pct % of equity, base + step × floor(n / k)); None if equity unknown.

    n = profitable sessions − losing sessions since entering scaling, floored at 0.
    """
    n = max(0, stats.profitable_sessions - stats.losing_sessions)
    graduated = rules.position_cap_usd + rules.cap_step_usd * (n // rules.cap_step_sessions)
    cap = min(rules.cap_max_usd, graduated)
    if equity is None:
        return None
    by_equity = (equity * rules.cap_equity_pct / HUNDRED).quantize(Decimal("0.01"), ROUND_FLOOR)
    return max(Decimal(0), min(cap, by_equity))


def downgrade_watch(
    phase: PhaseName,
    cfg: PhaseSettings,
    window: TradeSeries,
    stats: TradeStats,
    day_loss: DayLoss | None,
    max_daily_loss_pct: Decimal,
) -> list[WatchItem]:
    """The three automatic-downgrade triggers and where each stands (experience never drops).

    The two trade triggers are judged after every trade of the window in the canonical order
    (`tradebot.core.metrics.trade_order`), not only on the trades as they stand now: a run of
    losses or a rolling dip that a later (or simultaneous) win covered still counts, whatever
    the batches in which the trades were journaled."""
    dg = cfg.downgrade
    can_drop = previous_phase(phase) is not None
    never = "" if can_drop else f"{phase} never downgrades"
    run = losing_streak(window, dg.consecutive_losses) if can_drop else None
    streak_note = never
    streak_inputs = None
    if run is not None:
        losers = [window.trades[i] for i in run]
        streak_inputs = {
            "limit": dg.consecutive_losses,
            "trades": [
                {"trade_id": t.trade_id, "exit_time": t.exit_time, "pnl": t.pnl} for t in losers
            ],
        }
        if stats.consecutive_losses < dg.consecutive_losses:
            streak_note = f"reached {dg.consecutive_losses} at {losers[-1].trade_id}"
    items = [
        WatchItem(
            "consecutive_losses",
            Decimal(dg.consecutive_losses),
            Decimal(stats.consecutive_losses),
            active=can_drop,
            triggered=run is not None,
            note=streak_note,
            inputs=streak_inputs,
        )
    ]
    size = dg.rolling_trades
    enough = len(window) >= size
    rolling_pct = None
    if enough:
        last = window.pnl[-size:]
        rolling_pct = Decimal(sum(1 for p in last if p > 0)) / len(last) * HUNDRED
    low = (
        rolling_win_rate_low(window, size, dg.rolling_min_win_rate_pct / HUNDRED)
        if can_drop and enough
        else None
    )
    rolling_note = never or ("" if enough else f"inactive below {size} trades")
    rolling_inputs = None
    if low is not None:
        at, wins = low
        rolling_inputs = {
            "size": size,
            "min_win_rate_pct": dg.rolling_min_win_rate_pct,
            "wins": wins,
            "win_rate_pct": Decimal(wins) * HUNDRED / size,
            "first_trade": window.trades[at - size + 1].trade_id,
            "last_trade": window.trades[at].trade_id,
        }
        if at != len(window) - 1:
            rolling_note = f"fell below at {window.trades[at].trade_id}"
    items.append(
        WatchItem(
            "rolling_win_rate",
            dg.rolling_min_win_rate_pct,
            rolling_pct,
            active=can_drop and enough,
            triggered=low is not None,
            note=rolling_note,
            inputs=rolling_inputs,
        )
    )
    loss = day_loss.loss_pct if day_loss is not None else None
    items.append(
        WatchItem(
            "daily_loss",
            max_daily_loss_pct,
            loss,
            active=can_drop and loss is not None,
            triggered=can_drop and loss is not None and loss > max_daily_loss_pct,
            note=never or ("" if loss is not None else "start-of-day or current equity unknown"),
            inputs=None if day_loss is None else day_loss.as_record(),
        )
    )
    return items


def _reason(item: WatchItem, cfg: PhaseSettings, day_loss: DayLoss | None) -> str:
    if item.name == "consecutive_losses":
        limit = _show(item.threshold, "count")
        where = f", {item.note}" if item.note else ""
        return f"{limit} consecutive losses (limit {limit}){where}"
    if item.name == "rolling_win_rate":
        inputs = item.inputs or {}
        rate = inputs.get("win_rate_pct", item.actual)
        where = f" ({item.note})" if item.note else ""
        return (
            f"win rate over the last {cfg.downgrade.rolling_trades} trades "
            f"{_show(rate, 'percent', against=item.threshold)} < "
            f"{_show(item.threshold, 'percent')}{where}"
        )
    assert day_loss is not None
    return f"today's loss {day_loss.describe(item.threshold)} > {item.threshold} %"


def evaluate(
    *,
    history: Sequence[PhaseTransition],
    trades: TradeSeries,
    order_events: Sequence[OrderEvent],
    cfg: PhaseSettings,
    max_daily_loss_pct: Decimal,
    now: datetime,
    base_equity: Decimal | None,
    equity: Decimal | None,
    day_loss: DayLoss | None,
    drawdown_anchor: str = "",
) -> PhaseEvaluation:
    """Evaluate the ladder at `now`; `base_equity` anchors the window's drawdown curve (None =
    the drawdown % cannot be measured), described by `drawdown_anchor`."""
    phase = current_phase(list(history), cfg.initial)
    rules = cfg.rules(phase)
    since = history[-1].ts if history else None
    window = trades.window(rules.counted_modes, since)
    stats = summarize(window, base_equity)
    upward = next_phase(phase)
    if not drawdown_anchor:
        drawdown_anchor = "unknown" if base_equity is None else f"${base_equity:,.2f}"
    criteria = evaluate_criteria(rules, stats, drawdown_anchor) if upward is not None else []
    eligible = upward is not None and all(c.met for c in criteria)
    watch = downgrade_watch(phase, cfg, window, stats, day_loss, max_daily_loss_pct)
    session = session_of(now)
    warnings: list[str] = []
    if base_equity is None and rules.max_drawdown_pct > 0:
        warnings.append(
            "equity unknown: the max drawdown % cannot be measured, so that criterion is not met"
        )
    if phase == "scaling":
        cap = scaling_cap(cfg.scaling, stats, equity)
        if cap is None:
            warnings.append("equity unknown: the scaling position cap cannot be computed")
    else:
        cap = rules.position_cap_usd
    last = history[-1] if history else None
    downgraded_today = (
        last is not None and last.trigger == "auto_downgrade" and session_of(last.ts) == session
    )
    entries = session_entries(order_events, session)
    limits = Limits(
        live_allowed=rules.live_allowed,
        max_entries_per_session=rules.max_entries_per_session or None,
        entries_this_session=entries.counted,
        position_cap_usd=cap,
        entries_cancelled_unfilled=entries.cancelled_unfilled,
    )
    return PhaseEvaluation(
        phase=phase,
        next_phase=upward,
        since=since,
        session=session,
        counted_modes=tuple(rules.counted_modes),
        stats=stats,
        criteria=criteria,
        eligible=eligible,
        downgrade_reasons=[_reason(w, cfg, day_loss) for w in watch if w.triggered],
        watch=watch,
        limits=limits,
        downgraded_this_session=downgraded_today,
        warnings=warnings,
        drawdown_base=base_equity,
        drawdown_anchor=drawdown_anchor,
    )


def entry_decision(
    evaluation: PhaseEvaluation,
    *,
    mode: str,
    next_session_open: datetime | None = None,
) -> EntryDecision:
    """May the bot open a new position now, as far as the phase ladder is concerned?

    `mode` is the trading mode of the entry (`dry_run`, `paper`, `live`). Exits are never asked
    here: no phase rule ever blocks an exit, a stop, a flatten or `halt --flatten`.
    """
    ev = evaluation
    refusals: list[Refusal] = []
    if mode == "live" and not ev.limits.live_allowed:
        refusals.append(
            Refusal(
                "live_not_allowed",
                f"phase {ev.phase} trades paper only; live entries are refused until the ladder "
                "reaches proof",
            )
        )
    limit = ev.limits.max_entries_per_session
    if limit is not None and ev.limits.entries_this_session >= limit:
        when = (
            f"; next allowed at the next session open ({market_datetime(next_session_open)})"
            if next_session_open is not None
            else "; next allowed at the next session open"
        )
        refusals.append(
            Refusal(
                "entry_limit",
                f"phase {ev.phase} allows {limit} entr{'y' if limit == 1 else 'ies'} per session "
                f"and {ev.limits.entries_this_session} were made in the {ev.session} session"
                + (
                    f" ({ev.limits.entries_cancelled_unfilled} more cancelled unfilled, not "
                    "counted)"
                    if ev.limits.entries_cancelled_unfilled
                    else ""
                )
                + when,
            )
        )
    if ev.downgraded_this_session:
        refusals.append(
            Refusal(
                "downgraded_this_session",
                f"the ladder dropped to {ev.phase} during the {ev.session} session; new entries "
                "resume next session",
            )
        )
    if ev.downgrade_reasons:
        refusals.append(
            Refusal(
                "downgrade_pending",
                "a downgrade trigger holds (" + "; ".join(ev.downgrade_reasons) + ")",
            )
        )
    if ev.limits.position_cap_usd is None:
        refusals.append(
            Refusal("position_cap_unknown", "equity unknown, so the position cap is unknown")
        )
    if ev.future_records:
        more = f" (and {len(ev.future_records) - 1} more)" if len(ev.future_records) > 1 else ""
        refusals.append(
            Refusal(
                "future_dated_record",
                f"a record is dated after now, so the clock or the file cannot be trusted: "
                f"{ev.future_records[0]}{more}; no new entries until that is fixed",
            )
        )
    return EntryDecision(not refusals, refusals, ev.limits.position_cap_usd)


def future_transitions(history: Sequence[PhaseTransition], now: datetime) -> list[str]:
    """A line for each transition dated after `now` (beyond the tolerance)."""
    return [
        f"the {t.from_phase} -> {t.to_phase} transition {t.transition_id} is dated "
        f"{market_datetime(t.ts)}, after now ({market_datetime(now)})"
        for t in history
        if in_future(t.ts, now)
    ]
