"""Performance metrics over closed trades: pure functions, Decimal in and out.

Definitions (spec §3), used by `tradebot journal` and by the phase ladder alike:

* a win is `pnl > 0`; anything else (including break-even) is a loss;
* avg R:R = mean P&L of winners ÷ |mean P&L of losers| — realized, never the planned target/stop;
  infinite with winners and no losers, 0 with no winners, undefined with no trades;
* expectancy in R = mean(pnl / risk), each term rounded to 1e-9 R;
* profit factor = gross profit ÷ |gross loss| (infinite with no losing dollars);
* trades are in one canonical order (`trade_order`): exit time, then losers before winners at the
  same exit time, then trade id, so line order in the file never changes a number;
* max drawdown is measured on the closed-trade equity curve `base_equity + cumulative pnl` in that
  order: in dollars the largest peak − equity, in % the largest (peak − equity) / peak (the two
  may come from different dips); `base_equity` is the caller's anchor (see README);
* consecutive losses is the trailing run of losses; trades that exited at the same moment have no
  order between them, so their losses count at the end of the run before them and at the start of
  the run after them (a simultaneous win never hides a losing streak);
* a session is the exchange date of a trade's exit; a session whose P&L is exactly 0 is neither
  profitable nor losing (it is flat).

Why one module: every metric reads the same canonical trade order and the same `TradeSeries`
arrays, and the spec's definitions (§3) are checked here in one place against the README's.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal, localcontext
from itertools import accumulate
from typing import Any

from tradebot.core.trades import ClosedTrade

INFINITY = Decimal("Infinity")
ZERO = Decimal(0)


@dataclass(frozen=True)
class TradeStats:
    """Summary of a set of closed trades. Ratios are None when there are no trades."""

    trades: int
    wins: int
    losses: int
    win_rate: Decimal | None
    avg_win: Decimal | None
    avg_loss: Decimal | None
    avg_rr: Decimal | None
    expectancy_r: Decimal | None
    profit_factor: Decimal | None
    total_pnl: Decimal
    gross_profit: Decimal
    gross_loss: Decimal
    max_drawdown_usd: Decimal
    max_drawdown_pct: Decimal | None  # None when the base equity is unknown
    best_pnl: Decimal | None
    worst_pnl: Decimal | None
    sessions: int
    profitable_sessions: int
    losing_sessions: int
    consecutive_losses: int
    flat_sessions: int = 0  # sessions whose P&L is exactly 0: neither profitable nor losing

    def as_record(self, places: int = 4) -> dict[str, Any]:
        """JSON-ready dict: money exact, ratios rounded to `places`, all as decimal strings."""
        ratio_q = Decimal(1).scaleb(-places)

        def ratio(value: Decimal | None) -> str | None:
            if value is None:
                return None
            if not value.is_finite():
                return str(value)
            return str(value.quantize(ratio_q))

        return {
            "trades": self.trades,
            "wins": self.wins,
            "losses": self.losses,
            "win_rate": ratio(self.win_rate),
            "avg_win": _money(self.avg_win),
            "avg_loss": _money(self.avg_loss),
            "avg_rr": ratio(self.avg_rr),
            "expectancy_r": ratio(self.expectancy_r),
            "profit_factor": ratio(self.profit_factor),
            "total_pnl": _money(self.total_pnl),
            "gross_profit": _money(self.gross_profit),
            "gross_loss": _money(self.gross_loss),
            "max_drawdown_usd": _money(self.max_drawdown_usd),
            "max_drawdown_pct": ratio(self.max_drawdown_pct),
            "best_pnl": _money(self.best_pnl),
            "worst_pnl": _money(self.worst_pnl),
            "sessions": self.sessions,
            "profitable_sessions": self.profitable_sessions,
            "losing_sessions": self.losing_sessions,
            "flat_sessions": self.flat_sessions,
            "consecutive_losses": self.consecutive_losses,
        }


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(Decimal("0.01")))


MICROS = 1_000_000  # money inside metrics: integer micro-dollars, exact for ≤ 6 decimal places
R_UNITS = 1_000_000_000  # R multiples inside metrics: integer nano-R


def to_micros(amount: Decimal) -> int:
    """Exact integer micro-dollars (ClosedTrade guarantees at most 6 decimal places)."""
    return int(amount.scaleb(6))


def from_micros(micros: int) -> Decimal:
    """Back to dollars, exactly."""
    return Decimal(micros) / MICROS


@dataclass(frozen=True)
class TradeSeries:
    """Closed trades in exit order, with parallel integer columns for fast, exact metrics.

    Python-level Decimal arithmetic costs ~150 ns per operation; summing integers costs ~10 ns.
    Building the columns once per journal load keeps phase evaluation over 100,000 trades under
    50 ms while every result is still an exact Decimal.
    """

    trades: list[ClosedTrade]
    entry_us: list[int]
    pnl: list[int]
    r: list[int]
    session: list[int]
    mode: list[str]
    # A series never changes, so derived values (windows, sums, the parts of `summarize` that do
    # not depend on the base equity) are computed once per series. The long-running loop keeps
    # one series per journal version, which makes a tick's metrics cost independent of history.
    _memo: dict[Any, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def of(cls, trades: Iterable[ClosedTrade]) -> TradeSeries:
        """Build from trades in any order (put in the canonical order, `trade_order`)."""
        ordered = chronological(trades)
        return cls(
            trades=ordered,
            entry_us=[_epoch_us(t.entry_time) for t in ordered],
            pnl=[to_micros(t.pnl) for t in ordered],
            r=[int((t.pnl / t.risk).scaleb(9).to_integral_value()) for t in ordered],
            session=[t.session.toordinal() for t in ordered],
            mode=[t.mode for t in ordered],
        )

    def __len__(self) -> int:
        return len(self.trades)

    def extended(self, new: Sequence[ClosedTrade]) -> TradeSeries:
        """This series with `new` trades after it: a new series (this one never changes),
        built by appending columns, not from every trade again, when `new` comes after the
        last trade in the one order; otherwise sorted whole. The windows already taken are
        extended too, so a trade closing costs what it adds, not what the history holds."""
        if not new:
            return self
        tail = [*self.trades[-1:], *new]
        if chronological(tail) != tail:
            return TradeSeries.of([*self.trades, *new])
        added = TradeSeries.of(new)
        out = TradeSeries(
            trades=self.trades + added.trades,
            entry_us=self.entry_us + added.entry_us,
            pnl=self.pnl + added.pnl,
            r=self.r + added.r,
            session=self.session + added.session,
            mode=self.mode + added.mode,
        )
        for key, value in self._memo.items():
            if key[0] == "window" and isinstance(value, TradeSeries):
                _, wanted, since = key
                kept = [
                    t
                    for t, m, e in zip(added.trades, added.mode, added.entry_us, strict=True)
                    if m in wanted and (since is None or e >= since)
                ]
                if value is not self:
                    out._memo[key] = value.extended(kept)
                elif len(kept) == len(new):
                    out._memo[key] = out  # the window is every trade, still
        return out

    def take(self, indices: list[int]) -> TradeSeries:
        """The trades at `indices` (ascending), as a series."""
        if len(indices) == len(self.trades):
            return self
        return TradeSeries(
            trades=[self.trades[i] for i in indices],
            entry_us=[self.entry_us[i] for i in indices],
            pnl=[self.pnl[i] for i in indices],
            r=[self.r[i] for i in indices],
            session=[self.session[i] for i in indices],
            mode=[self.mode[i] for i in indices],
        )

    def window(self, modes: Iterable[str], opened_since: datetime | None) -> TradeSeries:
        """Trades in `modes` opened at or after `opened_since` (all when None)."""
        wanted = frozenset(modes)
        since = _epoch_us(opened_since) if opened_since is not None else None
        key = ("window", wanted, since)
        cached: TradeSeries | None = self._memo.get(key)
        if cached is None:
            cached = self._window(wanted, since)
            self._memo[key] = cached
        return cached

    def sum_pnl(
        self,
        modes: Iterable[str],
        *,
        session: int | None = None,
        before_session: int | None = None,
    ) -> int:
        """Micro-dollar P&L of trades in `modes`, of one session or before one (ordinals)."""
        wanted = frozenset(modes)
        key = ("sum", wanted, session, before_session)
        total: int | None = self._memo.get(key)
        if total is None:
            total = sum(
                p
                for p, m, s in zip(self.pnl, self.mode, self.session, strict=True)
                if m in wanted
                and (session is None or s == session)
                and (before_session is None or s < before_session)
            )
            self._memo[key] = total
        return total

    def _window(self, wanted: frozenset[str], since: int | None) -> TradeSeries:
        mode, entry = self.mode, self.entry_us
        mode, entry = self.mode, self.entry_us
        if since is None:
            indices = [i for i, m in enumerate(mode) if m in wanted]
        else:
            indices = [i for i, m in enumerate(mode) if m in wanted and entry[i] >= since]
        return self.take(indices)

    def tail(self, count: int) -> TradeSeries:
        """The last `count` trades."""
        n = len(self.trades)
        return self.take(list(range(max(0, n - count), n)))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _epoch_us(moment: datetime) -> int:
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def trade_order(trade: ClosedTrade) -> tuple[datetime, bool, str]:
    """The one order of closed trades: exit time, then losers before winners at the same exit
    time (a loss listed after a simultaneous win could hide a losing streak), then trade id.

    Every reader uses it: the ladder, `tradebot journal`, the backtest report, the phase
    history's downgrade inputs."""
    return (trade.exit_time, trade.pnl > 0, trade.trade_id)


def chronological(trades: Iterable[ClosedTrade]) -> list[ClosedTrade]:
    """Trades in the canonical order (`trade_order`): the one order every metric uses.

    An append-only journal is almost always in this order already; checking is much cheaper than
    sorting 100,000 trades, so sort only when needed (strictly increasing exit times have no
    ties, so they are already in the canonical order).
    """
    items = list(trades)
    times = [t.exit_time for t in items]
    if all(map(operator.lt, times, times[1:])):
        return items
    return sorted(items, key=trade_order)


def trailing_losses(series: TradeSeries) -> int:
    """The run of losses at the end of the canonical order ("consecutive losses now").

    Trades that exited at the same moment have no order between them: when the last such
    group mixes losses and wins, its losses may be the last trades, so they are the run.
    Walks back from the end only as far as the run goes."""
    trades, pnl = series.trades, series.pnl
    run = 0
    end = len(trades)
    while end:
        moment = trades[end - 1].exit_time
        start = end - 1
        while start and trades[start - 1].exit_time == moment:
            start -= 1
        losses = sum(1 for p in pnl[start:end] if p <= 0)
        run += losses
        if losses < end - start:  # a win in the group: the run cannot reach past it
            return run
        end = start
    return run


def losing_streak(series: TradeSeries, limit: int) -> list[int] | None:
    """The first run of `limit` consecutive losses along the canonical order, as the indices of
    its trades (in order); None when no run reaches `limit`.

    This is the consecutive-losses rule checked after every trade, whatever the batches the
    trades were journaled in. A group of trades that exited at the same moment counts its
    losses both at the end of the run before it and at the start of the run after it: with no
    order between simultaneous exits, a win among them hides neither."""
    if limit <= 0:
        return None
    key = ("streak", limit)
    if key in series._memo:
        cached: list[int] | None = series._memo[key]
        return cached
    trades, pnl = series.trades, series.pnl
    found: list[int] | None = None
    run: list[int] = []
    i, n = 0, len(trades)
    while i < n and found is None:
        moment = trades[i].exit_time
        j = i + 1
        while j < n and trades[j].exit_time == moment:
            j += 1
        losses = [k for k in range(i, j) if pnl[k] <= 0]
        for k in losses:
            run.append(k)
            if len(run) >= limit:
                found = run[-limit:]
                break
        if len(losses) < j - i:
            run = losses  # the group's losses may also be the first of the next run
        i = j
    series._memo[key] = found
    return found


def rolling_win_rate_low(series: TradeSeries, size: int, below: Decimal) -> tuple[int, int] | None:
    """The first trade (index) at which the win rate of the last `size` trades falls below
    `below` (a fraction), with the wins then; None when it never does (or fewer trades).

    The rolling rule checked after every trade. Losers come before winners at the same exit
    time (`trade_order`), so a simultaneous win can never lift the rate over a dip first."""
    if size <= 0 or len(series) < size:
        return None
    key = ("rolling", size, below)
    if key in series._memo:
        cached: tuple[int, int] | None = series._memo[key]
        return cached
    pnl = series.pnl
    # wins / size < below  ⇔  wins < below × size (exact with Decimal)
    limit = below * size
    wins = sum(1 for p in pnl[:size] if p > 0)
    found = (size - 1, wins) if wins < limit else None
    i = size
    while found is None and i < len(pnl):
        wins += (pnl[i] > 0) - (pnl[i - size] > 0)
        if wins < limit:
            found = (i, wins)
        i += 1
    series._memo[key] = found
    return found


def summarize(
    trades: TradeSeries | Iterable[ClosedTrade], base_equity: Decimal | None
) -> TradeStats:
    """Compute every metric; `base_equity` anchors the drawdown % (None: the % is unknown)."""
    series = trades if isinstance(trades, TradeSeries) else TradeSeries.of(trades)
    n = len(series)
    if n == 0:
        return _EMPTY
    core: _Core | None = series._memo.get("core")
    if core is None:
        core = _core(series)
        series._memo["core"] = core
    stats = core.by_base.get(base_equity)
    if stats is None:
        pct = None if base_equity is None else _drawdown_pct(core.episodes, to_micros(base_equity))
        stats = replace(core.stats, max_drawdown_pct=pct)
        if len(core.by_base) >= 64:  # a base per equity reading: keep a few
            core.by_base.clear()
        core.by_base[base_equity] = stats
    return stats


@dataclass(frozen=True)
class _Core:
    """What `summarize` computes without the base equity, and the drawdown episodes."""

    stats: TradeStats
    episodes: list[tuple[int, int]]  # (largest drop, cumulative P&L at its peak) per episode
    by_base: dict[Decimal | None, TradeStats] = field(default_factory=dict)  # the stats per base


def _core(series: TradeSeries) -> _Core:
    n = len(series)
    pnls = series.pnl
    win_pnls = [p for p in pnls if p > 0]
    wins = len(win_pnls)
    losses = n - wins
    total = sum(pnls)
    gross_profit = sum(win_pnls)
    gross_loss = total - gross_profit

    curve = list(accumulate(pnls, initial=0))
    max_dd, episodes = _drawdowns(curve)

    trailing = trailing_losses(series)

    # In exit order each session is one contiguous run: its P&L is the equity after its last
    # trade minus the equity before its first.
    ends = sorted({day: i for i, day in enumerate(series.session)}.values())
    starts = [0, *(e + 1 for e in ends[:-1])]
    session_pnls = [curve[e + 1] - curve[s] for s, e in zip(starts, ends, strict=True)]

    avg_win = from_micros(gross_profit) / wins if wins else None
    avg_loss = from_micros(gross_loss) / losses if losses else None
    stats = TradeStats(
        trades=n,
        wins=wins,
        losses=losses,
        win_rate=Decimal(wins) / n,
        avg_win=avg_win,
        avg_loss=avg_loss,
        # One division of exact integers: two rounded averages could turn an exact 1.5 into
        # 1.4999… and fail a criterion that is met.
        avg_rr=_exact_ratio(gross_profit * losses, wins * -gross_loss)
        if wins and losses and gross_loss
        else avg_rr(avg_win, avg_loss, n),
        expectancy_r=Decimal(sum(series.r)) / R_UNITS / n,
        profit_factor=_profit_factor(from_micros(gross_profit), from_micros(gross_loss), n),
        total_pnl=from_micros(total),
        gross_profit=from_micros(gross_profit),
        gross_loss=from_micros(gross_loss),
        max_drawdown_usd=from_micros(max_dd),
        max_drawdown_pct=None,
        best_pnl=from_micros(max(pnls)),
        worst_pnl=from_micros(min(pnls)),
        sessions=len(ends),
        profitable_sessions=sum(1 for p in session_pnls if p > 0),
        losing_sessions=sum(1 for p in session_pnls if p < 0),
        consecutive_losses=trailing,
        flat_sessions=sum(1 for p in session_pnls if p == 0),
    )
    return _Core(stats, episodes)


def _exact_ratio(numerator: int, denominator: int) -> Decimal:
    """numerator / denominator with enough precision that a comparison to a threshold is exact."""
    with localcontext() as ctx:
        ctx.prec = 60
        return Decimal(numerator) / Decimal(denominator)


def _drawdowns(curve: list[int]) -> tuple[int, list[tuple[int, int]]]:
    """The largest drop of a cumulative-P&L curve, and each drawdown episode as (its largest
    drop, the cumulative P&L at its peak).

    The peak is constant between new highs, so the worst drop ÷ peak of an episode is its largest
    drop over that peak, whatever the base equity added to the whole curve.
    """
    peak = curve[0]
    episode_drop = max_drop = 0
    episodes: list[tuple[int, int]] = []
    for equity in curve:
        if equity > peak:
            if episode_drop:
                episodes.append((episode_drop, peak))
            peak = equity
            episode_drop = 0
        elif peak - equity > episode_drop:
            episode_drop = peak - equity
            if episode_drop > max_drop:
                max_drop = episode_drop
    if episode_drop:
        episodes.append((episode_drop, peak))
    return max_drop, episodes


def _drawdown_pct(episodes: list[tuple[int, int]], base: int) -> Decimal:
    """The largest drop ÷ peak equity, in %, with the curve anchored at `base` (micro-dollars).

    Ratios are compared by cross-multiplying exact integers; a peak at or below zero equity
    counts only when nothing else does (as before: the first episode wins ties)."""
    best_drop, best_peak = 0, 1
    for drop, peak in episodes:
        equity = base + peak
        if equity > 0 and drop * best_peak > best_drop * equity:
            best_drop, best_peak = drop, equity
    if not best_drop:
        return ZERO
    return _exact_ratio(best_drop * 100, best_peak)


_EMPTY = TradeStats(
    trades=0,
    wins=0,
    losses=0,
    win_rate=None,
    avg_win=None,
    avg_loss=None,
    avg_rr=None,
    expectancy_r=None,
    profit_factor=None,
    total_pnl=ZERO,
    gross_profit=ZERO,
    gross_loss=ZERO,
    max_drawdown_usd=ZERO,
    max_drawdown_pct=ZERO,
    best_pnl=None,
    worst_pnl=None,
    sessions=0,
    profitable_sessions=0,
    losing_sessions=0,
    consecutive_losses=0,
)


def avg_rr(avg_win: Decimal | None, avg_loss: Decimal | None, trades: int) -> Decimal | None:
    """Realized reward:risk; infinite with no losers, 0 with no winners, None with no trades."""
    if trades == 0:
        return None
    if avg_win is None:
        return ZERO
    if avg_loss is None or avg_loss == 0:
        return INFINITY
    return avg_win / abs(avg_loss)


def _profit_factor(gross_profit: Decimal, gross_loss: Decimal, trades: int) -> Decimal | None:
    if trades == 0:
        return None
    if gross_loss == 0:
        return INFINITY if gross_profit > 0 else ZERO
    return gross_profit / abs(gross_loss)


def group_by(
    trades: Iterable[ClosedTrade], key: Callable[[ClosedTrade], str]
) -> dict[str, list[ClosedTrade]]:
    """Split trades into groups (by strategy, by symbol, ...), keys sorted."""
    groups: dict[str, list[ClosedTrade]] = {}
    for trade in trades:
        groups.setdefault(key(trade), []).append(trade)
    return dict(sorted(groups.items()))


def breakdown_records(trades: Sequence[ClosedTrade], base_equity: Decimal) -> dict[str, Any]:
    """`summary`, `by_strategy` and `by_symbol` as JSON-ready records (the journal's split)."""
    return {
        "summary": summarize(trades, base_equity).as_record(),
        "by_strategy": {
            k: summarize(v, base_equity).as_record()
            for k, v in group_by(trades, lambda t: t.strategy).items()
        },
        "by_symbol": {
            k: summarize(v, base_equity).as_record()
            for k, v in group_by(trades, lambda t: t.symbol).items()
        },
    }


def equity_curve(
    trades: Sequence[ClosedTrade], base_equity: Decimal
) -> list[tuple[datetime, Decimal]]:
    """(exit time, equity after the trade) for each trade, in chronological order."""
    equity = base_equity
    points = []
    for trade in chronological(trades):
        equity += trade.pnl
        points.append((trade.exit_time, equity))
    return points


def filter_trades(
    trades: Iterable[ClosedTrade],
    *,
    since: date | None = None,
    until: date | None = None,
    symbol: str | None = None,
    strategy: str | None = None,
    mode: str | None = None,
) -> list[ClosedTrade]:
    """Trades whose session lies in [since, until] and that match every given field."""
    symbol_u = symbol.upper() if symbol else None
    return [
        t
        for t in trades
        if (since is None or t.session >= since)
        and (until is None or t.session <= until)
        and (symbol_u is None or t.symbol.upper() == symbol_u)
        and (strategy is None or t.strategy == strategy)
        and (mode is None or t.mode == mode)
    ]
