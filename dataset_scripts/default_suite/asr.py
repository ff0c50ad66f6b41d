"""asr: transcribe spoken digit strings (TIDIGITS-style) in many espeak-ng voices and speeds."""

from __future__ import annotations

import functools

import numpy as np

from .common import Build, TaskData
from .speech import SPEECH_FEATURES, SPEECH_HOW, SPEECH_SIZES, SPEECH_WORDS, partition, speech_rows

# ASR hears many voices (8 English accents x default / 4 female / 4 male variants) at 130-190 words
# per minute, so it cannot learn one voice.
ASR_ACCENTS = (
    "en-us",
    "en-gb",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-029",
    "en-us-nyc",
    "en-gb-x-gbclan",
    "en-gb-x-gbcwmd",
)
ASR_VARIANTS = ("", "+f1", "+f2", "+f3", "+f4", "+m1", "+m2", "+m3", "+m4")
ASR_SPEEDS = (130, 190)
ASR_LENGTHS = (3, 5)  # words per string: short clips, cheap steps
ASR_STRINGS = {"test": 500, "validation": 300, "train": 6000}  # distinct strings per split


@functools.cache
def asr_strings(seed: int) -> dict[str, list[str]]:
    """Distinct strings of 3-5 TIDIGITS words per split, drawn with the seed: held-out strings are new
    digit combinations, never heard in training."""
    rng = np.random.default_rng([seed, 16000])
    found: dict[str, None] = {}  # an insertion-ordered set: the same seed gives the same order
    while len(found) < sum(ASR_STRINGS.values()):
        length = int(rng.integers(ASR_LENGTHS[0], ASR_LENGTHS[1] + 1))
        found.setdefault(" ".join(SPEECH_WORDS[i] for i in rng.integers(len(SPEECH_WORDS), size=length)))
    return partition(list(found), ASR_STRINGS)


def build_asr(b: Build) -> TaskData:
    def voices(rng):
        accent, variant = (
            ASR_ACCENTS[int(rng.integers(len(ASR_ACCENTS)))],
            ASR_VARIANTS[int(rng.integers(len(ASR_VARIANTS)))],
        )
        return accent + variant, int(rng.integers(ASR_SPEEDS[0], ASR_SPEEDS[1] + 1))

    sizes = SPEECH_SIZES["asr"]
    return TaskData(
        speech_rows(b, "asr", asr_strings(b.seed), voices, "digits"),
        SPEECH_FEATURES,
        "espeak-ng saying digit strings (TIDIGITS-style) in 72 voices",
        "Speech recognition: " + SPEECH_HOW + f" Digit strings in the TIDIGITS tradition: {ASR_LENGTHS[0]}-"
        f"{ASR_LENGTHS[1]} words drawn uniformly with the seed from {', '.join(SPEECH_WORDS)}. One seeded "
        f"partition of distinct strings ({ASR_STRINGS['test']} test, {ASR_STRINGS['validation']} validation, "
        f"{ASR_STRINGS['train']} train): held-out strings are new combinations. Each clip has its own voice: "
        f"one of {len(ASR_ACCENTS)} English accents ({', '.join(ASR_ACCENTS)}) with the default or a "
        f"+f1..f4 / +m1..m4 variant, at {ASR_SPEEDS[0]}-{ASR_SPEEDS[1]} words per minute, drawn with the seed "
        f"(`voice`, `speed`). {sizes['train']} / {sizes['validation']} / {sizes['test']} clips.",
    )
