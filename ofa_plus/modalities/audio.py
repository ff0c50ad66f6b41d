"""PLACEHOLDER (branch issue6b): the merge replaces this whole file with helper A's AUDIO modality.

Only what the AUDIO-target (text-to-speech) half in `audio_target.py` needs to run and be tested:
a registered `AudioModality` (name "AUDIO", not text-like) and a minimal `load_audio`. The target
half relies on nothing of this file except: the name "AUDIO", ``text_like = False``,
``AudioModality.is_single``, ``AudioModality.attributes`` accepting the target-side attributes below
(merged with A's), ``AudioModality.target_generator`` / ``target_loss`` (set by `audio_target.py`),
and ``load_audio(value, where, sampling_rate=None, target_rate=16000)``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torchaudio

from . import register_modality
from .base import Modality


def load_audio(value: Any, where: str, sampling_rate: int | None = None, target_rate: int = 16000) -> torch.Tensor:
    """A path, raw bytes, a ``{"array", "sampling_rate"}`` dict or an array with ``sampling_rate=``
    -> mono float32 1-D waveform at ``target_rate``."""
    if isinstance(value, dict) and "array" in value:
        value, sampling_rate = value["array"], value.get("sampling_rate", sampling_rate)
    elif isinstance(value, dict) and ("bytes" in value or "path" in value):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (str, os.PathLike, bytes, bytearray)):
        from torchcodec.decoders import AudioDecoder  # noqa: PLC0415

        try:
            samples = AudioDecoder(bytes(value) if isinstance(value, bytearray) else
                                   str(value) if not isinstance(value, bytes) else value).get_all_samples()
        except (RuntimeError, ValueError, OSError) as err:
            raise ValueError(f"{where}: cannot read audio: {err}") from err
        waveform, sampling_rate = samples.data, samples.sample_rate
    elif isinstance(value, (np.ndarray, torch.Tensor)):
        if sampling_rate is None:
            raise ValueError(f"{where}: an audio array needs its sampling_rate")
        waveform = torch.as_tensor(np.asarray(value) if isinstance(value, np.ndarray) else value)
        if not waveform.is_floating_point():
            waveform = waveform.float() / -torch.iinfo(waveform.dtype).min
        if waveform.ndim == 2 and waveform.shape[0] > waveform.shape[1]:
            waveform = waveform.T  # (samples, channels) -> (channels, samples)
    else:
        raise ValueError(f"{where}: expected an audio path, bytes, a {{'array', 'sampling_rate'}} dict or an "
                         f"array, got {type(value).__name__}")
    waveform = waveform.float()
    if waveform.ndim == 2:
        waveform = waveform.mean(dim=0)
    if waveform.ndim != 1 or waveform.numel() == 0:
        raise ValueError(f"{where}: empty or malformed audio of shape {tuple(waveform.shape)}")
    if sampling_rate != target_rate:
        waveform = torchaudio.functional.resample(waveform, int(sampling_rate), target_rate)
    return waveform.contiguous()


@register_modality
class AudioModality(Modality):
    name = "AUDIO"
    text_like = False
    attributes: dict = {}

    @classmethod
    def is_single(cls, value) -> bool:
        if isinstance(value, (np.ndarray, torch.Tensor)):
            return value.ndim == 1
        return not isinstance(value, (list, tuple))


