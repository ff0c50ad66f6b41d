"""What the two speech tasks (asr, tts) share: the TIDIGITS words, espeak-ng saying them, and the
rows and description both tasks are made of."""

from __future__ import annotations

import io
import subprocess
import wave
from concurrent.futures import ThreadPoolExecutor

import datasets
import numpy as np

from .common import DIGITS, SETUP_HINT, SPLITS, STRING, Build, shuffled

# the eleven words of TIDIGITS: the ten digits and "oh", the other way to say zero. Both tasks use
# small closed vocabularies: open sentences were not learnable by the tiny model in the default budget.
SPEECH_WORDS = ("oh", *DIGITS)
SPEECH_MAX_SECONDS = 4.0
SPEECH_RATE = 16000
SPEECH_SIZES = {
    "asr": {"train": 4000, "validation": 200, "test": 400},
    "tts": {"train": 332, "validation": 36, "test": 73},  # every phrase of its partition once
}
SPEECH_WORKERS = 4  # espeak-ng processes at a time (each call takes ~10 ms, half of it starting up)
AUDIO = datasets.Audio(sampling_rate=SPEECH_RATE)


def partition(strings: list[str], held_out: dict[str, int]) -> dict[str, list[str]]:
    """Test, validation, then train from distinct ``strings`` in their order: no string in two splits."""
    n_test, n_validation = held_out["test"], held_out["validation"]
    return {
        "test": strings[:n_test],
        "validation": strings[n_test : n_test + n_validation],
        "train": strings[n_test + n_validation :],
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


def speech_rows(b: Build, task: str, strings: dict[str, list[str]], voices, source: str) -> dict[str, list[dict]]:
    """Rows of one speech task: per split, that split's ``strings`` in a seeded order, each spoken
    with a voice and speed drawn by ``voices(rng)``; clips over SPEECH_MAX_SECONDS are left out (the
    next string takes their place)."""
    rng = b.rng(task)
    splits = {}
    # the work is in espeak-ng processes, not Python: a few threads keep a few of them busy
    with ThreadPoolExecutor(SPEECH_WORKERS) as pool:
        for split in SPLITS:
            wanted = b.size(SPEECH_SIZES[task][split])
            candidates = [(text, *voices(rng)) for text in shuffled(rng, strings[split])]
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
                                "source": source,
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
    "Speech synthesised offline by Debian espeak-ng (GPL-3.0-or-later software; its licence does not "
    "cover the audio it renders, which is not part of the program). Only the word lists follow the "
    "TIDIGITS and Speech Commands corpora: no data of theirs is used. `text` is exactly what was spoken. "
    "Audio: resampled to "
    f"16 kHz, silence beyond 50 ms trimmed, clips over {SPEECH_MAX_SECONDS:g} s left out, 16-bit WAV "
    "bytes in an Audio() column."
)
