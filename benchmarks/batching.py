"""Multi-task batching: padding in the trainer's batches, and data-pipeline rate against consumption.

Batches are built exactly as the trainer builds them (`TaskStream` -> `collate` through the
processor), from the start of each task's first epoch, with and without length bucketing. The
padding share is the part of the padded input_ids / labels tensors that holds no token (for speech
targets, of the padded mel frames).
"""

from __future__ import annotations

import dataclasses
import random
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from ofa_plus import OFAPlusConfig, OFAPlusProcessor, load_cards
from ofa_plus.multitask import TaskStream, collate, step_tasks, task_probabilities

from .common import CARDS


def _padding(batch) -> tuple[int, int, int, int]:
    enc = batch["attention_mask"]
    dec = batch["labels"] != -100 if "labels" in batch else None
    dec_real = int(dec.sum()) if dec is not None else 0
    dec_all = dec.numel() if dec is not None else 0
    # decoder positions are real up to each row's last target (no_loss prefixes count as real)
    if dec is not None:
        last = torch.where(dec.any(1), dec.shape[1] - dec.flip(1).int().argmax(1), 0)
        dec_real = int(last.sum())
    if "mel_lengths" in batch:  # an AUDIO target: the decoder's positions are mel frames
        dec_real, dec_all = (
            int(batch["mel_lengths"].sum()),
            batch["mel_labels"].shape[0] * batch["mel_labels"].shape[1],
        )
    return int(enc.sum()), enc.numel(), dec_real, dec_all


def padding_share(
    preset: str, batches_per_task: int, seed: int = 0, image_size: int | None = None, batch_size: int | None = None
) -> dict:
    """Padding share per task and overall, with and without bucketing. ``image_size`` and
    ``batch_size`` override the preset's and the cards' values, as train.py's flags do."""
    config = OFAPlusConfig.from_preset(preset, **({"image_size": image_size} if image_size else {}))
    processor = OFAPlusProcessor.for_config(config)
    cards = load_cards(CARDS)
    if batch_size:
        for card in cards:
            card.training = dataclasses.replace(card.training, batch_size=batch_size)
    result = {"image_size": config.image_size, "batch_sizes": sorted({c.training.batch_size for c in cards})}
    for bucketing in (True, False):
        per_task, totals = {}, np.zeros(4)
        for index, card in enumerate(cards):
            stream = TaskStream.for_card(card, index, seed, bucketing=bucketing)
            counts = np.zeros(4)
            for k in range(min(batches_per_task, -(-len(stream.dataset) // card.training.batch_size))):
                indices = stream.next_indices()
                batch, _ = collate(
                    processor,
                    card,
                    stream.rows(indices),
                    indices,
                    training=True,
                    rng=random.Random(f"{seed}-{index}-{k}"),
                )
                if batch is not None:
                    counts += _padding(batch)
            per_task[card.name] = _shares(counts)
            totals += counts
        result["bucketed" if bucketing else "unbucketed"] = {"overall": _shares(totals), "per_task": per_task}
    return result


def _shares(counts) -> dict:
    enc_real, enc_all, dec_real, dec_all = counts
    return {
        "encoder": 1 - enc_real / enc_all,
        "decoder": 1 - dec_real / dec_all if dec_all else 0.0,
        "all": 1 - (enc_real + dec_real) / (enc_all + dec_all),
        "tokens": int(enc_all + dec_all),
    }


class TrainerBatches(IterableDataset):
    """The trainer's stream of micro-batches (task drawn by weight, then that task's next batch),
    collated in DataLoader workers; worker w of n takes every n-th micro-batch."""

    def __init__(self, preset: str, seed: int = 0):
        self.preset, self.seed = preset, seed

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        torch.set_num_threads(1)
        processor = OFAPlusProcessor.for_config(OFAPlusConfig.from_preset(self.preset))
        cards = load_cards(CARDS)
        streams = [TaskStream.for_card(c, i, self.seed) for i, c in enumerate(cards)]
        probabilities = task_probabilities(cards)
        step = 0
        while True:
            for k, task in enumerate(step_tasks(self.seed, step, probabilities, len(cards))):
                indices = streams[task].next_indices()  # every worker advances every stream alike
                if (step * len(cards) + k) % workers != worker:
                    continue
                batch, _ = collate(
                    processor,
                    cards[task],
                    streams[task].rows(indices),
                    indices,
                    training=True,
                    rng=random.Random(f"{self.seed}-{step}-{k}"),
                )
                if batch is not None:
                    yield {key: value for key, value in batch.items() if torch.is_tensor(value)}
            step += 1


def pipeline_rate(preset: str, workers: int, seconds: float) -> dict:
    """Rows per second the trainer's batch builder delivers with ``workers`` processes (0: in the
    training process itself, as train.py does today)."""
    loader = DataLoader(
        TrainerBatches(preset),
        batch_size=None,
        num_workers=workers,
        prefetch_factor=4 if workers else None,
        persistent_workers=False,
    )
    iterator = iter(loader)
    next(iterator)  # start-up (workers loading cards and datasets) is not counted
    rows, batches, start = 0, 0, time.perf_counter()
    while time.perf_counter() - start < seconds or batches < 3:
        rows += next(iterator)["input_ids"].shape[0]
        batches += 1
    elapsed = time.perf_counter() - start
    del iterator
    return {"workers": workers, "rows_per_s": rows / elapsed, "batches": batches}
