"""Trivial baselines a model is compared against: the most frequent training answer
(`trivial_baseline`), the best of the most frequent answers on the evaluated rows
(`best_constant_baseline`), the median box, the mean log-mel frame; and `baseline_name` for reports."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from .registry import METRICS, compute_metrics
from .speech import MEL_BINS, log_mel
from .values import is_box, to_python


def _is_audio(value: Any) -> bool:
    """Audio as a target column holds it: a decoder, a decoded/undecoded Audio dict, or log-mel frames."""
    if hasattr(value, "get_all_samples"):
        return True
    if isinstance(value, dict):
        return any(value.get(k) is not None for k in ("array", "audio", "bytes", "path"))
    shape = getattr(value, "shape", None)
    return shape is not None and len(shape) == 2 and shape[1] == MEL_BINS


BASELINE_AUDIO_CLIPS = 200  # training clips the mean log-mel frame is taken over


def _mean_log_mel(targets: list):
    """The mean log-mel frame of (up to BASELINE_AUDIO_CLIPS) training clips, repeated for their
    mean length: a constant 'speech' that knows nothing of the input."""
    import numpy as np

    mels = [log_mel(t, f"baseline: training clip {i}") for i, t in enumerate(targets[:BASELINE_AUDIO_CLIPS])]
    frames = np.concatenate(mels)
    length = max(1, round(float(np.mean([len(m) for m in mels]))))
    return np.tile(frames.mean(0), (length, 1))


def _hashable(value: Any) -> Any:
    """A hashable stand-in for counting: lists -> tuples, dicts -> sorted item tuples, recursively."""
    value = to_python(value)
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _hashable(v)) for k, v in value.items()))
    try:
        hash(value)
    except TypeError:
        return repr(value)
    return value


def _all_audio(targets: list) -> bool:
    return bool(targets) and all(_is_audio(t) for t in targets)


def _all_boxes(targets: list) -> bool:
    return bool(targets) and all(is_box(t) for t in targets)


def trivial_baseline(train_targets: Sequence, count: int) -> list:
    """`count` copies of the trivial prediction learned from the training targets.

    That is the most frequent target (ties go to the one seen first); when every target is a
    box (four numbers), the coordinate-wise median box; when every target is audio, the mean
    log-mel frame of the training clips repeated for their mean length (see `log_mel`). Targets
    should have the form predictions take (one answer each, not a list of references).
    """
    targets = list(train_targets)
    if not targets:
        raise ValueError("trivial_baseline needs at least one training target")
    guess: Any
    if _all_audio(targets):
        guess = _mean_log_mel(targets)
    elif _all_boxes(targets):
        boxes = [to_python(t) for t in targets]
        guess = tuple(float(statistics.median(b[k] for b in boxes)) for k in range(4))
    else:
        keys = [_hashable(t) for t in targets]
        counts = Counter(keys)
        best = max(counts.values())
        # Counter keeps first-seen order, so the first key reaching `best` is the first seen
        guess = targets[keys.index(next(key for key, n in counts.items() if n == best))]
    return [guess for _ in range(count)]


BASELINE_CANDIDATES = 10  # constant answers `best_constant_baseline` tries


def best_constant_baseline(
    names: Sequence[str],
    train_targets: Sequence,
    references: Sequence,
    extra: Sequence[dict] | None = None,
    candidates: int = BASELINE_CANDIDATES,
) -> tuple[dict, Any]:
    """Scores of the best constant prediction among the ``candidates`` most frequent training targets
    (the median box for boxes), judged by the first metric on these very references.

    Chosen on the evaluated rows, this is the most any constant answer from that list can score, so a
    model that ignores its input cannot beat it (the single most frequent answer can be beaten by
    another constant: a CIDEr favourite is rarely the most common caption). Returns (scores, answer).
    """
    targets = list(train_targets)
    if not targets:
        raise ValueError("best_constant_baseline needs at least one training target")
    if _all_audio(targets):
        guesses = [_mean_log_mel(targets)]
    elif _all_boxes(targets):
        guesses = [trivial_baseline(targets, 1)[0]]
    else:
        keys = [_hashable(t) for t in targets]
        guesses = [targets[keys.index(key)] for key, _ in Counter(keys).most_common(candidates)]
    sign = 1 if METRICS[names[0]].higher_is_better else -1
    scored = [(compute_metrics(names, [guess] * len(references), references, extra), guess) for guess in guesses]
    return max(scored, key=lambda pair: sign * pair[0][names[0]])  # ties: the more frequent answer


def baseline_name(train_targets: Sequence) -> str:
    """How `best_constant_baseline` predicts for these targets, for reports."""
    if _all_audio(list(train_targets)):
        return "mean log-mel frame"
    if _all_boxes(list(train_targets)):
        return "median box"
    return f"best of the {BASELINE_CANDIDATES} most frequent answers"
