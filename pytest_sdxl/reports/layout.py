"""Markdown tables that fit a terminal of ``WIDTH`` columns, and the footnotes under them.

A column that no measured variant can fill (every cell 'n/a' or '-', as the GPU's signals are on a
CPU) is left out, and one line under the table names the dropped columns and why. A table still
wider than ``WIDTH`` is split into several that each repeat the leading column(s), keeping
columns of one group (the statistics of one figure, the device signals) in the same table.
Notes under a table are wrapped to ``WIDTH``, continued with an indent (still one markdown item).
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

WIDTH = 120
EMPTY_CELLS = frozenset({"n/a", "-", ""})


def column_widths(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[int]:
    return [max(len(row[index]) for row in [header, *rows]) for index in range(len(header))]


def table_width(widths: Sequence[int]) -> int:
    """Characters of a markdown row: '| ' before each cell, ' ' after it, and the closing '|'."""
    return sum(width + 3 for width in widths) + 1


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = column_widths(header, rows)

    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)) + " |"

    return [line(header), "|" + "|".join("-" * (width + 2) for width in widths) + "|", *(line(row) for row in rows)]


def empty_columns(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """Headers of the columns with no value in any row; none when there are no rows to judge by."""
    if not rows:
        return []
    return [name for index, name in enumerate(header) if all(row[index] in EMPTY_CELLS for row in rows)]


def without(
    header: Sequence[str], rows: Sequence[Sequence[str]], dropped: Sequence[str]
) -> tuple[list[str], list[list[str]]]:
    keep = [index for index, name in enumerate(header) if name not in dropped]
    return [header[index] for index in keep], [[row[index] for index in keep] for row in rows]


def column_chunks(widths: Sequence[int], groups: Sequence[str], shared: int, width: int) -> list[list[int]]:
    """Column indices after the shared ones, cut into runs that each fit ``width`` beside the shared ones.

    Whole groups go together; a group too wide for a table of its own is cut column by column.
    """
    base = table_width(widths[:shared])
    runs: list[list[int]] = []
    for index in range(shared, len(widths)):
        if runs and groups[index] == groups[runs[-1][-1]]:
            runs[-1].append(index)
        else:
            runs.append([index])
    chunks: list[list[int]] = []
    for run in runs:
        if chunks and base + sum(widths[i] + 3 for i in [*chunks[-1], *run]) <= width:
            chunks[-1].extend(run)
            continue
        chunks.append([])
        for index in run:
            if chunks[-1] and base + sum(widths[i] + 3 for i in [*chunks[-1], index]) > width:
                chunks.append([])
            chunks[-1].append(index)
    return chunks


def fitted_tables(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    groups: Sequence[str] | None = None,
    shared: int = 1,
    width: int = WIDTH,
) -> list[list[str]]:
    """The table, or as many tables as it takes to stay within ``width``, each led by the shared columns."""
    widths = column_widths(header, rows)
    if table_width(widths) <= width or len(header) <= shared:
        return [markdown_table(header, rows)]
    chunks = column_chunks(widths, groups or [str(index) for index in range(len(header))], shared, width)
    tables = []
    for chunk in chunks:
        columns = [*range(shared), *chunk]
        tables.append(markdown_table([header[i] for i in columns], [[row[i] for i in columns] for row in rows]))
    return tables


def joined(tables: Sequence[Sequence[str]]) -> list[str]:
    """Tables one after the other, a blank line between them."""
    lines: list[str] = []
    for table in tables:
        lines += [*([""] if lines else []), *table]
    return lines


def dropped_line(dropped: dict[str, list[str]]) -> str:
    """'Not shown: a, b (why); c (why)' for the columns left out, grouped by why."""
    parts = [f"{', '.join(names)} ({why})" for why, names in dropped.items() if names]
    return f"Not shown: {'; '.join(parts)}" if parts else ""


def wrapped(lines: Sequence[str], width: int = WIDTH) -> list[str]:
    """Each line wrapped to ``width``; continuations indented by two, so a '- ' item stays one item."""
    result: list[str] = []
    for line in lines:
        if len(line) <= width:
            result.append(line)
            continue
        indent = " " * (len(line) - len(line.lstrip(" ")))
        result += textwrap.wrap(
            line,
            width=width,
            subsequent_indent=indent + "  ",
            break_long_words=False,
            break_on_hyphens=False,
        )
    return result
