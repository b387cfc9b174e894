"""Market data from IB: contracts, option chains, 1-minute bars, quotes.

* **Contracts** are qualified with `reqContractDetails` before use (unknown or ambiguous →
  None, never a guess). One request lists every strike of a (symbol, expiry, right), kept for
  the session: a moving spot needs no new requests. Prices go on the contract's *market rule*
  (`marketRuleIds` for SMART, then `reqMarketRule`, cached by rule id): `minTick` is only the
  smallest increment on any exchange (interactivebrokers.github.io/tws-api/
  minimum_increment.html), and a penny-program option at $3.40 priced on its 0.01 minTick is
  refused with error 110.
* **Chains** come from `reqSecDefOptParams` on the qualified underlying: the SMART listing with
  a 100 multiplier and the trading class with the nearest expiries (SPXW rather than SPX;
  the plain class when there are adjusted ones). Fetched once per session.
* **Bars**: completed regular-session 1-minute bars, kept in a cache per symbol and fetched
  incrementally (only the minutes after the last fetch; a gap of sessions in chunks of
  `CHUNK_SESSIONS`). A pacing violation (162) stops historical requests for a while (capped
  exponential backoff) instead of hammering IB; the caller gets a BrokerError meanwhile.
* **Quotes** are streaming subscriptions kept while they are used, within the account's
  market-data lines (`broker.market_data_lines`, IB's default 100, less 10 left for TWS): the
  least recently used line is closed when a new one is needed. A quote is timed by the
  ticker's own time (IB's lastTimestamp) and carries the data type IB actually sent (delayed
  and frozen are reported as such). After 1101 (connectivity restored, data lost) every
  subscription is requested again; the old values stay stale until then.

Why one module: contracts, chains, bars and quotes share the qualification cache, the market rules
and the pacing limiter; each kind of request is a short section that uses all three.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pandas as pd  # type: ignore[import-untyped]
from ib_async import BarDataList, ContractDetails, OptionChain, Ticker

from tradebot.brokers.base import BrokerError, OptionChainInfo
from tradebot.brokers.ibkr import codes, mapping
from tradebot.brokers.ibkr.connection import IbConnection, IbRequestError
from tradebot.core.instruments import OptionContract, Quote
from tradebot.core.market_time import market_clock
from tradebot.core.sessions import session_open_close, sessions_between
from tradebot.core.ticks import TickLadder
from tradebot.core.trades import session_of

log = logging.getLogger("tradebot.ibkr")

CHUNK_SESSIONS = 2  # 1-minute bars per request: IB answers 1–2 days quickly, 5+ slowly
PACING_FIRST = timedelta(seconds=30)
PACING_CAP = timedelta(minutes=10)
LINE_MAX_IDLE = timedelta(minutes=30)  # a quote line nobody asked for in this long is closed
KEEP_BARS = timedelta(days=40)  # more than the whale range (20 sessions) needs
MAX_THROTTLE_WAIT_S = 30.0  # never wait longer than this for the client's request queue


@dataclass
class _BarCache:
    frame: pd.DataFrame
    start: datetime  # everything from here ...
    end: datetime  # ... to here (exclusive of bars not yet complete then) has been fetched


@dataclass
class _Line:
    ticker: Ticker
    req_id: int
    used: datetime


class IbMarketData:
    def __init__(self, conn: IbConnection, wall: Callable[[], datetime] | None = None) -> None:
        self.conn = conn
        self.settings = conn.settings
        self.wall = wall or (lambda: datetime.now(UTC))
        self._stocks: dict[str, int] = {}  # symbol → conId
        self._chains: dict[tuple[str, date], OptionChainInfo] = {}
        self._listings: dict[tuple[str, date, str, str], _Listing] = {}
        self._listings_day: date | None = None
        self._bars: dict[str, _BarCache] = {}
        self._paced_until: datetime | None = None
        self._pacing_delay = PACING_FIRST
        self._lines: dict[int, _Line] = {}  # conId → subscription
        self._lines_ib: object | None = None  # the connection they belong to
        conn.on_data_lost.append(self.resubscribe)

    # -- contracts -----------------------------------------------------------------------------
    async def stock_con_id(self, symbol: str) -> int:
        known = self._stocks.get(symbol)
        if known:
            return known
        details = await self._details(mapping.stock(symbol), f"the contract of {symbol}")
        stocks = [d for d in details if d.contract is not None and d.contract.secType == "STK"]
        if len(stocks) != 1 or stocks[0].contract is None:
            raise BrokerError(
                f"IB does not list {symbol} as one stock on SMART/USD "
                f"({len(stocks)} match(es)); check trading.symbols"
            )
        con_id = int(stocks[0].contract.conId)
        self._stocks[symbol] = con_id
        return con_id

    async def _details(self, contract: object, what: str) -> list[ContractDetails]:
        try:
            found = await self.conn.call(
                what,
                lambda ib: ib.reqContractDetailsAsync(contract),  # type: ignore[arg-type]
            )
        except IbRequestError as exc:
            if exc.kind == "no_definition":
                return []
            raise
        return list(found)

    async def option_chain(self, symbol: str) -> OptionChainInfo:
        today = session_of(self.conn.now())
        cached = self._chains.get((symbol, today))
        if cached is not None:
            return cached
        con_id = await self.stock_con_id(symbol)
        chains: list[OptionChain] = list(
            await self.conn.call(
                f"the option chain of {symbol}",
                lambda ib: ib.reqSecDefOptParamsAsync(symbol, "", "STK", con_id),
            )
        )
        chain = choose_chain(symbol, chains, today)
        if chain is None:
            raise BrokerError(
                f"IB lists no SMART option chain with multiplier 100 for {symbol} "
                f"({len(chains)} listing(s)); no options to trade"
            )
        self._chains = {k: v for k, v in self._chains.items() if k[1] == today}
        self._chains[(symbol, today)] = chain
        return chain

    async def qualify(self, contracts: Sequence[OptionContract]) -> list[OptionContract | None]:
        """Each option as IB lists it (conId, minTick, trading class), or None when IB does not
        list exactly one. One request per (symbol, expiry, right) and session: IB answers a
        request without a strike with every strike of that expiry, which the session reuses."""
        today = session_of(self.conn.now())
        if self._listings_day != today:
            self._listings, self._listings_day = {}, today
        missing: dict[tuple[str, date, str, str], OptionContract] = {}
        for c in contracts:
            if _group(c) not in self._listings:
                missing.setdefault(_group(c), c)
        groups = list(missing)
        results = await asyncio.gather(
            *(self._listing(missing[g]) for g in groups), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        for group, result in zip(groups, results, strict=True):
            assert not isinstance(result, BaseException)
            self._listings[group] = result
        rules = {
            rule
            for c in contracts
            for found in [self._listings[_group(c)].get(c.strike) or []]
            if len(found) == 1
            for rule in [found[0][3]]
            if rule and rule not in self.conn.rules
        }
        for rule in sorted(rules):
            await self._market_rule(rule)
        out: list[OptionContract | None] = []
        for c in contracts:
            found = self._listings[_group(c)].get(c.strike)
            if found is None or len(found) != 1:
                if found:
                    log.warning(
                        "%s is ambiguous at IB (%d listings): not traded", c.label, len(found)
                    )
                out.append(None)
                continue
            con_id, tick, trading_class, rule = found[0]
            self.conn.ticks[con_id] = tick
            ladder = self.conn.rules.get(rule)
            if ladder is not None:
                self.conn.ladders[con_id] = ladder
            out.append(c.qualified(con_id, tick, trading_class or None, ladder=ladder))
        return out

    async def _market_rule(self, rule: int) -> None:
        """IB's price increments of one market rule, kept for the run; without an answer the
        contract is priced on its minTick, as before (a price IB may refuse with 110)."""
        try:
            increments = await self.conn.call(
                f"market rule {rule}", lambda ib: ib.reqMarketRuleAsync(rule)
            )
        except BrokerError as exc:
            log.warning("market rule %d unknown (%s): prices go on the minTick", rule, exc)
            return
        if not increments:
            log.warning("market rule %d came back empty: prices go on the minTick", rule)
            return
        try:
            ladder = TickLadder.of((p.lowEdge, p.increment) for p in increments)
        except (ValueError, ArithmeticError) as exc:
            log.warning("market rule %d is unreadable (%s): prices go on the minTick", rule, exc)
            return
        self.conn.rules[rule] = ladder
        log.info("market rule %d: %s", rule, ladder.describe())

    async def _listing(self, c: OptionContract) -> _Listing:
        """Every strike IB lists for `c`'s symbol, expiry, right (and trading class)."""
        wildcard = mapping.ib_option(c.qualified(0, c.tick))
        wildcard.strike = 0.0
        details = await self._details(wildcard, f"the {c.symbol} {c.expiry} {c.kind}s")
        listing: _Listing = {}
        for d in details:
            found = d.contract
            if found is None or found.secType != "OPT" or (found.right or "")[:1] != c.right:
                continue
            if c.trading_class and found.tradingClass != c.trading_class:
                continue
            if found.multiplier not in ("", "100", str(c.multiplier)):
                continue
            strike = mapping.dec(found.strike)
            if strike is None:
                continue
            tick = mapping.dec(d.minTick) or c.tick
            rule = smart_rule(d.validExchanges or "", d.marketRuleIds or "")
            listing.setdefault(strike, []).append(
                (int(found.conId), tick, found.tradingClass, rule)
            )
        return listing

    def tick_of(self, con_id: int) -> Decimal | None:
        return self.conn.ticks.get(con_id)

    # -- bars ----------------------------------------------------------------------------------
    async def bars(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        now = self.conn.now()
        end = min(end, now)
        if end <= start:
            return mapping.empty_bars()
        cache = self._bars.get(symbol)
        if cache is None or start < cache.start:
            # A range before what we hold (or nothing held): fetch all of it, then keep it.
            frame = await self._fetch(symbol, start, end)
            if cache is not None and not cache.frame.empty:
                frame = _merge(frame, cache.frame)
            cache = _BarCache(frame, start, end)
            self._bars[symbol] = cache
        elif end > cache.end:
            # Two minutes of overlap: the last bar IB had may have been finished since.
            fresh = await self._fetch(symbol, cache.end - timedelta(minutes=2), end)
            cache.frame = _merge(cache.frame, fresh)
            cache.end = end
        horizon = now - KEEP_BARS
        if cache.start < horizon - timedelta(days=10):  # bounded memory in a long run
            cache.frame = cache.frame[cache.frame.index >= pd.Timestamp(horizon).as_unit("ns")]
            cache.start = horizon
        frame = cache.frame
        lo = pd.Timestamp(start).as_unit("ns")
        completed = pd.Timestamp(end - timedelta(minutes=1)).as_unit("ns")
        return frame[(frame.index >= lo) & (frame.index <= completed)]

    async def _fetch(self, symbol: str, start: datetime, end: datetime) -> pd.DataFrame:
        """Completed RTH 1-minute bars starting in [start, end), in as few requests as IB
        answers quickly: seconds within a day, else chunks of whole sessions."""
        con_id = await self.stock_con_id(symbol)
        parts: list[pd.DataFrame] = []
        days = sessions_between(session_of(start), session_of(end), self.settings.calendar)
        span = (end - start).total_seconds()
        if span <= 86_400 - 120:
            requests = [(end, f"{math.ceil(span) + 60} S")]
        else:
            requests = []
            for i in range(0, len(days), CHUNK_SESSIONS):
                chunk = days[i : i + CHUNK_SESSIONS]
                chunk_end = min(end, session_open_close(chunk[-1], self.settings.calendar)[1])
                requests.append((chunk_end, f"{len(chunk)} D"))
        for chunk_end, duration in requests:
            parts.append(await self._historical(symbol, con_id, chunk_end, duration))
        parts = [p for p in parts if not p.empty]
        if not parts:
            return mapping.empty_bars()
        frame = pd.concat(parts) if len(parts) > 1 else parts[0]
        frame = frame[~frame.index.duplicated(keep="last")].sort_index()
        lo = pd.Timestamp(start).as_unit("ns")
        completed = pd.Timestamp(end - timedelta(minutes=1)).as_unit("ns")
        return frame[(frame.index >= lo) & (frame.index <= completed)]

    async def _historical(
        self, symbol: str, con_id: int, end: datetime, duration: str
    ) -> pd.DataFrame:
        now = self.conn.now()
        if self._paced_until is not None and now < self._paced_until:
            raise BrokerError(
                f"historical data paused after IB's pacing violation (162) until "
                f"{market_clock(self._paced_until, seconds=True)}; bars for {symbol} wait"
            )
        contract = mapping.stock(symbol)
        contract.conId = con_id
        stamp = "" if end >= now - timedelta(seconds=1) else end.astimezone(UTC)
        try:
            bars: BarDataList = await self.conn.call(
                f"1-minute bars of {symbol} ({duration})",
                lambda ib: ib.reqHistoricalDataAsync(
                    contract,
                    endDateTime=stamp,
                    durationStr=duration,
                    barSizeSetting="1 min",
                    whatToShow="TRADES",
                    useRTH=True,
                    formatDate=2,
                    timeout=0,  # bounded by broker.timeout_s around it
                ),
            )
        except IbRequestError as exc:
            if exc.kind == "pacing":
                self._paced_until = now + self._pacing_delay
                log.warning(
                    "IB historical data pacing violation (162) for %s: no historical requests "
                    "until %s",
                    symbol,
                    market_clock(self._paced_until, seconds=True),
                )
                self._pacing_delay = min(self._pacing_delay * 2, PACING_CAP)
                raise BrokerError(
                    f"IB's historical data pacing violation (162) for {symbol}; backing off "
                    f"until {market_clock(self._paced_until, seconds=True)}"
                ) from None
            if exc.kind == "no_data":
                return mapping.empty_bars()
            raise
        if self._paced_until is not None and now >= self._paced_until:
            # A request sent after the backoff went through: the next violation starts small.
            # (One sent before the violation and answered after it changes nothing.)
            self._pacing_delay = PACING_FIRST
            self._paced_until = None
        return mapping.bars_frame(list(bars), self.settings.calendar)

    # -- quotes --------------------------------------------------------------------------------
    async def quotes(self, contracts: Sequence[OptionContract]) -> list[Quote | None]:
        ib = self.conn.require()
        if ib is not self._lines_ib:  # a new connection has no subscriptions yet
            self._lines.clear()
            self._lines_ib = ib
        now = self.conn.now()
        new = {c.con_id for c in contracts if c.con_id > 0 and c.con_id not in self._lines}
        for c in contracts:  # in use now: never the ones freed below
            if c.con_id in self._lines:
                self._lines[c.con_id].used = now
        self._expire(now, len(new))
        waiting: list[_Line] = []
        lines: list[_Line | None] = []
        for c in contracts:
            if c.con_id <= 0:
                lines.append(None)  # never qualified: no quote
                continue
            line = self._lines.get(c.con_id)
            if line is None:
                contract = mapping.ib_option(c)
                try:
                    ticker = ib.reqMktData(contract, "", False, False)
                except ConnectionError as exc:
                    raise BrokerError(f"quotes: not connected to IB Gateway ({exc})") from None
                req_id = ib.wrapper.ticker2ReqId["mktData"].get(ticker, 0)
                line = _Line(ticker, req_id, now)
                self._lines[c.con_id] = line
                waiting.append(line)
            line.used = now
            lines.append(line)
        if waiting:
            await self._first_data(waiting)
        return [None if line is None else self._quote(line) for line in lines]

    async def _first_data(self, lines: list[_Line]) -> None:
        """Wait until each new subscription shows a quote (or IB refuses it), for
        `quote_wait_s` after the requests have left the client's throttle queue."""
        loop = asyncio.get_running_loop()
        wait = min(self.settings.quote_wait_s, self.settings.timeout_s)
        start = loop.time()
        deadline = start + wait + self.conn.throttle_delay()
        while not all(self._settled(line) for line in lines):
            now = loop.time()
            deadline = max(deadline, now + self.conn.throttle_delay())
            if now >= deadline or now - start > wait + MAX_THROTTLE_WAIT_S:
                return
            await asyncio.sleep(0.005)

    def _refused(self, line: _Line) -> tuple[int, str] | None:
        error = self.conn.request_errors.get(line.req_id)
        return error if error is not None and codes.refuses_market_data(error[0]) else None

    def _settled(self, line: _Line) -> bool:
        t = line.ticker
        if self._refused(line) is not None:
            return True
        return not math.isnan(t.bid) and not math.isnan(t.ask)

    def _quote(self, line: _Line) -> Quote | None:
        error = self._refused(line)
        t = line.ticker
        if t.time is None and error is not None:
            log.info("no quote for %s: IB error %d %s", t.contract, error[0], error[1])
            return None
        received = None
        if t.time is not None:
            age = self.wall() - t.time.astimezone(UTC)
            received = self.conn.now() - max(age, timedelta(0))
        return mapping.quote_from_ticker(t, received)

    def _expire(self, now: datetime, wanted: int) -> None:
        """Free lines for `wanted` new ones: the least recently used first, when the line
        budget (broker.market_data_lines) needs it; lines unused for long go anyway."""
        ib = self.conn.ib
        stale = {k for k, line in self._lines.items() if now - line.used > LINE_MAX_IDLE}
        budget = self.settings.max_lines
        over = len(self._lines) - len(stale) + wanted - budget
        if over > 0:
            by_use = sorted(
                (k for k in self._lines if k not in stale), key=lambda k: self._lines[k].used
            )
            stale.update(by_use[:over])
        for key in stale:
            line = self._lines.pop(key)
            if ib is not None and ib.isConnected() and line.ticker.contract is not None:
                ib.cancelMktData(line.ticker.contract)

    def resubscribe(self) -> None:
        """1101: IB dropped every subscription; request them all again."""
        ib = self.conn.ib
        if ib is None:
            return
        for line in self._lines.values():
            contract = line.ticker.contract
            if contract is None:
                continue
            ib.cancelMktData(contract)
            ticker = ib.reqMktData(contract, "", False, False)
            line.ticker = ticker
            line.req_id = ib.wrapper.ticker2ReqId["mktData"].get(ticker, 0)
        log.info("market data requested again after 1101 (%d line(s))", len(self._lines))


# strike → [(conId, minTick, trading class, market rule id for SMART)]
_Listing = dict[Decimal, list[tuple[int, Decimal, str, int]]]


def smart_rule(valid_exchanges: str, rule_ids: str) -> int:
    """The market rule for SMART routing: `marketRuleIds` lists one per exchange of
    `validExchanges`, in the same order; 0 when IB gave none."""
    exchanges = [e.strip() for e in valid_exchanges.split(",")]
    rules = [r.strip() for r in rule_ids.split(",")]
    index = exchanges.index("SMART") if "SMART" in exchanges else 0
    text = rules[index] if index < len(rules) else (rules[0] if rules else "")
    return int(text) if text.isdigit() else 0


def _group(c: OptionContract) -> tuple[str, date, str, str]:
    return (c.symbol, c.expiry, c.right, c.trading_class)


def choose_chain(symbol: str, chains: Sequence[OptionChain], today: date) -> OptionChainInfo | None:
    """The SMART, 100-multiplier listing whose trading class has the nearest expiries."""
    candidates = []
    for chain in chains:
        try:
            multiplier = int(float(chain.multiplier or 0))
        except ValueError:
            continue
        if chain.exchange != "SMART" or multiplier != 100:
            continue
        expiries = sorted(
            {d for d in (_date(e) for e in chain.expirations) if d is not None and d >= today}
        )
        strikes = sorted({s for s in (mapping.dec(k) for k in chain.strikes) if s and s > 0})
        if not expiries or not strikes:
            continue
        soon = sum(1 for d in expiries if (d - today).days <= 30)
        key = (-soon, expiries[0], chain.tradingClass != symbol, chain.tradingClass)
        candidates.append((key, chain, expiries, strikes))
    if not candidates:
        return None
    _, chain, expiries, strikes = min(candidates, key=lambda c: c[0])
    return OptionChainInfo(
        symbol=symbol,
        trading_class=chain.tradingClass or symbol,
        multiplier=100,
        expiries=tuple(expiries),
        strikes=tuple(strikes),
        exchange="SMART",
    )


def _date(text: str) -> date | None:
    try:
        return datetime.strptime(text[:8], "%Y%m%d").date()
    except ValueError:
        return None


def _merge(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    if old.empty:
        return new
    if new.empty:
        return old
    frame = pd.concat([old, new])
    return frame[~frame.index.duplicated(keep="last")].sort_index()
