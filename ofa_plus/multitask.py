"""Multi-task batching: which task each micro-batch comes from, and which rows it holds.

Everything here is a pure function of (seed, step), so a resumed run rebuilds exactly the data
order of an uninterrupted one by replaying the schedule; every process of a distributed run draws
its own share of each step's tasks and reads rows of its own.

- `task_probabilities`: tasks are drawn with probability ∝ weight ** (1 / temperature).
- `TaskStream`: one task's training rows as single-task, length-bucketed batches, reshuffled
  every epoch; process ``rank`` of ``world`` takes every ``world``-th batch.
- `collate`: rows -> model inputs through the processor; rows that fail (a corrupt image, a
  missing value) are dropped from the batch and reported, never silently.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import datasets
import numpy as np

from .plan import TaskPlan
from .processing_ofa_plus import OFAPlusBatch, OFAPlusProcessor
from .task_card import TaskCard

BUCKET_BATCHES = 50  # rows are sorted by length within windows of this many batches


def task_probabilities(cards: list[TaskCard], temperature: float = 1.0) -> np.ndarray:
    weights = np.array([c.training.weight for c in cards], dtype=np.float64) ** (1.0 / temperature)
    return weights / weights.sum()


def step_tasks(
    seed: int, step: int, probabilities: np.ndarray, count: int, rank: int = 0, world: int = 1
) -> list[int]:
    """The tasks of process ``rank``'s ``count`` micro-batches of optimiser step ``step`` (drawn with
    replacement, ``count * world`` per step): in a distributed run every process learns other tasks
    in the same step, so one update mixes ``world`` micro-batches of (usually) different tasks."""
    rng = np.random.default_rng([seed, step, 1])
    return rng.choice(len(probabilities), size=count * world, p=probabilities)[
        rank * count : (rank + 1) * count
    ].tolist()


def row_lengths(dataset: datasets.Dataset, columns: list[str]) -> np.ndarray:
    """A cheap length proxy per row for bucketing: characters of the text-valued columns (list
    columns count their items' characters). Images add the same count to every row of a task."""
    lengths = np.zeros(len(dataset), dtype=np.int64)
    for column in columns:
        feature = dataset.features[column]
        if isinstance(feature, (datasets.Image, datasets.Audio)):
            continue
        for i, value in enumerate(dataset[column]):
            lengths[i] += len(value) if isinstance(value, str) else len(str(value))
    return lengths


def bucketed_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator, bucketing: bool = True
) -> list[np.ndarray]:
    """Shuffle, sort by length inside windows of BUCKET_BATCHES batches, cut, shuffle the batches.

    Windows keep the order random across the epoch while rows of similar length share batches,
    so little of each batch is padding. The last incomplete batch is kept (nothing is dropped)."""
    order = rng.permutation(len(lengths))
    if bucketing:
        window = batch_size * BUCKET_BATCHES
        order = np.concatenate(
            [
                chunk[np.argsort(lengths[chunk], kind="stable")]
                for chunk in np.array_split(order, max(1, -(-len(order) // window)))
            ]
        )
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


@dataclass
class TaskStream:
    """One task's training batches, epoch after epoch, for process ``rank`` of ``world``."""

    card: TaskCard
    dataset: datasets.Dataset
    index: int
    seed: int
    rank: int = 0
    world: int = 1
    bucketing: bool = True
    epoch: int = 0
    cursor: int = 0  # batches taken in this epoch by all processes together, in units of `world`
    _batches: list[np.ndarray] = field(default_factory=list, repr=False)
    _lengths: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def for_card(
        cls,
        card: TaskCard,
        index: int,
        seed: int,
        rank: int = 0,
        world: int = 1,
        bucketing: bool = True,
        limit: int | None = None,
    ) -> TaskStream:
        dataset = card.load_split("train")
        if limit:
            dataset = dataset.select(range(min(limit, len(dataset))))
        return cls(card, without_decoding(dataset), index, seed, rank, world, bucketing)

    @property
    def lengths(self) -> np.ndarray:
        if self._lengths is None:
            columns = [spec.column for spec in self.card.columns.values()]
            self._lengths = row_lengths(self.dataset, sorted(set(columns)))
        return self._lengths

    def _epoch_batches(self) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, self.index, self.epoch, 2])
        batches = bucketed_batches(self.lengths, self.card.training.batch_size, rng, self.bucketing)
        # every process needs a batch at every position: pad the list to a multiple of `world`
        while len(batches) % self.world:
            batches.append(batches[len(batches) % self.world])
        return batches

    def next_indices(self) -> np.ndarray:
        """Dataset indices of this process's next batch (advances every process's cursor alike)."""
        if not self._batches:
            self._batches = self._epoch_batches()
        if (self.cursor + 1) * self.world > len(self._batches):
            self.epoch, self.cursor = self.epoch + 1, 0
            self._batches = self._epoch_batches()
        batch = self._batches[self.cursor * self.world + self.rank]
        self.cursor += 1
        return batch

    def advance(self) -> None:
        """Skip one batch without reading it (replaying the schedule on resume)."""
        self.next_indices()

    def rows(self, indices: np.ndarray) -> list[dict]:
        examples = self.dataset[[int(i) for i in indices]]
        return [self.card.to_row({k: v[j] for k, v in examples.items()}) for j in range(len(indices))]


@dataclass
class SkippedRow:
    """A row left out of a batch: where it is (task, split, row number), which slot failed, and why."""

    task: str
    index: int
    reason: str
    split: str = ""
    slot: str = ""


def skipped_summary(skipped: list[dict]) -> str:
    """One line about one task's skipped rows: how many distinct rows, and the first row with its
    own slot and reason."""
    first = min(skipped, key=lambda s: s["index"])
    where = f"split {first['split']!r}, " if first.get("split") else ""
    slot = f"slot {first['slot']}, " if first.get("slot") else ""
    return (
        f"{len({s['index'] for s in skipped})} distinct row(s) "
        f"(e.g. {where}row {first['index']}, {slot}reason: {first['reason']})"
    )


def without_decoding(dataset: datasets.Dataset) -> datasets.Dataset:
    """Image and audio columns left as bytes/paths: the processor decodes them, where a corrupt file
    becomes a counted, skipped row instead of an error in ``datasets`` that names no row."""
    for name, feature in dataset.features.items():
        if isinstance(feature, (datasets.Image, datasets.Audio)) and feature.decode:
            dataset = dataset.cast_column(name, type(feature)(decode=False))
    return dataset


def collate(
    processor: OFAPlusProcessor,
    card: TaskCard,
    rows: list[dict],
    indices,
    *,
    training: bool,
    rng: random.Random,
    split: str | None = None,
) -> tuple[OFAPlusBatch | None, list[SkippedRow]]:
    """Encode one task's rows; a row that cannot be encoded is left out and reported (``split``
    names where the rows come from: by default the train split when training)."""
    if split is None:
        split = (card.split_name("train") if training else None) or ""
    return encode_rows(processor, card.plan, rows, indices, task=card.name, split=split, training=training, rng=rng)


def encode_rows(
    processor: OFAPlusProcessor,
    plan: TaskPlan,
    rows: list[dict],
    indices,
    *,
    task: str | None = None,
    split: str = "",
    **options,
) -> tuple[OFAPlusBatch | None, list[SkippedRow]]:
    """`OFAPlusProcessor.process_rows` that leaves out the rows it cannot encode and reports them
    (``indices`` are the rows' numbers in their split; ``options`` go to process_rows)."""
    indices = [int(i) for i in indices]
    try:
        return processor.process_rows(plan, rows, row_numbers=indices, **options), []
    except (ValueError, OSError) as first_error:  # find the culprits row by row
        alone = {**options, "rng": random.Random(0)}
        good, skipped = [], []
        for row, index in zip(rows, indices):
            try:
                processor.process_rows(plan, [row], row_numbers=[index], **alone)
                good.append(row)
            except (ValueError, OSError) as err:
                reason = str(err).splitlines()[0][:300]
                skipped.append(SkippedRow(task or plan.name or "", index, reason, split, getattr(err, "slot", "")))
        if not skipped:  # the batch fails as a whole: not a bad row, a bug to surface
            raise first_error
        bad = {s.index for s in skipped}
        numbers = [i for i in indices if i not in bad]
        batch = processor.process_rows(plan, good, row_numbers=numbers, **options) if good else None
        return batch, skipped
