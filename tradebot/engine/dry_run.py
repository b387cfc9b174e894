"""A dry run's would-be positions: what it would hold, so it never repeats the same entry.

In `dry_run` nothing is sent: an entry is computed, journaled (status `not_sent`) and logged.
Its would-be position is open from then until its bracket would have closed it — the option's
bid reaching the take-profit or the stop, the flatten before the close (scalp), the option's
expiry — and while it is open the symbol and strategy are held as if the position were real. So
a dry run shows one entry per idea, as the real run would, not the same entry every tick.

The close is journaled like the entry: an `exit` intent (child of the entry; `exit_reason`
take_profit, stop_loss, flatten or expired; `limit` the price seen) marked `not_sent`, so a
restart knows which would-be positions are still open. None of it is a trade: no fill, no line
in trades.jsonl, nothing the phase ladder counts.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from tradebot.core.trades import session_of
from tradebot.engine.context import EngineContext
from tradebot.engine.order_book import TrackedOrder
from tradebot.engine.schedule import SessionPlan

log = logging.getLogger("tradebot.engine")

NOTE = "dry_run: the would-be position closes here; nothing was sent"


class WouldBePositions:
    def __init__(self, ctx: EngineContext) -> None:
        self.ctx = ctx
        self._open: dict[str, TrackedOrder] | None = None

    @property
    def active(self) -> bool:
        return self.ctx.trading_mode == "dry_run"

    def _positions(self) -> dict[str, TrackedOrder]:
        """Open would-be positions by entry ref; read from the order journal once (a restart
        finds those it left open), then kept up to date by `opened` and `review`."""
        if self._open is None:
            book = self.ctx.book
            book.refresh()
            self._open = {
                ref: order
                for ref, order in book.orders.items()
                if order.role == "entry"
                and order.status == "not_sent"
                and not any(book.orders[r].role == "exit" for r in book.exits_of.get(ref, []))
            }
        return self._open

    def holds(self, symbol: str, strategy: str) -> TrackedOrder | None:
        """The would-be entry that occupies (symbol, strategy), if any."""
        if not self.active:
            return None
        for entry in self._positions().values():
            if entry.symbol == symbol and entry.strategy == strategy:
                return entry
        return None

    def any_open(self) -> bool:
        """Whether a would-be position is open: each wake in session reviews it (the wake planner
        passes over none of them then)."""
        return self.active and bool(self._positions())

    def opened(self, entry: TrackedOrder) -> None:
        """A dry-run entry was journaled (not sent): its would-be position is open."""
        self._positions()[entry.ref] = entry

    async def review(self, now: datetime, plan: SessionPlan) -> None:
        """Close the would-be positions that their bracket, the flatten or expiry would have
        closed by `now` (one quote request for those still in question)."""
        if not self.active or not self._positions():
            return
        quoted: list[TrackedOrder] = []
        for entry in list(self._positions().values()):
            expiry = entry.contract.expiry
            if expiry < plan.session:
                self._close(now, entry, "expired", None, f"the option expired on {expiry}")
            elif entry.strategy == "scalp" and entry.session < plan.session:
                self._close(now, entry, "flatten", None, "scalp positions never stay overnight")
            elif now >= plan.flatten_at and (entry.strategy == "scalp" or expiry == plan.session):
                self._close(now, entry, "flatten", None, "flattened before the close")
            else:
                quoted.append(entry)
        if not quoted or not plan.in_session(now):
            return
        quotes = await self.ctx.broker.quotes([e.contract for e in quoted])
        for entry, quote in zip(quoted, quotes, strict=True):
            if quote is None or not quote.bid.is_finite():
                continue
            take_profit, stop = self._bracket(entry)
            if take_profit is not None and quote.bid >= take_profit:
                self._close(
                    now, entry, "take_profit", take_profit,
                    f"the bid {quote.bid} reached the take-profit {take_profit}",
                )  # fmt: skip
            elif stop is not None and quote.bid <= stop:
                self._close(
                    now, entry, "stop_loss", quote.bid,
                    f"the bid {quote.bid} reached the stop {stop}",
                )  # fmt: skip

    def _bracket(self, entry: TrackedOrder) -> tuple[Decimal | None, Decimal | None]:
        orders = self.ctx.book.orders
        tp = orders.get(f"{entry.ref}.tp")
        sl = orders.get(f"{entry.ref}.sl")
        return (tp.limit if tp else None), (sl.stop if sl else None)

    def _close(
        self, now: datetime, entry: TrackedOrder, reason: str, price: Decimal | None, why: str
    ) -> None:
        book = self.ctx.book
        order = TrackedOrder(
            ref=f"{entry.ref}.x",
            role="exit",
            symbol=entry.symbol,
            strategy=entry.strategy,
            contract=entry.contract,
            action="SELL",
            qty=entry.qty,
            order_type={"take_profit": "LMT", "stop_loss": "STP"}.get(reason, "MKT"),
            tif="DAY",
            session=session_of(now),
            mode=entry.mode,
            phase=entry.phase,
            intent_ts=now,
            limit=price,
            parent_ref=entry.ref,
            exit_reason=reason,
        )
        if order.ref not in book.orders:
            book.add_intent(now, order, note=why)
        book.mark_status(now, order.ref, "not_sent", NOTE)
        self._positions().pop(entry.ref, None)
        log.info("dry run, would-be position closed: %s %s (%s)", entry.ref, reason, why)
