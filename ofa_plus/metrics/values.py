"""Helpers every metric family shares: reading references, numpy values and extra row columns."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real
from typing import Any


def is_number(value: Any) -> bool:
    # bool is a Real too, but True is never a coordinate
    return isinstance(value, Real) and not isinstance(value, bool)


def to_python(value: Any) -> Any:
    """numpy arrays / scalars -> plain lists / numbers, so the checks below need not know numpy."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return value.tolist()
    return value


def is_box(value: Any) -> bool:
    value = to_python(value)
    return isinstance(value, (list, tuple)) and len(value) == 4 and all(is_number(v) for v in value)


def reference_list(reference: Any) -> list:
    """One reference or a list of acceptable references -> a list of references."""
    reference = to_python(reference)
    if reference is None:
        return []
    if isinstance(reference, (list, tuple)) and not is_box(reference):
        return list(reference)
    return [reference]


def mean_percent(values: list[float]) -> float:
    """The mean of per-row scores in 0..1, as a percentage (0 for no rows)."""
    return 100.0 * sum(values) / len(values) if values else 0.0


def row_column(rows: Sequence[dict] | None, index: int, column: str) -> Any:
    """The value of `column` in row `index`, or None when there are no rows or the row lacks it."""
    if rows is None:
        return None
    row = rows[index]
    return row.get(column) if hasattr(row, "get") else None
