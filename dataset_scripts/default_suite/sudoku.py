"""sudoku: generated 4x4 puzzles (shidoku) with a unique solution."""

from __future__ import annotations

import datasets

from .common import SPLITS, STRING, STRINGS, Build, TaskData


def sudoku_candidates(grid: list[int], cell: int) -> set[int]:
    row, col = divmod(cell, 4)
    box = (row // 2 * 2, col // 2 * 2)
    used = {grid[row * 4 + c] for c in range(4)} | {grid[r * 4 + col] for r in range(4)}
    used |= {grid[(box[0] + r) * 4 + box[1] + c] for r in range(2) for c in range(2)}
    return {1, 2, 3, 4} - used


def sudoku_solutions(grid: list[int], limit: int = 2) -> list[list[int]]:
    """Up to ``limit`` completions of a 4x4 grid (0 = blank), by backtracking."""
    if 0 not in grid:
        return [list(grid)]
    cell = grid.index(0)
    found = []
    for digit in sorted(sudoku_candidates(grid, cell)):
        grid[cell] = digit
        found += sudoku_solutions(grid, limit - len(found))
        grid[cell] = 0
        if len(found) >= limit:
            break
    return found


def sudoku_text(grid: list[int]) -> str:
    # rows split by "|", cells by spaces: half the tokens of OFASys's "d : d" cells, same grid
    return " | ".join(" ".join(str(d) for d in grid[r * 4 : r * 4 + 4]) for r in range(4))


def build_sudoku(b: Build) -> TaskData:
    rng = b.rng("sudoku")
    solved = sudoku_solutions([0] * 16, limit=1000)  # all 288 shidoku grids
    sizes = {"test": 500, "validation": 200, "train": 6000}
    seen, splits = set(), {}
    for split in ("test", "validation", "train"):  # one pool of distinct puzzles: no overlap
        rows = []
        while len(rows) < b.size(sizes[split]):
            solution = solved[int(rng.integers(len(solved)))]
            puzzle = list(solution)
            for cell in rng.choice(16, size=int(rng.integers(4, 9)), replace=False):
                puzzle[cell] = 0
            text = sudoku_text(puzzle)
            if text in seen or len(sudoku_solutions(list(puzzle))) != 1:
                continue
            seen.add(text)
            rows.append({"puzzle": text, "solution": sudoku_text(solution), "references": [sudoku_text(solution)]})
        splits[split] = rows
    return TaskData(
        {s: splits[s] for s in SPLITS},
        datasets.Features({"puzzle": STRING, "solution": STRING, "references": STRINGS}),
        "generated 4x4 sudoku",
        "Generated 4x4 sudoku (shidoku, 2x2 boxes), no licence needed: a random one of the 288 solved "
        "grids with 4-8 cells blanked, kept only when the solution is unique (checked with a "
        "backtracking solver). Grids are written row by row as 'd : d : d : d | ...' with 0 for a "
        "blank. Every puzzle is distinct, so no puzzle appears in two splits.",
    )
