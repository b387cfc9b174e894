"""Indicators (spec §4): float64, vectorised, TA-Lib's definitions where TA-Lib has one.

* `ema`: α = 2/(n+1), seeded with the simple mean of the first n values; first value at index
  n−1 (TA-Lib's EMA). `ema_last`/`rsi_last` give only the final value, in closed form (one dot
  product): a signal evaluated on the last completed bar needs nothing else.
* `rsi`: Wilder smoothing (α = 1/n) of gains and losses, seeded with the simple mean of the first
  n changes; first value at index n (TA-Lib's RSI). Where TA-Lib prints 0 for a market that did not
  move at all (average gain + loss = 0) we return NaN: the RSI is undefined there and every
  comparison with NaN is false, so strategies hold.
* `session_vwap`: typical price (H+L+C)/3 × volume, cumulated per session and reset at each
  session open.
* `hourly_bars`: session-anchored 60-minute bars (09:30–10:29, …, 15:30–close) labelled by their
  start; an early close yields a short last bar (13:00 close → 12:30–12:59).
* `prior_sessions_range`: highest high, lowest low and mean bar volume over the N sessions before
  the current one — the current session (and so the current bar) is never included.

Inputs are 1-D arrays or Series of finite numbers (NaN is refused rather than propagated); outputs
are float64 numpy arrays aligned with the input, NaN where the indicator is not yet defined. The
recursions run in pandas' compiled `ewm(adjust=False)` after manual seeding: no Python loop per bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date
from itertools import pairwise
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]

from tradebot.core.sessions import (
    BAR_COLUMNS,
    DEFAULT_CALENDAR,
    SESSION_COLUMN,
    DayArray,
    check_bars,
    session_positions,
    session_schedule,
    utc_ns,
)

FloatArray = npt.NDArray[np.float64]
END_COLUMN = "end"
HOUR_NS = 3_600_000_000_000  # the bar span of `hourly_bars`


def as_float_array(values: Any, name: str = "values") -> FloatArray:
    """`values` as a 1-D float64 array; ValueError on NaN/inf or a wrong shape."""
    out: FloatArray = np.asarray(values, dtype=np.float64)
    if out.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {out.shape}")
    if not np.isfinite(out).all():
        raise ValueError(f"{name} contains NaN or infinite values; fill or split the data first")
    return out


def _check_period(n: int) -> None:
    if n < 1:
        raise ValueError(f"indicator period must be at least 1, got {n}")


def _smooth(seeded: FloatArray, alpha: float) -> FloatArray:
    """y[0] = seeded[0]; y[t] = y[t-1] + alpha·(seeded[t] − y[t-1])  (compiled recursion)."""
    out: FloatArray = pd.Series(seeded).ewm(alpha=alpha, adjust=False).mean().to_numpy()
    return out


def ema(values: Any, n: int) -> FloatArray:
    """Exponential moving average (TA-Lib definition), same length as `values`; NaN before n−1."""
    _check_period(n)
    x = as_float_array(values)
    out = np.full(len(x), np.nan)
    if len(x) < n:
        return out
    seeded = x[n - 1 :].copy()
    seeded[0] = x[:n].mean()
    out[n - 1 :] = _smooth(seeded, 2.0 / (n + 1))
    return out


def rsi(close: Any, n: int = 14) -> FloatArray:
    """Wilder RSI in points 0–100 (TA-Lib definition), same length as `close`; NaN before n."""
    _check_period(n)
    x = as_float_array(close, "close")
    out = np.full(len(x), np.nan)
    if len(x) <= n:
        return out
    change = np.diff(x)
    gains = np.where(change > 0, change, 0.0)
    losses = np.where(change < 0, -change, 0.0)
    # Row 0 is the seed (mean of the first n changes); one compiled pass smooths both columns.
    seeded = np.empty((len(change) - n + 1, 2))
    seeded[0] = gains[:n].mean(), losses[:n].mean()
    seeded[1:, 0] = gains[n:]
    seeded[1:, 1] = losses[n:]
    smooth = pd.DataFrame(seeded).ewm(alpha=1.0 / n, adjust=False).mean().to_numpy()
    avg_gain, avg_loss = smooth[:, 0], smooth[:, 1]
    total = avg_gain + avg_loss
    with np.errstate(invalid="ignore", divide="ignore"):
        out[n:] = np.where(total > 0, 100.0 * avg_gain / total, np.nan)
    return out


def _last_smoothed(seed: float, tail: FloatArray, alpha: float) -> float:
    """The recursion's final value in closed form: β^m·seed + α·Σ β^(m−1−k)·tail[k], β = 1−α.

    One dot product instead of m sequential steps. The weights decay geometrically, so rounding
    stays at the recursion's level (tests hold it to TA-Lib within 1e-9) and weights underflowing
    to 0 after a few hundred bars drop only terms the recursion has also forgotten.
    """
    beta = 1.0 - alpha
    m = len(tail)
    key = (alpha, m)
    weights = _WEIGHTS.get(key)
    if weights is None:
        if len(_WEIGHTS) >= 4096:
            _WEIGHTS.clear()
        weights = _WEIGHTS[key] = beta ** np.arange(m - 1, -1, -1, dtype=np.float64)
    return float(beta**m * seed + alpha * np.dot(weights, tail))


# The weights of `_last_smoothed` per (alpha, length): the loop asks for the same few periods
# over a session's growing bars at every tick.
_WEIGHTS: dict[tuple[float, int], FloatArray] = {}


def ema_last(values: Any, n: int) -> float:
    """The last value of `ema(values, n)` (NaN with fewer than n values), without the series."""
    _check_period(n)
    x = as_float_array(values)
    if len(x) < n:
        return float("nan")
    return _last_smoothed(float(x[:n].mean()), x[n:], 2.0 / (n + 1))


def rsi_last(close: Any, n: int = 14) -> float:
    """The last value of `rsi(close, n)` in points 0–100 (NaN with ≤ n closes or no movement)."""
    _check_period(n)
    x = as_float_array(close, "close")
    if len(x) <= n:
        return float("nan")
    change = np.diff(x)
    gains = np.where(change > 0, change, 0.0)
    losses = np.where(change < 0, -change, 0.0)
    alpha = 1.0 / n
    avg_gain = _last_smoothed(float(gains[:n].mean()), gains[n:], alpha)
    avg_loss = _last_smoothed(float(losses[:n].mean()), losses[n:], alpha)
    total = avg_gain + avg_loss
    return 100.0 * avg_gain / total if total > 0 else float("nan")


def session_starts(session_labels: Any) -> npt.NDArray[np.intp]:
    """Indices where a new session begins in a time-ordered array of session labels."""
    labels = np.asarray(session_labels)
    if len(labels) == 0:
        return np.zeros(0, dtype=np.intp)
    changed = labels[1:] != labels[:-1]
    return np.concatenate(([0], np.flatnonzero(changed) + 1)).astype(np.intp)


def session_vwap(high: Any, low: Any, close: Any, volume: Any, session_labels: Any) -> FloatArray:
    """Session-anchored VWAP in price units: Σ((H+L+C)/3 × V) / ΣV since the session's first bar.

    NaN while the session has traded no volume. Bars must be in time order.
    """
    h = as_float_array(high, "high")
    lo = as_float_array(low, "low")
    c = as_float_array(close, "close")
    v = as_float_array(volume, "volume")
    labels = np.asarray(session_labels)
    if not len(h) == len(lo) == len(c) == len(v) == len(labels):
        raise ValueError("high, low, close, volume and session labels must have equal lengths")
    pv = (h + lo + c) / 3.0 * v
    out = np.empty(len(c))
    bounds = [*session_starts(labels).tolist(), len(c)]
    # Cumulating per session (not one global cumsum minus offsets) keeps every value exact to
    # the session's own rounding, however long the history.
    with np.errstate(invalid="ignore", divide="ignore"):
        for start, stop in pairwise(bounds):
            cum_v = np.cumsum(v[start:stop])
            out[start:stop] = np.where(cum_v > 0, np.cumsum(pv[start:stop]) / cum_v, np.nan)
    return out


@dataclass(frozen=True, eq=False)
class HourlyBars:
    """Session-anchored bars as parallel arrays: starts/ends in UTC epoch ns, session dates.

    The array form of `hourly_bars`' frame, for code that evaluates bars every tick and should not
    pay for building a DataFrame; `to_frame`/`from_frame` convert.
    """

    start_ns: npt.NDArray[np.int64]
    end_ns: npt.NDArray[np.int64]  # start + 60 min, or the session close for the last bar
    session: DayArray  # datetime64[D]
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray

    def __len__(self) -> int:
        return len(self.start_ns)

    def to_frame(self) -> pd.DataFrame:
        """DataFrame: open, high, low, close, volume, session, end; index = start (UTC)."""
        data: dict[str, Any] = {c: getattr(self, c) for c in BAR_COLUMNS}
        data[SESSION_COLUMN] = self.session.astype("datetime64[s]")
        data[END_COLUMN] = pd.DatetimeIndex(self.end_ns.view("M8[ns]"), tz=UTC)
        index = pd.DatetimeIndex(self.start_ns.view("M8[ns]"), tz=UTC)
        return pd.DataFrame(data, index=index, copy=False)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> HourlyBars:
        """From a frame with `hourly_bars`' columns (index = bar start, tz-aware)."""
        needed = (*BAR_COLUMNS, SESSION_COLUMN, END_COLUMN)
        missing = [c for c in needed if c not in frame.columns]
        if missing:
            raise ValueError(
                f"hourly bars lack {', '.join(missing)}: build them with hourly_bars()"
            )
        floats = {c: frame[c].to_numpy(dtype=np.float64) for c in BAR_COLUMNS}
        return cls(
            start_ns=utc_ns(frame.index),
            end_ns=utc_ns(frame[END_COLUMN]),
            session=as_session_days(frame[SESSION_COLUMN]),
            **floats,
        )

    @classmethod
    def concat(cls, parts: Sequence[HourlyBars]) -> HourlyBars:
        """The parts one after another (they must already be in time order)."""
        fields = ("start_ns", "end_ns", "session", *BAR_COLUMNS)
        joined = {f: np.concatenate([getattr(p, f) for p in parts]) for f in fields}
        return cls(**joined)


def hourly_arrays(minute_bars: pd.DataFrame, calendar: str = DEFAULT_CALENDAR) -> HourlyBars:
    """`hourly_bars` as arrays (no DataFrame is built)."""
    check_bars(minute_bars)
    span = HOUR_NS
    sched = session_schedule(calendar)
    times = utc_ns(minute_bars.index)
    pos = session_positions(times, sched)
    keep = pos >= 0
    cols = {c: minute_bars[c].to_numpy(dtype=np.float64) for c in BAR_COLUMNS}
    if not keep.all():
        times, pos = times[keep], pos[keep]
        cols = {c: v[keep] for c, v in cols.items()}
    if len(times) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return HourlyBars(empty, empty, sched.sessions[:0], **cols)
    opens = sched.opens_ns[pos]
    starts = opens + (times - opens) // span * span
    first = np.concatenate(([0], np.flatnonzero(np.diff(starts)) + 1))
    last = np.concatenate((first[1:] - 1, [len(times) - 1]))
    bar_pos = pos[first]
    return HourlyBars(
        start_ns=starts[first],
        end_ns=np.minimum(starts[first] + span, sched.closes_ns[bar_pos]),
        session=sched.sessions[bar_pos],
        open=cols["open"][first],
        high=np.maximum.reduceat(cols["high"], first),
        low=np.minimum.reduceat(cols["low"], first),
        close=cols["close"][last],
        volume=np.add.reduceat(cols["volume"], first),
    )


def hourly_bars(minute_bars: pd.DataFrame, calendar: str = DEFAULT_CALENDAR) -> pd.DataFrame:
    """Session-anchored 60-minute bars from 1-minute bars, labelled by start (UTC).

    Columns: open, high, low, close, volume, ``session`` (session date) and ``end`` (UTC end of
    the bar's span: start + 60 min, or the session close for the last bar). Bars outside RTH are
    dropped first. A bar built from an incomplete hour (the current hour, or missing minutes) is
    still returned: whether it is complete is decided by comparing ``end`` with the clock.
    """
    return hourly_arrays(minute_bars, calendar).to_frame()


def as_session_days(labels: Any) -> DayArray:
    """Session labels (dates, datetime64, Timestamps) as a datetime64[D] array."""
    if isinstance(labels, pd.Series | pd.Index):
        labels = labels.to_numpy()
    out: DayArray = np.asarray(labels).astype("datetime64[D]")
    return out


@dataclass(frozen=True)
class SessionRange:
    """Extremes and mean bar volume of the sessions before the current one (no look-ahead)."""

    first_session: date
    last_session: date
    sessions: int
    bars: int
    high: float
    low: float
    avg_volume: float  # mean volume per bar over those sessions (shares per bar)


def prior_sessions_range(
    high: Any, low: Any, volume: Any, session_labels: Any, current_session: date, n: int
) -> SessionRange | None:
    """Range of the last `n` sessions before `current_session` present in the bars; None if fewer.

    Bars must be in time order. Only bars whose session is strictly earlier than
    `current_session` are used, so neither the current bar nor anything later can leak in.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    labels = as_session_days(session_labels)
    if np.isnat(labels).any():
        raise ValueError("session labels contain NaT: filter the bars to RTH first")
    if (labels[1:] < labels[:-1]).any():
        raise ValueError("bars must be in time order (session labels decrease somewhere)")
    stop = int(np.searchsorted(labels, np.datetime64(current_session, "D"), side="left"))
    starts = session_starts(labels[:stop])
    if len(starts) < n:
        return None
    start = int(starts[-n])
    h = as_float_array(high, "high")[start:stop]
    lo = as_float_array(low, "low")[start:stop]
    v = as_float_array(volume, "volume")[start:stop]
    return SessionRange(
        first_session=labels[start].item(),
        last_session=labels[stop - 1].item(),
        sessions=n,
        bars=stop - start,
        high=float(h.max()),
        low=float(lo.min()),
        avg_volume=float(v.mean()),
    )
