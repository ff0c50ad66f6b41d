"""Evaluate a trained model on its task cards: generate, score, compare with a trivial baseline.

    accelerate launch evaluation/run.py --model runs/x/final --cards task_cards/default --output results.json
    python evaluation/run.py ...            # the same, one process

For each card the eval split is cut into length-sorted batches once; processes take whole
batches in turn, so the outputs (and scores) do not depend on how many processes ran. Writes
``results.json`` (scores, baselines, the ``model-index`` block of the model card), a markdown
table next to it, and a few sample predictions per task. A row that cannot be read (a corrupt
image) is scored as a failed prediction and named (task, split, row, slot, reason) in the printed
summary and in ``skipped_rows``; ``weights_sha256`` records which model the scores belong to.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from .cli import HelpFormatter
from .metrics import BASELINE_AUDIO_CLIPS, METRICS, baseline_name, best_constant_baseline, compute_metrics
from .model_card import model_index
from .modeling_ofa_plus import OFAPlusForConditionalGeneration
from .multitask import collate, skipped_summary, without_decoding
from .processing_ofa_plus import OFAPlusProcessor
from .quiet import quiet_libraries
from .task_card import TaskCard, cards_from_dicts, generation_kwargs, inference_row, load_cards
from .threads import THREADS_HELP, inference_threads, threads_option

SAMPLES_PER_TASK = 5


def weights_fingerprint(model) -> str:
    """SHA-256 of the model's tensors (names, dtypes, shapes, bytes): the same for a model however it
    was saved or loaded, different for any other weights. results.json records it, so pushing a
    model with another model's results can be refused."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="evaluation/run.py",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    p.add_argument("--model", required=True, help="a trained model folder (save_pretrained) or Hub id")
    p.add_argument("--cards", nargs="*", help="task card files/folders (default: the cards the model carries)")
    p.add_argument("--output", required=True, help="results JSON file; .md table and samples are written beside it")
    p.add_argument("--split", default="test", choices=["test", "validation"])
    p.add_argument("--limit", type=int, help="evaluate at most this many rows per task")
    p.add_argument("--num-beams", type=int, help="override every card's beam count")
    p.add_argument("--batch-size", type=int, help="override every card's eval_batch_size")
    p.add_argument("--num-threads", type=threads_option, help=THREADS_HELP)
    return p.parse_args(argv)


def task_type(card: TaskCard) -> str:
    """The Hugging Face task name closest to a card's instruction (for the model card)."""
    plan = card.plan
    inputs = {s.slot.modality for s in plan.templates[0].slots("encoder")}
    kind = plan.generator.kind
    if "AUDIO" in {s.slot.modality for s in plan.templates[0].targets()}:
        return "text-to-speech"
    if "AUDIO" in inputs:
        return "automatic-speech-recognition"
    if kind == "box":
        return "object-detection"
    if "IMAGE" in inputs:
        if "TEXT" in inputs and kind == "closed_set":
            return "visual-question-answering"
        return "image-classification" if kind == "closed_set" else "image-to-text"
    if "STRUCT" in inputs:
        return "table-question-answering"
    if kind == "closed_set":
        return "text-classification"
    return "summarization" if "summar" in card.name else "text2text-generation"


def _length(row: dict) -> int:
    return sum(len(v) for v in row.values() if isinstance(v, str))


@torch.no_grad()
def predict(
    model,
    processor: OFAPlusProcessor,
    card: TaskCard,
    rows: list[dict],
    accelerator: Accelerator,
    batch_size: int,
    num_beams: int | None = None,
    progress: tqdm | None = None,
    split: str = "",
) -> tuple[list[Any], list[dict]]:
    """One prediction per row (None where the row could not be read), identical for any process count,
    and the rows that could not be read (task, split, row, slot, reason)."""
    order = sorted(range(len(rows)), key=lambda i: (_length(rows[i]), i))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    settings = generation_kwargs(card.plan)
    # speech targets: keep the generated log-mels next to the vocoded audio, so mcd scores the
    # model's frames (as it scores the mean-mel baseline), not Griffin-Lim's re-synthesis
    decode = {"return_mels": True} if card.plan.output_kind == "speech" else {}
    if num_beams:
        settings["num_beams"] = num_beams
    mine: list[tuple[int, Any]] = []
    unreadable: list[dict] = []
    for batch_indices in batches[accelerator.process_index :: accelerator.num_processes]:
        chunk = [inference_row(card.plan, rows[i]) for i in batch_indices]
        batch, skipped = collate(processor, card, chunk, batch_indices, training=False, rng=None, split=split)
        unreadable += [vars(s) for s in skipped]
        bad = {s.index for s in skipped}
        good = [i for i in batch_indices if i not in bad]
        if batch is not None:
            tensors = {k: v.to(accelerator.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            generated = model.generate(**tensors, **settings)
            mine += list(zip(good, processor.postprocess(generated, batch, **decode)))
        mine += [(i, None) for i in bad]
        if progress is not None:
            # the main process sees its own batches only: count the others' alike, without overshooting
            progress.update(min(len(batch_indices) * accelerator.num_processes, progress.total - progress.n))
    predictions = dict(gather_object(mine))
    skipped = sorted(gather_object(unreadable), key=lambda s: s["index"])
    return [predictions[i] for i in range(len(rows))], skipped


def swap_rows(predictions: list, seed: int = 0) -> list:
    """Every prediction moved to another row (one random cycle through all rows, fixed seed), to score
    against references it was not made for: a model that ignores its input scores about the same as
    with its own rows (a constant answer exactly the same); one that reads its input scores worse.
    Random, not the next row, because a split may be ordered by its answers."""
    order = list(range(len(predictions)))
    random.Random(seed).shuffle(order)
    swapped = list(predictions)
    for here, there in zip(order, order[1:] + order[:1]):
        swapped[here] = predictions[there]
    return swapped


def evaluate_card(
    model,
    processor,
    card: TaskCard,
    accelerator: Accelerator,
    split: str = "test",
    limit: int | None = None,
    num_beams: int | None = None,
    batch_size: int | None = None,
    progress: tqdm | None = None,
) -> dict:
    dataset = without_decoding(card.head(split, limit))
    rows = [card.to_row(example) for example in dataset]
    size = batch_size or card.training.eval_batch_size
    predictions, skipped = predict(
        model, processor, card, rows, accelerator, size, num_beams, progress, card.split_name(split)
    )
    references = [row["references"] for row in rows]
    needed = sorted({c for m in card.metrics for c in METRICS[m].needs_columns})
    extra = dataset.select_columns(needed).to_list() if needed else None
    scores = compute_metrics(card.metrics, predictions, references, extra)
    swapped = compute_metrics(card.metrics, swap_rows(predictions), references, extra)

    train = card.load_split("train")
    if card.plan.output_kind == "speech":  # the mean-mel baseline reads only the first clips: decode no more
        train = train.select(range(min(len(train), BASELINE_AUDIO_CLIPS)))
    target = card.columns[card.target_column]
    train_targets = [target.apply(v) for v in train[target.column]]
    baseline, _ = best_constant_baseline(card.metrics, train_targets, references, extra)
    targets = card.scored_columns | {"references"}
    samples = [
        {
            "inputs": {k: v for k, v in row.items() if isinstance(v, (str, int, float)) and k not in targets},
            "prediction": _plain(p),
            "reference": _plain(row["references"]),
        }
        for row, p in zip(rows[:SAMPLES_PER_TASK], predictions)
    ]
    return {
        "task": card.name,
        "rows": len(rows),
        "scores": scores,
        "swapped_scores": swapped,
        "baseline": baseline,
        "baseline_kind": baseline_name(train_targets),
        "failed": sum(p is None for p in predictions),
        "skipped_rows": skipped,
        # a model that answers every row alike shows here (its score is then a constant's)
        "distinct_predictions": len({repr(_plain(p)) for p in predictions if p is not None}),
        "samples": samples,
        "task_type": task_type(card),
        "split": card.split_name(split),
        "dataset": str(card.dataset["path"]),
    }


def _plain(value):
    """JSON-ready: tuples (boxes) become lists, floats are rounded for reading."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return round(value, 2) if isinstance(value, float) else value


def results_table(entries: list[dict]) -> str:
    """Markdown table of scores; "rows swapped" scores each prediction against another row's reference
    (`swap_rows`: about equal to "score" when the model ignores its input)."""
    lines = [
        "| task | metric | score | rows swapped | trivial baseline | rows | failed rows | distinct predictions |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for e in entries:
        for k, (metric, value) in enumerate(e["scores"].items()):
            arrow = "" if METRICS[metric].higher_is_better else " ↓"
            first = k == 0
            swapped = e.get("swapped_scores", {}).get(metric)
            lines.append(
                f"| {e['task'] if first else ''} | {metric}{arrow} | {value:.1f} | "
                f"{'-' if swapped is None else f'{swapped:.1f}'} | "
                f"{e['baseline'][metric]:.1f} ({e['baseline_kind']}) | {e['rows'] if first else ''} | "
                f"{e.get('failed', '') if first else ''} | {e.get('distinct_predictions', '') if first else ''} |"
            )
    return "\n".join(lines)


def skipped_report(entries: list[dict]) -> str:
    """Lines naming the rows that could not be read, per task (scored as failed predictions)."""
    lines = [
        f"unreadable rows: task {e['task']!r}: {skipped_summary(e['skipped_rows'])}; all of them in results.json"
        for e in entries
        if e.get("skipped_rows")
    ]
    return "\n".join(lines) or "unreadable rows: none"


def model_index_entries(entries: list[dict]) -> list[dict]:
    return [
        {
            "task": e["task"],
            "task_type": e["task_type"],
            "dataset_name": f"{e['task']} ({e['dataset']})",
            "dataset_type": e["dataset"],
            "split": e["split"],
            "metric": metric,
            "value": round(value, 2),
            "baseline": round(e["baseline"][metric], 2),
            "baseline_kind": e["baseline_kind"],
        }
        for e in entries
        for metric, value in e["scores"].items()
    ]


@quiet_libraries()
def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    with inference_threads(args.num_threads):
        return run_evaluation(args)


def run_evaluation(args: argparse.Namespace) -> list[dict]:
    accelerator = Accelerator()
    model = OFAPlusForConditionalGeneration.from_pretrained(args.model)
    fingerprint = weights_fingerprint(model)
    model = model.to(accelerator.device).eval()
    processor = OFAPlusProcessor.from_pretrained(args.model)
    cards = load_cards(args.cards) if args.cards else cards_from_dicts(model.config.task_cards)
    if not cards:
        raise SystemExit(f"{args.model} carries no task cards; pass --cards")
    started = time.time()
    entries = []
    for card in cards:
        total = len(card.load_split(args.split))
        total = min(total, args.limit) if args.limit else total
        with tqdm(
            total=total,
            desc=f"evaluating {card.name}",
            unit="row",
            disable=not accelerator.is_main_process,
            dynamic_ncols=True,
        ) as progress:
            entries.append(
                evaluate_card(
                    model,
                    processor,
                    card,
                    accelerator,
                    args.split,
                    args.limit,
                    args.num_beams,
                    args.batch_size,
                    progress,
                )
            )
    if accelerator.is_main_process:
        output = Path(args.output)
        output.parent.mkdir(parents=True, exist_ok=True)
        name = Path(args.model).name if Path(args.model).exists() else args.model
        index = model_index(model_index_entries(entries), name)
        output.write_text(
            json.dumps(
                {
                    "model": str(args.model),
                    "weights_sha256": fingerprint,
                    "split": args.split,
                    "results": entries,
                    "model_index": index,
                },
                indent=1,
                default=str,
            )
        )
        table = results_table(entries)
        output.with_suffix(".md").write_text(table + "\n")
        print(table)
        print(skipped_report(entries))
        print(f"evaluated {len(cards)} tasks in {time.time() - started:.0f} s; results in {output}")
    accelerator.wait_for_everyone()
    return entries


if __name__ == "__main__":
    main(sys.argv[1:])
