"""Risk-reducing actions: flatten scalp positions before the close, `halt --flatten`, and cancel
entry orders that did not fill in time. No guard or phase rule ever blocks these.

Closing a position: cancel its working take-profit/stop (and the unfilled remainder of a partly
filled entry) and wait until the broker confirms — a sell while a leg can still fill could sell
twice — then sell what is still open. The wait is event-driven: the sell goes out as soon as the
broker confirms the cancels (or reports the legs' fills), not at the next minute's sync, and the
positions of one flatten are closed together, so N positions take seconds, not N minutes. An exit
already working is never sent again.

A position whose option expires today must never reach the close (IB exercises an option in the
money by $0.01 or more into 100 shares a contract, or liquidates it itself): when its market
sell is refused or left unfilled, the next attempt is a marketable limit (`marketable_limit`),
and `ExpiryWatch` alerts `critical` every minute until it is gone.

An exit the broker holds (IB's `Inactive`: a locate or precautionary hold) is not working and
protects nothing, yet may still fill: a held closing sell or stop is cancelled at once and the
operator alerted (`held_guards`); what replaces it — a marketable limit, or emulated legs — goes
out only once the broker confirms the held one cancelled or no longer lists it, never beside it.

A sell is sized against what the broker holds. While the broker has not said (IB Gateway never
answered reqPositions), a close would cancel the legs and then have nothing to size the sell
against: a position that does not expire today keeps its legs until the broker answers; one
that expires today is sold on the journal's word once its legs' cancels are confirmed — an
exercise at the close is the certain harm, a journal wrong about a position that its broker's
executions and order statuses confirm the unlikely one.

Why one module: every closing sell goes through the one cancel-confirm-sell sequence, whose order
(no sell while a leg, an entry's remainder or a held sell can still fill) is the safety argument;
the expiry watch reads the same positions and working sells that sequence leaves.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from tradebot.brokers.base import BrokerError, Foresight, OrderRejected, PositionsUnknown
from tradebot.core.ticks import TickLadder, as_ladder
from tradebot.core.trades import EXCHANGE_TZ, session_of
from tradebot.engine.context import EngineContext
from tradebot.engine.oco import OcoWatcher
from tradebot.engine.order_book import Position, TrackedOrder

log = logging.getLogger("tradebot.engine")

# Real seconds a flatten waits for the broker to confirm the cancels it asked for (IB answers in
# well under a second; a Gateway that does not is retried at the next wake, seconds later).
CONFIRM_WAIT_S = 10.0
CONFIRM_POLL_S = 0.02
CANCEL_AGAIN = timedelta(seconds=30)  # a cancel not confirmed by then is asked again
# A closing order of a position expiring today that has not filled after this long is replaced
# by a marketable limit (a market order IB holds, or one with no bid to meet).
EXIT_STUCK = timedelta(seconds=60)
# A marketable limit sells at most this far below the bid: it still fills at the bid (a limit
# sell fills at the best bid at or above it), and stays marketable if the bid drops meanwhile.
MARKETABLE_CUSHION = Decimal("0.10")


def marketable_limit(bid: Decimal | None, tick: Decimal | TickLadder) -> Decimal:
    """A sell limit that meets the bid now: 10 % under it, rounded down on the contract's price
    ladder, at least its lowest price; that lowest price when there is no bid (it then sells
    at whatever bid appears first)."""
    grid = as_ladder(tick)
    lowest = grid.steps[0][1]
    if bid is None or not bid.is_finite() or bid <= 0:
        return lowest
    return max(grid.down(bid * (1 - MARKETABLE_CUSHION)), lowest)


@dataclass
class ExitManager:
    ctx: EngineContext
    oco: OcoWatcher
    confirm_wait_s: float = CONFIRM_WAIT_S
    _cancel_sent: dict[str, datetime] = field(default_factory=dict)
    _held_told: set[str] = field(default_factory=set)

    async def held_guards(self, now: datetime) -> list[str]:
        """Closing sells and stops of open positions that the broker holds (not working, not
        finished): each is cancelled now, and the operator told once. Its replacement waits for
        the broker to confirm it gone (`close_positions`, the loop's `_protect`)."""
        done = []
        for pos in self.ctx.book.open_positions():
            entry = pos.entry
            for order in pos.working_exits:
                if order.status != "held" or order.role not in ("exit", "stop_loss"):
                    continue
                what = "closing sell" if order.role == "exit" else "stop"
                then = (
                    "a marketable limit replaces it"
                    if order.role == "exit"
                    else "emulated stop and take-profit guard the position"
                )
                text = (
                    f"{order.ref}: the broker holds the {what} of {entry.ref} ({order.qty} "
                    f"{entry.contract.label}) Inactive — not working, so it protects nothing; "
                    f"cancelled, and {then} once the broker confirms it gone"
                )
                if await self._cancel(order, now, "held Inactive by the broker", quiet=True):
                    done.append(text)
                if order.ref not in self._held_told:
                    self._held_told.add(order.ref)
                    self.ctx.events.record(now, "exit_held", text, order_ref=order.ref)
                    self.ctx.notify("critical", text)
                    log.error("%s", text)
        return done

    async def cancel_stale_entries(self, now: datetime, timeout: timedelta) -> int:
        """Cancel entries still working after `timeout` — the whole unfilled remainder, also of
        a partly filled entry: a limit never fills on an old signal."""
        cancelled = 0
        for entry in self.ctx.book.working_entries():
            if now - entry.intent_ts < timeout:
                continue
            if entry.filled_qty == 0:
                why = "unfilled entry expired"
            else:
                why = (
                    f"entry expired with {entry.filled_qty} of {entry.qty} filled: the unfilled "
                    f"{entry.qty - entry.filled_qty} cancelled (the legs guard what filled)"
                )
            if await self._cancel(entry, now, why):
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
            cancel = chosen(entry) and entry.filled_qty == 0
            if cancel and await self._cancel(entry, now, f"{reason}: entry cancelled"):
                done.append(f"cancelled entry {entry.ref}")
        positions = [pos for pos in book.open_positions() if chosen(pos.entry)]
        done += await self.close_positions(positions, now, reason)
        return done

    async def close_position(self, pos: Position, now: datetime, reason: str) -> str:
        [line] = await self.close_positions([pos], now, reason)
        return line

    async def close_positions(
        self, positions: list[Position], now: datetime, reason: str
    ) -> list[str]:
        """Close these positions together: cancel what could still buy or sell them (legs, an
        entry's unfilled remainder), then sell each one the moment the broker confirms its
        cancels, waiting at most `confirm_wait_s` real seconds (the next wake tries again)."""
        book, broker = self.ctx.book, self.ctx.broker
        lines: dict[str, str] = {}
        pending: list[str] = []
        unknown: PositionsUnknown | None = None
        if any(not _selling(p) for p in positions):
            try:
                await broker.positions()
            except PositionsUnknown as exc:
                unknown = exc
        for pos in positions:
            entry = pos.entry
            exits = _selling(pos)
            if exits:
                lines[entry.ref] = await self._watch_exit(pos, exits, now)
                continue
            if unknown is not None and not _expiring(pos, now):
                lines[entry.ref] = (
                    f"{entry.ref}: not closed yet: {unknown.message}; its stop and take-profit "
                    "keep guarding it until IB says what it holds"
                )
                continue
            for order in self._blockers(pos):
                await self._cancel(order, now, f"{reason}: cancelled before closing", quiet=True)
            pending.append(entry.ref)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.confirm_wait_s
        while pending:
            await book.sync(broker, self.ctx.clock.now())
            for ref in list(pending):
                pos = book.position(book.orders[ref])
                if not self._blockers(pos, sendable_only=False):
                    pending.remove(ref)
                    lines[ref] = await self._sell(pos, self.ctx.clock.now(), reason)
                elif not self._blockers(pos):
                    # Only orders whose send failed are left: the broker cannot confirm those;
                    # the next wake adopts what it has.
                    pending.remove(ref)
                    lines[ref] = f"{ref}: waiting for the broker to list its orders"
            if not pending or loop.time() >= deadline or not broker.is_connected():
                break
            if isinstance(broker, Foresight):
                # A simulated broker answers a cancel at once and changes only as the loop's
                # clock moves, which stands still during a wake: polling it would wait the whole
                # confirm_wait_s for nothing. The retry at the next wake sells.
                break
            await asyncio.sleep(CONFIRM_POLL_S)
        for ref in pending:
            lines[ref] = f"{ref}: waiting for the broker to confirm the legs' cancel"
        return [lines[p.entry.ref] for p in positions]

    def _blockers(self, pos: Position, *, sendable_only: bool = True) -> list[TrackedOrder]:
        """Orders that could still buy or sell this position besides a closing sell: working
        legs, a closing sell the broker holds (it may still fill), and the unfilled remainder
        of its entry. `sendable_only`: leave out those whose send failed (their fate is unknown
        until the broker lists them)."""
        found = [e for e in pos.working_exits if e.role != "exit" or e.status == "held"]
        if pos.entry.working:
            found.append(pos.entry)
        if sendable_only:
            found = [o for o in found if o.status not in ("intent", "unknown")]
        return found

    async def _watch_exit(self, pos: Position, exits: list[TrackedOrder], now: datetime) -> str:
        """An exit is working. For an option expiring today, one that has not filled within
        EXIT_STUCK (IB holding a market order, no bid to meet) is cancelled: the next wake
        sends a marketable limit in its place."""
        entry = pos.entry
        expiring = _expiring(pos, now)
        stuck = [e for e in exits if now - e.intent_ts >= EXIT_STUCK]
        if expiring and stuck:
            for order in stuck:
                await self._cancel(
                    order, now, "expiring today and unfilled for a minute: replaced by a "
                    "marketable limit",
                )  # fmt: skip
            return f"{entry.ref}: exit unfilled for a minute; cancelled, a marketable limit next"
        return f"{entry.ref}: an exit is already working"

    async def _sell(self, pos: Position, now: datetime, reason: str) -> str:
        book, broker = self.ctx.book, self.ctx.broker
        entry = pos.entry
        qty = pos.open_qty
        if qty <= 0:
            self.oco.disarm(entry.ref)
            return f"{entry.ref}: already closed"
        # Never sell more than the broker holds (a fill not adopted yet must not make a short).
        sized = ""
        try:
            held = sum(
                p.qty
                for p in await broker.positions()
                if p.contract.con_id == entry.contract.con_id
            )
        except PositionsUnknown as exc:
            if not _expiring(pos, now):
                return f"{entry.ref}: not sold yet: {exc.message}"
            sized = " (sized on the journal: IB has not answered its positions)"
        else:
            claimed = sum(
                p.open_qty
                for p in book.open_positions()
                if p.entry.contract.con_id == entry.contract.con_id and p.entry.ref != entry.ref
            )
            qty = min(qty, max(0, held - claimed))
        if qty <= 0:
            return f"{entry.ref}: the broker holds nothing more to sell; waiting for its fills"
        earlier = [e for e in pos.exits if e.role == "exit"]
        n = 1 + len(earlier)
        # After a closing sell that did not fill (refused, cancelled, never sent), the next one
        # is a marketable limit: IB may refuse or hold market orders on an option.
        failed = any(e.final and e.filled_qty == 0 for e in earlier)
        limit: Decimal | None = None
        if failed:
            quote = (await broker.quotes([entry.contract]))[0]
            bid = None if quote is None else quote.bid
            limit = marketable_limit(bid, entry.contract.grid)
        order = TrackedOrder(
            ref=f"{entry.ref}.x{n}",
            role="exit",
            symbol=entry.symbol,
            strategy=entry.strategy,
            contract=entry.contract,
            action="SELL",
            qty=qty,
            order_type="MKT" if limit is None else "LMT",
            tif="DAY",
            session=session_of(now),
            mode=entry.mode,
            phase=entry.phase,
            intent_ts=now,
            limit=limit,
            parent_ref=entry.ref,
            stop_loss_pct=entry.stop_loss_pct,
            exit_reason=reason,
        )
        how = ("at market" if limit is None else f"with a marketable limit {limit}") + sized
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
            f"{entry.ref}: selling {qty} {entry.contract.label} {how} ({reason})",
            order_ref=order.ref,
            reason=reason,
        )
        return f"{entry.ref}: selling {qty} {how} ({reason})"

    async def cancel_entry(self, entry: TrackedOrder, now: datetime, why: str) -> None:
        """Cancel a working entry (its bracket legs go with it)."""
        await self._cancel(entry, now, f"{why}: entry cancelled")

    async def _cancel(
        self, order: TrackedOrder, now: datetime, why: str, *, quiet: bool = False
    ) -> bool:
        """Ask the broker to cancel `order` (again only after CANCEL_AGAIN: the broker's status,
        not the request, says when it is gone). True when a cancel was sent now."""
        last = self._cancel_sent.get(order.ref)
        if last is not None and now - last < CANCEL_AGAIN and now >= last:
            return False
        try:
            await self.ctx.broker.cancel(
                order.ref, order_id=order.order_id, contract=order.contract
            )
        except BrokerError as exc:
            log.warning("%s: cancel failed: %s", order.ref, exc)
            return False
        self._cancel_sent[order.ref] = now
        for ref in [r for r, t in self._cancel_sent.items() if now - t > timedelta(hours=1)]:
            del self._cancel_sent[ref]
        if not quiet:
            self.ctx.events.record(now, "order_cancel", f"{order.ref}: {why}", order_ref=order.ref)
        return True


def _selling(pos: Position) -> list[TrackedOrder]:
    """The closing sells of `pos` still working (one the broker holds is not working)."""
    return [e for e in pos.working_exits if e.role == "exit" and e.status != "held"]


def _expiring(pos: Position, now: datetime) -> bool:
    """Whether the option of `pos` expires today (or has expired)."""
    return pos.entry.contract.expiry <= session_of(now)


@dataclass
class ExpiryWatch:
    """Positions whose option expires today, still open after the flatten began: a `critical`
    alert (and an `expiry_risk` event) every minute until they are gone, and the lines that
    `status` and the live view show first."""

    ctx: EngineContext
    last_alert: datetime | None = None
    urgent: list[str] = field(default_factory=list)
    closing_since: dict[str, datetime] = field(default_factory=dict)

    def at_risk(self, session: date) -> list[Position]:
        return [p for p in self.ctx.book.open_positions() if p.entry.contract.expiry <= session]

    def check(self, now: datetime, session: date, closes: datetime, *, connected: bool) -> None:
        """Called at every wake from the flatten time to the close (after the flatten pass)."""
        positions = self.at_risk(session)
        refs = {p.entry.ref for p in positions}
        self.closing_since = {r: t for r, t in self.closing_since.items() if r in refs}
        for ref in refs:
            self.closing_since.setdefault(ref, now)
        if not positions:
            self.urgent = []
            return
        minutes = max(0, int((closes - now).total_seconds() // 60))
        close_ny = closes.astimezone(EXCHANGE_TZ)
        lines = []
        due = False
        for pos in positions:
            entry = pos.entry
            exits = _selling(pos)
            since = self.closing_since[entry.ref]
            held = [e.ref for e in pos.working_exits if e.role == "exit" and e.status == "held"]
            legs = [e.ref for e in pos.working_exits if e.role != "exit"]
            legs += [entry.ref] if entry.working else []
            act = "tradebot keeps retrying the sell"
            if exits:
                doing = "its sell is working"
            elif held and now - since >= EXIT_STUCK:
                # Cancelled at once (`held_guards`), and the broker has not confirmed it since:
                # nothing is sent beside an order that may still fill; only a person can act.
                names = ", ".join(held)
                doing = (
                    f"the broker holds its sell {names} Inactive and has not confirmed its cancel"
                )
                act = (
                    f"tradebot sells nothing beside it: cancel {names} and sell by hand in TWS now"
                )
            elif held:
                doing = "its sell is held Inactive by the broker"
            elif legs and now - since >= EXIT_STUCK:
                # Their cancel is unconfirmed (a Gateway that never listed its open orders):
                # no sell goes out beside orders that can still fill; only a person can act.
                names = ", ".join(legs)
                doing = f"the broker has not confirmed the cancel of {names}"
                act = (
                    f"tradebot sells nothing beside them: cancel {names} and sell by hand in "
                    "TWS now"
                )
            else:
                doing = "no sell is working"
            lines.append(
                f"EXPIRES TODAY: {entry.ref} {pos.open_qty} {entry.contract.label} still open, "
                f"{minutes} min before the {close_ny:%H:%M %Z} close ({doing}); held at the close "
                f"it is exercised if in the money; {act}"
            )
            # Alert when the sell failed or was never possible, or has not filled in a minute.
            if not exits or not connected or now - since >= EXIT_STUCK:
                due = True
        self.urgent = lines
        if due and (self.last_alert is None or now - self.last_alert >= timedelta(minutes=1)):
            self.last_alert = now
            why = "" if connected else " (the broker is disconnected: nothing can be sent)"
            text = "; ".join(lines) + why
            self.ctx.events.record(now, "expiry_risk", text, refs=sorted(refs))
            self.ctx.notify("critical", text)
            log.error("%s", text)

    def at_close(self, now: datetime, session: date) -> None:
        """The close came with an option of the day still held (or settled at expiry, as the
        simulators report it at once): one last, plain alert."""
        book = self.ctx.book
        refs = set(self.closing_since) | {p.entry.ref for p in self.at_risk(session)}
        self.urgent = []
        self.closing_since = {}
        held = []
        for ref in sorted(refs):
            entry = book.orders.get(ref)
            if entry is None:
                continue
            pos = book.position(entry)
            settled = sum(e.filled_qty for e in pos.exits if e.order_type == "EXPIRY")
            if pos.open_qty > 0 or settled > 0:
                held.append(f"{ref} ({max(pos.open_qty, settled)} {entry.contract.label})")
        if not held:
            return
        text = (
            f"held through the close of their expiry day: {', '.join(held)}. IB exercises an "
            "option in the money by $0.01 or more (100 shares a contract) or lets it expire; "
            "check the account, and record the outcome with `tradebot journal close` if "
            "tradebot cannot"
        )
        self.ctx.events.record(now, "expiry_risk", text, refs=sorted(refs))
        self.ctx.notify("critical", text)
        log.error("%s", text)
