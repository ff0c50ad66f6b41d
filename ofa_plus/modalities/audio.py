"""AUDIO (as an input): waveform -> 80-bin Kaldi filterbank -> 4x convolutional subsampling -> d_model.

Processor half: `load_audio` decodes any common audio value to a mono 16 kHz float waveform;
`OFAPlusAudioFeatureExtractor` (an HF ``SequenceFeatureExtractor`` saved with the processor) turns it
into Kaldi-compatible log filterbanks with utterance CMVN and, in training only, SpecAugment. In the
token stream an audio is a run of ``<audio>`` placeholders, one per frame left after subsampling
(`audio_token_count`, shared by the processor and the adaptor).
Model half: `AudioAdaptor`, two stride-2 3x3 convolutions with ReLU (Conv2dSubsampling) and a
linear map to ``d_model``; the encoder gives audio 1-D positions inside its segment, like text.
AUDIO as a target (text-to-speech: mel frames, speech head, generator, vocoder) is the other half of
this modality, in ``audio_target.py``: too much for one file.
"""

from __future__ import annotations

import io
import os
import random
from typing import Any

import numpy as np
import torch
import torchaudio
from torch import nn
from transformers import BatchFeature, SequenceFeatureExtractor
from transformers import initialization as init

from .. import vocabulary as V
from . import register_modality
from .base import Modality, ModalityAdaptor, SlotContext

MIN_SAMPLING_RATE, MAX_SAMPLING_RATE = 1_000, 384_000  # outside this range a rate is a mistake, not audio


def audio_token_count(frames):
    """Frames left after the adaptor's two stride-2, kernel-3 convolutions (no padding).

    Works on ints and on integer tensors; the processor and `AudioAdaptor` both use it, so the
    number of ``<audio>`` placeholders always equals the number of features the adaptor returns."""
    return ((frames - 1) // 2 - 1) // 2


def _decode(source, where: str) -> tuple[torch.Tensor, int]:
    """Decode a file path or encoded bytes with torchcodec (FFmpeg) -> (channels, samples), rate."""
    try:
        from torchcodec.decoders import AudioDecoder
    except ImportError as err:  # pragma: no cover - torchcodec is a dependency
        raise ImportError("decoding audio files needs torchcodec (pip install torchcodec) and FFmpeg") from err
    if isinstance(source, (str, os.PathLike)) and not os.path.isfile(source):
        raise ValueError(f"{where}: audio file {os.fspath(source)!r} does not exist")
    try:
        samples = AudioDecoder(source if not isinstance(source, bytearray) else bytes(source)).get_all_samples()
    except (RuntimeError, ValueError, OSError) as err:
        what = repr(os.fspath(source)) if isinstance(source, (str, os.PathLike)) else f"{len(source)} bytes"
        if "No audio frames were decoded" in str(err):  # a valid header with no samples
            raise ValueError(f"{where}: the audio is empty ({what} hold no samples)") from err
        raise ValueError(f"{where}: cannot decode audio ({what}): {str(err).splitlines()[-1][:200]}") from err
    return samples.data, int(samples.sample_rate)


def _to_float(array: np.ndarray, where: str) -> np.ndarray:
    """Integer PCM -> float in [-1, 1); floats pass through."""
    if array.dtype == np.uint8:  # 8-bit WAV is unsigned, centred on 128
        return (array.astype(np.float32) - 128.0) / 128.0
    if np.issubdtype(array.dtype, np.signedinteger):
        return array.astype(np.float32) / float(-np.iinfo(array.dtype).min)
    if np.issubdtype(array.dtype, np.floating):
        return array.astype(np.float32)
    raise ValueError(f"{where}: audio samples must be integer PCM or float, got dtype {array.dtype}")


def _mono(wave: torch.Tensor, where: str) -> torch.Tensor:
    """(samples,), (channels, samples) or (samples, channels) -> (samples,), channels averaged."""
    if wave.ndim == 1:
        return wave
    if wave.ndim == 2:
        channels_first = wave.shape[0] <= wave.shape[1]  # audio has far more samples than channels
        return (wave if channels_first else wave.T).mean(dim=0)
    raise ValueError(f"{where}: an audio array must be 1-D (samples) or 2-D (channels x samples), "
                     f"got shape {tuple(wave.shape)}")


def load_audio(value: Any, where: str, sampling_rate: int | None = None, target_rate: int = 16000,
               max_seconds: float | None = None) -> torch.Tensor:
    """Any common audio value -> mono float32 waveform at ``target_rate``, shape (samples,).

    Accepts a file path, encoded bytes (WAV, FLAC, MP3, OGG, ... through FFmpeg), a ``{"array",
    "sampling_rate"}`` dict, a ``{"path"}`` / ``{"bytes"}`` dict (a ``datasets.Audio(decode=False)``
    value), the torchcodec ``AudioDecoder`` a decoding ``datasets.Audio()`` column yields, or a NumPy /
    torch array with ``sampling_rate`` given. Integer PCM is scaled to [-1, 1); channels are averaged.
    Corrupt or empty audio, a missing or implausible sampling rate and audio longer than
    ``max_seconds`` raise ValueError naming ``where``.
    """
    if isinstance(value, dict):
        if "array" in value:
            sampling_rate = value.get("sampling_rate", sampling_rate)
            value = value["array"]
        elif value.get("bytes") or value.get("path"):
            value = value.get("bytes") or value.get("path")
        else:
            raise ValueError(f"{where}: an audio dict needs 'array' (+ 'sampling_rate'), 'bytes' or 'path'; "
                             f"got keys {sorted(value)}")
    if hasattr(value, "get_all_samples"):  # torchcodec AudioDecoder, as datasets' Audio() decodes
        try:
            samples = value.get_all_samples()
        except RuntimeError as err:
            raise ValueError(f"{where}: cannot decode audio: {str(err).splitlines()[-1][:200]}") from err
        wave, rate = samples.data, int(samples.sample_rate)
    elif isinstance(value, (str, os.PathLike, bytes, bytearray)):
        if isinstance(value, (bytes, bytearray)) and not value:
            raise ValueError(f"{where}: audio bytes are empty")
        wave, rate = _decode(value, where)
    elif isinstance(value, (np.ndarray, torch.Tensor, list)):
        if sampling_rate is None:
            raise ValueError(f"{where}: an audio array needs its sampling rate (sampling_rate=...); "
                             f"a wrong rate would silently change the speech")
        array = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
        wave, rate = torch.from_numpy(_to_float(array, where)), sampling_rate
    elif isinstance(value, io.IOBase):
        wave, rate = _decode(value.read(), where)
    else:
        raise ValueError(f"{where}: expected an audio path, bytes, {{'array', 'sampling_rate'}} dict or array, "
                         f"got {type(value).__name__}")
    if isinstance(rate, bool) or not isinstance(rate, (int, np.integer, float)) or rate != int(rate) \
            or not MIN_SAMPLING_RATE <= rate <= MAX_SAMPLING_RATE:
        raise ValueError(f"{where}: sampling rate {rate!r} is not a plausible rate "
                         f"(an integer from {MIN_SAMPLING_RATE} to {MAX_SAMPLING_RATE} Hz)")
    rate = int(rate)
    wave = _mono(wave.float(), where)
    if wave.numel() == 0:
        raise ValueError(f"{where}: the audio is empty (0 samples)")
    if not bool(torch.isfinite(wave).all()):
        raise ValueError(f"{where}: the audio holds NaN or infinite samples")
    if max_seconds is not None and wave.numel() / rate > max_seconds:
        raise ValueError(f"{where}: the audio lasts {wave.numel() / rate:.1f} s, longer than the limit of "
                         f"{max_seconds:g} s (feature extractor's max_audio_seconds)")
    if rate != target_rate:
        wave = torchaudio.functional.resample(wave, rate, target_rate)
    return wave.contiguous()


class OFAPlusAudioFeatureExtractor(SequenceFeatureExtractor):
    """Waveforms -> Kaldi log-mel filterbanks (``torchaudio.compliance.kaldi.fbank``: 25 ms Povey
    windows every 10 ms, no dither), normalised per utterance (CMVN), SpecAugment when training.

    ``__call__`` returns ``input_features`` (audios, frames, num_mel_bins), padded with zeros (the
    normalised mean), and ``input_features_mask`` (audios, frames). SpecAugment draws from the
    ``rng`` it is given, so a training batch is reproducible from the trainer's seed and step.
    """

    model_input_names = ["input_features", "input_features_mask"]

    def __init__(self, feature_size: int = 80, sampling_rate: int = 16000, padding_value: float = 0.0,
                 frame_length_ms: float = 25.0, frame_shift_ms: float = 10.0, do_cmvn: bool = True,
                 num_freq_masks: int = 2, freq_mask_width: int = 15, num_time_masks: int = 2,
                 time_mask_width: int = 40, time_mask_ratio: float = 0.1, max_audio_seconds: float = 30.0,
                 **kwargs):
        super().__init__(feature_size=feature_size, sampling_rate=sampling_rate, padding_value=padding_value,
                         **kwargs)
        self.frame_length_ms, self.frame_shift_ms = frame_length_ms, frame_shift_ms
        self.do_cmvn = do_cmvn
        self.num_freq_masks, self.freq_mask_width = num_freq_masks, freq_mask_width
        self.num_time_masks, self.time_mask_width = num_time_masks, time_mask_width
        self.time_mask_ratio = time_mask_ratio  # a time mask covers at most this share of the frames
        self.max_audio_seconds = max_audio_seconds

    @property
    def min_samples(self) -> int:
        """Shortest waveform that leaves one frame after the adaptor's 4x subsampling (7 frames)."""
        window = int(self.sampling_rate * self.frame_length_ms / 1000)
        shift = int(self.sampling_rate * self.frame_shift_ms / 1000)
        return window + 6 * shift

    def fbank(self, waveform: torch.Tensor) -> torch.Tensor:
        """(samples,) float waveform in [-1, 1] -> (frames, feature_size) Kaldi log filterbank energies.

        Kaldi works on 16-bit sample values, so the waveform is scaled by 2**15 first (the energies
        then match Kaldi's own ``compute-fbank-feats`` on the same WAV file)."""
        return torchaudio.compliance.kaldi.fbank(
            waveform[None].float() * 32768.0, num_mel_bins=self.feature_size, sample_frequency=self.sampling_rate,
            frame_length=self.frame_length_ms, frame_shift=self.frame_shift_ms, dither=0.0)

    @staticmethod
    def cmvn(features: torch.Tensor) -> torch.Tensor:
        """Utterance-level mean and variance normalisation per mel bin."""
        mean = features.mean(dim=0, keepdim=True)
        std = features.std(dim=0, unbiased=False, keepdim=True)
        return (features - mean) / std.clamp(min=1e-5)

    def spec_augment(self, features: torch.Tensor, rng: random.Random) -> torch.Tensor:
        """Zero (the normalised mean) random bands of mel bins and random spans of frames."""
        features = features.clone()
        frames, bins = features.shape
        for _ in range(self.num_freq_masks):
            width = rng.randint(0, min(self.freq_mask_width, bins))
            start = rng.randint(0, bins - width)
            features[:, start: start + width] = 0.0
        longest = min(self.time_mask_width, int(frames * self.time_mask_ratio))
        for _ in range(self.num_time_masks):
            width = rng.randint(0, max(longest, 0))
            start = rng.randint(0, frames - width)
            features[start: start + width] = 0.0
        return features

    def features(self, waveform: torch.Tensor, training: bool = False, rng: random.Random | None = None,
                 where: str = "audio") -> torch.Tensor:
        """One 16 kHz waveform -> (frames, feature_size); too short for one token is an error."""
        if waveform.numel() < self.min_samples:
            raise ValueError(f"{where}: the audio lasts {waveform.numel() / self.sampling_rate * 1000:.0f} ms, "
                             f"shorter than the {self.min_samples / self.sampling_rate * 1000:.0f} ms the model "
                             f"needs for one audio token")
        features = self.fbank(waveform)
        if self.do_cmvn:
            features = self.cmvn(features)
        if training:
            features = self.spec_augment(features, rng or random.Random())
        return features

    def __call__(self, raw_speech, sampling_rate: int | None = None, training: bool = False,
                 rng: random.Random | None = None, return_tensors: str | None = "pt", **kwargs) -> BatchFeature:
        """One waveform or a list of them (arrays / tensors; resampled to ``self.sampling_rate``
        when ``sampling_rate`` differs) -> padded ``input_features`` and ``input_features_mask``."""
        single = isinstance(raw_speech, (np.ndarray, torch.Tensor)) and raw_speech.ndim == 1
        waves = [raw_speech] if single else list(raw_speech)
        rate = sampling_rate or self.sampling_rate
        rng = rng or random.Random()
        features = [self.features(load_audio(w, f"audio {i}", rate, self.sampling_rate, self.max_audio_seconds),
                                  training, rng, f"audio {i}") for i, w in enumerate(waves)]
        return BatchFeature(pad_features(features, self.padding_value), tensor_type=return_tensors)


def pad_features(features: list[torch.Tensor], value: float = 0.0) -> dict[str, torch.Tensor]:
    """(frames_i, bins) tensors -> ``input_features`` (n, max frames, bins) and ``input_features_mask``."""
    longest = max(f.shape[0] for f in features)
    padded = features[0].new_full((len(features), longest, features[0].shape[1]), value)
    mask = torch.zeros(len(features), longest, dtype=torch.long)
    for i, f in enumerate(features):
        padded[i, : f.shape[0]] = f
        mask[i, : f.shape[0]] = 1
    return {"input_features": padded, "input_features_mask": mask}


class AudioAdaptor(ModalityAdaptor):
    """Conv2dSubsampling: (N, frames, bins) -> (N, audio_token_count(frames), d_model).

    Two 3x3 stride-2 convolutions without padding, so an output frame sees only the input frames
    under it: the features of a short audio padded in a batch equal those it gets alone. A learned
    vector marks the features as audio (the encoder's type embedding covers text and image)."""

    token_name = "audio tokens after subsampling"

    def __init__(self, config):
        super().__init__()
        channels, bins = config.audio_conv_channels, config.audio_feature_size
        self.conv = nn.Sequential(nn.Conv2d(1, channels, 3, stride=2), nn.ReLU(),
                                  nn.Conv2d(channels, channels, 3, stride=2), nn.ReLU())
        self.proj = nn.Linear(channels * audio_token_count(bins), config.d_model)
        self.type_embedding = nn.Parameter(torch.zeros(config.d_model))

    def forward(self, input_features: torch.Tensor, input_features_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = self.conv(input_features[:, None])  # (N, C, T', F')
        return self.proj(x.permute(0, 2, 1, 3).flatten(2)) + self.type_embedding

    def token_counts(self, input_features: torch.Tensor, input_features_mask: torch.Tensor | None = None):
        if input_features_mask is None:
            frames = torch.full((input_features.shape[0],), input_features.shape[1], device=input_features.device)
        else:
            frames = input_features_mask.sum(dim=1)
        return audio_token_count(frames)

    def reset_parameters_of_adaptor(self) -> None:
        init.zeros_(self.type_embedding)


@register_modality
class AudioModality(Modality):
    name = "AUDIO"
    text_like = False
    output_kind = "speech"  # as a target: mel frames (ofa_plus.outputs.speech)
    placeholder_id = V.AUDIO_ID
    adaptor_class = AudioAdaptor
    batch_keys = ("input_features", "input_features_mask")
    attributes = {}

    @classmethod
    def is_single(cls, value) -> bool:
        """One audio: anything but a list/tuple, or an array of more than two dimensions. (A 2-D array
        is one multi-channel audio; give a batch of audios as a list.)"""
        if isinstance(value, (list, tuple)):
            return False
        return not (isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim > 2)

    @classmethod
    def load(cls, value, ctx: SlotContext) -> torch.Tensor:
        extractor = ctx.processor.feature_extractor
        wave = load_audio(value, ctx.where, ctx.sampling_rate, extractor.sampling_rate, extractor.max_audio_seconds)
        return extractor.features(wave, ctx.training, ctx.rng, ctx.where)

    @classmethod
    def placeholder_count(cls, features: torch.Tensor, ctx: SlotContext) -> int:
        return audio_token_count(features.shape[0])

    @classmethod
    def collate(cls, features: list[torch.Tensor], processor) -> dict[str, torch.Tensor]:
        return pad_features(features, processor.feature_extractor.padding_value)
