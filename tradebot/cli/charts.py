"""A terminal line-of-columns chart for equity curves (no plotting dependency needed)."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from rich.text import Text

_BLOCKS = " ▁▂▃▄▅▆▇█"


def _resample(values: Sequence[Decimal], width: int) -> list[Decimal]:
    """At most `width` points: the last value in each bucket, so the final equity is exact."""
    if len(values) <= width:
        return list(values)
    step = len(values) / width
    return [values[min(len(values) - 1, int((i + 1) * step) - 1)] for i in range(width)]


def equity_chart(values: Sequence[Decimal], *, width: int = 80, height: int = 10) -> Text:
    """Columns whose height is the equity after each trade; axis labels show min and max."""
    points = _resample(values, width)
    low, high = min(points), max(points)
    span = high - low
    levels = height * 8
    scaled = [(int((v - low) / span * (levels - 1)) + 1 if span else levels // 2) for v in points]
    start = points[0]
    text = Text()
    label_width = max(len(f"{high:,.2f}"), len(f"{low:,.2f}"))
    for row in range(height, 0, -1):
        if row == height:
            label = f"{high:,.2f}"
        elif row == 1:
            label = f"{low:,.2f}"
        else:
            label = ""
        text.append(label.rjust(label_width) + " ┤", style="dim")
        floor = (row - 1) * 8
        for value, level in zip(points, scaled, strict=True):
            fill = level - floor
            char = _BLOCKS[max(0, min(8, fill))]
            text.append(char, style="green" if value >= start else "red")
        text.append("\n")
    text.append(" " * label_width + " └" + "─" * len(points) + "\n", style="dim")
    text.append(
        " "
        * (label_width + 2)
        + f"equity after each of {len(values) - 1} trade(s), start {start:,.2f}, "
        f"end {values[-1]:,.2f}",
        style="dim",
    )
    return text
