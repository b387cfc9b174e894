"""The open positions and the working orders as tables: the live panel of `tradebot run` and
`tradebot status` draw them with the same columns, the same priorities and the same cells."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

from rich.table import Table
from rich.text import Text

from tradebot.cli.output import fmt_money, fmt_price
from tradebot.cli.tables import Cell, Column, fit_table
from tradebot.engine.status import OrderLine, PositionLine

POSITION_COLUMNS = (
    Column("ref"),
    Column("contract"),
    Column("strategy", priority=3),
    Column("qty", "right", priority=2),
    Column("entry", "right", priority=4),
    Column("mark", "right", priority=4),
    Column("unrealized", "right"),
)
ORDER_COLUMNS = (
    Column("ref"),
    Column("role", priority=3),
    Column("contract", priority=1),
    Column("side", priority=2),
    Column("qty", "right", priority=2),
    Column("type", priority=4),
    Column("price", "right"),
    Column("status"),
)


def positions_table(
    title: str, positions: Sequence[PositionLine], width: int, *, wide: bool = False
) -> Table:
    rows: list[list[Cell]] = [
        [
            Text(p.ref),
            Text(p.contract),
            Text(p.strategy),
            str(p.qty),
            fmt_price(p.entry_price),
            fmt_price(p.mark),
            fmt_money(p.unrealized),
        ]
        for p in positions
    ]
    return fit_table(title, POSITION_COLUMNS, rows, width, wide=wide)


def orders_table(
    title: str, orders: Sequence[OrderLine], width: int, *, wide: bool = False
) -> Table:
    rows: list[list[Cell]] = [
        [
            Text(o.ref),
            Text(o.role),
            Text(o.contract),
            Text(o.action),
            str(o.qty),
            Text(o.order_type),
            fmt_price(o.price),
            Text(o.status),
        ]
        for o in orders
    ]
    return fit_table(title, ORDER_COLUMNS, rows, width, wide=wide)


def position_line(doc: Mapping[str, Any]) -> PositionLine:
    """A position of `tradebot status --json` (numbers as text or Decimal) as the loop's line."""
    return PositionLine(
        ref=str(doc["ref"]),
        contract=str(doc["contract"]),
        strategy=str(doc["strategy"]),
        qty=int(doc["qty"]),
        entry_price=Decimal(str(doc["entry_price"])),
        mark=_dec(doc.get("mark")),
        unrealized=_dec(doc.get("unrealized")),
    )


def order_line(doc: Mapping[str, Any]) -> OrderLine:
    """A working order of `tradebot status --json` as the loop's line."""
    return OrderLine(
        ref=str(doc["ref"]),
        role=str(doc["role"]),
        contract=str(doc["contract"]),
        action=str(doc["action"]),
        qty=int(doc["qty"]),
        order_type=str(doc["order_type"]),
        price=_dec(doc.get("price")),
        status=str(doc["status"]),
    )


def _dec(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))
