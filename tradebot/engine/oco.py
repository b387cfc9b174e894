"""OCO emulation: when the broker refuses a native bracket, the loop guards the position itself.

The armed legs (take-profit and stop prices per entry) live in `state/oco-legs.json`, written
atomically, so a restart re-arms them. Every 5 seconds while a position is open, the watcher
reads the option's quote: bid ≥ take-profit → a limit sell at the take-profit; bid ≤ stop → a
market sell. Exits are never blocked by any guard; the sell is capped to what is still open, and
a leg already working is not sent twice, and a take-profit still working (emulated or the
broker's own) is cancelled and confirmed before the stop sells.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from tradebot.brokers.base import BrokerError, OrderRejected
from tradebot.core.trades import session_of
from tradebot.engine.context import EngineContext
from tradebot.engine.order_book import TrackedOrder
from tradebot.errors import CorruptRecordError
from tradebot.storage import read_json_state, state_lock, write_json_state

log = logging.getLogger("tradebot.engine")

STATE_FILE = "oco-legs.json"
POLL = timedelta(seconds=5)


@dataclass(frozen=True)
class OcoLegs:
    entry_ref: str
    take_profit: Decimal
    stop_loss: Decimal
    armed_at: datetime


class OcoWatcher:
    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx
        self.path = ctx.loaded.state_dir / STATE_FILE
        self._legs: dict[str, OcoLegs] | None = None  # the loop is the only writer

    # -- persisted legs ------------------------------------------------------------------------
    def legs(self) -> dict[str, OcoLegs]:
        if self._legs is None:
            self._legs = self._read()
        return dict(self._legs)

    def _read(self) -> dict[str, OcoLegs]:
        state = read_json_state(self.path)
        if state is None:
            return {}
        try:
            return {
                ref: OcoLegs(
                    ref,
                    Decimal(str(leg["take_profit"])),
                    Decimal(str(leg["stop_loss"])),
                    datetime.fromisoformat(str(leg["armed_at"])),
                )
                for ref, leg in dict(state["legs"]).items()
            }
        except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
            raise CorruptRecordError(self.path, None, f"bad OCO legs ({exc})") from None

    def _write(self, legs: dict[str, OcoLegs]) -> None:
        self._legs = dict(legs)
        write_json_state(
            self.path,
            {
                "v": 1,
                "legs": {
                    ref: {
                        "take_profit": leg.take_profit,
                        "stop_loss": leg.stop_loss,
                        "armed_at": leg.armed_at,
                    }
                    for ref, leg in sorted(legs.items())
                },
            },
        )

    def arm(self, now: datetime, entry_ref: str, take_profit: Decimal, stop_loss: Decimal) -> None:
        """Persist the legs before the entry is sent (a crash right after still guards it)."""
        with state_lock(self.path):
            legs = self._read()
            legs[entry_ref] = OcoLegs(entry_ref, take_profit, stop_loss, now)
            self._write(legs)

    def disarm(self, entry_ref: str) -> None:
        if entry_ref not in self.legs():
            return
        with state_lock(self.path):
            legs = self._read()
            legs.pop(entry_ref, None)
            self._write(legs)

    def armed(self) -> bool:
        return bool(self.legs())

    # -- watching ------------------------------------------------------------------------------
    async def poll(self, now: datetime) -> None:
        """Check every armed position's quote once; fire a leg when its price is reached."""
        book = self.ctx.book
        for ref, leg in self.legs().items():
            entry = book.orders.get(ref)
            if entry is None:
                continue
            pos = book.position(entry)
            if entry.filled_qty == 0:
                if entry.final:  # the entry died unfilled: nothing to guard
                    self.disarm(ref)
                continue
            if pos.open_qty <= 0:
                if entry.final:
                    self.disarm(ref)
                continue
            quote = (await self.ctx.broker.quotes([entry.contract]))[0]
            if quote is None or quote.bid <= 0:
                log.warning(
                    "%s: no bid for %s; OCO legs cannot be checked", ref, entry.contract.label
                )
                continue
            # Every sell of this position that can still fill, native legs included: legs armed
            # because a native stop died may sit beside a native take-profit still working.
            working = pos.working_exits
            if quote.bid <= leg.stop_loss:
                if any(e.role in ("stop_loss", "exit") for e in working):
                    continue  # a stop or a market exit is already selling it
                for e in working:  # a resting take-profit gives way to the stop
                    try:
                        await self.ctx.broker.cancel(
                            e.ref, order_id=e.order_id, contract=e.contract
                        )
                    except BrokerError as exc:
                        log.warning("%s: cancel of %s failed: %s", ref, e.ref, exc)
                if working:
                    continue  # sell once the cancel is confirmed (next poll), never twice
                await self._fire(now, entry, "stop_loss", pos.open_qty, None, quote.bid, leg)
            elif quote.bid >= leg.take_profit and not working:
                await self._fire(
                    now, entry, "take_profit", pos.open_qty, leg.take_profit, quote.bid, leg
                )

    async def _fire(
        self,
        now: datetime,
        entry: TrackedOrder,
        role: str,
        qty: int,
        limit: Decimal | None,
        bid: Decimal,
        leg: OcoLegs,
    ) -> None:
        book = self.ctx.book
        n = 1 + sum(1 for r in book.exits_of.get(entry.ref, []) if ".o" in r)
        order = TrackedOrder(
            ref=f"{entry.ref}.o{'tp' if role == 'take_profit' else 'sl'}{n}",
            role=role,
            symbol=entry.symbol,
            strategy=entry.strategy,
            contract=entry.contract,
            action="SELL",
            qty=qty,
            order_type="LMT" if limit is not None else "MKT",
            tif="DAY",
            session=session_of(now),
            mode=entry.mode,
            phase=entry.phase,
            intent_ts=now,
            limit=limit,
            parent_ref=entry.ref,
            stop_loss_pct=entry.stop_loss_pct,
            emulated=True,
        )
        trigger = (
            f"bid {bid} ≥ take-profit {leg.take_profit}"
            if role == "take_profit"
            else f"bid {bid} ≤ stop {leg.stop_loss}"
        )
        book.add_intent(now, order, trigger=trigger)
        self.ctx.events.record(
            now, "oco_fired", f"{entry.ref}: {trigger}; selling {qty}", order_ref=order.ref
        )
        try:
            placed = await self.ctx.broker.place_order(order.spec())
        except OrderRejected as exc:
            book.mark_status(now, order.ref, "rejected", str(exc))
            self.ctx.events.record(now, "exit_failed", f"{order.ref}: {exc}", order_ref=order.ref)
            return
        except BrokerError as exc:
            book.mark_status(now, order.ref, "unknown", f"send failed: {exc}")
            return
        book.mark_submitted(now, order.ref, placed.order_id, placed.perm_id, placed.status)
