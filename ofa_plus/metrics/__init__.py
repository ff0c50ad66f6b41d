"""Evaluation metrics that run offline, and the trivial baselines they are compared against.

`METRICS` maps a metric name (as task cards write it) to a `Metric`; `compute_metrics` scores a
list of predictions against their references with several of them at once:

    compute_metrics(["vqa_accuracy"], ["two"], [["2", "2", "two", "3"]])   # {"vqa_accuracy": 66.66...}

Conventions shared by every metric:

- Scores are percentages (0-100); CIDEr is reported x100 as is customary (CIDEr 1.2 -> 120.0).
- A reference is one value or a list of acceptable values. A string, a number or a box (a
  sequence of four numbers) is one value; any other list or tuple is a list of values.
- A prediction of None (a failed or empty generation) is scored as wrong; it never raises.
- Metrics that read other dataset columns (`Metric.needs_columns`, e.g. the sqlite file of a
  text-to-SQL question) get them from `rows`, one mapping per prediction. Pass only those columns
  (`dataset.select_columns(metric.needs_columns)`): a full row would decode images for nothing.

- `Metric.higher_is_better` says which way is better; WER and MCD are errors (lower is better), and
  for them a None prediction scores as an empty transcript / silence, i.e. badly, not as 0.

Heavy scorers (pycocoevalcap, rouge-score, jiwer, torch for audio) are imported when a metric first
runs, so importing this package (which the task card loader does to check metric names) stays cheap.

One module per metric family (text, vqa, captioning, boxes, sql, sudoku, speech), each registering
its metrics in `registry.METRICS`; `baselines` holds the trivial baselines. Import names from this
package, not from those modules.
"""

from __future__ import annotations

from .baselines import (
    BASELINE_AUDIO_CLIPS,
    BASELINE_CANDIDATES,
    baseline_name,
    best_constant_baseline,
    trivial_baseline,
)
from .boxes import IOU_THRESHOLD, box_iou
from .captioning import caption_tokens
from .registry import METRICS, Metric, compute_metrics
from .speech import (
    MCD_CEPSTRA,
    MEL_BINS,
    MEL_FLOOR,
    log_mel,
    mel_cepstral_distortion,
    normalize_transcript,
    word_error_rate,
)
from .sql import SQL_GOLD_TIMEOUT_S, SQL_TIMEOUT_S
from .sudoku import parse_sudoku

# Importing a family registers its metrics; this order is the order of METRICS.
from .text import normalize_text
from .vqa import normalize_vqa_answer

__all__ = [
    "METRICS",
    "Metric",
    "SQL_TIMEOUT_S",
    "baseline_name",
    "box_iou",
    "caption_tokens",
    "compute_metrics",
    "log_mel",
    "mel_cepstral_distortion",
    "normalize_text",
    "normalize_transcript",
    "normalize_vqa_answer",
    "parse_sudoku",
    "trivial_baseline",
    "best_constant_baseline",
    "word_error_rate",
]
