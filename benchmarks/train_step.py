"""Training step (forward + backward + AdamW step): OFA+ against BART with the same dimensions.

Both models see the same real batch of a default-suite task (the trainer's own batch builder),
compute the same label-smoothed token loss, and take an AdamW step; their steps alternate within
each round and the medians of many rounds are compared. The image+text path has no BART
counterpart and is timed on its own (per step and per sample).
"""

from __future__ import annotations

import time

import torch

from ofa_plus import OFAPlusProcessor

from .common import (
    bart_loss,
    build_pair,
    count_parameters,
    interleaved,
    median,
    paired_ratio,
    real_batch,
    spread,
    tensors,
)

TEXT_TASK, IMAGE_TASK = "text_to_sql", "vqa"


def make_step(model, inputs: dict, is_bart: bool = False, label_smoothing: float = 0.1):
    """One training step as the trainer takes it: loss, backward, AdamW (fused, as the trainer's), zero_grad."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, weight_decay=0.01, fused=True)

    def step():
        loss = bart_loss(model, inputs, label_smoothing) if is_bart else model(**inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def shapes(inputs: dict) -> dict:
    return {
        "batch": inputs["input_ids"].shape[0],
        "encoder_tokens": inputs["input_ids"].shape[1],
        "decoder_tokens": inputs["labels"].shape[1],
        "images": 0 if "pixel_values" not in inputs else inputs["pixel_values"].shape[0],
    }


def text_step(
    preset: str, device, dtype, repeats: int, budget_s: float, batch_size: int = 8, clock=time.perf_counter
) -> dict:
    ofa, bart = build_pair(preset, device, dtype)
    processor = OFAPlusProcessor.for_config(ofa.config)
    inputs = tensors(real_batch(TEXT_TASK, processor, batch_size), device, dtype)
    steps = {"ofa": make_step(ofa, inputs), "bart": make_step(bart, inputs, is_bart=True)}
    times = interleaved(steps, repeats, warmup=1, device=device, budget_s=budget_s, clock=clock)
    out = {
        "task": TEXT_TASK,
        **shapes(inputs),
        "rounds": len(times["ofa"]),
        "parameters": {"ofa": count_parameters(ofa), "bart": count_parameters(bart)},
        "ofa_s": median(times["ofa"]),
        "bart_s": median(times["bart"]),
        "ratio": paired_ratio(times["ofa"], times["bart"]),
        "spread": {k: spread(v) for k, v in times.items()},
        "times": times,
    }
    return out


def image_step(
    preset: str, device, dtype, repeats: int, budget_s: float, batch_size: int, clock=time.perf_counter
) -> dict:
    ofa, _ = build_pair(preset, device, dtype, with_bart=False)
    processor = OFAPlusProcessor.for_config(ofa.config)
    inputs = tensors(real_batch(IMAGE_TASK, processor, batch_size), device, dtype)
    times = interleaved(
        {"ofa": make_step(ofa, inputs)}, repeats, warmup=1, device=device, budget_s=budget_s, clock=clock
    )["ofa"]
    return {
        "task": IMAGE_TASK,
        **shapes(inputs),
        "rounds": len(times),
        "image_size": ofa.config.image_size,
        "patch_tokens_per_image": ofa.config.image_tokens,
        "ofa_s": median(times),
        "per_sample_s": median(times) / batch_size,
        "spread": spread(times),
        "times": times,
    }
