"""Box metrics: box_iou and iou_acc (Acc@0.5)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from .registry import Metric, register
from .values import is_box, mean_percent, reference_list, to_python


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes; 0 when the union is empty."""
    ax0, ay0, ax1, ay1 = (float(v) for v in a)
    bx0, by0, bx1, by1 = (float(v) for v in b)
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    area_a = max(0.0, ax1 - ax0) * max(0.0, ay1 - ay0)
    area_b = max(0.0, bx1 - bx0) * max(0.0, by1 - by0)
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


_NUMBER = re.compile(r"-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?")


def _as_box(value: Any) -> tuple[float, ...] | None:
    """A box from a 4-sequence of numbers or a string holding four numbers; None if it is neither."""
    value = to_python(value)
    if isinstance(value, str):
        numbers = _NUMBER.findall(value)
        value = [float(n) for n in numbers] if len(numbers) == 4 else None
    if not is_box(value):
        return None
    box = tuple(float(v) for v in value)
    return box if all(math.isfinite(v) for v in box) else None


IOU_THRESHOLD = 0.5


def _iou_acc(predictions: list, references: list, rows=None) -> float:
    """Acc@0.5: share of predicted boxes with IoU >= 0.5 against (any) reference box.

    ">=" is the RefCOCO convention; a 1e-9 tolerance keeps an exact 0.5 from being lost to
    floating-point rounding.
    """
    scores = []
    for prediction, reference in zip(predictions, references):
        box = _as_box(prediction)
        refs = [b for b in (_as_box(r) for r in reference_list(reference)) if b is not None]
        hit = box is not None and any(box_iou(box, ref) >= IOU_THRESHOLD - 1e-9 for ref in refs)
        scores.append(float(hit))
    return mean_percent(scores)


register(
    Metric("iou_acc", _iou_acc, description="Acc@0.5: predicted boxes with IoU >= 0.5 (%)", prediction="box"),
)
