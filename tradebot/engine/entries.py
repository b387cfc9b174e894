"""One symbol's path from bars to a bracket at the broker (spec §4–§6), top to bottom.

bars → signals (scalp, whale with its persisted debounce) → action → one position per symbol and
strategy → contract from the chain within the phase's cap → quote (live and fresh, or no trade)
→ liquidity guard → size → bracket prices on the tick → `reserve_entry` (the phase rules and the
intent's journal line under one lock) → bracket legs journaled → sent (never in dry_run) → a
refused native bracket falls back to OCO emulation.

Every "no" is journaled in `journal/events.jsonl` as `entry_refused` with its rule and numbers.
The rules themselves live in `tradebot.core`; this module only wires them in order.

Why one module: one symbol's path from bars to a bracket, read top to bottom, one step per
function; the rules themselves live in `core` and the order keeping in `order_book`.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from tradebot.books import whale_debounce
from tradebot.books.risk_report import RiskReport
from tradebot.brokers.base import (
    BracketRefused,
    BracketSpec,
    BrokerError,
    OptionChainInfo,
    OrderRejected,
)
from tradebot.core.instruments import OptionContract, Quote, quote_problem
from tradebot.core.market_time import market_clock
from tradebot.core.option_selection import (
    ChainSnapshot,
    ContractChoice,
    OptionQuote,
    days_to_expiry,
    select_contract,
)
from tradebot.core.phase_rules import EntryDecision, Refusal
from tradebot.core.sizing import (
    bracket_prices,
    cash_shortfall,
    liquidity_check,
    position_size,
)
from tradebot.core.strategies import (
    Action,
    apply_debounce,
    select_action,
    whale_signal,
)
from tradebot.engine.context import EngineContext, SignalNote
from tradebot.engine.dry_run import WouldBePositions
from tradebot.engine.market_data import MarketData
from tradebot.engine.oco import OcoWatcher
from tradebot.engine.order_book import TrackedOrder
from tradebot.errors import CorruptRecordError
from tradebot.storage.watch import fresh

log = logging.getLogger("tradebot.engine")


class EntryPipeline:
    def __init__(
        self,
        ctx: EngineContext,
        market_data: MarketData,
        oco: OcoWatcher,
        would_be: WouldBePositions | None = None,
    ) -> None:
        self.ctx = ctx
        self.data = market_data
        self.oco = oco
        self.would_be = would_be or WouldBePositions(ctx)
        self._blocked_noted: set[tuple[date, str, str]] = set()

    async def evaluate(
        self,
        symbol: str,
        now: datetime,
        session: date,
        risk: RiskReport,
        equity: Decimal,
        *,
        scalp_until: datetime | None = None,
        cash: Decimal | None = None,
    ) -> str:
        """Run the pipeline for `symbol`; returns what happened, in a few words. `cash`: the
        account's cash at this tick, when the broker said (an entry it cannot pay is refused)."""
        s = self.ctx.settings
        bars = await self.data.refresh(symbol, now, session)
        scalp = bars.scalp(s.strategies.scalp)
        whale = whale_signal(
            bars.hourly,
            s.strategies.whale,
            now=now,
            session=session,
            calendar=s.schedule.calendar,
            prior=bars.prior,
        )
        if whale.is_entry:
            check = whale_debounce.debounce_check(
                self.ctx.loaded.state_dir,
                symbol,
                session,
                s.strategies.whale.debounce_days,
                s.schedule.calendar,
            )
            debounced = apply_debounce(whale, check)
            if debounced.is_entry and whale.signal in ("BUY_CALL", "BUY_PUT"):
                whale_debounce.record_signal(
                    self.ctx.loaded.state_dir,
                    symbol,
                    session=session,
                    signal=whale.signal,
                    now=now,
                )
            whale = debounced
        action = select_action(whale, scalp)
        self.ctx.last_signal[symbol] = SignalNote(
            now,
            "HOLD" if action.right is None else f"BUY {'CALL' if action.right == 'C' else 'PUT'}",
            action.strategy,
            action.reason,
        )
        if action.right is None:
            return "no signal"
        log.debug("%s: %s", symbol, action.reason)
        if action.strategy == "scalp" and scalp_until is not None and now >= scalp_until:
            # A scalp opened now would be sold at once by the flatten before the close.
            key = (session, symbol, "flatten_time")
            if key not in self._blocked_noted:
                self._blocked_noted.add(key)
                self._refuse(
                    now, symbol, "scalp", "flatten_time",
                    f"scalp entries stop at the flatten time ({market_clock(scalp_until)}, "
                    f"{s.trading.flatten_minutes_before_close} min before the close)",
                )  # fmt: skip
            return "blocked (flatten_time)"
        return await self._enter(symbol, now, session, risk, equity, action, bars.last_close, cash)

    async def _enter(
        self,
        symbol: str,
        now: datetime,
        session: date,
        risk: RiskReport,
        equity: Decimal,
        action: Action,
        spot: float | None,
        cash: Decimal | None = None,
    ) -> str:
        ctx, s = self.ctx, self.ctx.settings
        strategy = action.strategy or "scalp"
        assert action.right is not None
        if not risk.can_open:
            rules = ", ".join(r.rule for r in risk.blocking)
            key = (session, symbol, rules)
            if key not in self._blocked_noted:
                self._blocked_noted.add(key)
                inputs = risk.daily_loss.inputs
                more = (
                    {"daily_loss": inputs.as_record()}
                    if inputs is not None and any(r.rule == "daily_loss" for r in risk.blocking)
                    else {}
                )  # every number the daily-loss guard used: cash, each position's mark, ...
                self._refuse(
                    now,
                    symbol,
                    strategy,
                    "blocked",
                    "; ".join(f"{r.rule}: {r.message}" for r in risk.blocking),
                    blocking=[r.as_record() for r in risk.blocking],
                    **more,
                )
            return f"blocked ({rules})"
        held = ctx.book.holds(symbol, strategy)
        if held is not None:
            return f"already holding {held.ref} ({strategy})"
        would_be = self.would_be.holds(symbol, strategy)
        if would_be is not None:  # dry run: its would-be position is still open
            return f"already holding {would_be.ref} ({strategy}, dry run)"
        mismatch = ctx.blocked_symbols.get(symbol)
        if mismatch is not None:
            # Never add on top of a position the journal does not account for.
            key = (session, symbol, f"position_mismatch:{mismatch}")
            if key not in self._blocked_noted:
                self._blocked_noted.add(key)
                self._refuse(
                    now, symbol, strategy, "position_mismatch",
                    f"{mismatch}; no entry on {symbol} until the difference is gone",
                )  # fmt: skip
            return "blocked (position_mismatch)"
        cap = risk.phase.limits.position_cap_usd if risk.phase is not None else None
        if cap is None or spot is None:
            self._refuse(now, symbol, strategy, "no_data", "position cap or last price unknown")
            return "no data"

        # The contract: from the broker's chain, within the phase's cap.
        chain = await ctx.broker.option_chain(symbol)
        candidates = _candidates(chain, action.right, session, s.options, spot)
        if not candidates:
            listed = ", ".join(
                f"{e} (DTE {days_to_expiry(e, session)})" for e in chain.expiries[:4]
            )
            self._refuse(
                now,
                symbol,
                strategy,
                "no_contract",
                f"no {symbol} expiry with {s.options.min_days_to_expiry} ≤ DTE ≤ "
                f"{s.options.max_days_to_expiry} in the chain (it lists {listed or 'none'}), or "
                f"no strikes near {spot:.2f}: no trade",
            )
            return "no contract"
        qualified = [c for c in await ctx.broker.qualify(candidates) if c is not None]
        quotes = await ctx.broker.quotes(qualified)
        by_id = {str(c.con_id): (c, q) for c, q in zip(qualified, quotes, strict=True)}
        snapshot = ChainSnapshot(
            symbol=symbol,
            underlying_last=Decimal(repr(round(spot, 4))),
            as_of=now,
            quotes=tuple(_option_quote(c, q) for c, q in zip(qualified, quotes, strict=True)),
        )
        choice = select_contract(snapshot, action.right, session, s.options, cap)
        if not isinstance(choice, ContractChoice):
            self._refuse(
                now,
                symbol,
                strategy,
                "no_contract",
                choice.reason,
                cap=cap,
                cheapest_cost=choice.cheapest_cost,
            )
            return "no contract"
        contract, quote = by_id[choice.quote.contract_id]

        # The quote must be live and fresh, and liquid. Fresh by the clock as it is now, not as
        # the tick began: against the gateway simulator at ×10 a tick's second of work is ten
        # seconds of market (a simulated replay's clock does not move within a tick).
        problem = quote_problem(quote, ctx.clock.now(), s.risk.max_quote_age_s)
        if problem is not None:
            self._refuse(
                now,
                symbol,
                strategy,
                "quote",
                f"{contract.label}: {problem}; no trade on a quote that is not the market now",
                quote=None if quote is None else quote.as_record(),
            )
            return "quote refused"
        liquid = liquidity_check(choice.quote, s.risk)
        if not liquid.ok:
            assert quote is not None
            self._refuse(
                now,
                symbol,
                strategy,
                "liquidity",
                liquid.reason,
                quote=quote.as_record(),
                spread_pct=liquid.spread_pct,
            )
            return "illiquid"

        # Size and prices.
        sizing = position_size(equity, choice.premium, contract.multiplier, s.risk, cap)
        if sizing.contracts == 0:
            self._refuse(now, symbol, strategy, "position_size", sizing.reason)
            return "size 0"
        try:
            prices = bracket_prices(
                choice.premium, contract.grid, s.risk.take_profit_pct, s.risk.stop_loss_pct
            )
        except ValueError as exc:
            self._refuse(now, symbol, strategy, "bracket", str(exc))
            return "no bracket"
        short = cash_shortfall(sizing.contracts, prices.entry, contract.multiplier, cash)
        if short is not None:
            self._refuse(now, symbol, strategy, "cash", short, cash=cash)
            return "no cash"
        return await self._send(
            symbol,
            now,
            session,
            risk,
            equity,
            strategy,
            contract,
            quote,
            choice,
            sizing,
            prices,
            action,
        )

    async def _send(
        self,
        symbol: str,
        now: datetime,
        session: date,
        risk: RiskReport,
        equity: Decimal,
        strategy: str,
        contract: OptionContract,
        quote: Quote | None,
        choice: ContractChoice,
        sizing: Any,
        prices: Any,
        action: Action,
    ) -> str:
        ctx, s = self.ctx, self.ctx.settings
        book = ctx.book
        ref = book.next_entry_ref(symbol, session, strategy)
        phase = risk.phase.phase if risk.phase is not None else s.phase.initial
        common: dict[str, Any] = {
            "symbol": symbol,
            "strategy": strategy,
            "contract": contract,
            "session": session,
            "mode": ctx.record_mode,
            "phase": phase,
            "intent_ts": now,
            "stop_loss_pct": s.risk.stop_loss_pct,
        }
        entry = TrackedOrder(
            ref=ref,
            role="entry",
            action="BUY",
            qty=sizing.contracts,
            order_type="LMT",
            tif="DAY",
            limit=prices.entry,
            **common,
        )
        take_profit = TrackedOrder(
            ref=f"{ref}.tp",
            role="take_profit",
            action="SELL",
            qty=sizing.contracts,
            order_type="LMT",
            tif="GTC",
            limit=prices.take_profit,
            parent_ref=ref,
            **common,
        )
        stop_loss = TrackedOrder(
            ref=f"{ref}.sl",
            role="stop_loss",
            action="SELL",
            qty=sizing.contracts,
            order_type="STP",
            tif="GTC",
            stop=prices.stop_loss,
            parent_ref=ref,
            **common,
        )
        intent = book.intent_record(
            now,
            entry,
            signal=action.reason,
            confidence=round(action.confidence, 4),
            contract_choice=choice.reason,
            sizing=sizing.reason,
            equity=equity,
            position_cap_usd=choice_cap(risk),
            quote=None if quote is None else quote.as_record(),
            bracket={"take_profit": prices.take_profit, "stop_loss": prices.stop_loss},
        )
        cost = prices.entry * sizing.contracts * contract.multiplier

        def recheck(decision: EntryDecision) -> list[Refusal]:
            """What may have changed since the tick's guards (under the entry lock)."""
            late: list[Refusal] = []
            try:
                with fresh():  # a halt written a moment ago counts
                    halt = ctx.state.halt()
                    if halt.halted:
                        late.append(Refusal("halt", halt.message()))
                    trip = ctx.state.daily_loss_trip()
                if trip is not None and trip[0] == session:
                    late.append(Refusal("daily_loss", "the daily-loss guard tripped this session"))
            except CorruptRecordError as exc:
                late.append(Refusal("state_unreadable", exc.message))
            cap = decision.position_cap_usd
            if cap is None or cost > cap:
                late.append(
                    Refusal(
                        "position_cap",
                        f"{sizing.contracts} × {prices.entry} × {contract.multiplier} = ${cost} "
                        f"is over the position cap now (${cap})",
                    )
                )
            return late

        decision = ctx.ladder.reserve_entry(
            now,
            ctx.trading_mode,
            intent,
            equity=equity,
            next_session_open=risk.window.next_session_open,
            recheck=recheck,
        )
        if not decision.allowed:
            # `_refuse` names the first rule; the others follow with their own names.
            first, *others = decision.refusals or [
                Refusal("phase", "the phase ladder refused the entry")
            ]
            self._refuse(
                now,
                symbol,
                strategy,
                first.rule,
                "; ".join([first.message, *(f"{r.rule}: {r.message}" for r in others)]),
            )
            return "refused by the phase ladder"
        book.refresh()
        book.add_intent(now, take_profit)
        book.add_intent(now, stop_loss)
        summary = (
            f"{ref}: BUY {sizing.contracts} {contract.label} @ {prices.entry} "
            f"(TP {prices.take_profit}, SL {prices.stop_loss})"
        )
        if ctx.trading_mode == "dry_run":
            for order in (entry, take_profit, stop_loss):
                book.mark_status(now, order.ref, "not_sent", "dry_run: computed and journaled only")
            self.would_be.opened(book.orders[entry.ref])
            log.info("dry run, not sent: %s", summary)
            return "dry run"
        spec = BracketSpec(entry.spec(), take_profit.spec(), stop_loss.spec())
        try:
            placed = await ctx.broker.place_bracket(spec)
        except BracketRefused as exc:
            return await self._fallback_to_oco(now, entry, take_profit, stop_loss, exc, summary)
        except OrderRejected as exc:
            for order in (entry, take_profit, stop_loss):
                book.mark_status(now, order.ref, "rejected", str(exc))
            self._refuse(now, symbol, strategy, "rejected", str(exc))
            return "rejected"
        except BrokerError as exc:
            # Outcome unknown: the next sync adopts the orders if the broker has them. The
            # intent still counts toward the session's entries (fail safe).
            for order in (entry, take_profit, stop_loss):
                book.mark_status(now, order.ref, "unknown", f"send failed: {exc}")
            ctx.events.record(now, "broker_error", f"{ref}: sending the bracket failed: {exc}")
            return "send failed"
        for p in placed:
            book.mark_submitted(now, p.order_ref, p.order_id, p.perm_id, p.status)
        ctx.notify("entry", f"entry {summary} [{strategy}]")
        log.info("bracket sent: %s", summary)
        return "entry sent"

    async def _fallback_to_oco(
        self,
        now: datetime,
        entry: TrackedOrder,
        take_profit: TrackedOrder,
        stop_loss: TrackedOrder,
        refused: BracketRefused,
        summary: str,
    ) -> str:
        """Native bracket refused: send the entry alone and emulate the legs (persisted)."""
        ctx, book = self.ctx, self.ctx.book
        for leg in (take_profit, stop_loss):
            book.mark_status(now, leg.ref, "rejected", f"native bracket refused: {refused}")
        assert take_profit.limit is not None and stop_loss.stop is not None
        self.oco.arm(now, entry.ref, take_profit.limit, stop_loss.stop)
        ctx.events.record(
            now,
            "bracket_refused",
            f"{entry.ref}: native bracket refused ({refused}); sending the entry alone with "
            f"emulated take-profit {take_profit.limit} and stop {stop_loss.stop}",
            order_ref=entry.ref,
        )
        try:
            placed = await ctx.broker.place_order(entry.spec())
        except OrderRejected as exc:
            book.mark_status(now, entry.ref, "rejected", str(exc))
            self.oco.disarm(entry.ref)
            self._refuse(now, entry.symbol, entry.strategy, "rejected", str(exc))
            return "rejected"
        except BrokerError as exc:
            book.mark_status(now, entry.ref, "unknown", f"send failed: {exc}")
            return "send failed"
        book.mark_submitted(now, entry.ref, placed.order_id, placed.perm_id, placed.status)
        ctx.notify("entry", f"entry {summary} [{entry.strategy}, OCO emulated]")
        return "entry sent (OCO emulated)"

    def _refuse(
        self, now: datetime, symbol: str, strategy: str, rule: str, message: str, **numbers: Any
    ) -> None:
        self.ctx.events.record(
            now,
            "entry_refused",
            f"{symbol} {strategy}: {rule}: {message}",
            symbol=symbol,
            strategy=strategy,
            rule=rule,
            **numbers,
        )


def choice_cap(risk: RiskReport) -> Decimal | None:
    return None if risk.phase is None else risk.phase.limits.position_cap_usd


def _candidates(
    chain: OptionChainInfo, right: str, today: date, options: Any, spot: float
) -> list[OptionContract]:
    """The strikes `select_contract` may pick: the nearest on each side and the OTM ones within
    `max_otm_pct`, in the first expiry whose DTE is in the window (quoting the whole chain would
    waste market-data lines)."""
    expiry = next(
        (
            e
            for e in chain.expiries
            if options.min_days_to_expiry <= days_to_expiry(e, today) <= options.max_days_to_expiry
        ),
        None,
    )
    if expiry is None or not chain.strikes:
        return []
    reach = spot * float(options.max_otm_pct) / 100
    below = [k for k in chain.strikes if float(k) <= spot]
    above = [k for k in chain.strikes if float(k) > spot]
    picked = set()
    if below:
        picked.add(below[-1])
    if above:
        picked.add(above[0])
    for k in chain.strikes:
        if abs(float(k) - spot) <= reach:
            out_of_money = float(k) >= spot if right == "C" else float(k) <= spot
            if out_of_money:
                picked.add(k)
    return [
        OptionContract(
            chain.symbol,
            expiry,
            k,
            "C" if right == "C" else "P",
            multiplier=chain.multiplier,
            trading_class=chain.trading_class,
            exchange=chain.exchange,
        )
        for k in sorted(picked)
    ]


def _option_quote(contract: OptionContract, quote: Quote | None) -> OptionQuote:
    zero = Decimal(0)
    return OptionQuote(
        contract_id=str(contract.con_id),
        expiry=contract.expiry,
        strike=contract.strike,
        right=contract.right,
        bid=zero if quote is None else quote.bid,
        ask=zero if quote is None else quote.ask,
        last=None if quote is None else quote.last,
        volume=0 if quote is None else quote.volume,
        multiplier=contract.multiplier,
        trading_class=contract.klass,
        tick=contract.tick,
        ladder=contract.ladder,
    )


__all__ = ["EntryPipeline"]
