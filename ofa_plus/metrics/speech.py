"""Speech metrics: wer (jiwer) for transcripts, mcd for synthesised speech, and the log-mel analysis
MCD compares. jiwer, numpy and torch are imported when a metric first runs.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

from ..configuration_ofa_plus import MelSettings
from .registry import Metric, register
from .values import reference_list, to_python

_APOSTROPHE_OUTSIDE_WORD = re.compile(r"(?<!\w)'|'(?!\w)")
_NOT_TRANSCRIPT = re.compile(r"[^\w\s']|_")


def normalize_transcript(text: Any) -> str:
    """Transcript normalisation for WER: NFKC, lower-case, punctuation (hyphens included) -> space.

    Apostrophes inside a word stay ("don't", "o'clock"); quote marks around words go. Numbers are
    not spelled out: "42" and "forty two" differ, as in the LibriSpeech scoring.
    """
    if text is None:
        return ""
    text = unicodedata.normalize("NFKC", str(to_python(text))).lower().replace("\u2019", "'")
    text = _APOSTROPHE_OUTSIDE_WORD.sub(" ", text)
    return " ".join(_NOT_TRANSCRIPT.sub(" ", text).split())


def _word_errors(reference: str, hypothesis: str) -> int:
    """Substitutions + deletions + insertions turning `reference` into `hypothesis` (word level)."""
    import jiwer

    if not reference or not hypothesis:  # all insertions or all deletions
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
        refs = [normalize_transcript(r) for r in reference_list(reference)]
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
# (`outputs.speech.log_mel` with the default `MelSettings`: 16 kHz, 1024-sample Hann window
# every 256 samples, 80 slaney mel bins over 80-7600 Hz, natural log of the power floored at 1e-5),
# so a TTS prediction's own "mel" is comparable as it is.
MEL_BINS = MelSettings.num_mel_bins
MEL_FLOOR = MelSettings.log_floor
MCD_CEPSTRA = 13
_MCD_SCALE = 10.0 * math.sqrt(2.0) / math.log(10.0)  # natural-log amplitude cepstral distance -> dB


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

    from ..modalities.audio import load_audio
    from ..outputs.speech import log_mel as target_log_mel

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
    for diagonal in range(2, n + m + 1):  # cells (i, j), 1-based, with i + j == diagonal
        i = np.arange(max(1, diagonal - m), min(n, diagonal - 1) + 1)
        j = diagonal - i
        previous = np.stack([total[i - 1, j - 1], total[i - 1, j], total[i, j - 1]])
        lengths = np.stack([steps[i - 1, j - 1], steps[i - 1, j], steps[i, j - 1]])
        best = previous.argmin(0)
        columns = np.arange(len(i))
        total[i, j] = cost[i - 1, j - 1] + previous[best, columns]
        steps[i, j] = lengths[best, columns] + 1
    return float(total[n, m] / steps[n, m])


def mel_cepstral_distortion(
    predicted_mels: Sequence, reference_mels: Sequence, num_cepstra: int = MCD_CEPSTRA
) -> float:
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
            raise ValueError(
                f"mcd: row {i} has {predicted.shape[1]} mel bins predicted, {reference.shape[1]} in the reference"
            )
        if not 0 < num_cepstra < reference.shape[1]:
            raise ValueError(f"mcd: num_cepstra must be in 1..{reference.shape[1] - 1}, got {num_cepstra}")
        dct = _dct_matrix(reference.shape[1])[1 : num_cepstra + 1].T / 2  # / 2: log power -> log amplitude
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
        if value is None:  # bytes or a path: decoded (and checked) by log_mel
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


register(
    Metric(
        "wer",
        _wer,
        higher_is_better=False,
        description="corpus word error rate (jiwer), case and punctuation removed (%, lower is better)",
    ),
    Metric(
        "mcd",
        _mcd,
        higher_is_better=False,
        description="mel-cepstral distortion, cepstra c1-c13 of 80-bin log-mels, DTW-aligned (dB, lower is better)",
        prediction="audio",
    ),
)
