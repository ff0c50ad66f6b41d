"""Sudoku: parse_sudoku and sudoku_solved."""

from __future__ import annotations

import math
import re
from typing import Any

from .registry import Metric, register
from .values import mean_percent, reference_list, row_column, to_python


def parse_sudoku(grid: Any) -> list[list[int]] | None:
    """ "d : d : d : d | d : ..." or "d d d d | ..." (rows split by "|", cells by ":" and/or spaces,
    0 = blank) or nested lists -> rows.

    Returns None unless it is a square 4x4 or 9x9 grid of digits 0..n.
    """
    grid = to_python(grid)
    try:
        if isinstance(grid, str):
            cells = [[int(cell) for cell in re.split(r"[:\s]+", row.strip())] for row in grid.strip().split("|")]
        elif isinstance(grid, (list, tuple)):
            cells = [[int(cell) for cell in row] for row in grid]
        else:
            return None
    except (TypeError, ValueError):
        return None
    size = len(cells)
    if size not in (4, 9) or any(len(row) != size for row in cells):
        return None
    if any(not 0 <= cell <= size for row in cells for cell in row):
        return None
    return cells


def _is_solved_grid(cells: list[list[int]]) -> bool:
    """Every row, column and box holds each of 1..n exactly once."""
    size = len(cells)
    box = math.isqrt(size)
    digits = set(range(1, size + 1))
    groups = list(cells)
    groups += [[cells[r][c] for r in range(size)] for c in range(size)]
    groups += [
        [cells[r][c] for r in range(top, top + box) for c in range(left, left + box)]
        for top in range(0, size, box)
        for left in range(0, size, box)
    ]
    return all(len(group) == size and set(group) == digits for group in groups)


def _sudoku_solved(predictions: list, references: list, rows=None) -> float:
    """Share of predicted grids that are complete valid sudokus keeping the puzzle's given cells.

    The givens come from the row's "puzzle" column; without one, the reference stands in (a
    reference solution must then be matched exactly, a reference puzzle only in its givens).
    """
    scores = []
    for i, (prediction, reference) in enumerate(zip(predictions, references)):
        cells = parse_sudoku(prediction) if prediction is not None else None
        givens_source = row_column(rows, i, "puzzle")
        if givens_source is None:
            refs = reference_list(reference)
            givens_source = refs[0] if refs else None
        givens = parse_sudoku(givens_source) if givens_source is not None else None
        solved = (
            cells is not None
            and givens is not None
            and len(givens) == len(cells)
            and _is_solved_grid(cells)
            and all(g in (0, c) for grow, crow in zip(givens, cells) for g, c in zip(grow, crow))
        )
        scores.append(float(solved))
    return mean_percent(scores)


register(
    Metric(
        "sudoku_solved",
        _sudoku_solved,
        needs_columns=("puzzle",),
        description="complete valid sudoku that keeps the puzzle's given cells (%)",
    ),
)
