"""Tables that fit the console's width: whole columns are dropped, least important first; no cell is cut.

rich left alone shrinks every column of a table wider than the console, so at 80 columns pids become ``295…``
and a text column may shrink to nothing. Here each column's width is measured from its cells first, and the
columns that do not fit are left out (in reverse order of importance); the header says which are shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich.table import Table
from rich.text import Text

ELLIPSIS = "…"


@dataclass(frozen=True)
class Column:
    """``rank``: 0 is kept first. ``max_width``: longer cells are abbreviated (names only, never numbers)."""

    header: str
    rank: int
    justify: Literal["left", "right"] = "right"
    max_width: int | None = None


def abbreviate(text: str, width: int) -> str:
    """``text`` cut to ``width`` characters, the cut marked with an ellipsis."""
    return text if len(text) <= width else text[: max(0, width - 1)] + ELLIPSIS


def fit(
    columns: Sequence[Column],
    rows: Sequence[Sequence[str]],
    width: int,
    *,
    title: str | None = None,
    footer: Sequence[str] | None = None,
) -> Table:
    """A boxed table of ``rows`` no wider than ``width``, with the columns that fit by rank."""
    cells = [
        [abbreviate(cell, col.max_width) if col.max_width else cell for col, cell in zip(columns, row, strict=True)]
        for row in rows
    ]
    extra = [list(footer)] if footer is not None else []
    widths = [max([len(col.header), *(len(row[i]) for row in [*cells, *extra])]) for i, col in enumerate(columns)]
    kept: set[int] = set()
    used = 1  # the left border; each column adds its cells, two spaces of padding and a border
    for i in sorted(range(len(columns)), key=lambda i: columns[i].rank):
        if used + widths[i] + 3 > width and kept:
            continue
        kept.add(i)
        used += widths[i] + 3
    shown = sorted(kept)
    table = Table(title=title, title_justify="left", expand=False)
    for i in shown:
        col = columns[i]
        table.add_column(col.header, justify=col.justify, no_wrap=True, min_width=widths[i])
    for row in cells:
        table.add_row(*(Text(row[i]) for i in shown))
    if footer is not None:
        table.add_section()
        table.add_row(*(Text(footer[i]) for i in shown))
    return table
