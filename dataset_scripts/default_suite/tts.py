"""tts: speak a digit string in one espeak-ng voice."""

from __future__ import annotations

from .common import Build, TaskData
from .speech import SPEECH_FEATURES, SPEECH_HOW, SPEECH_SIZES, speech_rows

# one voice at one speed, because the input (phones) says nothing of voice or speed and a target
# drawn from many voices could only be averaged
TTS_VOICE, TTS_SPEED = "en-us", 160


def build_tts(b: Build) -> TaskData:
    sizes = SPEECH_SIZES["tts"]
    return TaskData(
        speech_rows(b, "tts", lambda rng: (TTS_VOICE, TTS_SPEED)),
        SPEECH_FEATURES,
        "espeak-ng saying digit strings (TIDIGITS-style)",
        "Text-to-speech: " + SPEECH_HOW + f" One voice ({TTS_VOICE}, {TTS_SPEED} words per minute): the "
        "input text says nothing of voice or speed. "
        f"{sizes['train']} / {sizes['validation']} / {sizes['test']} clips, drawn in their own seeded order from "
        "the partition the asr task uses (a string may be in both tasks' train splits, never in two splits).",
    )
