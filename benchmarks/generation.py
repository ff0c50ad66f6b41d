"""Generation: tokens/s of OFA+ generate() against BART generate() with the same dimensions.

Both decode the same real inputs with one explicit GenerationConfig; min_new_tokens =
max_new_tokens forces every row to the same length, so both do exactly the same number of
decoder steps. Tokens/s counts generated tokens per input row (batch x new tokens), the encoder
pass included, as a user of generate() sees it.
"""

from __future__ import annotations

import time

import torch
from transformers import GenerationConfig

from ofa_plus import OFAPlusProcessor

from .common import build_pair, interleaved, median, paired_ratio, real_batch, spread, tensors

TASK = "summarization"


def generation_config(model, num_beams: int, new_tokens: int) -> GenerationConfig:
    c = model.config
    return GenerationConfig(
        do_sample=False,
        num_beams=num_beams,
        max_new_tokens=new_tokens,
        min_new_tokens=new_tokens,
        length_penalty=1.0,
        early_stopping=False,
        no_repeat_ngram_size=0,
        bos_token_id=c.bos_token_id,
        eos_token_id=c.eos_token_id,
        pad_token_id=c.pad_token_id,
        decoder_start_token_id=c.decoder_start_token_id,
        use_cache=True,
    )


def generate_fn(model, inputs: dict, config: GenerationConfig):
    model.eval()

    @torch.no_grad()
    def run():
        return model.generate(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], generation_config=config
        )

    return run


def bench_generation(
    preset: str,
    device,
    dtype,
    cases: list[tuple[int, int]],
    new_tokens: int,
    repeats: int,
    budget_s: float,
    clock=time.perf_counter,
) -> list[dict]:
    """``cases``: (num_beams, batch_size) pairs."""
    ofa, bart = build_pair(preset, device, dtype)
    processor = OFAPlusProcessor.for_config(ofa.config)
    rows = []
    for num_beams, batch_size in cases:
        inputs = tensors(real_batch(TASK, processor, batch_size), device, dtype)
        fns = {
            name: generate_fn(model, inputs, generation_config(model, num_beams, new_tokens))
            for name, model in (("ofa", ofa), ("bart", bart))
        }
        lengths = {name: fn().shape[1] for name, fn in fns.items()}  # also the warm-up
        assert len(set(lengths.values())) == 1, lengths  # forced: both generate the same number of tokens
        times = interleaved(fns, repeats, warmup=0, device=device, budget_s=budget_s, clock=clock)
        tokens = batch_size * new_tokens
        rows.append(
            {
                "num_beams": num_beams,
                "batch": batch_size,
                "encoder_tokens": inputs["input_ids"].shape[1],
                "new_tokens": new_tokens,
                "rounds": len(times["ofa"]),
                "ofa_tokens_per_s": tokens / median(times["ofa"]),
                "bart_tokens_per_s": tokens / median(times["bart"]),
                "ratio": 1.0 / paired_ratio(times["ofa"], times["bart"]),  # OFA+ tokens/s over BART tokens/s
                "spread": {k: spread(v) for k, v in times.items()},
                "times": times,
            }
        )
    return rows
