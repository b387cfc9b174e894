"""The simulated market: underlying bars from a source (synthetic or CSV) and option quotes
modelled on them (`volatility`, `pricing`), or taken from real option quotes where the operator
has them (`option_quotes`, `backtest --options`). Shared by the simulated broker and the IB
Gateway simulator, so a rehearsal against either sees the same prices.

Everything is a function of (symbol, time): nothing here remembers what was asked before (but
how many option quotes were real and how many modelled), and nothing looks ahead — the
underlying's price at `t` is the close of the last bar completed by `t`, and the volatility at `t`
reads those bars and earlier ones only.

Why one module: every price is a function of (symbol, time) over one set of caches (bars,
volatility, listings, real quotes); split, the caches would be shared across files.
"""

from __future__ import annotations

import itertools
import math
import zlib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]

from tradebot.core.instruments import (
    DataType,
    OptionChainInfo,
    OptionContract,
    Quote,
    StockContract,
)
from tradebot.core.sessions import (
    DEFAULT_CALENDAR,
    previous_sessions,
    session_open_close,
    session_schedule,
    sessions_between,
    utc_datetime,
    utc_ns,
)
from tradebot.core.trades import Right, session_of
from tradebot.market import pricing
from tradebot.market.option_quotes import OptionQuoteBook
from tradebot.market.profiles import profile
from tradebot.market.volatility import (
    PricingParams,
    Realized,
    atm_vol,
    pricing_params,
    session_weight,
    smile_vol,
    trading_years,
    variance_fraction,
)

MINUTE = timedelta(minutes=1)
MINUTE_NS = 60_000_000_000
STRIKE_SPAN = 0.15  # strikes listed within ±15 % of the previous close
EXPIRY_HORIZON_DAYS = 45
DELAYED_BY = timedelta(minutes=15)  # what "delayed" market data lags by
SESSION_ARRAYS_KEPT = 128  # per-session price arrays kept (all symbols): memory stays flat
LISTINGS_KEPT = 64  # (symbol, day) listings kept: the loop asks for today's (~20 KB each)
SessionArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
SESSION_MINUTES = 390


class BarSource(Protocol):
    kind: str

    def describe(self) -> str: ...

    def symbols(self) -> list[str] | None: ...

    def has_session(self, symbol: str, session: date) -> bool: ...

    def session_bars(self, symbol: str, session: date) -> pd.DataFrame: ...


def day_volume_fraction(x: float) -> float:
    """Share of a session's volume traded by fraction `x` of it (the U-shape, integrated)."""
    x = min(1.0, max(0.0, x))
    return (x + 2.5 * ((2 * x - 1) ** 3 + 1) / 6) / (1 + 2.5 * 2 / 6)


def option_con_id(local_symbol: str) -> int:
    return 0x40000000 | (zlib.crc32(local_symbol.encode("ascii")) & 0x3FFFFFFF)


@dataclass
class QuoteCounts:
    """How many option quotes the market gave, from real quotes and from the model."""

    real: int = 0
    modelled: int = 0


@dataclass(frozen=True)
class SessionVariance:
    """A session's bars as cumulative squared 1-minute log returns (the first bar's open to
    close, then close to close), for the realized variance up to any moment."""

    starts: np.ndarray  # bar starts, UTC ns
    cum_sq: np.ndarray
    open_ns: int
    minutes: float

    def upto(self, t_ns: int, open_close: float) -> Realized:
        """The bars completed by `t_ns` (start + 1 minute ≤ t)."""
        count = int(np.searchsorted(self.starts, t_ns - MINUTE_NS, side="right"))
        if count == 0:
            return Realized()
        elapsed = (int(self.starts[count - 1]) + MINUTE_NS - self.open_ns) / (
            self.minutes * MINUTE_NS
        )
        weight = session_weight(elapsed, self.minutes, open_close)
        return Realized(float(self.cum_sq[count - 1]), weight)


class MarketModel:
    """Prices of underlyings and their options at any moment, from one bar source (and real
    option quotes, where `quotes` has them)."""

    def __init__(
        self,
        source: BarSource,
        calendar: str = DEFAULT_CALENDAR,
        params: PricingParams | None = None,
        quotes: OptionQuoteBook | None = None,
    ) -> None:
        self.source = source
        self.calendar = calendar
        self.params = params or pricing_params()
        self.quotes = quotes
        self.quote_counts = QuoteCounts()
        self._last_price: dict[tuple[str, datetime], float | None] = {}
        self._session_arrays: dict[tuple[str, date], SessionArrays] = {}
        self._quotes_at: datetime | None = None
        self._quotes: dict[tuple[int, str, str], Quote | None] = {}
        # Listings are a function of (symbol, day): computed once each (bounded).
        self._expiries: dict[tuple[str | None, date], list[date]] = {}
        self._strikes: dict[tuple[str, date], list[Decimal]] = {}
        self._expiry_sets: dict[tuple[str, date], frozenset[date]] = {}
        self._strike_sets: dict[tuple[str, date], frozenset[Decimal]] = {}
        self._session_variance: dict[tuple[str, date], SessionVariance] = {}
        self._atm: dict[tuple[str, datetime], float] = {}
        self._atm_at: dict[tuple[str, datetime], float] = {}
        self._clock: dict[tuple[date, date], tuple[int, int, float]] = {}
        self._closes: dict[date, datetime] = {}
        self._years: dict[tuple[datetime, date], tuple[float, float]] = {}
        self._sched = session_schedule(calendar)
        minutes = (self._sched.closes_ns - self._sched.opens_ns) / MINUTE_NS
        self._cum_sessions = np.cumsum(minutes / SESSION_MINUTES)

    def describe(self) -> str:
        return self.source.describe()

    def supports(self, symbol: str) -> bool:
        symbols = self.source.symbols()
        return symbols is None or symbol.upper() in symbols

    # -- underlying ----------------------------------------------------------------------------
    def stock(self, symbol: str) -> StockContract:
        prof = profile(symbol)
        return StockContract(symbol.upper(), con_id=prof.con_id)

    def session_bars(self, symbol: str, session: date) -> pd.DataFrame:
        return self.source.session_bars(symbol.upper(), session)

    def completed_bars(self, symbol: str, session: date, now: datetime) -> pd.DataFrame:
        """The session's bars whose minute has fully passed by `now`."""
        frame = self.session_bars(symbol, session)
        if frame.empty:
            return frame
        cutoff = pd.Timestamp(now - MINUTE).as_unit("ns").value
        count = int(np.searchsorted(utc_ns(frame.index), cutoff, side="right"))
        return frame.iloc[:count]

    def bars_between(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Completed RTH bars with start ≤ bar start and bar start + 1 min ≤ end."""
        days = sessions_between(session_of(start), session_of(end), self.calendar)
        parts = [self.completed_bars(symbol, d, end) for d in days]
        parts = [p for p in parts if not p.empty]
        if not parts:
            return self.session_bars(symbol, session_of(end)).iloc[0:0]
        frame = pd.concat(parts) if len(parts) > 1 else parts[0]
        lo = pd.Timestamp(start).as_unit("ns").value
        return frame.iloc[int(np.searchsorted(utc_ns(frame.index), lo, side="left")) :]

    def last_price(self, symbol: str, t: datetime) -> float | None:
        """Close of the last bar completed by `t` (the open before the first one completes)."""
        minute = floor_minute(t)
        key = (symbol, minute)
        cached = self._last_price.get(key)
        if cached is not None or key in self._last_price:
            return cached
        price = self._last_price_uncached(symbol, t)
        if t == minute:  # the price is the same for every t in this minute: cache it
            if len(self._last_price) > 8192:
                self._last_price.clear()
            self._last_price[key] = price
        return price

    def _last_price_uncached(self, symbol: str, t: datetime) -> float | None:
        session = session_of(t)
        ns = int(t.timestamp() * 1_000_000) * 1000
        for day in (session, *reversed(previous_sessions(session, 5, self.calendar))):
            starts, opens, _, _, closes = self._arrays(symbol, day)
            if len(starts) == 0:
                continue
            count = int(np.searchsorted(starts, ns - MINUTE_NS, side="right"))
            if count:
                return float(closes[count - 1])
            if starts[0] <= ns:
                return float(opens[0])
        return None

    def _arrays(self, symbol: str, day: date) -> SessionArrays:
        """(starts ns, open, high, low, close) of a session's bars, kept for recent sessions."""
        key = (symbol.upper(), day)
        arrays = self._session_arrays.get(key)
        if arrays is None:
            frame = self.session_bars(symbol, day)
            arrays = (
                utc_ns(frame.index),
                *(frame[c].to_numpy(dtype=np.float64) for c in ("open", "high", "low", "close")),
            )
            if len(self._session_arrays) > SESSION_ARRAYS_KEPT:
                self._session_arrays.clear()
            self._session_arrays[key] = arrays
        return arrays

    def minute_bar(self, symbol: str, minute_start: datetime) -> tuple[float, ...] | None:
        """(open, high, low, close) of the bar starting at `minute_start`, if there is one."""
        starts, opens, highs, lows, closes = self._arrays(symbol, session_of(minute_start))
        if len(starts) == 0:
            return None
        key = int(minute_start.timestamp() * 1_000_000) * 1000
        i = int(np.searchsorted(starts, key))
        if i >= len(starts) or starts[i] != key:
            return None
        return (float(opens[i]), float(highs[i]), float(lows[i]), float(closes[i]))

    def session_minutes(self, session: date) -> tuple[datetime, datetime]:
        return session_open_close(session, self.calendar)

    def stock_quote(self, symbol: str, t: datetime, data_type: DataType = "live") -> Quote | None:
        as_of = t - DELAYED_BY if data_type == "delayed" else t
        price = self.last_price(symbol, as_of)
        if price is None:
            return None
        last = Decimal(repr(round(price, 2)))
        half = Decimal("0.01")
        return Quote(
            bid=last - half,
            ask=last + half,
            last=last,
            time=as_of,
            data_type=data_type,
            volume=int(profile(symbol).daily_volume * self._day_fraction(as_of)),
            bid_size=100,
            ask_size=100,
        )

    # -- options -------------------------------------------------------------------------------
    def reference_price(self, symbol: str, day: date) -> float | None:
        """The previous session's close (today's open when there is none): strikes centre here."""
        for prev in reversed(previous_sessions(day, 5, self.calendar)):
            frame = self.session_bars(symbol, prev)
            if not frame.empty:
                return float(frame["close"].iat[-1])
        frame = self.session_bars(symbol, day)
        return None if frame.empty else float(frame["open"].iat[0])

    def expiries(self, day: date, symbol: str | None = None) -> list[date]:
        """Expiries from `day` on, always exchange sessions: every session for the index ETFs
        that list dailies (SPY, QQQ, IWM), else weekly — the last session of each week (Friday,
        or Thursday when Friday is a holiday). Cached per symbol and day."""
        key = (symbol.upper() if symbol else None, day)
        cached = self._expiries.get(key)
        if cached is None:
            if len(self._expiries) >= LISTINGS_KEPT:
                self._expiries.clear()
            cached = self._expiries[key] = self._expiries_uncached(day, symbol)
        return list(cached)

    def _expiries_uncached(self, day: date, symbol: str | None) -> list[date]:
        horizon = day + timedelta(days=EXPIRY_HORIZON_DAYS)
        days = sessions_between(day, horizon + timedelta(days=7), self.calendar)
        if symbol is not None and profile(symbol).daily_expiries:
            return [d for d in days if d <= horizon]
        return [
            d
            for d, nxt in itertools.pairwise(days)
            if d.isocalendar()[:2] != nxt.isocalendar()[:2] and d <= horizon
        ]

    def strikes(self, symbol: str, day: date) -> list[Decimal]:
        """Strikes listed on `day` (cached per symbol and day)."""
        key = (symbol.upper(), day)
        cached = self._strikes.get(key)
        if cached is None:
            if len(self._strikes) >= LISTINGS_KEPT:
                self._strikes.clear()
            cached = self._strikes[key] = self._strikes_uncached(symbol, day)
        return list(cached)

    def _strikes_uncached(self, symbol: str, day: date) -> list[Decimal]:
        ref = self.reference_price(symbol, day)
        if ref is None:
            return []
        step = profile(symbol).strike_step
        lo = math.floor(ref * (1 - STRIKE_SPAN) / float(step))
        hi = math.ceil(ref * (1 + STRIKE_SPAN) / float(step))
        return [Decimal(k) * step for k in range(max(lo, 1), hi + 1)]

    def chain(self, symbol: str, day: date) -> OptionChainInfo:
        return OptionChainInfo(
            symbol=symbol.upper(),
            trading_class=symbol.upper(),
            multiplier=100,
            expiries=tuple(self.expiries(day, symbol)),
            strikes=tuple(self.strikes(symbol, day)),
        )

    def option(
        self, symbol: str, expiry: date, strike: Decimal, right: Right, day: date
    ) -> OptionContract | None:
        """The listed option (qualified: conId and tick), or None when it does not exist."""
        symbol = symbol.upper()
        if not self.supports(symbol) or right not in ("C", "P"):
            return None
        listed_day = min(day, expiry)
        if expiry not in self._listed_expiries(listed_day, symbol) or strike not in (
            self._listed_strikes(symbol, listed_day)
        ):
            return None
        base = OptionContract(symbol, expiry, strike, right, trading_class=symbol)
        p = profile(symbol)
        return base.qualified(
            option_con_id(base.local_symbol), p.option_tick, ladder=p.option_ladder
        )

    def _listed_expiries(self, day: date, symbol: str) -> frozenset[date]:
        key = (symbol, day)
        found = self._expiry_sets.get(key)
        if found is None:
            if len(self._expiry_sets) >= LISTINGS_KEPT:
                self._expiry_sets.clear()
            found = self._expiry_sets[key] = frozenset(self.expiries(day, symbol))
        return found

    def _listed_strikes(self, symbol: str, day: date) -> frozenset[Decimal]:
        key = (symbol, day)
        found = self._strike_sets.get(key)
        if found is None:
            if len(self._strike_sets) >= LISTINGS_KEPT:
                self._strike_sets.clear()
            found = self._strike_sets[key] = frozenset(self.strikes(symbol, day))
        return found

    # -- option prices -------------------------------------------------------------------------
    def realized(self, symbol: str, t: datetime) -> Realized:
        """Squared 1-minute returns of the bars completed by `t`: today's so far and those of
        up to `lookback_sessions` earlier sessions, with the sessions of variance they cover."""
        symbol = symbol.upper()
        session = session_of(t)
        k = self.params.open_close
        t_ns = int(t.timestamp() * 1_000_000) * 1000
        total = self._variance_of(symbol, session).upto(t_ns, k)
        for prev in previous_sessions(session, self.params.lookback_sessions, self.calendar):
            total = total.plus(self._variance_of(symbol, prev).upto(t_ns, k))
        return total

    def atm_volatility(self, symbol: str, t: datetime) -> float:
        """The at-the-money implied volatility at `t` (the same for every t in a minute)."""
        vol = self._atm_at.get((symbol, t))  # a chain is priced at one moment
        if vol is not None:
            return vol
        key = (symbol.upper(), floor_minute(t))
        vol = self._atm.get(key)
        if vol is None:
            seen = self.realized(key[0], key[1])
            vol = atm_vol(
                seen.sum_sq, seen.weight, profile(key[0]).vol, self.params.premium(key[0])
            )
            if len(self._atm) > 50_000:
                self._atm.clear()
            self._atm[key] = vol
        if len(self._atm_at) > 10_000:
            self._atm_at.clear()
        self._atm_at[(symbol, t)] = vol
        return vol

    def years_to_expiry(self, t: datetime, expiry: date) -> tuple[float, float]:
        """(trading years, calendar years) from `t` to the close of `expiry`: what is left of
        today's variance plus one per later session up to the expiry (half days by their
        length), over 252; and the plain time, over 365 days. (0, 0) once expired."""
        key = (t, expiry)
        found = self._years.get(key)  # a chain is priced at one moment: computed once
        if found is not None:
            return found
        close = self.expiry_close(expiry)
        calendar_years = (close - t).total_seconds() / pricing.YEAR_SECONDS
        found = (0.0, 0.0)
        if calendar_years > 0:
            found = (trading_years(*self.clock_parts(t, expiry)), calendar_years)
        if len(self._years) > 10_000:
            self._years.clear()
        self._years[key] = found
        return found

    def clock_parts(self, t: datetime, expiry: date) -> tuple[float, float]:
        """(sessions of today's variance still to come, sessions after today to `expiry`)."""
        today = session_of(t)
        key = (today, expiry)
        found = self._clock.get(key)
        if found is None:
            found = self._clock[key] = self._clock_of(today, expiry)
        opens, closes, after = found
        if opens == closes:  # a day without a session
            return 0.0, after
        t_ns = int(t.timestamp() * 1_000_000) * 1000
        x = (t_ns - opens) / (closes - opens)
        minutes = (closes - opens) / MINUTE_NS
        left = (1.0 - variance_fraction(x, self.params.open_close)) * minutes / SESSION_MINUTES
        return left, after

    def _clock_of(self, today: date, expiry: date) -> tuple[int, int, float]:
        """(today's open and close in UTC ns — equal when today has no session —, sessions
        after today up to `expiry`, half days by their length)."""
        sched = self._sched
        day = np.datetime64(today, "D")
        i_exp = int(np.searchsorted(sched.sessions, np.datetime64(expiry, "D")))
        j = int(np.searchsorted(sched.sessions, day))
        opens = closes = 0
        if j < len(sched.sessions) and sched.sessions[j] == day:
            opens, closes = int(sched.opens_ns[j]), int(sched.closes_ns[j])
        else:
            j -= 1  # the sessions after a day without one start with the next session
        after = float(self._cum_sessions[i_exp] - self._cum_sessions[j]) if i_exp > j else 0.0
        if len(self._clock) > 10_000:
            self._clock.clear()
        return opens, closes, after

    def option_value(self, contract: OptionContract, spot: float, t: datetime) -> float:
        years, calendar_years = self.years_to_expiry(t, contract.expiry)
        strike = float(contract.strike)
        if years <= 0:
            return pricing.black_scholes(spot, strike, 0.0, 0.0, contract.right)
        atm = self.atm_volatility(contract.symbol, t)
        skew, smile = self.params.shape(contract.symbol)
        vol = smile_vol(atm, math.log(strike / spot), years, skew, smile, self.params.skew_term)
        return pricing.black_scholes(
            spot,
            strike,
            years,
            vol,
            contract.right,
            rate_years=calendar_years,
            rate=self.params.rate,
        )

    def option_bid_ask(
        self, contract: OptionContract, spot: float, t: datetime
    ) -> tuple[Decimal, Decimal]:
        """(bid, ask) at `t`: the real quote in force at `t` where there is one, else the
        model's around its fair value at `spot`. Counted in `quote_counts`."""
        real = self.quotes.at(contract, t) if self.quotes is not None else None
        if real is not None:
            self.quote_counts.real += 1
            return real.bid, real.ask
        self.quote_counts.modelled += 1
        fair = self.option_value(contract, spot, t)
        return pricing.bid_ask(fair, contract.grid, self.params.spread)

    def option_price_bounds(
        self, contract: OptionContract, session: date, t_ns: np.ndarray, spots: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
        """For points of one session (UTC ns, underlying prices): bounds of the floats
        `option_bid_ask` rounds onto the contract's ladder (`pricing.bid_ask_bounds`); None
        when this model cannot bound them (real option quotes: then every point is priced one
        by one). The time to expiry and the at-the-money volatility are the scalar code's at
        each point; the smile and Black–Scholes are computed over all points at once. Used only
        to search where an order cannot fill."""
        if self.quotes is not None:
            return None
        times = [utc_datetime(int(ns)) for ns in t_ns]
        symbol = contract.symbol
        parts = [self.years_to_expiry(t, contract.expiry) for t in times]
        years = np.array([p[0] for p in parts], dtype=np.float64)
        calendar_years = np.array([p[1] for p in parts], dtype=np.float64)
        atm = np.array([self.atm_volatility(symbol, t) for t in times], dtype=np.float64)
        strike = float(contract.strike)
        skew, smile = self.params.shape(symbol)
        live = years > 0
        with np.errstate(invalid="ignore", divide="ignore"):
            vol: npt.NDArray[np.float64] = smile_vol(
                atm,
                np.log(strike / spots.astype(np.float64)),
                np.where(live, years, 1.0).astype(np.float64),
                np.full_like(atm, skew),
                np.full_like(atm, smile),
                self.params.skew_term,
            )
        fair = pricing.black_scholes_exact(
            spots, strike, np.where(live, years, 0.0), np.where(live, vol, 0.0),
            contract.right, calendar_years, self.params.rate,
        )  # fmt: skip
        return pricing.bid_ask_bounds(fair, contract.grid, self.params.spread)

    def session_minute_bars(self, symbol: str, session: date) -> SessionArrays:
        """(starts ns, open, high, low, close) of a session's bars (shared: do not change)."""
        return self._arrays(symbol, session)

    def option_quote(
        self, contract: OptionContract, t: datetime, data_type: DataType = "live"
    ) -> Quote | None:
        """The option's quote at `t` (remembered for the moment `t`: the loop and the venue
        ask for the same contract several times at one moment)."""
        if t != self._quotes_at:
            self._quotes_at, self._quotes = t, {}
        key = (contract.con_id, contract.local_symbol, data_type)
        if key in self._quotes:
            return self._quotes[key]
        quote = self._quotes[key] = self._option_quote(contract, t, data_type)
        return quote

    def _option_quote(
        self, contract: OptionContract, t: datetime, data_type: DataType
    ) -> Quote | None:
        as_of = t - DELAYED_BY if data_type == "delayed" else t
        if as_of >= self.expiry_close(contract.expiry):
            return None
        spot = self.last_price(contract.symbol, as_of)
        real = self.quotes.at(contract, as_of) if self.quotes is not None else None
        if spot is None and real is None:
            return None
        volume = (
            0
            if spot is None
            else pricing.option_volume(
                profile(contract.symbol).option_atm_volume,
                spot,
                float(contract.strike),
                self._day_fraction(as_of),
            )
        )
        if real is not None:
            self.quote_counts.real += 1
            bid, ask = real.bid, real.ask
            bid_size = real.bid_size if real.bid_size is not None else 10 + volume // 500
            ask_size = real.ask_size if real.ask_size is not None else 10 + volume // 500
        else:
            assert spot is not None
            bid, ask = self.option_bid_ask(contract, spot, as_of)
            bid_size = ask_size = 10 + volume // 500
        return Quote(
            bid=bid,
            ask=ask,
            last=contract.grid.round((bid + ask) / 2) if bid > 0 else ask,
            time=as_of,
            data_type=data_type,
            volume=volume,
            bid_size=bid_size if bid > 0 else 0,
            ask_size=ask_size,
        )

    def expiry_close(self, expiry: date) -> datetime:
        close = self._closes.get(expiry)
        if close is None:
            close = self._closes[expiry] = session_open_close(expiry, self.calendar)[1]
        return close

    def intrinsic(self, contract: OptionContract, t: datetime) -> Decimal:
        """Settlement value per share at expiry, from the underlying's last price by `t`."""
        spot = self.last_price(contract.symbol, t)
        if spot is None:
            return Decimal(0)
        s = Decimal(repr(round(spot, 2)))
        value = s - contract.strike if contract.right == "C" else contract.strike - s
        return max(Decimal(0), value)

    def _variance_of(self, symbol: str, day: date) -> SessionVariance:
        key = (symbol, day)
        found = self._session_variance.get(key)
        if found is not None:
            return found
        starts, opens, _, _, closes = self._arrays(symbol, day)
        if len(starts):
            prev = np.concatenate((opens[:1], closes[:-1]))
            cum_sq = np.cumsum(np.log(closes / prev) ** 2)
        else:
            cum_sq = np.zeros(0)
        try:
            open_t, close_t = session_open_close(day, self.calendar)
            open_ns = int(open_t.timestamp()) * 1_000_000_000
            minutes = (close_t - open_t).total_seconds() / 60
        except ValueError:  # not a session: no bars either
            open_ns, minutes = 0, float(SESSION_MINUTES)
        found = SessionVariance(starts, cum_sq, open_ns, minutes)
        if len(self._session_variance) > SESSION_ARRAYS_KEPT:
            self._session_variance.clear()
        self._session_variance[key] = found
        return found

    def _day_fraction(self, t: datetime) -> float:
        session = session_of(t)
        try:
            opens, closes = session_open_close(session, self.calendar)
        except ValueError:
            return 0.0
        if t <= opens:
            return 0.0
        span = (closes - opens).total_seconds()
        return day_volume_fraction(min(1.0, (t - opens).total_seconds() / span))


def floor_minute(t: datetime) -> datetime:
    t = t.astimezone(UTC)
    return t.replace(second=0, microsecond=0)
