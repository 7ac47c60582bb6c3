"""Tables that fit the console's width: whole columns are dropped, least important first; no cell is cut.

rich left alone shrinks every column of a table wider than the console, so at 80 columns pids become ``295…``
and a text column may shrink to nothing. Here each column's width is measured from its cells first, and the
columns that do not fit are left out (in reverse order of importance); the header says which are shown.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from asyncq.core.envelope import BadEnvelope, DeadLetter, decode

ELLIPSIS = "…"
PAYLOAD_CHARS = 300  # of a dead letter's payload in a table: enough to recognise it, no screenful


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


def payload_text(letter: DeadLetter, limit: int = PAYLOAD_CHARS) -> str:
    """A dead letter's payload as compact JSON (decoded from its envelope), abbreviated past ``limit``.

    A record whose envelope is not one of asyncq's (garbage found in the queue) shows that text instead.
    """
    try:
        text = json.dumps(decode(letter.envelope.encode()).payload, ensure_ascii=False)
    except (BadEnvelope, ValueError):
        text = letter.envelope
    return abbreviate(text, limit)


def dead_letters_view(queue: str, letters: Sequence[DeadLetter | bytes]) -> Group:
    """``asyncq dead-letters list``: a block per dead letter, its id whole on the first line, then the reason
    and the payload, wrapped under their labels: readable at any width, on a terminal or piped."""
    parts: list[RenderableType] = [Text(f"dead letters of {queue} ({len(letters)} shown)", style="bold")]
    for letter in letters:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        if isinstance(letter, DeadLetter):
            when = datetime.fromtimestamp(letter.failed_at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
            head = Text.assemble((letter.id, "bold"), f"  {when}")
            grid.add_row("  reason", letter.reason)
            grid.add_row("  payload", payload_text(letter))
            if letter.consumer:
                grid.add_row("  consumer", letter.consumer)
        else:
            head = Text("? (a record that is not one of asyncq's)", style="bold")
            grid.add_row("  raw", abbreviate(letter.decode("utf-8", "replace"), PAYLOAD_CHARS))
        parts += ["", head, grid]
    return Group(*parts)
