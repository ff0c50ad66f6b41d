"""asr: transcribe spoken digit strings in many espeak-ng voices and speeds."""

from __future__ import annotations

from .common import Build, TaskData
from .speech import SPEECH_FEATURES, SPEECH_HOW, SPEECH_SIZES, speech_rows

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


def build_asr(b: Build) -> TaskData:
    def voices(rng):
        accent, variant = (
            ASR_ACCENTS[int(rng.integers(len(ASR_ACCENTS)))],
            ASR_VARIANTS[int(rng.integers(len(ASR_VARIANTS)))],
        )
        return accent + variant, int(rng.integers(ASR_SPEEDS[0], ASR_SPEEDS[1] + 1))

    sizes = SPEECH_SIZES["asr"]
    return TaskData(
        speech_rows(b, "asr", voices),
        SPEECH_FEATURES,
        "espeak-ng saying digit strings (TIDIGITS-style)",
        "Speech recognition: " + SPEECH_HOW + f" Each clip has its own voice: one of {len(ASR_ACCENTS)} English "
        f"accents ({', '.join(ASR_ACCENTS)}) with the default or a +f1..f4 / +m1..m4 variant, at "
        f"{ASR_SPEEDS[0]}-{ASR_SPEEDS[1]} words per minute, drawn with the seed (`voice`, `speed`). "
        f"{sizes['train']} / {sizes['validation']} / {sizes['test']} clips.",
    )
