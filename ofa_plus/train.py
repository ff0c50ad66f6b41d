"""Multi-task training with Accelerate.

    accelerate launch -m ofa_plus.train --cards task_cards/default --preset tiny --output runs/x
    python -m ofa_plus.train ...            # the same, one process

Each optimiser step accumulates gradients over ``--tasks-per-step`` single-task micro-batches,
their tasks drawn by card weight (``--temperature`` flattens or sharpens the mix). Every
micro-batch's loss is the mean over its own target tokens, times its card's ``loss_weight``, so
a task with long targets does not outweigh one with short ones. AdamW with warm-up and decay,
gradient clipping, optional mixed precision; checkpoints with ``Accelerator.save_state``. All
data order and randomness derive from (seed, step), so ``--resume`` after a kill continues the
exact run. The same script runs one CPU process or N GPUs / nodes (DDP, FSDP, DeepSpeed) under
``accelerate launch``. Writes ``log.jsonl``, ``loss_curves/<task>.png``, ``skipped_rows.json`` and
the final model (with its task cards) to ``<output>/final``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pickle
import random
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from accelerate import Accelerator
from accelerate.utils import DistributedDataParallelKwargs, gather_object
from accelerate.utils import load as load_checkpoint_file
from torch.optim.lr_scheduler import LRScheduler
from tqdm.auto import tqdm
from transformers import get_scheduler

from .cli import HelpFormatter
from .configuration_ofa_plus import PRESETS, OFAPlusConfig
from .modeling_ofa_plus import OFAPlusForConditionalGeneration
from .multitask import TaskStream, collate, skipped_summary, step_tasks, task_probabilities
from .processing_ofa_plus import OFAPlusBatch, OFAPlusProcessor
from .quiet import quiet_libraries
from .task_card import TaskCard, load_cards

CHECKPOINT_PATTERN = re.compile(r"step_(\d+)$")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="ofa_plus.train",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    p.add_argument("--cards", nargs="+", required=True, help="task card files and/or folders")
    p.add_argument("--output", required=True, help="run folder (checkpoints, logs, final model)")
    p.add_argument("--preset", default="tiny", choices=sorted(PRESETS), help="model size for a new model")
    p.add_argument("--init", help="start from this trained model folder instead of a new preset model")
    p.add_argument("--image-size", type=int, help="override the preset's image size (pixels)")
    p.add_argument("--image-backbone", help="override the preset's CNN (e.g. mobilenet_v2)")
    p.add_argument(
        "--backbone-weights", help="torchvision checkpoint (.pth) to start the CNN from, e.g. ImageNet weights"
    )
    p.add_argument("--dropout", type=float, help="override the preset's dropout")
    p.add_argument(
        "--config-overrides",
        default="",
        help='other config fields for a new model, as in transformers\' run_clm.py: "key=value,key=value"',
    )
    p.add_argument("--max-steps", type=int, default=1000, help="optimiser steps")
    p.add_argument("--tasks-per-step", type=int, help="micro-batches per optimiser step (default: number of cards)")
    p.add_argument("--batch-size", type=int, help="micro-batch size for every task (default: each card's own)")
    p.add_argument("--temperature", type=float, default=1.0, help="task sampling ∝ weight ** (1 / T)")
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--weight-decay", type=float, default=0.01)
    p.add_argument("--warmup-steps", type=int, help="default: 5%% of --max-steps")
    p.add_argument("--schedule", default="cosine", choices=["linear", "cosine", "constant_with_warmup"])
    p.add_argument("--clip", type=float, default=1.0, help="gradient-norm clipping (0: off)")
    p.add_argument("--mixed-precision", default="no", choices=["no", "fp16", "bf16"])
    p.add_argument("--no-bucketing", action="store_true", help="batch rows in random order, not by length")
    p.add_argument("--eval-every", type=int, default=0, help="validation loss every N steps (0: at the end only)")
    p.add_argument("--eval-rows", type=int, default=64, help="validation rows per task for the validation loss")
    p.add_argument("--save-every", type=int, default=0, help="checkpoint every N steps (0: at the end only)")
    p.add_argument("--keep-checkpoints", type=int, default=2, help="how many recent checkpoints to keep")
    p.add_argument("--resume", action="store_true", help="continue from the latest checkpoint in --output")
    p.add_argument("--limit-rows", type=int, help="use at most this many training rows per task (quick runs)")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


class TrainState:
    """What Accelerate's save_state does not know: the step reached and the rows skipped so far."""

    def __init__(self):
        self.step = 0
        self.skipped: list[dict] = []

    def state_dict(self) -> dict:
        return {"step": self.step, "skipped": self.skipped}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.skipped = int(state["step"]), list(state["skipped"])


def build_model(args, cards: list[TaskCard]) -> tuple[OFAPlusForConditionalGeneration, OFAPlusProcessor]:
    if args.init:
        model = OFAPlusForConditionalGeneration.from_pretrained(args.init)
        processor = OFAPlusProcessor.from_pretrained(args.init)
    else:
        overrides = {
            k: v
            for k, v in (
                ("image_size", args.image_size),
                ("dropout", args.dropout),
                ("image_backbone", args.image_backbone),
            )
            if v is not None
        }
        overrides.update(parse_config_overrides(args.config_overrides))
        config = OFAPlusConfig.from_preset(
            args.preset, image_backbone_pretrained=bool(args.backbone_weights), **overrides
        )
        torch.manual_seed(args.seed)
        model = OFAPlusForConditionalGeneration(config)
        if args.backbone_weights:
            weights = torch.load(args.backbone_weights, map_location="cpu", weights_only=True)
            model.model.encoder.image_adaptor.load_backbone_weights(weights)
        processor = OFAPlusProcessor.for_config(config)
    known = {c["name"]: c for c in model.config.task_cards}
    known.update({c.name: c.to_dict() for c in cards})
    model.config.task_cards = list(known.values())
    return model, processor


def parse_config_overrides(text: str) -> dict:
    """``"d_model=128,init_std=0.0884"`` -> {name: YAML-typed value}."""
    fields = OFAPlusConfig().to_dict()
    overrides = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key.strip() not in fields:
            raise ValueError(f"--config-overrides: {item!r} is not KEY=VALUE with KEY a field of OFAPlusConfig")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def model_inputs(batch, device) -> dict[str, torch.Tensor]:
    """The one place a processor batch becomes the model's keyword arguments."""
    return {k: v.to(device) for k, v in batch.items() if torch.is_tensor(v)}


def step_seed(seed: int, step: int) -> int:
    """The torch seed of optimiser step ``step``: dropout masks depend on the step only (so resume is exact)."""
    return seed * 1_000_003 + step


@dataclasses.dataclass
class MicroBatch:
    """Where one micro-batch of an optimiser step comes from."""

    card: TaskCard
    stream: TaskStream
    rng_key: str  # seeds the processor's training-time randomness for this micro-batch
    loss_weight: float = 1.0


def next_batch(processor: OFAPlusProcessor, part: MicroBatch) -> tuple[OFAPlusBatch, list[dict]]:
    """The stream's next batch and the rows left out of it; a batch with no usable row is replaced by
    the next one."""
    skipped_rows: list[dict] = []
    batch = None
    while batch is None:
        indices = part.stream.next_indices()
        batch, skipped = collate(
            processor,
            part.card,
            part.stream.rows(indices),
            indices,
            training=True,
            rng=random.Random(part.rng_key),
        )
        skipped_rows += [vars(s) for s in skipped]
    return batch, skipped_rows


@dataclasses.dataclass
class Trainer:
    """The package's one training step, used by the multi-task loop below and by ``finetune``.

    ``model`` and ``optimizer`` come from ``accelerator.prepare``; the scheduler is not prepared (a
    prepared one steps once per process) and steps here once per optimiser step."""

    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: LRScheduler
    processor: OFAPlusProcessor
    clip: float = 1.0  # gradient-norm clipping (0: off)

    def step(self, torch_seed: int, parts: list[MicroBatch]) -> tuple[list[torch.Tensor], list[dict]]:
        """One optimiser step, its gradients accumulated over ``parts`` (the accelerator's
        gradient_accumulation_steps must be ``len(parts)``), its dropout masks drawn from
        ``torch_seed``. Returns each micro-batch's loss and the rows skipped."""
        torch.manual_seed(torch_seed)
        losses, skipped = [], []
        for part in parts:
            batch, bad = next_batch(self.processor, part)
            skipped += bad
            losses.append(self.forward_backward(batch, part.loss_weight))
        self.scheduler.step()
        return losses, skipped

    def forward_backward(self, batch: OFAPlusBatch, loss_weight: float) -> torch.Tensor:
        """Loss and gradients of one micro-batch; the optimiser steps once accumulation is complete."""
        accelerator, model = self.accelerator, self.model
        with accelerator.accumulate(model):
            loss = model(**model_inputs(batch, accelerator.device)).loss
            accelerator.backward(loss * loss_weight)
            if accelerator.sync_gradients and self.clip > 0:
                accelerator.clip_grad_norm_(model.parameters(), self.clip)
            self.optimizer.step()  # a no-op until accumulation is complete
            self.optimizer.zero_grad(set_to_none=True)
        return loss.detach()


def latest_checkpoint(output: Path) -> Path | None:
    found = [
        (int(m.group(1)), p)
        for p in (output / "checkpoints").glob("step_*")
        if (m := CHECKPOINT_PATTERN.search(p.name)) and (p / "train_state_done").exists()
    ]
    return max(found)[1] if found else None


def save_checkpoint(accelerator: Accelerator, output: Path, step: int, keep: int) -> None:
    folder = output / "checkpoints" / f"step_{step}"
    accelerator.save_state(str(folder))
    if accelerator.is_main_process:
        (folder / "train_state_done").write_text(str(step))  # marks a checkpoint as complete
        done = sorted(
            (int(m.group(1)), p)
            for p in (output / "checkpoints").glob("step_*")
            if (m := CHECKPOINT_PATTERN.search(p.name))
        )
        for _, old in done[:-keep]:
            shutil.rmtree(old, ignore_errors=True)
    accelerator.wait_for_everyone()


@torch.no_grad()
def validation_losses(model, processor, cards, rows_per_task, accelerator) -> dict[str, float]:
    """Mean token loss (mel-frame loss for AUDIO targets) per task on its first validation rows, shared out
    across processes."""
    model.eval()
    out = {}
    for card in cards:
        rows = rows_per_task[card.name][accelerator.process_index :: accelerator.num_processes]
        total = torch.zeros(2, device=accelerator.device)  # loss * tokens, tokens
        for start in range(0, len(rows), card.training.eval_batch_size):
            chunk = rows[start : start + card.training.eval_batch_size]
            batch, _ = collate(processor, card, chunk, range(len(chunk)), training=False, rng=random.Random(0))
            if batch is None or ("labels" not in batch and "mel_labels" not in batch):
                continue
            inputs = model_inputs(batch, accelerator.device)
            # weight by scored tokens, or for an AUDIO target by mel frames
            tokens = (inputs["labels"] != -100).sum() if "labels" in inputs else inputs["mel_lengths"].sum()
            total += torch.stack([model(**inputs).loss.float() * tokens, tokens.float()])
        total = accelerator.reduce(total, reduction="sum")
        out[card.name] = (total[0] / total[1]).item() if total[1] > 0 else float("nan")
    model.train()
    return out


def validation_rows(card: TaskCard, count: int) -> list[dict]:
    """The first rows of the validation split (or of the test split when a card has none)."""
    if count <= 0 or card.split_name("test") is None:  # split_name("test") falls back to validation
        return []
    role = "validation" if card.split_name("validation") else "test"
    return [card.to_row(example) for example in card.head(role, count)]


def plot_loss_curves(log_file: Path, folder: Path, cards: list[TaskCard]) -> None:
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    records = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    folder.mkdir(parents=True, exist_ok=True)
    for card in cards:
        steps = [r["step"] for r in records if card.name in r.get("task_loss", {})]
        losses = [r["task_loss"][card.name] for r in records if card.name in r.get("task_loss", {})]
        evals = [
            (r["step"], r["validation_loss"][card.name]) for r in records if card.name in r.get("validation_loss", {})
        ]
        fig, ax = plt.subplots(figsize=(6, 3.5))
        if losses:
            ax.plot(steps, losses, alpha=0.3, color="C0", label="train (micro-batch)")
            window = max(1, len(losses) // 20)
            smooth = np.convolve(losses, np.ones(window) / window, mode="valid")
            ax.plot(steps[window - 1 :], smooth, color="C0", label=f"train (mean of {window})")
        if evals:
            ax.plot(*zip(*evals), "o-", color="C1", label="validation")
        ax.set(title=f"{card.name}", xlabel="step", ylabel="loss")
        ax.legend()
        fig.tight_layout()
        fig.savefig(folder / f"{card.name}.png", dpi=100)
        plt.close(fig)


@dataclasses.dataclass
class Run:
    """What the steps of one multi-task training run share."""

    args: argparse.Namespace
    output: Path
    cards: list[TaskCard]
    per_step: int  # micro-batches per optimiser step
    trainer: Trainer
    streams: list[TaskStream]
    probabilities: np.ndarray
    held_out: dict[str, list[dict]]
    state: TrainState
    log_file: Path

    @property
    def accelerator(self) -> Accelerator:
        return self.trainer.accelerator


def set_up(args) -> Run:
    """Cards, accelerator, run folder, model, data and optimiser: everything before the first step."""
    cards = load_cards(args.cards)
    if args.batch_size:
        for card in cards:
            card.training = dataclasses.replace(card.training, batch_size=args.batch_size)
    per_step = args.tasks_per_step or len(cards)
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=per_step,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    output = Path(args.output)
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        if not args.resume and (output / "checkpoints").exists():
            shutil.rmtree(output / "checkpoints")  # a fresh run must not resume someone else's state later
        (output / "args.json").write_text(json.dumps(vars(args), indent=2))

    model, processor = build_model(args, cards)
    streams = [
        TaskStream.for_card(
            card,
            i,
            args.seed,
            accelerator.process_index,
            accelerator.num_processes,
            not args.no_bucketing,
            args.limit_rows,
        )
        for i, card in enumerate(cards)
    ]
    probabilities = task_probabilities(cards, args.temperature)
    held_out = {card.name: validation_rows(card, args.eval_rows) for card in cards}

    optimizer, scheduler = build_optimizer(args, model)
    model, optimizer = accelerator.prepare(model, optimizer)
    state = TrainState()
    accelerator.register_for_checkpointing(scheduler, state)
    trainer = Trainer(accelerator, model, optimizer, scheduler, processor, args.clip)
    return Run(args, output, cards, per_step, trainer, streams, probabilities, held_out, state, output / "log.jsonl")


def build_optimizer(args, model) -> tuple[torch.optim.Optimizer, LRScheduler]:
    """AdamW without weight decay on biases, norms and embeddings; warm-up then ``--schedule``."""
    no_decay = [p for n, p in model.named_parameters() if p.ndim < 2 or "norm" in n or "embed" in n]
    decay = [p for n, p in model.named_parameters() if not (p.ndim < 2 or "norm" in n or "embed" in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.lr,
        fused=True,
    )  # one kernel for all parameters: a fifth of a tiny CPU step otherwise
    warmup = args.warmup_steps if args.warmup_steps is not None else max(1, args.max_steps // 20)
    scheduler = get_scheduler(args.schedule, optimizer, num_warmup_steps=warmup, num_training_steps=args.max_steps)
    return optimizer, scheduler


def check_checkpoint_pickles(checkpoint: Path) -> None:
    """Accelerate unpickles some checkpoint files with ``weights_only=False`` (the registered
    scheduler and train state), which can run code. Read every pickle first with
    ``weights_only=True`` and Accelerate's allow-list (tensors, plain Python values, NumPy arrays):
    a checkpoint that holds anything else is refused before anything is unpickled freely."""
    for path in sorted(checkpoint.iterdir()):
        if path.suffix not in (".pkl", ".bin", ".pt", ".pth"):
            continue
        try:
            load_checkpoint_file(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as err:
            raise ValueError(
                f"--resume: {path} holds objects other than tensors and plain values; not loading it, "
                f"since unpickling them could run code (write the checkpoint with this script). {err}"
            ) from None


def resume(run: Run) -> None:
    """Load the latest complete checkpoint and replay the data order up to it."""
    checkpoint = latest_checkpoint(run.output)
    if checkpoint is None:
        raise FileNotFoundError(f"--resume: no complete checkpoint under {run.output / 'checkpoints'}")
    check_checkpoint_pickles(checkpoint)
    run.accelerator.load_state(str(checkpoint))
    run.accelerator.step = run.state.step * run.per_step  # where gradient accumulation stands
    for step in range(run.state.step):
        for task in process_tasks(run, step):
            run.streams[task].advance()
    run.accelerator.print(f"resumed from {checkpoint} at step {run.state.step}")


def start_log(run: Run) -> None:
    """Start ``log.jsonl`` (a resumed run rewrites it from its checkpoint on) and say what trains."""
    if run.accelerator.is_main_process:
        log_file = run.log_file
        kept = [
            line
            for line in (log_file.read_text().splitlines() if run.args.resume and log_file.exists() else [])
            if json.loads(line)["step"] < run.state.step
        ]
        log_file.write_text("".join(line + "\n" for line in kept))
    run.accelerator.print(
        f"training {len(run.cards)} tasks on {run.accelerator.num_processes} process(es), "
        f"{run.per_step} micro-batches per step: "
        + ", ".join(
            f"{c.name} (p={p:.2f}, batch {c.training.batch_size})" for c, p in zip(run.cards, run.probabilities)
        )
    )


def process_tasks(run: Run, step: int) -> list[int]:
    """The tasks this process trains in optimiser step ``step``."""
    accelerator = run.accelerator
    return step_tasks(
        run.args.seed, step, run.probabilities, run.per_step, accelerator.process_index, accelerator.num_processes
    )


def step_parts(run: Run, step: int) -> tuple[list[int], list[MicroBatch]]:
    """The tasks this process draws for optimiser step ``step`` and their micro-batches."""
    tasks = process_tasks(run, step)
    return tasks, [
        MicroBatch(
            run.cards[task], run.streams[task], f"{run.args.seed}-{step}-{k}", run.cards[task].training.loss_weight
        )
        for k, task in enumerate(tasks)
    ]


def step_record(
    run: Run, step: int, tasks: list[int], losses: list[torch.Tensor], skipped: list[dict], started: float
) -> dict:
    """The log record of one step (each task's mean loss over all processes); skipped rows are
    gathered into the state on every process."""
    accelerator, cards = run.accelerator, run.cards
    sums = torch.zeros(len(cards), device=accelerator.device)
    counts = torch.zeros(len(cards), device=accelerator.device)
    for task, loss in zip(tasks, losses):
        sums[task] += loss.float()
        counts[task] += 1
    sums, counts = accelerator.reduce(sums, "sum"), accelerator.reduce(counts, "sum")
    if accelerator.reduce(torch.tensor(float(len(skipped)), device=accelerator.device), "sum") > 0:
        run.state.skipped += gather_object(skipped)  # every process keeps the full list
    task_loss = {cards[t].name: (sums[t] / counts[t]).item() for t in range(len(cards)) if counts[t] > 0}
    return {
        "step": step,
        "lr": run.trainer.scheduler.get_last_lr()[0],
        "loss": float(np.mean(list(task_loss.values()))),
        "task_loss": task_loss,
        "elapsed_s": round(time.time() - started, 2),
    }


def due(every: int, step: int, max_steps: int) -> bool:
    """Whether a periodic validation or checkpoint falls after ``step`` (the end has its own)."""
    return bool(every) and step % every == 0 and step < max_steps


def save_final(run: Run, started: float) -> Path:
    """After the last step: final validation loss, a last checkpoint, the model with its cards in
    ``<output>/final``, the skipped-rows report and the loss curves."""
    accelerator, model, processor = run.accelerator, run.trainer.model, run.trainer.processor
    check_replicas_agree(model, accelerator)
    final_losses = validation_losses(model, processor, run.cards, run.held_out, accelerator)
    save_checkpoint(accelerator, run.output, run.state.step, run.args.keep_checkpoints)
    final = run.output / "final"
    unwrapped = accelerator.unwrap_model(model)
    state_dict = accelerator.get_state_dict(model)
    if accelerator.is_main_process:
        unwrapped.save_pretrained(final, state_dict=state_dict)
        processor.save_pretrained(final)
        with run.log_file.open("a") as f:
            f.write(json.dumps({"step": run.state.step, "validation_loss": final_losses}) + "\n")
        report_skipped(run.state.skipped, run.output, run.cards)
        plot_loss_curves(run.log_file, run.output / "loss_curves", run.cards)
        accelerator.print("validation loss: " + ", ".join(f"{k} {v:.3f}" for k, v in final_losses.items()))
        accelerator.print(
            f"saved {final} ({sum(p.numel() for p in unwrapped.parameters()) / 1e6:.1f}M parameters, "
            f"{len(run.cards)} task cards) in {time.time() - started:.0f} s"
        )
    accelerator.wait_for_everyone()
    return final


@quiet_libraries()
def main(argv=None) -> Path:
    args = parse_args(argv)
    run = set_up(args)
    if args.resume:
        resume(run)
    start_log(run)
    main_process = run.accelerator.is_main_process
    run.trainer.model.train()
    progress = tqdm(
        total=args.max_steps,
        initial=run.state.step,
        disable=not main_process,
        desc="training",
        unit="step",
        dynamic_ncols=True,
    )
    started = time.time()
    for step in range(run.state.step, args.max_steps):
        tasks, parts = step_parts(run, step)
        losses, skipped = run.trainer.step(step_seed(args.seed, step), parts)
        run.state.step = step + 1
        record = step_record(run, step, tasks, losses, skipped, started)
        if due(args.eval_every, run.state.step, args.max_steps):
            record["validation_loss"] = validation_losses(
                run.trainer.model, run.trainer.processor, run.cards, run.held_out, run.accelerator
            )
        if main_process:
            with run.log_file.open("a") as f:
                f.write(json.dumps(record) + "\n")
        progress.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{record['lr']:.1e}", skipped=len(run.state.skipped))
        progress.update(1)
        if due(args.save_every, run.state.step, args.max_steps):
            save_checkpoint(run.accelerator, run.output, run.state.step, args.keep_checkpoints)
    progress.close()
    return save_final(run, started)


def check_replicas_agree(model, accelerator: Accelerator) -> None:
    """Data-parallel replicas must end with the same weights (gradient sync across tasks that use
    different parameters is where that could break)."""
    if accelerator.distributed_type.value not in ("MULTI_CPU", "MULTI_GPU"):
        return
    checksum = torch.stack([p.detach().double().sum() for p in model.parameters()]).sum().reshape(1)
    sums = accelerator.gather(checksum)
    if not torch.allclose(sums, sums[0].expand_as(sums), rtol=1e-9, atol=0):
        raise RuntimeError(f"data-parallel replicas diverged: weight checksums {sums.tolist()}")


def report_skipped(skipped: list[dict], output: Path, cards: list[TaskCard]) -> None:
    """Rows left out of training, counted per task and reason (never dropped silently)."""
    (output / "skipped_rows.json").write_text(json.dumps(skipped, indent=1))
    if not skipped:
        print("skipped rows: none")
        return
    for card in cards:
        mine = [s for s in skipped if s["task"] == card.name]
        if mine:
            print(
                f"skipped rows: task {card.name!r}: {len(mine)} time(s), "
                f"{skipped_summary(mine)}; details in {output / 'skipped_rows.json'}"
            )


def end_processes() -> None:
    """End the data-parallel process group: once per launched script, after its last model (evaluation
    /compare.py trains and evaluates several in one launch)."""
    Accelerator().end_training()


if __name__ == "__main__":
    main(sys.argv[1:])
    end_processes()
