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
runs, so importing this module (which the task card loader does to check metric names) stays cheap.
"""

from __future__ import annotations

import math
import re
import sqlite3
import statistics
import time
import unicodedata
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from numbers import Real
from pathlib import Path
from typing import Any, Callable, Sequence

__all__ = [
    "METRICS", "Metric", "SQL_TIMEOUT_S", "baseline_name", "box_iou", "caption_tokens", "compute_metrics",
    "log_mel", "mel_cepstral_distortion", "normalize_text", "normalize_transcript", "normalize_vqa_answer",
    "parse_sudoku", "trivial_baseline", "best_constant_baseline", "word_error_rate",
]


@dataclass(frozen=True)
class Metric:
    """One metric: `compute(predictions, references, rows) -> score` plus what the evaluator needs to know."""

    name: str
    compute: Callable[[list, list, "list[dict] | None"], float]
    higher_is_better: bool = True
    needs_columns: tuple[str, ...] = ()   # dataset columns the metric reads from `rows`
    description: str = ""


# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------

def _is_number(value: Any) -> bool:
    # bool is a Real too, but True is never a coordinate
    return isinstance(value, Real) and not isinstance(value, bool)


def _to_python(value: Any) -> Any:
    """numpy arrays / scalars -> plain lists / numbers, so the checks below need not know numpy."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return value.tolist()
    return value


def _is_box(value: Any) -> bool:
    value = _to_python(value)
    return isinstance(value, (list, tuple)) and len(value) == 4 and all(_is_number(v) for v in value)


def _reference_list(reference: Any) -> list:
    """One reference or a list of acceptable references -> a list of references."""
    reference = _to_python(reference)
    if reference is None:
        return []
    if isinstance(reference, (list, tuple)) and not _is_box(reference):
        return list(reference)
    return [reference]


def _mean(values: list[float]) -> float:
    return 100.0 * sum(values) / len(values) if values else 0.0


def _column(rows: Sequence[dict] | None, index: int, column: str) -> Any:
    """The value of `column` in row `index`, or None when there are no rows or the row lacks it."""
    if rows is None:
        return None
    row = rows[index]
    return row.get(column) if hasattr(row, "get") else None


def normalize_text(value: Any) -> str:
    """Light normalisation for label accuracy: strip, lower-case, collapse whitespace."""
    if value is None:
        return ""
    return " ".join(str(_to_python(value)).lower().split())


_SPACE_AROUND_PUNCT = re.compile(r"\s*([^\w\s])\s*")


def _normalize_free_text(value: Any) -> str:
    """Whitespace/case normalisation for free text such as SQL.

    Beyond `normalize_text`, spaces next to punctuation are dropped ("count ( * )" == "count(*)",
    tokenizers often space out punctuation) and a trailing ";" is ignored.
    """
    text = _SPACE_AROUND_PUNCT.sub(r"\1", normalize_text(value))
    return text.rstrip(";").strip()


# --------------------------------------------------------------------------------------------------
# accuracy, exact_match
# --------------------------------------------------------------------------------------------------

def _match_any(predictions: list, references: list, normalize: Callable[[Any], str]) -> float:
    scores = []
    for prediction, reference in zip(predictions, references):
        if prediction is None:
            scores.append(0.0)
            continue
        guess = normalize(prediction)
        scores.append(float(any(guess == normalize(ref) for ref in _reference_list(reference))))
    return _mean(scores)


def _accuracy(predictions: list, references: list, rows=None) -> float:
    return _match_any(predictions, references, normalize_text)


def _exact_match(predictions: list, references: list, rows=None) -> float:
    return _match_any(predictions, references, _normalize_free_text)


# --------------------------------------------------------------------------------------------------
# vqa_accuracy
# --------------------------------------------------------------------------------------------------

# The VQA evaluation's answer normalisation (Antol et al. 2015; the VQA v2 evaluation script):
# punctuation is removed or turned into a space, number words become digits, articles are
# dropped and contractions written without an apostrophe get one back.
_VQA_PUNCTUATION = ";/[]\"{}()=+\\_->@`,?!<"
_VQA_COMMA_BETWEEN_DIGITS = re.compile(r"\d,\d")
_VQA_PERIOD = re.compile(r"\.(?!\d)")   # a period not followed by a digit (keeps "1.5")
_VQA_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
                "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_VQA_ARTICLES = {"a", "an", "the"}
# word without its apostrophe -> the contraction (the official table's "Im", "Ive", ... are
# capitalised and so never match a lower-cased word; they are left out here for the same effect)
_VQA_CONTRACTIONS = {c.replace("'", ""): c for c in (
    "ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't "
    "haven't he'd he'd've he's how'd how'll how's isn't it'd it'd've it'll let's "
    "ma'am mightn't mightn't've might've mustn't must've needn't not've o'clock oughtn't 'ow's'at "
    "shan't she'd've she's should've shouldn't shouldn't've somebody'd somebody'd've somebody'll "
    "somebody's someone'd someone'd've someone'll someone's something'd something'd've something'll "
    "that's there'd there'd've there're there's they'd they'd've they'll they're they've 'twas wasn't "
    "we'd've we've weren't what'll what're what's what've when's where'd where's where've who'd "
    "who'd've who'll who's who've why'll why're why's won't would've wouldn't wouldn't've y'all "
    "y'all'll y'all'd've you'd you'd've you'll you're you've"
).split()}


def normalize_vqa_answer(answer: Any) -> str:
    """The standard VQA answer normalisation ("Two dogs." -> "2 dogs", "the cat" -> "cat")."""
    text = " ".join(str(answer).replace("\n", " ").replace("\t", " ").split())
    # Punctuation next to a space, or anywhere in an answer with a digit-comma-digit ("1,000"),
    # is deleted; otherwise it separates words ("black/white" -> "black white").
    delete = _VQA_COMMA_BETWEEN_DIGITS.search(text) is not None
    for mark in _VQA_PUNCTUATION:
        if delete or mark + " " in text or " " + mark in text:
            text = text.replace(mark, "")
        else:
            text = text.replace(mark, " ")
    text = _VQA_PERIOD.sub("", text)
    words = []
    for word in text.lower().split():
        word = _VQA_NUMBERS.get(word, word)
        if word in _VQA_ARTICLES:
            continue
        words.append(_VQA_CONTRACTIONS.get(word, word))
    return " ".join(words)


def _vqa_score(prediction: Any, references: list) -> float:
    """VQA accuracy of one answer: min(#annotators who gave it / 3, 1).

    With n >= 2 references this is the official leave-one-out form: the mean, over the n ways of
    leaving one annotator out, of min(#matches among the other n - 1 / 3, 1). (With 10 annotators
    and 2 matches: 2 subsets see 1 match (1/3), 8 see 2 (2/3) -> 0.6.) Note this caps an answer
    that all of only 2 or 3 annotators gave at 1/3 or 2/3.
    A single reference counts as a unanimous annotation (as if every annotator gave it), so the
    score is then exact match after normalisation rather than a meaningless 1/3.
    """
    if prediction is None or not references:
        return 0.0
    guess = normalize_vqa_answer(prediction)
    answers = [normalize_vqa_answer(ref) for ref in references]
    if len(answers) == 1:
        return float(guess == answers[0])
    matches = sum(answer == guess for answer in answers)
    # leaving out a matching annotator leaves matches - 1 matches, any other leaves all of them
    per_subset = [min((matches - (answer == guess)) / 3.0, 1.0) for answer in answers]
    return sum(per_subset) / len(per_subset)


def _vqa_accuracy(predictions: list, references: list, rows=None) -> float:
    return _mean([_vqa_score(p, _reference_list(r)) for p, r in zip(predictions, references)])


# --------------------------------------------------------------------------------------------------
# Captioning / generation: cider, bleu4, rouge_l
# --------------------------------------------------------------------------------------------------

_NOT_WORD = re.compile(r"[^\w\s]|_")


def caption_tokens(text: Any) -> list[str]:
    """Tokens for caption metrics: lower-cased, punctuation (Unicode-aware) replaced by spaces.

    Stands in for the COCO evaluation's Java PTB tokenizer, which cannot run here.
    """
    if text is None:
        return []
    text = unicodedata.normalize("NFKC", str(text)).lower()
    return _NOT_WORD.sub(" ", text).split()


def _tokenized_corpus(predictions: list, references: list) -> tuple[dict, dict]:
    """pycocoevalcap's input: {id: [tokenized candidate]} and {id: [tokenized references]}."""
    candidates, gold = {}, {}
    for i, (prediction, reference) in enumerate(zip(predictions, references)):
        candidates[i] = [" ".join(caption_tokens(prediction))]
        # pycocoevalcap needs at least one reference; an empty one matches nothing
        gold[i] = [" ".join(caption_tokens(ref)) for ref in _reference_list(reference)] or [""]
    return candidates, gold


def _cider(predictions: list, references: list, rows=None) -> float:
    """CIDEr-D (pycocoevalcap), x100.

    The n-gram IDF comes from the references of the evaluated corpus itself, so scores depend on
    which examples are evaluated together, and a corpus of one image always scores 0 (log 1 = 0).
    """
    from pycocoevalcap.cider.cider import Cider

    candidates, gold = _tokenized_corpus(predictions, references)
    if not candidates or not any(ref for refs in gold.values() for ref in refs):
        return 0.0   # no reference n-gram at all: the scorer would divide by nothing
    score, _ = Cider().compute_score(gold, candidates)
    return 100.0 * float(score)


def _bleu4(predictions: list, references: list, rows=None) -> float:
    """Corpus BLEU-4 as in the COCO caption evaluation (pycocoevalcap, closest reference length)."""
    from pycocoevalcap.bleu.bleu import Bleu

    candidates, gold = _tokenized_corpus(predictions, references)
    if not candidates:
        return 0.0
    scores, _ = Bleu(4).compute_score(gold, candidates, verbose=0)
    return 100.0 * float(scores[3])


class _CaptionTokenizer:
    """rouge-score tokenizer interface around `caption_tokens` (its default one drops non-ASCII words)."""

    def tokenize(self, text: str) -> list[str]:
        return caption_tokens(text)


def _rouge_l(predictions: list, references: list, rows=None) -> float:
    """ROUGE-L F-measure (rouge-score), best reference per prediction, averaged.

    Plain "rougeL" scores the whole text as one sequence, so rouge-score's sentence splitter
    (which needs nltk data) is never used.
    """
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rougeL"], tokenizer=_CaptionTokenizer())
    scores = []
    for prediction, reference in zip(predictions, references):
        refs = [str(ref) for ref in _reference_list(reference)]
        if prediction is None or not refs:
            scores.append(0.0)
            continue
        scores.append(max(scorer.score(ref, str(prediction))["rougeL"].fmeasure for ref in refs))
    return _mean(scores)


# --------------------------------------------------------------------------------------------------
# Boxes: iou_acc
# --------------------------------------------------------------------------------------------------

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
    value = _to_python(value)
    if isinstance(value, str):
        numbers = _NUMBER.findall(value)
        value = [float(n) for n in numbers] if len(numbers) == 4 else None
    if not _is_box(value):
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
        refs = [b for b in (_as_box(r) for r in _reference_list(reference)) if b is not None]
        hit = box is not None and any(box_iou(box, ref) >= IOU_THRESHOLD - 1e-9 for ref in refs)
        scores.append(float(hit))
    return _mean(scores)


# --------------------------------------------------------------------------------------------------
# Text-to-SQL: sql_execution_match
# --------------------------------------------------------------------------------------------------

SQL_TIMEOUT_S = 1.0            # a predicted query running longer than this is aborted (and wrong)
SQL_GOLD_TIMEOUT_S = 10.0      # gold queries are trusted, but still bounded
_ORDER_BY = re.compile(r"\border\s+by\b", re.IGNORECASE)


class _ReadOnlyDatabase:
    """A read-only sqlite connection that aborts queries running past their deadline."""

    def __init__(self, path: str):
        uri = "file:" + urllib.parse.quote(str(Path(path).resolve())) + "?mode=ro"
        try:
            self.connection = sqlite3.connect(uri, uri=True, check_same_thread=False)
        except sqlite3.Error as error:
            raise ValueError(f"sql_execution_match: cannot open database {path!r}: {error}") from error
        self.deadline = math.inf
        # sqlite calls this every 1000 VM instructions; a true return interrupts the query
        self.connection.set_progress_handler(lambda: time.monotonic() > self.deadline, 1000)
        # mode=ro protects this file; ATTACH could still create or write another one
        self.connection.set_authorizer(
            lambda action, *args: sqlite3.SQLITE_DENY
            if action in (sqlite3.SQLITE_ATTACH, sqlite3.SQLITE_DETACH) else sqlite3.SQLITE_OK)

    def run(self, sql: str, timeout: float) -> list[tuple]:
        self.deadline = time.monotonic() + timeout
        try:
            return self.connection.execute(sql).fetchall()
        finally:
            self.deadline = math.inf

    def close(self) -> None:
        self.connection.close()


def _comparable(result: list[tuple], ordered: bool) -> list | Counter:
    # rounding floats: AVG(x) and SUM(x) / COUNT(x) may differ in the last bits
    rows = [tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in result]
    return rows if ordered else Counter(rows)


def _sql_execution_match(predictions: list, references: list, rows=None) -> float:
    """Share of predicted queries whose result equals the gold query's on the row's database.

    Results are compared as multisets of rows (order-insensitive) unless the gold query has an
    ORDER BY; column order matters. A prediction that fails (syntax error, write attempt, more than
    one statement, running past SQL_TIMEOUT_S) is wrong; a gold query that fails raises ValueError.
    """
    if rows is None:
        raise ValueError("sql_execution_match needs rows with a 'db_path' column")
    databases: dict[str, _ReadOnlyDatabase] = {}   # one connection per database file
    gold_results: dict[tuple[str, str], list] = {}
    scores = []
    try:
        for i, (prediction, reference) in enumerate(zip(predictions, references)):
            path = _column(rows, i, "db_path")
            if path is None:
                raise ValueError(f"sql_execution_match: row {i} has no 'db_path'")
            path = str(path)
            if path not in databases:
                databases[path] = _ReadOnlyDatabase(path)
            database = databases[path]
            gold_sql = _reference_list(reference)
            if not gold_sql:
                raise ValueError(f"sql_execution_match: row {i} has no gold query")
            gold_sql = str(gold_sql[0])
            if (path, gold_sql) not in gold_results:
                try:
                    gold_results[path, gold_sql] = database.run(gold_sql, SQL_GOLD_TIMEOUT_S)
                except sqlite3.Error as error:
                    raise ValueError(f"sql_execution_match: gold query of row {i} fails on {path!r}: "
                                     f"{error}\n  {gold_sql}") from error
            if prediction is None or not str(prediction).strip():
                scores.append(0.0)
                continue
            try:
                predicted = database.run(str(prediction), SQL_TIMEOUT_S)
            except (sqlite3.Error, sqlite3.Warning, OverflowError, ValueError):
                scores.append(0.0)   # invalid SQL, a write, several statements, a timeout: wrong
                continue
            ordered = _ORDER_BY.search(gold_sql) is not None
            gold = gold_results[path, gold_sql]
            scores.append(float(_comparable(predicted, ordered) == _comparable(gold, ordered)))
    finally:
        for database in databases.values():
            database.close()
    return _mean(scores)


# --------------------------------------------------------------------------------------------------
# Sudoku: sudoku_solved
# --------------------------------------------------------------------------------------------------

def parse_sudoku(grid: Any) -> list[list[int]] | None:
    """"d : d : d : d | d : ..." or "d d d d | ..." (rows split by "|", cells by ":" and/or spaces,
    0 = blank) or nested lists -> rows.

    Returns None unless it is a square 4x4 or 9x9 grid of digits 0..n.
    """
    grid = _to_python(grid)
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
    groups = [row for row in cells]
    groups += [[cells[r][c] for r in range(size)] for c in range(size)]
    groups += [[cells[r][c] for r in range(top, top + box) for c in range(left, left + box)]
               for top in range(0, size, box) for left in range(0, size, box)]
    return all(len(group) == size and set(group) == digits for group in groups)


def _sudoku_solved(predictions: list, references: list, rows=None) -> float:
    """Share of predicted grids that are complete valid sudokus keeping the puzzle's given cells.

    The givens come from the row's "puzzle" column; without one, the reference stands in (a
    reference solution must then be matched exactly, a reference puzzle only in its givens).
    """
    scores = []
    for i, (prediction, reference) in enumerate(zip(predictions, references)):
        cells = parse_sudoku(prediction) if prediction is not None else None
        givens_source = _column(rows, i, "puzzle")
        if givens_source is None:
            refs = _reference_list(reference)
            givens_source = refs[0] if refs else None
        givens = parse_sudoku(givens_source) if givens_source is not None else None
        solved = (cells is not None and givens is not None and len(givens) == len(cells)
                  and _is_solved_grid(cells)
                  and all(g in (0, c) for grow, crow in zip(givens, cells) for g, c in zip(grow, crow)))
        scores.append(float(solved))
    return _mean(scores)


# --------------------------------------------------------------------------------------------------
# Speech: wer, mcd
# --------------------------------------------------------------------------------------------------

_APOSTROPHE_OUTSIDE_WORD = re.compile(r"(?<!\w)'|'(?!\w)")
_NOT_TRANSCRIPT = re.compile(r"[^\w\s']|_")


def normalize_transcript(text: Any) -> str:
    """Transcript normalisation for WER: NFKC, lower-case, punctuation (hyphens included) -> space.

    Apostrophes inside a word stay ("don't", "o'clock"); quote marks around words go. Numbers are
    not spelled out: "42" and "forty two" differ, as in the LibriSpeech scoring.
    """
    if text is None:
        return ""
    text = unicodedata.normalize("NFKC", str(_to_python(text))).lower().replace("\u2019", "'")
    text = _APOSTROPHE_OUTSIDE_WORD.sub(" ", text)
    return " ".join(_NOT_TRANSCRIPT.sub(" ", text).split())


def _word_errors(reference: str, hypothesis: str) -> int:
    """Substitutions + deletions + insertions turning `reference` into `hypothesis` (word level)."""
    import jiwer

    if not reference or not hypothesis:   # all insertions or all deletions
        return len(reference.split()) + len(hypothesis.split())
    out = jiwer.process_words(reference, hypothesis)
    return out.substitutions + out.deletions + out.insertions


def word_error_rate(predictions: Sequence, references: Sequence) -> float:
    """Corpus word error rate in percent: 100 * (S + D + I) / N summed over all rows (jiwer's
    alignment), after `normalize_transcript` on both sides.

    A row with several references is scored against the one with the fewest errors. A None
    prediction counts as an empty transcript (every reference word deleted). WER can exceed 100.
    """
    errors = words = 0
    for i, (prediction, reference) in enumerate(zip(predictions, references)):
        refs = [normalize_transcript(r) for r in _reference_list(reference)]
        if not refs:
            raise ValueError(f"wer: row {i} has no reference transcript")
        hypothesis = normalize_transcript(prediction)
        row_errors, ref = min(((_word_errors(r, hypothesis), r) for r in refs), key=lambda pair: pair[0])
        errors += row_errors
        words += len(ref.split())
    if words == 0:
        raise ValueError("wer: the reference transcripts hold no words")
    return 100.0 * errors / words


def _wer(predictions: list, references: list, rows=None) -> float:
    return word_error_rate(predictions, references)


# MCD compares log-mel frames made exactly as the package's TTS targets are
# (`modalities.audio_target.log_mel` with the default `MelSettings`: 16 kHz, 1024-sample Hann window
# every 256 samples, 80 slaney mel bins over 80-7600 Hz, natural log of the power floored at 1e-5),
# so a TTS prediction's own "mel" is comparable as it is. These two constants repeat those defaults
# to keep this module's import cheap (tests check they agree).
MEL_BINS = 80
MEL_FLOOR = 1e-5
MCD_CEPSTRA = 13
_MCD_SCALE = 10.0 * math.sqrt(2.0) / math.log(10.0)   # natural-log amplitude cepstral distance -> dB


def _to_numpy(value: Any):
    import numpy as np

    if hasattr(value, "detach"):
        value = value.detach().cpu().float().numpy()
    return np.asarray(value, dtype=np.float64)


def log_mel(value: Any, where: str = "audio"):
    """(frames, 80) natural-log mel power of audio, as the TTS targets are made. ``value`` is anything an
    AUDIO slot accepts (`load_audio`), or a pipeline output ``{"audio", "sampling_rate"}``; a 2-D array
    with 80 columns is taken to be log-mel already."""
    import torch.nn.functional as F

    from .modalities.audio import load_audio
    from .outputs.speech import MelSettings
    from .outputs.speech import log_mel as target_log_mel

    if not isinstance(value, dict) and not hasattr(value, "get_all_samples"):
        mels = _to_numpy(value)
        if mels.ndim != 2 or mels.shape[1] != MEL_BINS or len(mels) == 0:
            raise ValueError(f"{where}: a log-mel array must have shape (frames, {MEL_BINS}), got {mels.shape}")
        return mels
    if isinstance(value, dict) and "audio" in value:  # what the pipeline returns for an AUDIO target
        value = {"array": _to_numpy(value["audio"]), "sampling_rate": value.get("sampling_rate")}
    settings = MelSettings()
    wave = load_audio(value, where, target_rate=settings.sampling_rate)
    frames = 1 + len(wave) // settings.hop_length
    if len(wave) <= settings.n_fft // 2:  # the STFT's reflect padding needs more than half a window
        wave = F.pad(wave, (0, settings.n_fft // 2 + 1 - len(wave)))
    return target_log_mel(wave, settings)[:frames].double().numpy()


def _dct_matrix(size: int):
    """Cepstra of a log spectrum over `size` mel bins: c_k = (1/size) * sum_n x_n cos(pi k (2n + 1) / (2 size)),
    the DCT-II scaled so that x_n = c_0 + 2 * sum_k c_k cos(...), the usual cepstrum scale of MCD."""
    import numpy as np

    n = np.arange(size)
    return np.cos(np.pi * np.arange(size)[:, None] * (2 * n[None, :] + 1) / (2 * size)) / size


def _dtw_mean_distance(a, b) -> float:
    """Mean Euclidean distance along the dynamic-time-warping path between frame sequences a and b.

    The path runs from the first pair of frames to the last with steps (1, 1), (1, 0), (0, 1) and
    minimises the summed distance; the result is that sum over the number of pairs on the path.
    Filled one anti-diagonal at a time (cells on it do not depend on each other); on equal sums
    the diagonal step wins.
    """
    import numpy as np

    squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    cost = np.sqrt(np.maximum(squared, 0.0))
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)
    steps = np.zeros((n + 1, m + 1))
    total[0, 0] = 0.0
    for diagonal in range(2, n + m + 1):        # cells (i, j), 1-based, with i + j == diagonal
        i = np.arange(max(1, diagonal - m), min(n, diagonal - 1) + 1)
        j = diagonal - i
        previous = np.stack([total[i - 1, j - 1], total[i - 1, j], total[i, j - 1]])
        lengths = np.stack([steps[i - 1, j - 1], steps[i - 1, j], steps[i, j - 1]])
        best = previous.argmin(0)
        columns = np.arange(len(i))
        total[i, j] = cost[i - 1, j - 1] + previous[best, columns]
        steps[i, j] = lengths[best, columns] + 1
    return float(total[n, m] / steps[n, m])


def mel_cepstral_distortion(predicted_mels: Sequence, reference_mels: Sequence,
                            num_cepstra: int = MCD_CEPSTRA) -> float:
    """Mean mel-cepstral distortion (dB) between predicted and reference log-mel spectrograms.

    Each item is a (frames, mel bins) array of natural-log mel power (the TTS target convention).
    Per utterance: each frame's log amplitude x = log power / 2 over its N bins gives cepstra by
    the DCT-II, scaled to the usual cepstrum scale c_k = (1/N) sum_n x_n cos(pi k (2n + 1) / (2N))
    (so x_n = c_0 + 2 sum_k c_k cos(...));
    c0 (the frame's overall level) is dropped and c1..c{num_cepstra} kept; the two sequences are
    aligned by dynamic time warping on the Euclidean distance of those cepstra, and

        MCD = 10 * sqrt(2) / ln(10) * (mean distance over the aligned frame pairs)

    (the usual (10 / ln 10) * sqrt(2 * sum_d (c_d - c'_d)^2), frame-averaged). The result is the
    mean over utterances. Lower is better; 0 means the same spectral envelope up to timing and level.
    """
    import numpy as np

    predicted_mels, reference_mels = list(predicted_mels), list(reference_mels)
    if len(predicted_mels) != len(reference_mels):
        raise ValueError(f"mcd: {len(predicted_mels)} predictions but {len(reference_mels)} references")
    if not predicted_mels:
        raise ValueError("mcd: no spectrograms to compare")
    scores = []
    for i, (predicted, reference) in enumerate(zip(predicted_mels, reference_mels)):
        predicted, reference = np.asarray(predicted, dtype=np.float64), np.asarray(reference, dtype=np.float64)
        for name, mels in (("prediction", predicted), ("reference", reference)):
            if mels.ndim != 2 or len(mels) == 0:
                raise ValueError(f"mcd: {name} {i} must be a (frames, mel bins) array, got shape {mels.shape}")
        if predicted.shape[1] != reference.shape[1]:
            raise ValueError(f"mcd: row {i} has {predicted.shape[1]} mel bins predicted, "
                             f"{reference.shape[1]} in the reference")
        if not 0 < num_cepstra < reference.shape[1]:
            raise ValueError(f"mcd: num_cepstra must be in 1..{reference.shape[1] - 1}, got {num_cepstra}")
        dct = _dct_matrix(reference.shape[1])[1:num_cepstra + 1].T / 2   # / 2: log power -> log amplitude
        scores.append(_MCD_SCALE * _dtw_mean_distance(predicted @ dct, reference @ dct))
    return float(np.mean(scores))


def _silence():
    import numpy as np

    return np.full((1, MEL_BINS), math.log(MEL_FLOOR))


def _audio_reference(reference: Any) -> Any:
    """The first reference when a row lists several clips (a log-mel array is one reference)."""
    if isinstance(reference, (list, tuple)):
        if not reference:
            return None
        return reference[0]
    return reference


def _no_samples(value: Any) -> bool:
    """An empty generation: a mel array without frames or a waveform without samples."""
    if isinstance(value, dict):
        value = value.get("audio", value.get("array"))
        if value is None:   # bytes or a path: decoded (and checked) by log_mel
            return False
    elif hasattr(value, "get_all_samples"):
        return False
    return _to_numpy(value).size == 0


def _prediction_mels(prediction: Any, where: str):
    """A TTS prediction's log-mel: its own "mel" when it carries one (the generated frames, before
    the vocoder, in the analysis above), else the analysis of its waveform. None, and a generation
    that stopped before its first frame, score as silence."""
    if isinstance(prediction, dict) and prediction.get("mel") is not None:
        prediction = prediction["mel"]
    if prediction is None or _no_samples(prediction):
        return _silence()
    return log_mel(prediction, where)


def _mcd(predictions: list, references: list, rows=None) -> float:
    """MCD on waveforms or log-mel arrays; a None prediction is scored as silence."""
    predicted, gold = [], []
    for i, (prediction, reference) in enumerate(zip(predictions, references)):
        reference = _audio_reference(reference)
        if reference is None:
            raise ValueError(f"mcd: row {i} has no reference audio")
        gold.append(log_mel(reference, f"mcd: reference of row {i}"))
        predicted.append(_prediction_mels(prediction, f"mcd: prediction of row {i}"))
    return mel_cepstral_distortion(predicted, gold)


def _is_audio(value: Any) -> bool:
    """Audio as a target column holds it: a decoder, a decoded/undecoded Audio dict, or log-mel frames."""
    if hasattr(value, "get_all_samples"):
        return True
    if isinstance(value, dict):
        return any(value.get(k) is not None for k in ("array", "audio", "bytes", "path"))
    shape = getattr(value, "shape", None)
    return shape is not None and len(shape) == 2 and shape[1] == MEL_BINS


BASELINE_AUDIO_CLIPS = 200   # training clips the mean log-mel frame is taken over


def _mean_log_mel(targets: list):
    """The mean log-mel frame of (up to BASELINE_AUDIO_CLIPS) training clips, repeated for their
    mean length: a constant 'speech' that knows nothing of the input."""
    import numpy as np

    mels = [log_mel(t, f"baseline: training clip {i}") for i, t in enumerate(targets[:BASELINE_AUDIO_CLIPS])]
    frames = np.concatenate(mels)
    length = max(1, round(float(np.mean([len(m) for m in mels]))))
    return np.tile(frames.mean(0), (length, 1))


# --------------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------------

METRICS: dict[str, Metric] = {metric.name: metric for metric in (
    Metric("accuracy", _accuracy,
           description="prediction equals a reference after strip / lower-case / whitespace collapse (%)"),
    Metric("exact_match", _exact_match,
           description="free-text exact match after case and whitespace normalisation (%)"),
    Metric("vqa_accuracy", _vqa_accuracy,
           description="VQA accuracy: min(#annotators agreeing / 3, 1), leave-one-out averaged (%)"),
    Metric("cider", _cider, description="CIDEr-D (pycocoevalcap) x100, IDF over the evaluated corpus"),
    Metric("bleu4", _bleu4, description="corpus BLEU-4 (pycocoevalcap) (%)"),
    Metric("rouge_l", _rouge_l, description="ROUGE-L F-measure, best reference (%)"),
    Metric("iou_acc", _iou_acc, description="Acc@0.5: predicted boxes with IoU >= 0.5 (%)"),
    Metric("sql_execution_match", _sql_execution_match, needs_columns=("db_path",),
           description="predicted SQL returns the gold query's result on the row's sqlite file (%)"),
    Metric("sudoku_solved", _sudoku_solved, needs_columns=("puzzle",),
           description="complete valid sudoku that keeps the puzzle's given cells (%)"),
    Metric("wer", _wer, higher_is_better=False,
           description="corpus word error rate (jiwer), case and punctuation removed (%, lower is better)"),
    Metric("mcd", _mcd, higher_is_better=False,
           description="mel-cepstral distortion, cepstra c1-c13 of 80-bin log-mels, DTW-aligned (dB, lower is better)"),
)}


def compute_metrics(names: Sequence[str], predictions: Sequence, references: Sequence,
                    rows: Sequence[dict] | None = None) -> dict[str, float]:
    """Scores of `predictions` against `references` for each metric in `names` ({name: score})."""
    if isinstance(names, str):
        names = [names]
    unknown = [name for name in names if name not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(map(repr, unknown))}; "
                         f"known metrics: {', '.join(sorted(METRICS))}")
    predictions, references = list(predictions), list(references)
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if rows is not None and len(rows) != len(predictions):
        raise ValueError(f"{len(predictions)} predictions but {len(rows)} rows")
    if not predictions:
        raise ValueError("no predictions to score")
    return {name: float(METRICS[name].compute(predictions, references, rows)) for name in names}


# --------------------------------------------------------------------------------------------------
# Trivial baselines
# --------------------------------------------------------------------------------------------------

def _hashable(value: Any) -> Any:
    """A hashable stand-in for counting: lists -> tuples, dicts -> sorted item tuples, recursively."""
    value = _to_python(value)
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
    return bool(targets) and all(_is_box(t) for t in targets)


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
        boxes = [_to_python(t) for t in targets]
        guess = tuple(float(statistics.median(b[k] for b in boxes)) for k in range(4))
    else:
        keys = [_hashable(t) for t in targets]
        counts = Counter(keys)
        best = max(counts.values())
        # Counter keeps first-seen order, so the first key reaching `best` is the first seen
        guess = targets[keys.index(next(key for key, n in counts.items() if n == best))]
    return [guess for _ in range(count)]


BASELINE_CANDIDATES = 10  # constant answers `best_constant_baseline` tries


def best_constant_baseline(names: Sequence[str], train_targets: Sequence, references: Sequence,
                           extra: Sequence[dict] | None = None,
                           candidates: int = BASELINE_CANDIDATES) -> tuple[dict, Any]:
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
