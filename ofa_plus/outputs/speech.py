"""Speech: the output kind of AUDIO targets (text-to-speech): log-mel targets, a Tacotron-style speech
head, its generator, a vocoder step and WAV writing. AUDIO as an input lives in ``modalities/audio.py``.

Processor half: `MelSettings` (the model config's ``tts_*`` fields, defined in the config module and
saved with the processor), `mel_target` (any audio value -> (frames, n_mels) natural-log mel power, optionally normalised with
global statistics), `collate_mels` (-> batch keys ``mel_labels`` (B, frames, n_mels) zero-padded and
``mel_lengths`` (B,)), `decode_speech` (generated mels -> ``{"audio": float32 array, "sampling_rate"}``
per row, the convention of transformers' text-to-audio pipeline) and `write_wav` / `save_audio`.

Model half: `SpeechHead` -- a prenet that embeds the previous decoder step's last frame as the
decoder's ``inputs_embeds``, a linear mel head emitting ``frames_per_step`` frames per decoder step,
one stop logit per frame and a residual conv post-net; `speech_loss` (L1 on the mels before and
after the post-net over valid frames + BCE on the stop flags); `generate_speech`, the batched
autoregressive generator with the KV cache.

Vocoder: Griffin-Lim from torchaudio (works offline) unless a neural vocoder is supplied. A vocoder is
any callable (a function or an ``nn.Module``, e.g. a HiFi-GAN whose weights you load) that takes a
float tensor ``(1, frames, n_mels)`` of natural-log mel power -- de-normalised, at the settings'
sampling rate and hop -- and returns the waveform as ``(samples,)`` or ``(1, samples)``. Its
``sampling_rate`` attribute, if it has one, is the output's rate. Set it with
``processor.vocoder = my_vocoder`` or pass ``vocoder=`` to ``processor.postprocess``.
"""

from __future__ import annotations

import functools
import math
import os
import wave
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchaudio
from torch import nn
from transformers.utils import ModelOutput

from ..configuration_ofa_plus import MelSettings
from ..modalities.audio import load_audio
from . import register_output_kind
from .base import OutputKind

GENERATOR = "audio"
LOSS = "tacotron2"  # L1 on mels before and after the post-net + BCE on the stop flags


# ------------------------------------------------------------------------------------ processor half
@functools.lru_cache(maxsize=8)
def _mel_transform(settings: MelSettings) -> torchaudio.transforms.MelSpectrogram:
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=settings.sampling_rate,
        n_fft=settings.n_fft,
        win_length=settings.win_length,
        hop_length=settings.hop_length,
        f_min=settings.f_min,
        f_max=settings.f_max,
        n_mels=settings.num_mel_bins,
        power=2.0,
        norm="slaney",
        mel_scale="slaney",
    )


def log_mel(waveform: torch.Tensor, settings: MelSettings) -> torch.Tensor:
    """(samples,) waveform at ``settings.sampling_rate`` -> (frames, n_mels) log of the clamped mel power."""
    power = _mel_transform(settings)(waveform.float())
    return power.clamp(min=settings.log_floor).log().transpose(0, 1)


def _stats(settings: MelSettings, like: torch.Tensor):
    if settings.mel_mean is None and settings.mel_std is None:
        return None
    mean = like.new_tensor(settings.mel_mean if settings.mel_mean is not None else 0.0)
    std = like.new_tensor(settings.mel_std if settings.mel_std is not None else 1.0)
    return mean, std


def normalize_mels(mels: torch.Tensor, settings: MelSettings) -> torch.Tensor:
    stats = _stats(settings, mels)
    return mels if stats is None else (mels - stats[0]) / stats[1]


def denormalize_mels(mels: torch.Tensor, settings: MelSettings) -> torch.Tensor:
    stats = _stats(settings, mels)
    return mels if stats is None else mels * stats[1] + stats[0]


def mel_statistics(mels: list[torch.Tensor]) -> tuple[list[float], list[float]]:
    """Per-bin mean and std over the frames of some (frames, n_mels) log-mels: ``tts_mel_mean/std``."""
    frames = torch.cat([torch.as_tensor(m, dtype=torch.float32) for m in mels])
    return frames.mean(dim=0).tolist(), frames.std(dim=0).clamp(min=1e-3).tolist()


def mel_target(value: Any, where: str, settings: MelSettings, sampling_rate: int | None = None) -> torch.Tensor:
    """One AUDIO target value (path, bytes, ``{"array", "sampling_rate"}``, ...) -> model-space mels."""
    waveform = load_audio(value, where, sampling_rate=sampling_rate, target_rate=settings.sampling_rate)
    mels = log_mel(waveform, settings)
    if len(mels) > settings.max_frames:
        raise ValueError(
            f"{where}: the audio is {len(waveform) / settings.sampling_rate:.2f} s long, "
            f"{len(mels)} mel frames, more than tts_max_frames={settings.max_frames}"
        )
    return normalize_mels(mels, settings)


def collate_mels(mels: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """-> ``mel_labels`` (B, max frames, n_mels), zero-padded, and ``mel_lengths`` (B,)."""
    lengths = torch.tensor([len(m) for m in mels])
    labels = mels[0].new_zeros(len(mels), int(lengths.max()), mels[0].shape[1])
    for row, m in enumerate(mels):
        labels[row, : len(m)] = m
    return labels, lengths


@functools.lru_cache(maxsize=4)
def _griffin_lim(settings: MelSettings):
    inverse = torchaudio.transforms.InverseMelScale(
        n_stft=settings.n_fft // 2 + 1,
        n_mels=settings.num_mel_bins,
        sample_rate=settings.sampling_rate,
        f_min=settings.f_min,
        f_max=settings.f_max,
        norm="slaney",
        mel_scale="slaney",
    )
    griffin_lim = torchaudio.transforms.GriffinLim(
        n_fft=settings.n_fft, win_length=settings.win_length, hop_length=settings.hop_length, power=2.0, n_iter=32
    )
    return inverse, griffin_lim


def griffin_lim(log_mels: torch.Tensor, settings: MelSettings) -> torch.Tensor:
    """(frames, n_mels) natural-log mel power -> (samples,) waveform, with a fixed seed (Griffin-Lim
    starts from random phases; the same mels give the same audio)."""
    inverse, vocoder = _griffin_lim(settings)
    frames = len(log_mels)
    shortest = settings.n_fft // settings.hop_length + 1  # the STFT's reflect padding needs this many
    if frames < shortest:
        log_mels = F.pad(log_mels, (0, 0, 0, shortest - frames), value=math.log(settings.log_floor))
    power = inverse(log_mels.float().exp().transpose(0, 1)).clamp(min=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return vocoder(power)[: (frames - 1) * settings.hop_length]


def decode_speech(
    generated, settings: MelSettings, vocoder: Callable | None = None, return_mels: bool = False
) -> list[dict]:
    """Generated mels -> ``{"audio": float32 (samples,), "sampling_rate": int}`` per row, plus with
    ``return_mels`` the de-normalised ``"mel"`` (frames, n_mels) float32 log-mel (for mel distortion).

    ``generated`` is `generate_speech`'s output (mels with ``mel_lengths``), a (B, frames, n_mels)
    tensor whose frames all count, or a list of (frames, n_mels) arrays; mels are in model space
    (normalised when the settings hold statistics)."""
    if isinstance(generated, dict) and "sequences" in generated:
        mels, lengths = generated["sequences"], generated.get("mel_lengths")
        rows = [m[: int(n)] for m, n in zip(mels, lengths)] if lengths is not None else list(mels)
    elif torch.is_tensor(generated) and generated.ndim == 3:
        rows = list(generated)
    elif isinstance(generated, (list, tuple)):
        rows = [torch.as_tensor(np.asarray(m)) for m in generated]
    else:
        raise ValueError(
            f"expected generated mels (generate()'s output for an AUDIO target), got {type(generated).__name__}"
        )
    out = []
    for mels in rows:
        mels = denormalize_mels(torch.as_tensor(mels).detach().float().cpu(), settings)
        if len(mels) == 0:
            audio, rate = torch.zeros(0), settings.sampling_rate
        elif vocoder is None:
            audio, rate = griffin_lim(mels, settings), settings.sampling_rate
        else:
            audio, rate = _run_vocoder(vocoder, mels), getattr(vocoder, "sampling_rate", settings.sampling_rate)
        value = {
            "audio": audio.detach().float().cpu().numpy().reshape(-1).astype(np.float32),
            "sampling_rate": int(rate),
        }
        if return_mels:
            value["mel"] = mels.numpy().astype(np.float32)
        out.append(value)
    return out


def _run_vocoder(vocoder: Callable, mels: torch.Tensor) -> torch.Tensor:
    parameter = next(vocoder.parameters(), None) if isinstance(vocoder, nn.Module) else None
    if parameter is not None:
        mels = mels.to(device=parameter.device, dtype=parameter.dtype)
    with torch.no_grad():
        audio = vocoder(mels[None])
    audio = torch.as_tensor(audio)
    if audio.ndim > 1 and audio.shape[0] != 1:
        raise ValueError(
            f"the vocoder returned shape {tuple(audio.shape)} for one utterance; expected (samples,) or (1, samples)"
        )
    return audio.reshape(-1)


def write_wav(path: str | os.PathLike, audio, sampling_rate: int) -> str:
    """Write a mono float waveform as 16-bit PCM WAV (scaled down if it peaks above 1, never clipped)."""
    audio = np.asarray(audio, dtype=np.float32).reshape(-1)
    if not np.isfinite(audio).all():
        raise ValueError(f"{path}: the waveform has NaN or infinite samples")
    peak = float(np.abs(audio).max(initial=0.0))
    if peak > 1.0:
        audio = audio / peak
    pcm = np.round(audio * 32767).astype("<i2")
    with wave.open(os.fspath(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(int(sampling_rate))
        f.writeframes(pcm.tobytes())
    return os.fspath(path)


def save_audio(value: dict, path: str | os.PathLike) -> str:
    """Write one ``{"audio", "sampling_rate"}`` output (postprocess / pipeline) as a WAV file."""
    if not isinstance(value, dict) or "audio" not in value or "sampling_rate" not in value:
        raise ValueError(f"expected an {{'audio', 'sampling_rate'}} dict, got {type(value).__name__}")
    return write_wav(path, value["audio"], value["sampling_rate"])


# ------------------------------------------------------------------------------------ model half
@dataclass
class OFAPlusSpeechOutput(ModelOutput):
    """Training/teacher-forced forward of an AUDIO target. Mels are in model space, (B, frames, n_mels)."""

    loss: torch.Tensor | None = None
    spectrogram: torch.Tensor | None = None  # after the post-net
    mels_before_postnet: torch.Tensor | None = None
    stop_logits: torch.Tensor | None = None  # (B, frames)
    encoder_last_hidden_state: torch.Tensor | None = None


@dataclass
class SpeechGenerationOutput(ModelOutput):
    """`generate_speech`: ``sequences`` (B, frames, n_mels) post-net mels, zero after each row's
    ``mel_lengths``; ``stopped`` says which rows ended on their stop logit (the others hit the limit)."""

    sequences: torch.Tensor | None = None
    mel_lengths: torch.Tensor | None = None
    stopped: torch.Tensor | None = None


class SpeechPrenet(nn.Module):
    """Tacotron's prenet: two ReLU layers with dropout that stays on in inference too (the noise keeps
    the decoder from copying the previous frame), then a projection to ``d_model``."""

    def __init__(self, config):
        super().__init__()
        dim = config.tts_prenet_dim
        self.layers = nn.ModuleList([nn.Linear(config.tts_num_mel_bins, dim), nn.Linear(dim, dim)])
        self.proj = nn.Linear(dim, config.d_model)
        self.dropout = config.tts_prenet_dropout

    def forward(self, frames: torch.Tensor, masks: list[torch.Tensor] | None = None) -> torch.Tensor:
        """``masks``: one 0/1 tensor per layer (broadcast over the batch); None = fresh random dropout."""
        x = frames
        for k, layer in enumerate(self.layers):
            x = F.relu(layer(x))
            if masks is None:
                x = F.dropout(x, self.dropout, training=True)
            elif self.dropout:
                x = x * masks[k] / (1 - self.dropout)
        return self.proj(x)

    def inference_masks(self, generator: torch.Generator, like: torch.Tensor) -> list[torch.Tensor]:
        """Dropout masks for one generation step, shared by every row: a row's output then does not
        depend on which other rows are in its batch, so batched generation equals one-by-one."""
        return [
            torch.bernoulli(torch.full((layer.out_features,), 1 - self.dropout), generator=generator).to(
                like.device, like.dtype
            )
            for layer in self.layers
        ]


class SpeechPostnet(nn.Module):
    """Residual 1-D conv post-net (Tacotron 2, without BatchNorm so rows stay independent). Padding frames
    are zeroed after every layer, so a padded row gives what it gives alone."""

    def __init__(self, config):
        super().__init__()
        n, c, k = config.tts_num_mel_bins, config.tts_postnet_channels, config.tts_postnet_kernel
        sizes = [n] + [c] * (config.tts_postnet_layers - 1) + [n]
        self.convs = nn.ModuleList(nn.Conv1d(a, b, k, padding=k // 2) for a, b in zip(sizes, sizes[1:]))
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, mels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T, n), (B, T) bool -> refined (B, T, n)."""
        keep = mask[:, None, :].to(mels.dtype)
        x = mels.transpose(1, 2) * keep
        for k, conv in enumerate(self.convs):
            x = conv(x)
            if k < len(self.convs) - 1:
                x = self.dropout(torch.tanh(x))
            x = x * keep
        return mels + x.transpose(1, 2)


class SpeechHead(nn.Module):
    """Decoder inputs from mel frames (prenet) and decoder states -> mel frames, stop logits, post-net."""

    def __init__(self, config):
        super().__init__()
        self.num_mel_bins, self.frames_per_step = config.tts_num_mel_bins, config.tts_frames_per_step
        self.prenet = SpeechPrenet(config)
        self.mel_proj = nn.Linear(config.d_model, self.frames_per_step * self.num_mel_bins)
        self.stop_proj = nn.Linear(config.d_model, self.frames_per_step)
        self.postnet = SpeechPostnet(config)

    def teacher_inputs(self, mel_labels: torch.Tensor) -> torch.Tensor:
        """(B, T, n) targets -> (B, ceil(T / r), d_model): step s sees the last frame of step s - 1
        (a zero "go" frame at s = 0)."""
        r = self.frames_per_step
        steps = -(-mel_labels.shape[1] // r)
        padded = F.pad(mel_labels, (0, 0, 0, steps * r - mel_labels.shape[1]))
        previous = torch.cat([padded.new_zeros(padded.shape[0], 1, padded.shape[2]), padded[:, r - 1 :: r][:, :-1]], 1)
        return self.prenet(previous)

    def frames(self, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, S, d) -> mels (B, S * r, n) and stop logits (B, S * r)."""
        mels = self.mel_proj(hidden).unflatten(-1, (self.frames_per_step, self.num_mel_bins)).flatten(1, 2)
        return mels, self.stop_proj(hidden).flatten(1, 2)


def frame_mask(lengths: torch.Tensor, frames: int) -> torch.Tensor:
    return torch.arange(frames, device=lengths.device)[None, :] < lengths[:, None]


def speech_loss(
    mels: torch.Tensor,
    postnet_mels: torch.Tensor,
    stop_logits: torch.Tensor,
    mel_labels: torch.Tensor,
    mel_lengths: torch.Tensor,
    frames_per_step: int,
    stop_pos_weight: float,
) -> torch.Tensor:
    """L1 before + after the post-net over valid frames, plus BCE on the stop flags.

    A frame's stop flag is 1 from the last real frame on; it is scored on every frame of the steps
    the utterance covers (the rest of the last step counts as "stopped")."""
    frames = mel_labels.shape[1]
    valid = frame_mask(mel_lengths, frames)
    weight = valid[..., None].to(mels.dtype).expand_as(mel_labels)
    denominator = weight.sum().clamp(min=1)
    l1 = ((mels[:, :frames] - mel_labels).abs() * weight).sum() / denominator
    l1_post = ((postnet_mels[:, :frames] - mel_labels).abs() * weight).sum() / denominator
    positions = torch.arange(stop_logits.shape[1], device=mel_lengths.device)[None, :]
    stop_target = (positions >= mel_lengths[:, None] - 1).to(stop_logits.dtype)
    covered = positions < (-(-mel_lengths // frames_per_step) * frames_per_step)[:, None]
    bce = F.binary_cross_entropy_with_logits(
        stop_logits, stop_target, reduction="none", pos_weight=stop_logits.new_tensor(stop_pos_weight)
    )
    stop = (bce * covered).sum() / covered.sum().clamp(min=1)
    return l1 + l1_post + stop


def speech_forward(
    model, input_ids, attention_mask, pixel_values, encoder_outputs, mel_labels, mel_lengths, **model_kwargs
) -> OFAPlusSpeechOutput:
    """Teacher-forced forward of `OFAPlusForConditionalGeneration` for an AUDIO target, with the loss."""
    head: SpeechHead = model.speech_head
    if mel_lengths is None:
        mel_lengths = torch.full((mel_labels.shape[0],), mel_labels.shape[1], device=mel_labels.device)
    out = model.base_model(
        input_ids,
        attention_mask,
        pixel_values,
        None,
        encoder_outputs,
        use_cache=False,
        decoder_inputs_embeds=head.teacher_inputs(mel_labels),
        **model_kwargs,
    )
    mels, stop_logits = head.frames(out.last_hidden_state)
    postnet_mels = head.postnet(mels, frame_mask(mel_lengths, mels.shape[1]))
    loss = speech_loss(
        mels,
        postnet_mels,
        stop_logits,
        mel_labels,
        mel_lengths,
        head.frames_per_step,
        model.config.tts_stop_pos_weight,
    )
    frames = mel_labels.shape[1]
    return OFAPlusSpeechOutput(
        loss=loss,
        spectrogram=postnet_mels[:, :frames],
        mels_before_postnet=mels[:, :frames],
        stop_logits=stop_logits[:, :frames],
        encoder_last_hidden_state=out.encoder_last_hidden_state,
    )


@torch.no_grad()
def generate_speech(
    model,
    input_ids,
    attention_mask=None,
    pixel_values=None,
    encoder_outputs=None,
    *,
    max_new_tokens: int | None = None,
    num_beams: int | None = 1,
    stop_threshold: float | None = None,
    seed: int = 0,
    **kwargs,
) -> SpeechGenerationOutput:
    """Autoregressive mel generation with the KV cache, ``frames_per_step`` frames per decoder step.

    Each row ends at the first frame whose sigmoid(stop logit) exceeds ``stop_threshold`` (default
    ``config.tts_stop_threshold``) or at ``config.tts_max_frames`` (``max_new_tokens`` caps the decoder
    steps further); the loop ends when every row has. The prenet's inference dropout draws from a
    generator seeded with ``seed``, so generation is repeatable and a row's output does not depend on
    its batch. Beam search does not apply to continuous frames: ``num_beams`` must be 1."""
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache  # noqa: PLC0415

    if num_beams not in (None, 1):
        raise ValueError(f"speech generation is greedy over continuous frames; num_beams={num_beams} is not supported")
    ignorable = {"do_sample", "generation_config", "logits_processor", "use_cache", "decoder_input_ids"}
    encoder_inputs = {k: kwargs.pop(k) for k in model.get_encoder().input_keys if k in kwargs}
    bad = sorted(k for k, v in kwargs.items() if v is not None and k not in ignorable)
    if bad:
        raise ValueError(f"generate() settings {bad} do not apply to speech generation")
    config, head = model.config, model.speech_head
    r, n = config.tts_frames_per_step, config.tts_num_mel_bins
    threshold = config.tts_stop_threshold if stop_threshold is None else stop_threshold
    max_frames = config.tts_max_frames
    steps = -(-max_frames // r)
    if max_new_tokens:
        steps, max_frames = min(steps, max_new_tokens), min(max_frames, max_new_tokens * r)
    if encoder_outputs is None:
        encoder_outputs = model.get_encoder()(
            input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values, **encoder_inputs
        )
    states = encoder_outputs[0] if isinstance(encoder_outputs, (tuple, list)) else encoder_outputs.last_hidden_state
    batch, device = states.shape[0], states.device
    cache = EncoderDecoderCache(DynamicCache(config=config), DynamicCache(config=config))
    generator = torch.Generator().manual_seed(seed)
    frame = states.new_zeros(batch, 1, n)
    lengths = torch.full((batch,), max_frames, dtype=torch.long, device=device)
    stopped = torch.zeros(batch, dtype=torch.bool, device=device)
    chunks = []
    for step in range(steps):
        embeds = head.prenet(frame, head.prenet.inference_masks(generator, frame))
        hidden = model.get_decoder()(
            None,
            states,
            attention_mask,
            cache,
            embeds,
            encoder_position_embeddings=getattr(encoder_outputs, "position_embeddings", None),
        )
        mels, stop_logits = head.frames(hidden)
        chunks.append(mels)
        fired = torch.sigmoid(stop_logits) > threshold  # (B, r)
        first = torch.where(fired.any(dim=1), fired.float().argmax(dim=1), r)
        newly = ~stopped & (first < r)
        lengths = torch.where(newly, (step * r + first + 1).clamp(max=max_frames), lengths)
        stopped |= newly
        if bool(stopped.all()):
            break
        frame = mels[:, -1:]
    mels = torch.cat(chunks, dim=1)
    frames = int(lengths.max())
    mels = mels[:, :frames]
    mask = frame_mask(lengths, frames)
    postnet_mels = head.postnet(mels, mask) * mask[..., None]
    return SpeechGenerationOutput(sequences=postnet_mels, mel_lengths=lengths, stopped=stopped)


# ------------------------------------------------------------------------------------ the output kind
@register_output_kind
class SpeechOutput(OutputKind):
    """AUDIO targets: ``mel_labels`` / ``mel_lengths`` in training, `generate_speech` at inference,
    waveforms through the processor's vocoder (Griffin-Lim by default) in `decode`."""

    name = "speech"
    generator = GENERATOR
    loss = LOSS
    label_keys = ("mel_labels", "mel_lengths")
    head_class = SpeechHead

    @classmethod
    def encode_row(cls, row, with_targets: bool) -> dict:
        if not with_targets:
            return {}
        target = row.template.targets()[0]
        return {"mel": mel_target(row.value(target), row.where(target), row.processor.mel_settings)}

    @classmethod
    def collate(cls, encoded, processor, with_targets: bool) -> dict:
        if not with_targets:
            return {}
        mel_labels, mel_lengths = collate_mels([e["mel"] for e in encoded])
        return {"mel_labels": mel_labels, "mel_lengths": mel_lengths}

    @classmethod
    def decode(cls, generated, inputs, processor, vocoder: Callable | None = None, return_mels: bool = False):
        """Generated mels -> ``{"audio": float32 array, "sampling_rate": int}`` per row through
        ``vocoder`` (default ``processor.vocoder``; None = Griffin-Lim), with ``return_mels`` also its
        ``"mel"`` (frames, n_mels) log-mel."""
        return decode_speech(generated, processor.mel_settings, vocoder or processor.vocoder, return_mels)

    @classmethod
    def forward(
        cls,
        model,
        input_ids=None,
        attention_mask=None,
        pixel_values=None,
        encoder_outputs=None,
        mel_labels=None,
        mel_lengths=None,
        **kwargs,
    ):
        encoder_inputs = {k: kwargs[k] for k in model.get_encoder().input_keys if k in kwargs}
        return speech_forward(
            model, input_ids, attention_mask, pixel_values, encoder_outputs, mel_labels, mel_lengths, **encoder_inputs
        )

    @classmethod
    def generate(cls, model, inputs=None, generation_config=None, logits_processor=None, constraints=None, **kwargs):
        input_ids = inputs if inputs is not None else kwargs.pop("input_ids", None)
        return generate_speech(
            model, input_ids, generation_config=generation_config, logits_processor=logits_processor, **kwargs
        )
