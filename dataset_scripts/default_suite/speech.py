"""What the two speech tasks (asr, tts) share: spoken digit strings in the TIDIGITS tradition, one
partition of them, espeak-ng saying them, and the rows and description both tasks are made of."""

from __future__ import annotations

import functools
import io
import subprocess
import wave
from concurrent.futures import ThreadPoolExecutor

import datasets
import numpy as np

from .common import DIGITS, SETUP_HINT, SPLITS, STRING, Build, shuffled

# eleven words, as in TIDIGITS: the ten digits and "oh", the other way to say zero. A small closed
# vocabulary is what a tiny model can learn to hear (and to say) from a few thousand clips; open
# sentences were not learnable in the default budget.
SPEECH_WORDS = ("oh", *DIGITS)
SPEECH_LENGTHS = (3, 5)  # digits per utterance: short clips, cheap steps
SPEECH_MAX_SECONDS = 4.0
SPEECH_RATE = 16000
# distinct strings per split; the test and validation strings are new combinations, never trained on
SPEECH_STRINGS = {"test": 500, "validation": 300, "train": 6000}
SPEECH_SIZES = {
    "asr": {"train": 4000, "validation": 200, "test": 400},
    "tts": {"train": 3000, "validation": 150, "test": 300},
}
SPEECH_WORKERS = 4  # espeak-ng processes at a time (each call takes ~10 ms, half of it starting up)
AUDIO = datasets.Audio(sampling_rate=SPEECH_RATE)


@functools.cache
def speech_strings(seed: int) -> dict[str, list[str]]:
    """Distinct digit strings per split, drawn with the seed: one partition for both speech tasks,
    so no string of a held-out split is heard or spoken in any training split."""
    rng = np.random.default_rng([seed, 16000])
    found: dict[str, None] = {}  # insertion-ordered set: the same seed gives the same order
    while len(found) < sum(SPEECH_STRINGS.values()):
        length = int(rng.integers(SPEECH_LENGTHS[0], SPEECH_LENGTHS[1] + 1))
        found.setdefault(" ".join(SPEECH_WORDS[i] for i in rng.integers(len(SPEECH_WORDS), size=length)))
    pool = list(found)
    n_test, n_validation = SPEECH_STRINGS["test"], SPEECH_STRINGS["validation"]
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
    """Rows of one speech task: per split, strings of that split's partition in a seeded order, each
    spoken with a voice and speed drawn by ``voices(rng)``; clips over SPEECH_MAX_SECONDS are left out
    (the next string takes their place)."""
    rng = b.rng(task)
    splits = {}
    # the work is in espeak-ng processes, not Python: a few threads keep a few of them busy
    with ThreadPoolExecutor(SPEECH_WORKERS) as pool:
        for split in SPLITS:
            wanted = b.size(SPEECH_SIZES[task][split])
            candidates = [(text, *voices(rng)) for text in shuffled(rng, speech_strings(b.seed)[split])]
            rows = []
            while len(rows) < wanted and candidates:
                # a few more than needed (some clips run too long), at most 256 clips in memory at once
                size = min(wanted - len(rows) + 8, 256)
                batch, candidates = candidates[:size], candidates[size:]
                clips = pool.map(lambda c: spoken_clip(*c), batch)
                for (text, voice, speed), (audio, seconds) in zip(batch, clips):
                    if seconds <= SPEECH_MAX_SECONDS and len(rows) < wanted:
                        rows.append(
                            {
                                "audio": {"bytes": audio, "path": None},
                                "text": text,
                                "voice": voice,
                                "speed": speed,
                                "seconds": round(seconds, 3),
                                "source": "digits",
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
    "the strings' speech, not part of the program) saying digit strings in the TIDIGITS tradition: "
    f"{SPEECH_LENGTHS[0]}-{SPEECH_LENGTHS[1]} words drawn uniformly with the seed from the eleven words "
    f"{', '.join(SPEECH_WORDS)}. `text` is exactly what was spoken. Audio: resampled to 16 kHz, silence "
    f"beyond 50 ms trimmed, clips over {SPEECH_MAX_SECONDS:g} s left out, 16-bit WAV bytes in an Audio() "
    f"column. One partition of distinct strings ({SPEECH_STRINGS['test']} test, "
    f"{SPEECH_STRINGS['validation']} validation, {SPEECH_STRINGS['train']} train) serves both speech tasks, "
    "so no string is in two splits: held-out strings are new digit combinations."
)
