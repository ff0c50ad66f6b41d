"""Shared pieces of the benchmarks: matching OFA+ / BART models, real batches, interleaved timing."""

from __future__ import annotations

import dataclasses
import gc
import os
import platform
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers import BartConfig, BartForConditionalGeneration

from ofa_plus import OFAPlusConfig, OFAPlusForConditionalGeneration, OFAPlusProcessor, load_cards
from ofa_plus.multitask import TaskStream, collate

ROOT = Path(__file__).resolve().parent.parent
CARDS = ROOT / "task_cards" / "default"


def choose_threads(requested: str | int) -> int:
    """``auto``: the cores that other processes leave free (1-minute load average), at least one.

    On a shared 2-core machine, two intra-op threads next to a busy neighbour spin on each
    other's barriers and a step takes several times longer than on one thread."""
    if requested != "auto":
        return int(requested)
    cores = os.cpu_count() or 1
    return max(1, min(cores, round(cores - os.getloadavg()[0])))


def machine(device: torch.device) -> dict:
    info = {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "load_average_1m": round(os.getloadavg()[0], 2),
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def device_and_dtype(requested: str = "auto") -> tuple[torch.device, torch.dtype]:
    """CPU runs in fp32 (what the trainer uses there); CUDA in bf16, as a GPU run would."""
    if requested == "auto":
        requested = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(requested)
    return device, (torch.bfloat16 if device.type == "cuda" else torch.float32)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bart_config_like(config: OFAPlusConfig) -> BartConfig:
    """Stock BART with OFA+'s dimensions, vocabulary, special ids and dropout settings."""
    return BartConfig(
        vocab_size=config.vocab_size,
        d_model=config.d_model,
        max_position_embeddings=config.max_positions,
        encoder_layers=config.encoder_layers,
        decoder_layers=config.decoder_layers,
        encoder_attention_heads=config.encoder_attention_heads,
        decoder_attention_heads=config.decoder_attention_heads,
        encoder_ffn_dim=config.encoder_ffn_dim,
        decoder_ffn_dim=config.decoder_ffn_dim,
        activation_function=config.activation_function,
        dropout=config.dropout,
        attention_dropout=config.attention_dropout,
        activation_dropout=config.activation_dropout,
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        decoder_start_token_id=config.decoder_start_token_id,
        forced_eos_token_id=None,
        tie_word_embeddings=True,
        scale_embedding=False,
        init_std=config.init_std,
    )


def build_pair(
    preset: str, device: torch.device, dtype: torch.dtype, seed: int = 0, with_bart: bool = True, **overrides
):
    """(OFA+, BART) with identical d_model, layers, heads, FFN, vocabulary; BART in transformers' SDPA mode."""
    config = OFAPlusConfig.from_preset(preset, **overrides)
    torch.manual_seed(seed)
    ofa = OFAPlusForConditionalGeneration(config).to(device=device, dtype=dtype)
    if not with_bart:
        return ofa, None
    torch.manual_seed(seed)
    bart = BartForConditionalGeneration._from_config(bart_config_like(config), attn_implementation="sdpa")
    bart = bart.to(device=device, dtype=dtype)
    return ofa, bart


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def real_batch(card_name: str, processor: OFAPlusProcessor, batch_size: int, seed: int = 0):
    """The first training batch of a default-suite task, built exactly as the trainer builds it
    (length-bucketed TaskStream, then collate), at ``batch_size`` rows."""
    card = next(c for c in load_cards(CARDS) if c.name == card_name)
    card.training = dataclasses.replace(card.training, batch_size=batch_size)
    stream = TaskStream.for_card(card, 0, seed)
    indices = stream.next_indices()
    batch, skipped = collate(processor, card, stream.rows(indices), indices, training=True, rng=random.Random(seed))
    assert batch is not None and not skipped, skipped
    return batch


def tensors(batch, device: torch.device, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    out = {k: v.to(device) for k, v in batch.items() if torch.is_tensor(v)}
    if "pixel_values" in out:
        out["pixel_values"] = out["pixel_values"].to(dtype)
    return out


def bart_loss(bart, inputs: dict[str, torch.Tensor], label_smoothing: float) -> torch.Tensor:
    """BART forward + the same label-smoothed token loss OFA+ computes (the same work on both sides)."""
    out = bart(
        input_ids=inputs["input_ids"],
        attention_mask=inputs["attention_mask"],
        decoder_input_ids=inputs["decoder_input_ids"],
        use_cache=False,
    )
    return F.cross_entropy(
        out.logits.flatten(0, 1).float(),
        inputs["labels"].flatten(),
        ignore_index=-100,
        label_smoothing=label_smoothing,
    )


def interleaved(
    fns: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int,
    device: torch.device,
    budget_s: float | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Run every function once per round, in a rotating order, and collect seconds per call.

    Interleaving puts both contenders under the same background load; the rotation keeps one from
    always running right after the other. Stops early (after at least 3 rounds) past ``budget_s``.
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    sync(device)
    times: dict[str, list[float]] = {n: [] for n in names}
    started = time.perf_counter()
    for r in range(repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            gc.collect()
            sync(device)
            t0 = clock()
            fns[name]()
            sync(device)
            times[name].append(clock() - t0)
        if budget_s is not None and r >= 2 and time.perf_counter() - started > budget_s:
            break
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float]) -> float:
    """Interquartile range relative to the median: how noisy the machine was during a measurement."""
    if len(values) < 4:
        return (max(values) - min(values)) / statistics.median(values)
    q = statistics.quantiles(values, n=4)
    return (q[2] - q[0]) / statistics.median(values)


def paired_ratio(a: list[float], b: list[float]) -> float:
    """Median of the per-round ratios a/b (each round ran both back to back, under the same load)."""
    return statistics.median(x / y for x, y in zip(a, b))
