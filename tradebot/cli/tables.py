"""Tables that fit the terminal without cutting what matters.

Ids, money, times and reasons are never cut: a column either shows its values whole or is left
out. Columns are chosen by width — each has a priority, and the least important ones are left
out until the table fits (`--wide` shows them all, wider than the terminal if need be) — and
free text (a reason, a signal's explanation) wraps at word boundaries instead of being cut,
never between a number and its unit (`46.2 %`, `15 s`, `15:50 EDT`) or a date and its time.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich import box
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

Justify = Literal["left", "right", "center"]
GAP = 2  # columns are separated by two spaces (collapsed padding, no vertical lines)
COMFORTABLE = 24  # free text narrower than this is hard to read: other columns go first
# Spaces a line never breaks at: between a number and its unit (`46.2 %`, `1.16 R`, `15 s`,
# `3 min`, `2 ×`), a time and its zone (`15:50 EDT`), a date and its time.
GLUED = re.compile(
    r"(?<=\d) (?=(?:%|R|s|ms|min|h|×|x|E[SD]T)(?![\w]))|(?<=\d{4}-\d\d-\d\d) (?=\d\d:\d\d)"
)


@dataclass(frozen=True)
class Column:
    header: str
    justify: Justify = "left"
    priority: int = 0  # 0: always shown; higher: left out first when the terminal is narrow
    wrap: bool = False  # free text: wraps at word boundaries (each word stays whole)
    width: int | None = None  # a fixed width (a progress bar)


Cell = str | Text | RenderableType


def _cell_width(cell: Cell) -> int:
    if isinstance(cell, str):
        text = Text.from_markup(cell)
        return max((len(line) for line in text.plain.splitlines()), default=0)
    if isinstance(cell, Text):
        return max((len(line) for line in cell.plain.splitlines()), default=0)
    return 0


def _longest_word(cell: Cell) -> int:
    plain = (
        Text.from_markup(cell).plain
        if isinstance(cell, str)
        else (cell.plain if isinstance(cell, Text) else "")
    )
    return max((len(word) for word in plain.split()), default=0)


def fit_table(
    title: str | None,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Cell]],
    width: int,
    *,
    wide: bool = False,
    show_header: bool = True,
) -> Table:
    """A table of `columns` no wider than `width` (unless `wide`), leaving out the columns of
    highest priority number first; wrapped columns get what is left, never less than their
    longest word."""
    natural: list[int] = []
    minimum: list[int] = []
    for i, column in enumerate(columns):
        cells = [row[i] for row in rows]
        header = len(column.header) if show_header else 0
        if column.width is not None:
            natural.append(max(column.width, header))
            minimum.append(natural[-1])
            continue
        full = max([header, *(_cell_width(c) for c in cells)])
        natural.append(full)
        if column.wrap:
            words = max([min(header, 12), *(_longest_word(c) for c in cells)])
            minimum.append(min(full, max(words, COMFORTABLE)))
        else:
            minimum.append(full)
    shown = list(range(len(columns)))

    def needed(indices: list[int]) -> int:
        return sum(minimum[i] for i in indices) + GAP * max(0, len(indices) - 1)

    if not wide:
        while needed(shown) > width:
            droppable = [i for i in shown if columns[i].priority > 0]
            if not droppable:
                break
            # The highest priority number goes first; among equals, the rightmost.
            drop = max(droppable, key=lambda i: (columns[i].priority, i))
            shown.remove(drop)
    # Free text takes what the other columns leave (never less than 8), wrapped here so that a
    # number keeps its unit; a word longer than that (a long path) is folded, never cut.
    wrapped = [i for i in shown if columns[i].wrap]
    widths: dict[int, int] = {}
    if wrapped and not wide:
        fixed = sum(natural[i] for i in shown if not columns[i].wrap)
        left = width - fixed - GAP * max(0, len(shown) - 1)
        # The narrowest text first takes what it needs; the others share what remains.
        for n, i in enumerate(sorted(wrapped, key=lambda i: natural[i])):
            share = max(8, left // (len(wrapped) - n))
            widths[i] = min(natural[i], share)
            left -= widths[i]
        rows = [
            [wrap_whole(cell, widths[i]) if i in widths else cell for i, cell in enumerate(row)]
            for row in rows
        ]
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
        show_header=show_header,
    )
    for i in shown:
        column = columns[i]
        if column.wrap:
            table.add_column(
                column.header,
                justify=column.justify,
                min_width=minimum[i] if wide else None,
                width=widths.get(i),
                overflow="fold",
            )
        else:
            table.add_column(
                column.header,
                justify=column.justify,
                no_wrap=True,
                min_width=natural[i],
                width=column.width,
            )
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    return table


def wrap_whole(cell: Cell, width: int) -> Cell:
    """`cell` (markup text or `Text`, styles kept) broken into lines of at most `width`
    columns at spaces, never at a `GLUED` one; a word wider than a line is folded."""
    if isinstance(cell, str):
        text = Text.from_markup(cell)
    elif isinstance(cell, Text):
        text = cell
    else:
        return cell  # another renderable wraps itself
    lines: list[Text] = []
    for line in text.split("\n", allow_blank=True):
        lines += _wrap_line(line, max(1, width))
    return Text("\n").join(lines)


def _wrap_line(line: Text, width: int) -> list[Text]:
    plain = line.plain
    glued = {m.start() for m in GLUED.finditer(plain)}
    # Words: runs between breakable spaces, as (start, end) offsets into the line.
    words: list[tuple[int, int]] = []
    start = None
    for pos, char in enumerate(plain + " "):
        if char == " " and pos not in glued:
            if start is not None:
                words.append((start, pos))
                start = None
        elif start is None:
            start = pos
    out: list[Text] = []
    begin = end = None  # the current line's first and last offsets
    for w_start, w_end in words:
        if begin is not None and end is not None and w_end - begin <= width:
            end = w_end
            continue
        if begin is not None and end is not None:
            out.append(line[begin:end])
        while w_end - w_start > width:  # longer than a line: folded
            out.append(line[w_start : w_start + width])
            w_start += width
        begin, end = w_start, w_end
    if begin is not None and end is not None:
        out.append(line[begin:end])
    return out or [Text("")]


def print_table(out: Console, table: Table, *, wide: bool = False) -> None:
    """Print `table` on `out`; with `wide`, at its natural width even past the terminal's."""
    if not wide:
        out.print(table)
        return
    Console(
        file=out.file, width=10_000, highlight=False, soft_wrap=False, no_color=out.no_color
    ).print(table)


def facts(rows: Sequence[tuple[Cell, Cell]], width: int, *, indent: int = 2) -> Table:
    """`name  value` lines, the values wrapping under themselves (never under the names)."""
    table = fit_table(
        None,
        [Column("name"), Column("value", wrap=True)],
        [[name, value] for name, value in rows],
        width - indent,
        show_header=False,
    )
    table.padding = (0, 1, 0, 0)
    return table


def indented(renderable: RenderableType, indent: int = 2) -> RenderableType:
    from rich.padding import Padding

    return Padding(renderable, (0, 0, 0, indent))
