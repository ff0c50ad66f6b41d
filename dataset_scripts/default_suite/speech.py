"""What the two speech tasks (asr, tts) share: sentences of Debian fortunes, one partition of them,
espeak-ng saying them, and the rows and description both tasks are made of."""

from __future__ import annotations

import functools
import io
import re
import subprocess
import wave
from concurrent.futures import ThreadPoolExecutor

import datasets
import numpy as np

from .common import FORTUNES, SETUP_HINT, SPLITS, STRING, Build, require, shuffled

# fortunes categories the fortunes task does not use, so no quote is both heard and classified
SPEECH_CATEGORIES = (
    "art",
    "computers",
    "education",
    "fortunes",
    "goedel",
    "humorists",
    "kids",
    "law",
    "literature",
    "miscellaneous",
    "people",
    "pets",
    "platitudes",
    "riddles",
    "science",
    "songs-poems",
    "wisdom",
    "work",
)
SPEECH_WORDS = (3, 10)
SPEECH_MAX_SECONDS = 4.0
SPEECH_RATE = 16000
SPEECH_SENTENCES = {"test": 500, "validation": 300}  # the rest of the sentences are for training
SPEECH_SIZES = {
    "asr": {"train": 4000, "validation": 200, "test": 400},
    "tts": {"train": 3000, "validation": 150, "test": 300},
}
SPEECH_WORKERS = 4  # espeak-ng processes at a time (each call takes ~10 ms, half of it starting up)
AUDIO = datasets.Audio(sampling_rate=SPEECH_RATE)


def speech_text(sentence: str) -> str | None:
    """A sentence as spoken and transcribed: lower-case words, apostrophes inside words kept, other
    punctuation dropped. None unless it is plain English words (no digits, quotes or symbols, which
    espeak-ng would read out in ways the transcript does not show) of 3-10 words."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z ,;:'\-]*[.!?]?", sentence):
        return None
    words = [w.strip("'") for w in re.sub(r"[^a-z' ]", " ", sentence.lower().replace("-", " ")).split()]
    words = [w for w in words if w]
    return " ".join(words) if SPEECH_WORDS[0] <= len(words) <= SPEECH_WORDS[1] else None


@functools.cache
def speech_sentences(seed: int) -> dict[str, list[tuple[str, str]]]:
    """(text, category) of distinct fortunes sentences per split: one partition for both speech
    tasks, so no sentence of a test split is heard or spoken in any training split."""
    found: dict[str, str] = {}
    for category in SPEECH_CATEGORIES:
        text = require(FORTUNES / category, "Debian fortunes").read_text(encoding="utf-8", errors="replace")
        text = re.sub(r".\x08", "", text)
        for quote in re.split(r"^%\s*$", text, flags=re.MULTILINE):
            lines = [line for line in quote.splitlines() if not line.strip().startswith("--")]
            for sentence in re.split(r"(?<=[.!?])\s+", " ".join(" ".join(lines).split())):
                spoken = speech_text(sentence)
                if spoken is not None:
                    found.setdefault(spoken, category)
    pool = shuffled(np.random.default_rng([seed, 16000]), sorted(found.items()))
    n_test, n_validation = SPEECH_SENTENCES["test"], SPEECH_SENTENCES["validation"]
    return {
        "test": pool[:n_test],
        "validation": pool[n_test : n_test + n_validation],
        "train": pool[n_test + n_validation :],
    }


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """16-bit mono PCM WAV, the form the Audio() column stores."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def speak(text: str, voice: str, speed: int) -> np.ndarray:
    """espeak-ng saying ``text``: float32 samples at 16 kHz, silence beyond 50 ms trimmed off both ends."""
    import torch  # noqa: PLC0415 (torchaudio's resampler; torch loads only for the speech tasks)
    import torchaudio  # noqa: PLC0415

    try:
        result = subprocess.run(
            ["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text], capture_output=True, check=True, timeout=60
        )
    except FileNotFoundError:
        raise SystemExit(f"default suite: espeak-ng is missing (Debian espeak-ng); {SETUP_HINT}") from None
    except subprocess.CalledProcessError as error:
        raise RuntimeError(
            f"espeak-ng -v {voice} -s {speed} failed on {text!r}: {error.stderr.decode()[:200]}"
        ) from None
    with wave.open(io.BytesIO(result.stdout)) as source:  # its stdout header leaves the length open
        rate = source.getframerate()
        samples = np.frombuffer(source.readframes(source.getnframes()), dtype="<i2").astype(np.float32) / 32768
    samples = torchaudio.functional.resample(torch.from_numpy(samples), rate, SPEECH_RATE).numpy()
    loud = np.flatnonzero(np.abs(samples) > 0.01 * np.abs(samples).max())
    if len(loud) == 0:
        raise RuntimeError(f"espeak-ng -v {voice} -s {speed} gave silence for {text!r}")
    margin = SPEECH_RATE // 20
    return samples[max(0, loud[0] - margin) : loud[-1] + margin]


def spoken_clip(text: str, voice: str, speed: int) -> tuple[bytes, float]:
    samples = speak(text, voice, speed)
    return wav_bytes(samples, SPEECH_RATE), len(samples) / SPEECH_RATE


def speech_rows(b: Build, task: str, voices) -> dict[str, list[dict]]:
    """Rows of one speech task: per split, sentences of that split's partition in a seeded order,
    each spoken with a voice and speed drawn by ``voices(rng)``; clips over SPEECH_MAX_SECONDS are
    left out (the next sentence takes their place)."""
    rng = b.rng(task)
    splits = {}
    # the work is in espeak-ng processes, not Python: a few threads keep a few of them busy
    with ThreadPoolExecutor(SPEECH_WORKERS) as pool:
        for split in SPLITS:
            wanted = b.size(SPEECH_SIZES[task][split])
            candidates = [
                (text, category, *voices(rng)) for text, category in shuffled(rng, speech_sentences(b.seed)[split])
            ]
            rows = []
            while len(rows) < wanted and candidates:
                # a few more than needed (some clips run too long), at most 256 clips in memory at once
                size = min(wanted - len(rows) + 8, 256)
                batch, candidates = candidates[:size], candidates[size:]
                clips = pool.map(lambda c: spoken_clip(c[0], c[2], c[3]), batch)
                for (text, category, voice, speed), (audio, seconds) in zip(batch, clips):
                    if seconds <= SPEECH_MAX_SECONDS and len(rows) < wanted:
                        rows.append(
                            {
                                "audio": {"bytes": audio, "path": None},
                                "text": text,
                                "voice": voice,
                                "speed": speed,
                                "seconds": round(seconds, 3),
                                "source": f"fortunes/{category}",
                            }
                        )
            splits[split] = rows
    return splits


SPEECH_FEATURES = datasets.Features(
    {
        "audio": AUDIO,
        "text": STRING,
        "voice": STRING,
        "speed": datasets.Value("int32"),
        "seconds": datasets.Value("float32"),
        "source": STRING,
    }
)
SPEECH_HOW = (
    "Speech synthesised offline by Debian espeak-ng (GPL-3.0-or-later software; the audio it renders is "
    "the sentences' speech, not part of the program) reading sentences of the Debian fortunes package "
    f"(fortune-mod data, BSD licence; non-offensive categories {', '.join(SPEECH_CATEGORIES)}, none of them "
    "used by the fortunes task). Sentences are split from the quotes, kept when they are plain words "
    f"(no digits, quotes or symbols) of {SPEECH_WORDS[0]}-{SPEECH_WORDS[1]} words, then lower-cased with punctuation dropped: "
    "`text` is exactly what was spoken. Audio: resampled to 16 kHz, silence beyond 50 ms trimmed, "
    f"clips over {SPEECH_MAX_SECONDS:g} s left out, 16-bit WAV bytes in an Audio() column. One "
    f"partition of the distinct sentences ({SPEECH_SENTENCES['test']} test, {SPEECH_SENTENCES['validation']} "
    "validation, the rest train) serves both speech tasks, so no sentence is in two splits."
)
