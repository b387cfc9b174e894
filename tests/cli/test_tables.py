"""`cli.tables`: free text wraps at spaces but never between a number and its unit, a time and
its zone, or a date and its time; every line fits; nothing is lost and styles are kept."""

from __future__ import annotations

from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console
from rich.text import Text

from tradebot.cli.tables import GLUED, Column, facts, fit_table, indented, wrap_whole

WORDS = st.sampled_from(
    ["win", "rate", "46.2 %", "1.16 R", "15 s", "3 min", "15:50 EDT", "2025-07-01 09:30 EST",
     "P&L", "-$3.00", "·", "trade(s)", "a/long/path/without/spaces", "%", "R", "s", "12", "x"]
)  # fmt: skip


def _lines(cell: Text | str, width: int) -> list[str]:
    wrapped = wrap_whole(cell, width)
    assert isinstance(wrapped, Text)
    return wrapped.plain.split("\n")


@settings(max_examples=300, deadline=None)
@given(st.lists(WORDS, min_size=1, max_size=30), st.integers(min_value=1, max_value=60))
def test_lines_fit_and_numbers_keep_their_units(words: list[str], width: int) -> None:
    text = " ".join(words)
    lines = _lines(text, width)
    assert all(len(line) <= width for line in lines)
    glued = {m.start() for m in GLUED.finditer(text)}
    # The unbreakable words: runs between the spaces a line may break at ("12 %" is one).
    cuts = [-1, *(i for i, c in enumerate(text) if c == " " and i not in glued), len(text)]
    longest = max(b - a - 1 for a, b in pairwise(cuts))
    if width >= longest:  # nothing folded: the lines are the text, broken at free spaces only
        assert " ".join(lines) == text
        breaks, at = [], -1
        for line in lines[:-1]:
            at += len(line) + 1
            breaks.append(at)
        assert not glued & set(breaks)
    else:  # folded words: every character is still there, in order
        assert "".join(lines).replace(" ", "") == text.replace(" ", "")


def test_the_demos_window_line_keeps_the_win_rate_whole_at_80_columns() -> None:
    """The line `make demo`'s `phase status` once broke between "46.2" and "%"."""
    window = (
        "13 trade(s) in paper, sim mode over 1 session(s) · win rate 46.2 % · avg R:R 1.16 · "
        "P&L -$3.00"
    )
    console = Console(width=80, record=True, color_system=None)
    console.print(indented(facts([("position cap", "$100.00"), ("window", window)], 80)))
    shown = console.export_text()
    assert any("46.2 %" in line for line in shown.splitlines())
    assert all(len(line.rstrip()) <= 80 for line in shown.splitlines())


def test_styles_and_markup_are_kept() -> None:
    text = Text("exit ")
    text.append("take_profit", style="green")
    text.append(" after 15 s")
    wrapped = wrap_whole(text, 12)
    assert isinstance(wrapped, Text)
    assert wrapped.plain == "exit\ntake_profit\nafter 15 s"
    assert any(str(span.style) == "green" for span in wrapped.spans)
    marked = wrap_whole("[red]lost 5.0 %[/] today", 9)
    assert isinstance(marked, Text) and marked.plain == "lost\n5.0 %\ntoday"
    assert any(str(span.style) == "red" for span in marked.spans)


def test_a_wrapped_column_takes_what_the_others_leave() -> None:
    columns = [Column("id"), Column("why", wrap=True)]
    rows = [["SPY-250701-s1", "refused: the quote is 45 s old, more than 30 s " * 3]]
    console = Console(width=60, record=True, color_system=None)
    console.print(fit_table(None, columns, rows, 60))
    lines = console.export_text().splitlines()
    assert all(len(line.rstrip()) <= 60 for line in lines)
    assert sum("45 s" in line for line in lines) == 3
    assert not any(line.rstrip().endswith(("45", "30")) for line in lines)
