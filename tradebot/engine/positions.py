"""Reconciliation by positions: the journal's open trades against what the broker holds.

IB returns executions and completed orders of the current IB day only, so a stop that filled
while tradebot was stopped yesterday is, today, only a position that is gone. At start, after
every reconnect and at every sync, the broker's positions are compared with the journal's open
positions, contract by contract:

* **the journal holds more than the broker** (a fill the executions no longer show): the exit
  is recorded from the best evidence — an order the broker reports filled (its order status or
  the completed orders), then the account statement (IB's Flex query: its trades, and
  expirations) — with its source. With none, new entries are refused and the operator is told
  how to record it (`tradebot journal close TRADE_ID --price P --reason TEXT`): never a silent
  $0;
* **the broker holds something the journal does not**, or more of it (an exercise or
  assignment into shares, a manual trade, an IB liquidation the other way): entries on that
  underlying are refused (never add on top), a `critical` alert goes out and `status` shows it;
* **the broker holds a short position** (an exercised long put leaves short shares, a sale
  beyond what was held): tradebot never opens one, so it is never "an exit to record": the
  operator is told to close it by hand (symbol, quantity, conId), and entries on the symbol are
  refused until it is gone. Journal positions of that contract are gone too (IB holds none
  long): their exits are explained from the evidence, or recorded by the operator.

A difference seen while the loop runs must last `GRACE` before it is acted on (a fill whose
commission report is on its way); at start and after a reconnect it counts at once. Entries on
the underlying wait from the first moment either way.

The account statement (IB's Flex query) can take IB a minute and more to prepare: the check
waits for it at most `statement_wait_s` (real seconds), then lets it arrive in the background and
uses it at a later check. Risk-reducing work that follows the check in a wake (exits, the
flatten, expiry-day sells) never waits behind a statement; entries stay refused meanwhile.

While the broker has not said what it holds (IB Gateway never answered reqPositions), nothing is
compared: silence is not "nothing held". The verdicts drawn from its last answer stand, and
entries wait anyway (the connection is degraded).

Why one module: comparing, explaining from the evidence (order status, statement) and refusing
are one verdict per difference, and the statement fetched in the background belongs to the
check that asked for it.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from tradebot.brokers.base import BrokerOrder, Execution, Holding, PositionsUnknown, Statement
from tradebot.core.instruments import OptionContract
from tradebot.core.sessions import previous_sessions, session_open_close
from tradebot.engine.context import EngineContext
from tradebot.engine.order_book import RECONCILED_PREFIX, Position, TrackedOrder

log = logging.getLogger("tradebot.engine")

GRACE = timedelta(seconds=90)
# Real seconds a check waits for the account statement before leaving it to the background.
STATEMENT_WAIT_S = 2.0
# A statement fetched in the background is used only this long after it was asked for (IB's
# adapter asks Flex at most every 10 minutes): one left unread because the difference that
# asked for it was explained otherwise cannot hold a sale made later.
STATEMENT_FRESH_S = 600.0


@dataclass
class Difference:
    key: str
    symbol: str
    label: str
    journal: int
    broker: int
    since: datetime
    refs: tuple[str, ...] = ()
    con_id: int = 0


@dataclass
class PositionWatch:
    ctx: EngineContext
    seen: dict[str, Difference] = field(default_factory=dict)
    unexplained: dict[str, str] = field(default_factory=dict)  # key → the operator's step
    unknown: dict[str, str] = field(default_factory=dict)  # key → what the broker holds
    _alerted: dict[str, tuple[int, int]] = field(default_factory=dict)  # "key/kind" → said
    statement_wait_s: float = STATEMENT_WAIT_S
    _statement: asyncio.Task[Statement | None] | None = None
    _statement_since: date | None = None
    _statement_asked: float = 0.0  # the event loop's clock when it was asked for

    async def _statement_for(self, since: date) -> Statement | None:
        """The account statement from `since`, if it is at hand within `statement_wait_s`;
        else None now, and it is fetched on in the background for a later check (the same
        check asking again). A download asked for another `since`, or more than
        STATEMENT_FRESH_S ago, is not used: it may predate the sale this check looks for."""
        loop = asyncio.get_running_loop()
        task = self._statement
        if task is not None:
            covers = (
                (self._statement_since or since) <= since
                if not task.done()
                else (self._statement_since == since)
            )
            if not covers or loop.time() - self._statement_asked > STATEMENT_FRESH_S:
                task.cancel()
                task = None
        if task is None:
            task = self._statement = asyncio.create_task(self.ctx.broker.statement(since))
            self._statement_since = since
            self._statement_asked = loop.time()
        if not task.done():
            await asyncio.wait([task], timeout=self.statement_wait_s)
        if not task.done():
            log.info("the account statement is on its way; the check uses it once it is here")
            return None
        self._statement = None
        try:
            return task.result()
        except Exception as exc:  # the broker's own failure: no evidence this time
            log.warning("account statement not read: %s", exc)
            return None

    def close(self) -> None:
        """The loop stops: a download still running is cancelled (asyncio.run would otherwise
        wait for its thread at shutdown)."""
        if self._statement is not None:
            self._statement.cancel()
            self._statement = None

    # -- what the loop asks ------------------------------------------------------------------
    def refusal(self) -> str | None:
        """Why no entry may open at all (a closed position no evidence explains), or None."""
        if not self.unexplained:
            return None
        return "; ".join(self.unexplained.values())

    @property
    def urgent(self) -> list[str]:
        return [*self.unexplained.values(), *self.unknown.values()]

    # -- the comparison ----------------------------------------------------------------------
    async def check(self, now: datetime, *, settled: bool) -> list[str]:
        """Compare, explain what can be explained, and refuse what cannot. `settled`: nothing
        is in flight (start, reconnect): differences count at once. Returns what it did."""
        book, broker = self.ctx.book, self.ctx.broker
        try:
            holdings = await broker.holdings()
        except PositionsUnknown as exc:
            log.debug("positions not compared: %s", exc)
            return []
        ours: dict[int, list[Position]] = {}
        for pos in book.open_positions():
            ours.setdefault(pos.entry.contract.con_id, []).append(pos)
        options: dict[int, Holding] = {}
        found: dict[str, Difference] = {}
        for h in holdings:
            if h.option is not None:
                options[h.con_id] = h
            elif h.qty != 0:  # shares or anything tradebot never trades itself
                key = f"{h.sec_type}:{h.con_id}"
                found[key] = Difference(key, h.symbol, h.label, 0, h.qty, now, con_id=h.con_id)
        for con_id in set(ours) | set(options):
            positions = ours.get(con_id, [])
            journal = sum(p.open_qty for p in positions)
            held = options.get(con_id)
            broker_qty = held.qty if held is not None else 0
            if journal == broker_qty:
                continue
            key = f"OPT:{con_id}"
            contract = positions[0].entry.contract if positions else None
            symbol = contract.symbol if contract else (held.symbol if held else "?")
            label = contract.label if contract else (held.label if held else f"conId {con_id}")
            refs = tuple(p.entry.ref for p in sorted(positions, key=lambda p: p.entry.intent_ts))
            found[key] = Difference(key, symbol, label, journal, broker_qty, now, refs, con_id)
        for key, diff in found.items():
            earlier = self.seen.get(key)
            if earlier is not None and (earlier.journal, earlier.broker) == (
                diff.journal,
                diff.broker,
            ):
                diff.since = earlier.since
        self.seen = found
        self.ctx.blocked_symbols = {
            d.symbol: _short_text(d)
            if d.broker < 0
            else f"the broker holds {d.broker} {d.label}, the journal {d.journal}"
            for d in sorted(found.values(), key=lambda d: d.broker >= 0)
        }
        done: list[str] = []
        unexplained: dict[str, str] = {}
        unknown: dict[str, str] = {}
        for diff in found.values():
            if not settled and now - diff.since < GRACE:
                # Not acted on yet; an earlier verdict on it stands meanwhile.
                if diff.key in self.unexplained:
                    unexplained[diff.key] = self.unexplained[diff.key]
                if diff.key in self.unknown:
                    unknown[diff.key] = self.unknown[diff.key]
                continue
            if diff.broker < 0:
                unknown[diff.key] = (
                    f"{_short_text(diff)}: close it by hand (in TWS or the IBKR app), then "
                    f"check the account; entries on {diff.symbol} are refused until it is gone, "
                    "and tradebot leaves it alone"
                )
                if diff.journal <= 0:
                    continue
                # The journal's long positions of this contract are gone as well.
                diff = replace(diff, broker=0)
            if diff.journal > diff.broker:
                explained = await self._explain(now, diff, ours.get(diff.con_id, []))
                done += explained
                if explained and self._resolved(diff):
                    continue
                unexplained[diff.key] = self._operator_step(diff)
            else:
                unknown[diff.key] = (
                    f"IB holds {diff.broker} {diff.label} but tradebot's journal {diff.journal}: "
                    "an exercise or assignment, a manual trade, or IB's own liquidation? "
                    f"entries on {diff.symbol} wait until it is gone; tradebot leaves it alone"
                )
        told = [(f"{k}/exit", k, t) for k, t in unexplained.items()]
        told += [(f"{k}/unknown", k, t) for k, t in unknown.items()]
        for said, key, text in told:
            diff = found[key]
            if self._alerted.get(said) != (diff.journal, diff.broker):
                self._alerted[said] = (diff.journal, diff.broker)
                self.ctx.events.record(
                    now, "position_mismatch", text, con_id=diff.con_id, refs=list(diff.refs),
                    journal_qty=diff.journal, broker_qty=diff.broker,
                )  # fmt: skip
                self.ctx.notify("critical", text)
                log.error("%s", text)
        self._alerted = {k: v for k, v in self._alerted.items() if k.split("/")[0] in found}
        self.unexplained, self.unknown = unexplained, unknown
        return done

    def _resolved(self, diff: Difference) -> bool:
        positions = [
            p for p in self.ctx.book.open_positions() if p.entry.contract.con_id == diff.con_id
        ]
        return sum(p.open_qty for p in positions) <= diff.broker

    @staticmethod
    def _operator_step(diff: Difference) -> str:
        ref = diff.refs[0] if diff.refs else "TRADE_ID"
        return (
            f"{', '.join(diff.refs) or diff.label}: the journal holds {diff.journal} {diff.label} "
            f"but IB {diff.broker}, and no execution, order status or account statement explains "
            "it; new entries wait until the exit is recorded: `tradebot journal close "
            f"{ref} --price P --reason TEXT` (P per share, from IB's statement; 0 if it expired "
            "worthless)"
        )

    # -- evidence ----------------------------------------------------------------------------
    async def _explain(
        self, now: datetime, diff: Difference, positions: list[Position]
    ) -> list[str]:
        """Record the exits that evidence shows, oldest position first; returns what it did."""
        book, broker = self.ctx.book, self.ctx.broker
        missing = diff.journal - diff.broker
        done: list[str] = []
        positions = sorted(positions, key=lambda p: p.entry.intent_ts)
        # 1. An order of the position the broker reports filled, whose executions are gone.
        by_ref: dict[str, BrokerOrder] = {}
        pending = {
            (x.order_ref, x.perm_id)
            for x in await broker.executions(now - timedelta(days=7))
            if x.exec_id not in book.seen_execs
        }
        for listed in await broker.orders(None):
            ours = book.find(listed.order_ref, listed.perm_id)
            if ours is not None:
                by_ref[ours.ref] = listed
        for pos in positions:
            for leg in pos.exits:
                bo = by_ref.get(leg.ref)
                if missing <= 0 or bo is None or bo.status != "filled":
                    continue
                if any(ref == leg.ref or (perm and perm == bo.perm_id) for ref, perm in pending):
                    continue  # its execution is listed, not adopted yet: the sync will
                qty = min(bo.filled - leg.filled_qty, missing, book.position(pos.entry).open_qty)
                if qty <= 0 or bo.avg_fill_price <= 0:
                    continue
                # Sold when the broker says it filled, not when tradebot learnt it.
                x = _execution(
                    f"{RECONCILED_PREFIX}{bo.perm_id or bo.order_id}:{leg.ref}", leg, qty,
                    bo.avg_fill_price, min(bo.finished_at or now, now), None,
                )  # fmt: skip
                recorded = book.record_exit(
                    now, pos.entry, x, leg=leg, source="broker order status",
                    note="IB reports the order filled; its execution is no longer listed",
                )  # fmt: skip
                if recorded is None:
                    continue  # recorded meanwhile (`journal close`)
                missing -= qty
                done.append(f"{leg.ref}: {qty} sold at {bo.avg_fill_price} (IB's order status)")
        if missing <= 0:
            return self._finish(now, positions, done)
        # 2. The account statement (IB's Flex query), when the broker offers one.
        since = min((p.entry.session for p in positions), default=now.date())
        statement = await self._statement_for(since - timedelta(days=1))
        if statement is not None:
            missing, more = self._from_statement(now, positions, statement, missing)
            done += more
        return self._finish(now, positions, done)

    def _from_statement(
        self, now: datetime, positions: list[Position], st: Statement, missing: int
    ) -> tuple[int, list[str]]:
        book = self.ctx.book
        done: list[str] = []
        for pos in positions:
            entry = pos.entry
            legs = {e.ref: e for e in pos.exits}
            perms = {e.perm_id: e for e in pos.exits if e.perm_id}
            for t in sorted(st.trades, key=lambda t: t.time):
                open_qty = book.position(entry).open_qty
                if missing <= 0 or open_qty <= 0:
                    break
                if t.side != "SLD" or t.exec_id in book.seen_execs:
                    continue
                if not _same(t.contract, entry.contract) or t.time < _first_fill(entry):
                    continue
                leg = legs.get(t.order_ref) or perms.get(t.perm_id)
                qty = min(t.qty, missing, open_qty)
                x = Execution(
                    exec_id=t.exec_id, order_ref=t.order_ref, order_id=0, perm_id=t.perm_id,
                    contract=entry.contract, side="SLD", qty=qty, price=t.price, time=t.time,
                    commission=t.commission,
                )  # fmt: skip
                recorded = book.record_exit(
                    now, entry, x, leg=leg if leg is not None and leg.working else None,
                    source=st.source, reason="manual" if leg is None else leg.role,
                    note="sold while tradebot could not see it",
                )  # fmt: skip
                if recorded is None:
                    continue  # recorded meanwhile (`journal close`)
                missing -= qty
                done.append(f"{entry.ref}: {qty} sold at {t.price} ({st.source})")
            for ev in st.events:
                open_qty = book.position(entry).open_qty
                if missing <= 0 or open_qty <= 0:
                    break
                if ev.kind != "Expiration" or not _same(ev.contract, entry.contract):
                    continue
                qty = min(ev.qty or open_qty, missing, open_qty)
                x = Execution(
                    exec_id=f"flex-expiry:{entry.contract.con_id}:{entry.ref}", order_ref="",
                    order_id=0, perm_id=0, contract=entry.contract, side="SLD", qty=qty,
                    price=Decimal(0), time=self._close_of(ev.day), commission=Decimal(0),
                    kind="expiry",
                )  # fmt: skip
                recorded = book.record_exit(
                    now, entry, x, source=st.source, reason="expired",
                    note=f"expired worthless on {ev.day}",
                )  # fmt: skip
                if recorded is None:
                    continue  # recorded meanwhile (`journal close`)
                missing -= qty
                done.append(f"{entry.ref}: {qty} expired worthless on {ev.day} ({st.source})")
        return missing, done

    def _close_of(self, day: date) -> datetime:
        """The close of the session an option expiring on `day` belongs to."""
        calendar = self.ctx.settings.schedule.calendar
        try:
            return session_open_close(day, calendar)[1]
        except ValueError:
            before = previous_sessions(day, 1, calendar)
            if before:
                return session_open_close(before[-1], calendar)[1]
            return datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=21)

    def _finish(self, now: datetime, positions: list[Position], done: list[str]) -> list[str]:
        """After recorded exits: legs IB no longer lists for a closed position are finished
        (the broker cancelled the sibling of the leg that filled), and the trades are closed."""
        if not done:
            return done
        book = self.ctx.book
        for pos in positions:
            current = book.position(pos.entry)
            if current.open_qty > 0:
                continue
            for leg in current.working_exits:
                book.mark_status(
                    now, leg.ref, "cancelled",
                    "the position was closed while tradebot could not see it; IB no longer "
                    "lists this order",
                )  # fmt: skip
        book.close_trades(now)
        for line in done:
            self.ctx.events.record(now, "reconciled_exit", line)
            log.warning("reconciled exit: %s", line)
        return done


def _short_text(diff: Difference) -> str:
    """A short position: what it is, by symbol, quantity and conId."""
    return (
        f"IB holds a short position tradebot never opens: {diff.broker} {diff.label} "
        f"({diff.symbol}, con_id {diff.con_id}) — an exercised put, an assignment or a sale "
        "beyond what was held"
    )


def _execution(
    exec_id: str,
    leg: TrackedOrder,
    qty: int,
    price: Decimal,
    when: datetime,
    commission: Decimal | None,
) -> Execution:
    return Execution(
        exec_id=exec_id, order_ref=leg.ref, order_id=leg.order_id, perm_id=leg.perm_id,
        contract=leg.contract, side="SLD", qty=qty, price=price, time=when, commission=commission,
    )  # fmt: skip


def _same(a: OptionContract, b: OptionContract) -> bool:
    if a.con_id and b.con_id:
        return a.con_id == b.con_id
    return a.same_option(b)


def _first_fill(entry: TrackedOrder) -> datetime:
    return min((f.time for f in entry.fills.values()), default=entry.intent_ts)
