"""Fine-tune a trained generalist on one new task card, evaluate it before and after, optionally push.

    ofa-plus finetune --model runs/default/final --card my_task.yaml --output runs/my_task [--lora] [--push me/x]
    python -m ofa_plus.finetune ...            # the same

Full fine-tuning updates every weight; ``--lora`` trains low-rank adapters (``peft``) on the
attention and feed-forward projections of the encoder and decoder, then merges them into the
weights, so ``--output`` holds a plain model (``from_pretrained`` and ``pipeline()`` load it as any
other). The model keeps its earlier task cards and gains the new one (a card named like a task the
model already has is an error unless ``--replace`` is given: then the new card replaces it), so
``pipeline("multimodal-instruction", model=OUTPUT)(task=NAME, ...)`` runs it by name. The card's
metric is measured on its test split (validation if it has none) for the untuned and the tuned
model; ``results.json`` holds both (the tuned one in the format of ``ofa-plus evaluate``, so it
becomes the model card's eval results), ``args.json`` the settings, ``README.md`` the model card.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm
from transformers import get_scheduler

from . import hub
from .cli import HelpFormatter
from .configuration_ofa_plus import OFAPlusConfig
from .evaluation import evaluate_card, model_index_entries, results_table, weights_fingerprint
from .model_card import model_index
from .modeling_ofa_plus import OFAPlusForConditionalGeneration
from .multitask import TaskStream
from .processing_ofa_plus import OFAPlusProcessor
from .quiet import quiet_libraries
from .task_card import CardError, TaskCard, load_cards
from .train import MicroBatch, Trainer, step_seed

# the attention and feed-forward projections of every encoder and decoder layer (modeling_ofa_plus.py)
LORA_TARGETS = ["qkv_proj", "q_proj", "kv_proj", "out_proj", "fc1", "fc2"]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="ofa-plus finetune",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    p.add_argument("--model", required=True, help="the trained generalist (a folder or Hub id)")
    p.add_argument("--card", required=True, help="the new task's card (YAML)")
    p.add_argument("--output", required=True, help="folder for the fine-tuned model, results.json and README.md")
    p.add_argument("--lora", action="store_true", help="train LoRA adapters (merged into the weights at the end)")
    p.add_argument(
        "--replace",
        action="store_true",
        help="allow a card named like one of the model's tasks: it replaces that task",
    )
    p.add_argument("--lora-rank", type=int, default=8)
    p.add_argument("--lora-alpha", type=float, default=16.0)
    p.add_argument("--steps", type=int, default=300, help="optimiser steps")
    p.add_argument("--lr", type=float, help="learning rate (default: 1e-3 with --lora, 1e-4 without)")
    p.add_argument("--batch-size", type=int, help="default: the card's training.batch_size")
    p.add_argument("--warmup-steps", type=int, help="default: 5%% of --steps")
    p.add_argument("--eval-limit", type=int, help="evaluate on at most this many rows")
    p.add_argument("--split", default="test", choices=["test", "validation"])
    p.add_argument("--mixed-precision", default="no", choices=["no", "fp16", "bf16"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--push", metavar="REPO_ID", help="push the result (model, processor, cards, model card) here")
    p.add_argument("--private", action="store_true", help="with --push: make the repo private")
    return p.parse_args(argv)


def add_lora(model, rank: int, alpha: float):
    """Wrap ``model`` with LoRA adapters on the attention/FFN projections; only they train."""
    from peft import LoraConfig, get_peft_model  # noqa: PLC0415

    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=LORA_TARGETS)
    return get_peft_model(model, config)


def train_card(
    model, processor, card: TaskCard, accelerator: Accelerator, steps: int, lr: float, warmup: int, seed: int
) -> list[float]:
    """Plain single-task training with train.py's step: length-bucketed batches of the card, one
    micro-batch per step (its loss unweighted: ``loss_weight`` balances tasks in multi-task training),
    AdamW, warm-up + linear decay, gradient clipping at 1."""
    stream = TaskStream.for_card(card, 0, seed, accelerator.process_index, accelerator.num_processes)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.0)
    scheduler = get_scheduler("linear", optimizer, num_warmup_steps=warmup, num_training_steps=steps)
    model, optimizer = accelerator.prepare(model, optimizer)
    trainer = Trainer(accelerator, model, optimizer, scheduler, processor, clip=1.0)
    model.train()
    losses = []
    progress = tqdm(
        range(steps),
        desc=f"fine-tuning {card.name}",
        unit="step",
        disable=not accelerator.is_main_process,
        dynamic_ncols=True,
    )
    for step in progress:
        (loss,), _ = trainer.step(step_seed(seed, step), [MicroBatch(card, stream, f"{seed}-{step}")])
        losses.append(loss.item())
        progress.set_postfix(loss=f"{loss.item():.3f}")
    model.eval()
    return losses


def finetune(
    model: str,
    card: str | Path,
    output: str | Path,
    *,
    lora: bool = False,
    replace: bool = False,
    steps: int = 300,
    lr: float | None = None,
    batch_size: int | None = None,
    lora_rank: int = 8,
    lora_alpha: float = 16.0,
    warmup_steps: int | None = None,
    eval_limit: int | None = None,
    split: str = "test",
    mixed_precision: str = "no",
    seed: int = 0,
    push: str | None = None,
    private: bool = False,
) -> dict:
    """Fine-tune ``model`` on the task of ``card``; returns the results written to ``output/results.json``."""
    cards = load_cards(card)
    if len(cards) != 1:
        raise ValueError(f"--card takes one task card, {card} holds {len(cards)}")
    new = cards[0]
    saved = OFAPlusConfig.from_pretrained(model).task_cards or []  # checked before the model loads
    known = [c for c in saved if c["name"] != new.name]
    if not replace and len(known) < len(saved):
        raise CardError(
            new.where,
            "name",
            f"the model {model} already has a task {new.name!r}; fine-tuning would replace its card. "
            f"Rename the card, or pass --replace (replace=True) to replace the task",
        )
    if batch_size:
        new.training = dataclasses.replace(new.training, batch_size=batch_size)
    output = Path(output)
    accelerator = Accelerator(mixed_precision=mixed_precision)
    generalist = OFAPlusForConditionalGeneration.from_pretrained(model).to(accelerator.device).eval()
    processor = OFAPlusProcessor.from_pretrained(model)
    if len(known) < len(saved):
        accelerator.print(f"--replace: the model's task {new.name!r} gets the card {card}")

    accelerator.print(f"evaluating the untuned model on {new.name}")
    before = evaluate_card(generalist, processor, new, accelerator, split, eval_limit)
    torch.manual_seed(seed)
    tuned = add_lora(generalist, lora_rank, lora_alpha) if lora else generalist
    lr = lr or (1e-3 if lora else 1e-4)
    warmup = warmup_steps if warmup_steps is not None else max(1, steps // 20)
    started = time.time()
    losses = train_card(tuned, processor, new, accelerator, steps, lr, warmup, seed)
    tuned = accelerator.unwrap_model(tuned)
    if lora:
        tuned = tuned.merge_and_unload()
    tuned.config.task_cards = known + [new.to_dict()]
    processor.task_cards = tuned.config.task_cards
    after = evaluate_card(tuned, processor, new, accelerator, split, eval_limit)

    settings = {
        "model": str(model),
        "card": str(card),
        "lora": lora,
        "steps": steps,
        "lr": lr,
        "batch_size": new.training.batch_size,
        "warmup_steps": warmup,
        "seed": seed,
        "mixed_precision": mixed_precision,
        **({"lora_rank": lora_rank, "lora_alpha": lora_alpha, "lora_targets": LORA_TARGETS} if lora else {}),
    }
    results = {
        "model": str(output),
        "weights_sha256": weights_fingerprint(tuned),
        "split": split,
        "results": [after],
        "untuned": before,
        "model_index": model_index(model_index_entries([after]), output.name),
        "train_loss": {"first": losses[0], "last": losses[-1]},
        "seconds": round(time.time() - started, 1),
    }
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        tuned.save_pretrained(output)
        processor.save_pretrained(output)
        (output / "args.json").write_text(json.dumps(settings, indent=2))
        (output / "results.json").write_text(json.dumps(results, indent=1, default=str))
        base = str(model) if hub.is_repo_id(str(model)) else None
        hub.model_card(tuned, push or output.name, results=results, base_model=base, training_args=settings).save(
            output / "README.md"
        )
        print(f"{new.name}: untuned vs fine-tuned ({'LoRA' if lora else 'full'}, {steps} steps)")
        print(results_table([{**before, "task": f"{new.name} (untuned)"}, after]))
        print(f"saved {output}")
        if push:
            url = hub.push_model(output, push, base_model=base, private=private or None)
            print(f"pushed {push}: {url}")
    accelerator.wait_for_everyone()
    return results


@quiet_libraries()
def main(argv=None) -> dict:
    args = parse_args(argv)
    return finetune(
        args.model,
        args.card,
        args.output,
        lora=args.lora,
        replace=args.replace,
        steps=args.steps,
        lr=args.lr,
        batch_size=args.batch_size,
        lora_rank=args.lora_rank,
        lora_alpha=args.lora_alpha,
        warmup_steps=args.warmup_steps,
        eval_limit=args.eval_limit,
        split=args.split,
        mixed_precision=args.mixed_precision,
        seed=args.seed,
        push=args.push,
        private=args.private,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
