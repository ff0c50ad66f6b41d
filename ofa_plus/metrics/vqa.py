"""VQA accuracy (vqa_accuracy) with the standard VQA answer normalisation."""

from __future__ import annotations

import re
from typing import Any

from .registry import Metric, register
from .values import mean_percent, reference_list

# The VQA evaluation's answer normalisation (Antol et al. 2015; the VQA v2 evaluation script):
# punctuation is removed or turned into a space, number words become digits, articles are
# dropped and contractions written without an apostrophe get one back.
_VQA_PUNCTUATION = ';/[]"{}()=+\\_->@`,?!<'
_VQA_COMMA_BETWEEN_DIGITS = re.compile(r"\d,\d")
_VQA_PERIOD = re.compile(r"\.(?!\d)")  # a period not followed by a digit (keeps "1.5")
_VQA_NUMBERS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_VQA_ARTICLES = {"a", "an", "the"}
# word without its apostrophe -> the contraction (the official table's "Im", "Ive", ... are
# capitalised and so never match a lower-cased word; they are left out here for the same effect)
_VQA_CONTRACTIONS = {
    c.replace("'", ""): c
    for c in (
        "ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've hasn't "
        "haven't he'd he'd've he's how'd how'll how's isn't it'd it'd've it'll let's "
        "ma'am mightn't mightn't've might've mustn't must've needn't not've o'clock oughtn't 'ow's'at "
        "shan't she'd've she's should've shouldn't shouldn't've somebody'd somebody'd've somebody'll "
        "somebody's someone'd someone'd've someone'll someone's something'd something'd've something'll "
        "that's there'd there'd've there're there's they'd they'd've they'll they're they've 'twas wasn't "
        "we'd've we've weren't what'll what're what's what've when's where'd where's where've who'd "
        "who'd've who'll who's who've why'll why're why's won't would've wouldn't wouldn't've y'all "
        "y'all'll y'all'd've you'd you'd've you'll you're you've"
    ).split()
}


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
    return mean_percent([_vqa_score(p, reference_list(r)) for p, r in zip(predictions, references)])


register(
    Metric(
        "vqa_accuracy",
        _vqa_accuracy,
        description="VQA accuracy: min(#annotators agreeing / 3, 1), leave-one-out averaged (%)",
    ),
)
