"""Risk-reducing actions: flatten scalp positions before the close, `halt --flatten`, and cancel
entry orders that did not fill in time. No guard or phase rule ever blocks these.

Closing a position: cancel its working take-profit/stop first and wait until the broker confirms
(a sell while a leg can still fill could sell twice), then sell what is still open at market.
An exit already working is never sent again.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta

from tradebot.brokers.base import BrokerError, OrderRejected
from tradebot.core.trades import session_of
from tradebot.engine.context import EngineContext
from tradebot.engine.oco import OcoWatcher
from tradebot.engine.order_book import Position, TrackedOrder

log = logging.getLogger("tradebot.engine")


class ExitManager:
    def __init__(self, ctx: EngineContext, oco: OcoWatcher) -> None:
        self.ctx = ctx
        self.oco = oco

    async def cancel_stale_entries(self, now: datetime, timeout: timedelta) -> int:
        """Cancel entries still unfilled after `timeout`: a limit never fills on an old signal."""
        cancelled = 0
        for entry in self.ctx.book.working_entries():
            if entry.filled_qty == 0 and now - entry.intent_ts >= timeout:
                await self._cancel(entry, now, "unfilled entry expired")
                cancelled += 1
        return cancelled

    async def flatten(
        self,
        now: datetime,
        *,
        strategy: str | None,
        reason: str,
        expiring_by: date | None = None,
    ) -> list[str]:
        """Cancel working entries and close open positions of `strategy` (or all), and with
        `expiring_by` also every position whose option expires by that day (an option held
        into its expiry close could be exercised into stock)."""
        book = self.ctx.book

        def chosen(entry: TrackedOrder) -> bool:
            if strategy is None or entry.strategy == strategy:
                return True
            return expiring_by is not None and entry.contract.expiry <= expiring_by

        done = []
        for entry in book.working_entries():
            if chosen(entry) and entry.filled_qty == 0:
                await self._cancel(entry, now, f"{reason}: entry cancelled")
                done.append(f"cancelled entry {entry.ref}")
        for pos in book.open_positions():
            if chosen(pos.entry):
                done.append(await self.close_position(pos, now, reason))
        return done

    async def close_position(self, pos: Position, now: datetime, reason: str) -> str:
        book, broker = self.ctx.book, self.ctx.broker
        entry = pos.entry
        if any(e.role == "exit" for e in pos.working_exits):
            return f"{entry.ref}: an exit is already working"
        legs = [e for e in pos.working_exits if e.role != "exit"]
        if legs:
            for leg in legs:
                try:
                    await broker.cancel(leg.ref)
                except BrokerError as exc:
                    log.warning("%s: cancel of %s failed: %s", entry.ref, leg.ref, exc)
            await book.sync(broker, now)
            pos = book.position(entry)
            if any(e.role != "exit" for e in pos.working_exits):
                return f"{entry.ref}: waiting for the broker to confirm the legs' cancel"
        qty = pos.open_qty
        if qty <= 0:
            self.oco.disarm(entry.ref)
            return f"{entry.ref}: already closed"
        # Never sell more than the broker holds (a fill not adopted yet must not make a short).
        held = sum(
            p.qty for p in await broker.positions() if p.contract.con_id == entry.contract.con_id
        )
        claimed = sum(
            p.open_qty
            for p in book.open_positions()
            if p.entry.contract.con_id == entry.contract.con_id and p.entry.ref != entry.ref
        )
        qty = min(qty, max(0, held - claimed))
        if qty <= 0:
            return f"{entry.ref}: the broker holds nothing more to sell; waiting for its fills"
        n = 1 + sum(1 for e in pos.exits if e.role == "exit")
        order = TrackedOrder(
            ref=f"{entry.ref}.x{n}",
            role="exit",
            symbol=entry.symbol,
            strategy=entry.strategy,
            contract=entry.contract,
            action="SELL",
            qty=qty,
            order_type="MKT",
            tif="DAY",
            session=session_of(now),
            mode=entry.mode,
            phase=entry.phase,
            intent_ts=now,
            parent_ref=entry.ref,
            stop_loss_pct=entry.stop_loss_pct,
            exit_reason=reason,
        )
        book.add_intent(now, order)
        self.oco.disarm(entry.ref)
        try:
            placed = await broker.place_order(order.spec())
        except OrderRejected as exc:
            book.mark_status(now, order.ref, "rejected", str(exc))
            self.ctx.events.record(now, "exit_failed", f"{order.ref}: {exc}", order_ref=order.ref)
            return f"{entry.ref}: exit rejected ({exc})"
        except BrokerError as exc:
            book.mark_status(now, order.ref, "unknown", f"send failed: {exc}")
            self.ctx.events.record(now, "exit_failed", f"{order.ref}: {exc}", order_ref=order.ref)
            return f"{entry.ref}: exit send failed ({exc})"
        book.mark_submitted(now, order.ref, placed.order_id, placed.perm_id, placed.status)
        self.ctx.events.record(
            now,
            "position_closing",
            f"{entry.ref}: selling {qty} {entry.contract.label} at market ({reason})",
            order_ref=order.ref,
            reason=reason,
        )
        return f"{entry.ref}: selling {qty} at market ({reason})"

    async def cancel_entry(self, entry: TrackedOrder, now: datetime, why: str) -> None:
        """Cancel a working entry (its bracket legs go with it)."""
        await self._cancel(entry, now, f"{why}: entry cancelled")

    async def _cancel(self, order: TrackedOrder, now: datetime, why: str) -> None:
        try:
            await self.ctx.broker.cancel(order.ref)
        except BrokerError as exc:
            log.warning("%s: cancel failed: %s", order.ref, exc)
            return
        self.ctx.events.record(now, "order_cancel", f"{order.ref}: {why}", order_ref=order.ref)
