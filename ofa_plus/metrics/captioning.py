"""Captioning and generation metrics: cider, bleu4, rouge_l.

pycocoevalcap and rouge-score are imported when a metric first runs.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from .registry import Metric, register
from .values import mean_percent, reference_list

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
        gold[i] = [" ".join(caption_tokens(ref)) for ref in reference_list(reference)] or [""]
    return candidates, gold


def _cider(predictions: list, references: list, rows=None) -> float:
    """CIDEr-D (pycocoevalcap), x100.

    The n-gram IDF comes from the references of the evaluated corpus itself, so scores depend on
    which examples are evaluated together, and a corpus of one image always scores 0 (log 1 = 0).
    """
    from pycocoevalcap.cider.cider import Cider

    candidates, gold = _tokenized_corpus(predictions, references)
    if not candidates or not any(ref for refs in gold.values() for ref in refs):
        return 0.0  # no reference n-gram at all: the scorer would divide by nothing
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
        refs = [str(ref) for ref in reference_list(reference)]
        if prediction is None or not refs:
            scores.append(0.0)
            continue
        scores.append(max(scorer.score(ref, str(prediction))["rougeL"].fmeasure for ref in refs))
    return mean_percent(scores)


register(
    Metric("cider", _cider, description="CIDEr-D (pycocoevalcap) x100, IDF over the evaluated corpus"),
    Metric("bleu4", _bleu4, description="corpus BLEU-4 (pycocoevalcap) (%)"),
    Metric("rouge_l", _rouge_l, description="ROUGE-L F-measure, best reference (%)"),
)
