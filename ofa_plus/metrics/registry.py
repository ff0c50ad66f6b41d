"""The metric table: `Metric`, the name -> metric table `METRICS` that each family module fills with
`register`, and `compute_metrics`, which scores predictions with several metrics at once."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    """One metric: `compute(predictions, references, rows) -> score` plus what the evaluator needs to know."""

    name: str
    compute: Callable[[list, list, list[dict] | None], float]
    higher_is_better: bool = True
    needs_columns: tuple[str, ...] = ()  # dataset columns the metric reads from `rows`
    description: str = ""
    prediction: str = "text"  # what it scores: "text", "box" or "audio" (a card's target must give that)


# Filled by the family modules as the package imports them; its order is the order they register in.
METRICS: dict[str, Metric] = {}


def register(*metrics: Metric) -> None:
    """Add metrics to `METRICS`; a name registered twice is a programming error."""
    for metric in metrics:
        if metric.name in METRICS:
            raise ValueError(f"metric {metric.name!r} is registered twice")
        METRICS[metric.name] = metric


def compute_metrics(
    names: Sequence[str], predictions: Sequence, references: Sequence, rows: Sequence[dict] | None = None
) -> dict[str, float]:
    """Scores of `predictions` against `references` for each metric in `names` ({name: score})."""
    if isinstance(names, str):
        names = [names]
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(
            f"unknown metric(s) {', '.join(map(repr, unknown))}; known metrics: {', '.join(sorted(METRICS))}"
        )
    predictions, references = list(predictions), list(references)
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if rows is not None and len(rows) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions but {len(rows)} rows")
    if not predictions:
        raise ValueError("no predictions to score")
    return {name: float(METRICS[name].compute(predictions, references, rows)) for name in names}
