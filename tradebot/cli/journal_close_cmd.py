"""`tradebot journal close TRADE_ID --price P --reason TEXT`: record an exit tradebot could not see.

IB's API forgets executions at the end of its day: a stop that filled while tradebot was
stopped, an option exercised or expired, a position sold by hand in TWS leave a trade open in
the journal with nothing to explain it, and the loop refuses new entries until the operator
records how it ended (never a silent $0). The record is audited: the exit's fill in
`journal/orders.jsonl` carries the source "operator <user>" and the reason, and a
`journal_close` event names who recorded what. With no loop running, the trade is written to
`journal/trades.jsonl` at once; a running loop writes it at its next step.

The journal is read, checked and written under its inter-process lock: a running loop that
adopts a fill of the same position meanwhile waits, and what it then records is capped at
what is still open (never two exits for one position).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Annotated

import typer

from tradebot.cli.context import state_of
from tradebot.cli.output import MAX_OPERATOR, MAX_REASON, check_text, esc, stdout_console
from tradebot.errors import RefusedError, UsageError

if TYPE_CHECKING:
    from tradebot.engine.order_book import OrderBook, TrackedOrder

MAX_PRICE = Decimal(1_000_000)


def parse_price(text: str, option: str = "--price") -> Decimal:
    """A price per share: a plain decimal ≥ 0 with at most 6 places."""
    try:
        price = Decimal(text.strip())
    except InvalidOperation:
        raise UsageError(f"{option} {text!r} is not a number; write it like 1.25") from None
    if not price.is_finite() or price < 0 or price >= MAX_PRICE:
        raise UsageError(f"{option} {text!r} must be a price per share from 0 to {MAX_PRICE}")
    if price != price.quantize(Decimal("0.000001")):
        raise UsageError(f"{option} {text!r} has more than 6 decimal places")
    return price


def close(
    ctx: typer.Context,
    trade_id: Annotated[str, typer.Argument(help="The trade (its entry's order_ref).")],
    price: Annotated[str, typer.Option(help="Exit price per share (0 if it expired worthless).")],
    reason: Annotated[str, typer.Option(help="How it ended, from the account statement.")],
    qty: Annotated[
        int | None, typer.Option(min=1, help="Contracts closed (default: all still open).")
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--time", help="When it was sold (ISO with a zone; default now)."),
    ] = None,
    commission: Annotated[str, typer.Option(help="Commission paid on the exit, $.")] = "0",
    operator: Annotated[
        str | None, typer.Option(help="Who (default: your OS user).", show_default=False)
    ] = None,
) -> None:
    """Record the exit of an open trade that the broker no longer holds (audited)."""
    from tradebot.books.journal_cache import CachedOrderJournal, CachedTradeJournal
    from tradebot.books.ladder import default_operator
    from tradebot.engine.events import EventLog
    from tradebot.engine.order_book import OrderBook

    check_text(operator, "--operator", MAX_OPERATOR)
    check_text(reason, "--reason", MAX_REASON)
    if not reason.strip():
        raise UsageError("--reason is empty; say how the trade ended (e.g. 'stop filled 07-01')")
    exit_price = parse_price(price)
    fee = parse_price(commission, "--commission")
    when = _moment(at)
    loaded = state_of(ctx).config()
    who = operator or default_operator()
    now = datetime.now(UTC)
    events = EventLog(loaded.logs_dir)
    book = OrderBook(
        CachedOrderJournal(loaded.logs_dir), CachedTradeJournal(loaded.logs_dir), events
    )
    with book.journal.hold():
        recorded = _record(book, trade_id, qty, exit_price, fee, when or now, who, reason, now)
    entry, closed = recorded
    events.record(
        now,
        "journal_close",
        f"{who} recorded the exit of {trade_id}: {closed} {entry.contract.label} at "
        f"{exit_price} ({reason.strip()})",
        order_ref=trade_id,
        operator=who,
        price=exit_price,
        qty=closed,
        reason=reason.strip(),
    )
    running = _loop_running(loaded)
    out = stdout_console()
    out.print(
        f"recorded the exit of {esc(trade_id)}: {closed} at {exit_price} by {esc(who)}",
        highlight=False,
    )
    if running:
        out.print("the running loop writes the trade at its next step", highlight=False)
        return
    written = book.close_trades(now)
    if written:
        t = written[0]
        out.print(f"trade closed: P&L {t.pnl:+.2f} ({t.exit_reason})", highlight=False)


def _record(
    book: OrderBook,
    trade_id: str,
    qty: int | None,
    exit_price: Decimal,
    fee: Decimal,
    when: datetime,
    who: str,
    reason: str,
    now: datetime,
) -> tuple[TrackedOrder, int]:
    """Check and record the exit (the caller holds the journal's lock): (entry, qty closed)."""
    from tradebot.brokers.base import Execution

    book.refresh()
    entry = book.orders.get(trade_id)
    if entry is None or entry.role != "entry":
        raise UsageError(
            f"{trade_id!r} is not a trade in {book.journal.path}; `tradebot status` lists the "
            "open ones"
        )
    pos = book.position(entry)
    if pos.open_qty <= 0:
        raise RefusedError(f"{trade_id} has nothing open in the journal: nothing to close")
    if any(e.working and e.role == "exit" for e in pos.exits):
        raise RefusedError(
            f"{trade_id} has a closing order working at the broker; wait for it (or cancel it in "
            "TWS) before recording the exit by hand"
        )
    closed = qty or pos.open_qty
    if closed > pos.open_qty:
        raise UsageError(f"--qty {closed} is more than the {pos.open_qty} still open")
    x = Execution(
        exec_id=f"operator:{trade_id}:{len(pos.exits) + 1}",  # one more exit order each time
        order_ref=trade_id,
        order_id=0,
        perm_id=0,
        contract=entry.contract,
        side="SLD",
        qty=closed,
        price=exit_price,
        time=when,
        commission=fee,
    )
    book.record_exit(now, entry, x, source=f"operator {who}", note=reason.strip(), reason="manual")
    if book.position(entry).open_qty <= 0:
        for leg in book.position(entry).working_exits:
            book.mark_status(
                now, leg.ref, "cancelled", f"the trade was closed by {who} (journal close)"
            )
    return entry, closed


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(
            f"--time {text!r} is not an ISO date-time (e.g. 2025-07-01T15:58:00-04:00)"
        ) from None
    if moment.tzinfo is None:
        raise UsageError(f"--time {text!r} needs a time zone (e.g. -04:00 or Z)")
    if moment > datetime.now(UTC):
        raise UsageError(f"--time {text!r} is in the future")
    return moment.astimezone(UTC)


def _loop_running(loaded: object) -> bool:
    from tradebot.engine.status_view import loop_report

    return bool(loop_report(loaded, datetime.now(UTC))["running"])
