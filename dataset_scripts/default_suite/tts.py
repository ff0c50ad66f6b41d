"""tts: speak a two-word phrase of digits and command words in one espeak-ng voice."""

from __future__ import annotations

import functools
import itertools

import numpy as np

from .common import Build, TaskData, shuffled
from .speech import SPEECH_FEATURES, SPEECH_HOW, SPEECH_SIZES, SPEECH_WORDS, partition, speech_rows

# one voice at one speed, because the input (phones) says nothing of voice or speed and a target
# drawn from many voices could only be averaged
TTS_VOICE, TTS_SPEED = "en-us", 160
# the TIDIGITS words and the ten command words of Speech Commands. Phrases are two words long: the
# tiny model learns to read the phones of short phrases in the default budget, not of longer strings.
TTS_WORDS = (*SPEECH_WORDS, "yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
TTS_HELD_OUT = {"test": SPEECH_SIZES["tts"]["test"], "validation": SPEECH_SIZES["tts"]["validation"]}


@functools.cache
def tts_phrases(seed: int) -> dict[str, list[str]]:
    """Every ordered pair of TTS_WORDS (441 phrases) in a seeded order, split: held-out phrases are new
    pairs of words the model has heard in other pairs."""
    phrases = [" ".join(pair) for pair in itertools.product(TTS_WORDS, repeat=2)]
    return partition(shuffled(np.random.default_rng([seed, 22050]), phrases), TTS_HELD_OUT)


def build_tts(b: Build) -> TaskData:
    sizes = SPEECH_SIZES["tts"]
    return TaskData(
        speech_rows(b, "tts", tts_phrases(b.seed), lambda rng: (TTS_VOICE, TTS_SPEED), "digits+commands"),
        SPEECH_FEATURES,
        f"espeak-ng saying two-word phrases of {len(TTS_WORDS)} digit and command words, one voice",
        "Text-to-speech: " + SPEECH_HOW + f" Phrases: every ordered pair of the {len(TTS_WORDS)} words "
        f"{', '.join(TTS_WORDS)} (the TIDIGITS words and the command words of Speech Commands), in a seeded "
        f"order and split once ({sizes['test']} test, {sizes['validation']} validation, the rest train): "
        f"held-out phrases are new pairs. One voice ({TTS_VOICE}, {TTS_SPEED} words per minute): the input "
        f"text says nothing of voice or speed. {sizes['train']} / {sizes['validation']} / {sizes['test']} clips.",
    )
