"""Label and free-text matching: accuracy, exact_match."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .registry import Metric, register
from .values import mean_percent, reference_list, to_python


def normalize_text(value: Any) -> str:
    """Light normalisation for label accuracy: strip, lower-case, collapse whitespace."""
    if value is None:
        return ""
    return " ".join(str(to_python(value)).lower().split())


_SPACE_AROUND_PUNCT = re.compile(r"\s*([^\w\s])\s*")


def _normalize_free_text(value: Any) -> str:
    """Whitespace/case normalisation for free text such as SQL.

    Beyond `normalize_text`, spaces next to punctuation are dropped ("count ( * )" == "count(*)",
    tokenizers often space out punctuation) and a trailing ";" is ignored.
    """
    text = _SPACE_AROUND_PUNCT.sub(r"\1", normalize_text(value))
    return text.rstrip(";").strip()


def _match_any(predictions: list, references: list, normalize: Callable[[Any], str]) -> float:
    scores = []
    for prediction, reference in zip(predictions, references):
        if prediction is None:
            scores.append(0.0)
            continue
        guess = normalize(prediction)
        scores.append(float(any(guess == normalize(ref) for ref in reference_list(reference))))
    return mean_percent(scores)


def _accuracy(predictions: list, references: list, rows=None) -> float:
    return _match_any(predictions, references, normalize_text)


def _exact_match(predictions: list, references: list, rows=None) -> float:
    return _match_any(predictions, references, _normalize_free_text)


register(
    Metric(
        "accuracy",
        _accuracy,
        description="prediction equals a reference after strip / lower-case / whitespace collapse (%)",
    ),
    Metric(
        "exact_match", _exact_match, description="free-text exact match after case and whitespace normalisation (%)"
    ),
)
