"""Task cards: one YAML file per task, checked completely when loaded (format: task_cards/README.md).

A card ties an instruction to a dataset (where it lives, how its columns fill the slots), to
metrics, and to generation and training settings. Every mistake a card can hold is found by
`load_cards`, before a run starts, and named with the card file and the key.
"""

from __future__ import annotations

import collections
import functools
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .instruction import InstructionError
from .plan import TaskPlan, compile_plan

CARD_KEYS = {
    "name",
    "description",
    "instruction",
    "dataset",
    "columns",
    "references",
    "metrics",
    "generation",
    "training",
    "settings",
}
REQUIRED_KEYS = ("name", "instruction", "dataset")
DATASET_KEYS = {"path", "name", "splits", "data_files"}
SPLIT_ROLES = ("train", "validation", "test")
GENERATION_KEYS = {"num_beams", "max_new_tokens", "closed_set"}
COLUMN_KEYS = {"column", "transform", "sep"}
TRANSFORMS = ("first", "join", "lower", "str")


class CardError(ValueError):
    """A task card is wrong; the message names the card (file) and the key."""

    def __init__(self, where: str, key: str, message: str):
        self.where, self.key = where, key
        super().__init__(f"task card {where}: {key}: {message}")


@dataclass(frozen=True)
class TrainingSettings:
    batch_size: int = 16
    eval_batch_size: int = 32
    weight: float = 1.0
    loss_weight: float = 1.0


@dataclass(frozen=True)
class ColumnMap:
    """Where a slot's value comes from: a dataset column and an optional transform."""

    column: str
    transform: str | None = None
    sep: str = " "

    def apply(self, value: Any) -> Any:
        if self.transform == "first":
            return value[0] if isinstance(value, (list, tuple)) and value else value
        if self.transform == "join":
            return self.sep.join(str(v) for v in value) if isinstance(value, (list, tuple)) else value
        if self.transform == "lower":
            return value.lower() if isinstance(value, str) else value
        if self.transform == "str":
            return str(value)
        return value

    def to_yaml(self) -> str | dict:
        if self.transform is None:
            return self.column
        out = {"column": self.column, "transform": self.transform}
        return {**out, "sep": self.sep} if self.transform == "join" else out


@dataclass
class TaskCard:
    name: str
    instructions: list[str]
    dataset: dict[str, Any]
    columns: dict[str, ColumnMap]
    references: str | None = None
    metrics: list[str] = field(default_factory=list)
    generation: dict[str, Any] = field(default_factory=dict)
    training: TrainingSettings = field(default_factory=TrainingSettings)
    settings: dict[str, dict] = field(default_factory=dict)
    description: str = ""
    closed_set: list[str] | None = None  # resolved candidates (from a list, a column or a file)
    source: str | None = None

    # ------------------------------------------------------------------------------ running
    @property
    def instruction(self) -> str:
        return " ||| ".join(self.instructions)

    @functools.cached_property
    def plan(self) -> TaskPlan:
        settings = {column: dict(values) for column, values in self.settings.items()}
        if self.closed_set is not None:
            target = _target_column(compile_plan(self.instruction))
            settings.setdefault(target, {})["closed_set"] = tuple(self.closed_set)
        generation = {k: v for k, v in self.generation.items() if k != "closed_set"}
        return compile_plan(self.instruction, settings, generation, self.name)

    @property
    def target_column(self) -> str:
        return _target_column(self.plan)

    @property
    def scored_columns(self) -> set[str]:
        """Columns of the scored decoder slots of every template: what inference must not be given."""
        return scored_columns(self.plan)

    def split_name(self, role: str) -> str | None:
        """The dataset split playing ``role`` (train / validation / test); evaluation falls back to
        validation when a card has no test split."""
        splits = self.dataset.get("splits", {})
        if role == "test" and "test" not in splits:
            role = "validation"
        return splits.get(role)

    def load_split(self, role: str):
        name = self.split_name(role)
        if name is None:
            raise CardError(self.where, "dataset.splits", f"no split for {role!r}; splits: {self.dataset['splits']}")
        return _load_dataset(self.dataset)[name]

    def head(self, role: str, limit: int | None = None):
        """The split playing ``role``, cut to its first ``limit`` rows."""
        dataset = self.load_split(role)
        return dataset.select(range(min(limit, len(dataset)))) if limit else dataset

    def to_row(self, example: dict) -> dict:
        """A dataset example -> the row the processor reads (slot columns) plus ``references``."""
        row = {slot: spec.apply(example[spec.column]) for slot, spec in self.columns.items()}
        row["references"] = example[self.references] if self.references else row.get(self.target_column)
        return row

    @property
    def where(self) -> str:
        return f"{self.name!r} ({self.source})" if self.source else repr(self.name)

    # ------------------------------------------------------------------------------ (de)serialising
    def to_dict(self) -> dict:
        """A plain, YAML/JSON-ready card; the closed set is written out as a list so a saved model
        needs neither the dataset nor the label file to run the task."""
        generation = dict(self.generation)
        if self.closed_set is not None:
            generation["closed_set"] = list(self.closed_set)
        out = {
            "name": self.name,
            "description": self.description,
            "instruction": self.instructions[0] if len(self.instructions) == 1 else list(self.instructions),
            "dataset": self.dataset,
            "columns": {slot: spec.to_yaml() for slot, spec in self.columns.items()},
            "references": self.references,
            "metrics": list(self.metrics),
            "generation": generation,
            "training": dict(vars(self.training)),
            "settings": self.settings,
        }
        return {k: v for k, v in out.items() if v not in (None, "", {}, [])}

    @classmethod
    def from_dict(cls, data: dict, source: str | None = None, check_dataset: bool = True) -> TaskCard:
        """Build and check a card. ``check_dataset=False`` skips what needs the data on disk (a card
        restored from a trained model must run without its training data)."""
        if not isinstance(data, dict):
            raise CardError(str(source), "(top level)", f"a card is a mapping of keys, got {type(data).__name__}")
        where = f"{data.get('name')!r} ({source})" if source else repr(data.get("name"))
        _check_keys(data, CARD_KEYS, where, "")
        for key in REQUIRED_KEYS:
            if key not in data:
                raise CardError(where, key, "missing (required keys: " + ", ".join(REQUIRED_KEYS) + ")")
        if not isinstance(data["name"], str) or not data["name"].strip():
            raise CardError(where, "name", f"must be a non-empty string, got {data['name']!r}")

        instructions = data["instruction"]
        instructions = [instructions] if isinstance(instructions, str) else instructions
        if not isinstance(instructions, list) or not instructions or not all(isinstance(i, str) for i in instructions):
            raise CardError(where, "instruction", "must be a string or a non-empty list of strings")
        try:
            plan = compile_plan(" ||| ".join(instructions))
        except InstructionError as err:
            raise CardError(where, "instruction", f"\n{err}") from None

        dataset = data["dataset"]
        if isinstance(dataset, str):
            dataset = {"path": dataset}
        if not isinstance(dataset, dict) or "path" not in dataset:
            raise CardError(where, "dataset", "must be a path / Hub id or a mapping with a 'path'")
        _check_keys(dataset, DATASET_KEYS, where, "dataset.")
        dataset = {"splits": {role: role for role in SPLIT_ROLES}, **dataset}
        for role in dataset["splits"]:
            if role not in SPLIT_ROLES:
                raise CardError(where, f"dataset.splits.{role}", f"unknown role; roles are {', '.join(SPLIT_ROLES)}")
        if "train" not in dataset["splits"]:
            raise CardError(where, "dataset.splits", "needs a 'train' split")

        columns = {}
        for slot, spec in (data.get("columns") or {}).items():
            columns[slot] = _column_map(spec, where, f"columns.{slot}")
        slot_columns = plan.columns()
        for slot in columns:
            if slot not in slot_columns:
                raise CardError(
                    where,
                    f"columns.{slot}",
                    f"the instruction has no slot {slot!r} (its slots: {', '.join(slot_columns)})",
                )

        metrics = data.get("metrics") or []
        metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        from .metrics import METRICS  # noqa: PLC0415 (metrics pull in scoring libraries; load them only here)

        for k, metric in enumerate(metrics):
            if metric not in METRICS:
                raise CardError(
                    where, f"metrics[{k}]", f"unknown metric {metric!r}; known: {', '.join(sorted(METRICS))}"
                )

        generation = dict(data.get("generation") or {})
        _check_keys(generation, GENERATION_KEYS, where, "generation.")
        training = data.get("training") or {}
        known = set(TrainingSettings.__dataclass_fields__)
        _check_keys(training, known, where, "training.")
        for key, value in training.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise CardError(where, f"training.{key}", f"must be a positive number, got {value!r}")
        settings = data.get("settings") or {}
        for slot in settings:
            if slot not in slot_columns:
                raise CardError(where, f"settings.{slot}", f"the instruction has no slot {slot!r}")

        card = cls(
            name=data["name"],
            instructions=instructions,
            dataset=dataset,
            columns=columns,
            references=data.get("references"),
            metrics=metrics,
            generation=generation,
            training=TrainingSettings(**{k: type(getattr(TrainingSettings, k))(v) for k, v in training.items()}),
            settings=settings,
            description=data.get("description", ""),
            source=source,
        )
        closed = generation.get("closed_set")
        if isinstance(closed, list):
            card.closed_set = [str(c) for c in closed]
        elif closed is not None and not isinstance(closed, dict):
            raise CardError(where, "generation.closed_set", "must be a list, {column: ...} or {file: ...}")
        if isinstance(closed, dict) and "file" in closed:
            card.closed_set = _read_label_file(closed["file"], source, where)
        if check_dataset:
            card._check_dataset(slot_columns)
        elif isinstance(closed, dict) and "column" in closed:
            raise CardError(where, "generation.closed_set", "a column closed set needs the dataset to resolve it")
        try:
            card.plan  # noqa: B018 (settings and closed sets must compile too)
        except (InstructionError, ValueError) as err:
            raise CardError(where, "settings", str(err)) from None
        return card

    def _check_dataset(self, slot_columns: list[str]) -> None:
        try:
            splits = _load_dataset(self.dataset)
        except Exception as err:  # noqa: BLE001 (any failure to open the data is the card's dataset key)
            raise CardError(self.where, "dataset.path", f"cannot load {self.dataset['path']!r}: {err}") from None
        for role, split in self.dataset["splits"].items():
            if split not in splits:
                raise CardError(
                    self.where,
                    f"dataset.splits.{role}",
                    f"split {split!r} not in the dataset (it has {', '.join(splits)})",
                )
        available = splits[self.dataset["splits"]["train"]].column_names
        for slot in slot_columns:  # a slot with no mapping reads the dataset column of its own name
            self.columns.setdefault(slot, ColumnMap(slot))
        for slot, spec in self.columns.items():
            if spec.column not in available:
                raise CardError(
                    self.where,
                    f"columns.{slot}",
                    f"the dataset has no column {spec.column!r} to fill "
                    f"slot {slot!r} (columns: {', '.join(available)})",
                )
        if self.references and self.references not in available:
            raise CardError(self.where, "references", f"the dataset has no column {self.references!r}")
        from .metrics import METRICS  # noqa: PLC0415

        for metric in self.metrics:
            for column in METRICS[metric].needs_columns:
                if column not in available:
                    raise CardError(
                        self.where, "metrics", f"metric {metric!r} reads column {column!r}, which the dataset lacks"
                    )
        closed = self.generation.get("closed_set")
        if isinstance(closed, dict) and "column" in closed:
            column = closed["column"]
            if column not in available:
                raise CardError(self.where, "generation.closed_set.column", f"the dataset has no column {column!r}")
            values = splits[self.dataset["splits"]["train"]].unique(column)
            self.closed_set = sorted(str(v) for v in values)


def load_cards(paths: str | os.PathLike | list, check_dataset: bool = True) -> list[TaskCard]:
    """Cards from YAML files and/or folders (every ``*.yaml`` / ``*.yml`` in them, sorted)."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
            if not found:
                raise FileNotFoundError(f"no task cards (*.yaml) in folder {path}")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"task card path {path} does not exist")
    cards = []
    for file in files:
        try:
            data = yaml.safe_load(file.read_text())
        except yaml.YAMLError as err:
            raise CardError(str(file), "(yaml)", f"not valid YAML: {err}") from None
        cards.append(TaskCard.from_dict(data, source=str(file), check_dataset=check_dataset))
    names = collections.Counter(c.name for c in cards)
    duplicated = [n for n, count in names.items() if count > 1]
    if duplicated:
        sources = [c.source for c in cards if c.name == duplicated[0]]
        raise CardError(repr(duplicated[0]), "name", f"used by more than one card: {', '.join(sources)}")
    return cards


def cards_from_dicts(dicts: list[dict]) -> list[TaskCard]:
    """Cards stored with a trained model (``config.task_cards``): no dataset needed to run them."""
    return [TaskCard.from_dict(d, source="saved with the model", check_dataset=False) for d in dicts]


def tasks_from_dicts(dicts: list[dict] | None) -> dict[str, TaskCard]:
    """``model.tasks`` / ``processor.tasks``: the stored cards by name."""
    return {card.name: card for card in cards_from_dicts(dicts or [])}


def get_task(tasks: dict[str, TaskCard], name: str) -> TaskCard:
    """The card called ``name``; an unknown name is an error that lists the known ones."""
    if name not in tasks:
        known = ", ".join(sorted(tasks)) if tasks else "none (this model carries no task cards: give an instruction)"
        raise ValueError(f"unknown task {name!r}; the model's tasks: {known}")
    return tasks[name]


def scored_columns(plan: TaskPlan) -> set[str]:
    """Columns of the scored decoder slots of every template: what inference must not be given."""
    return {s.column for t in plan.templates for s in t.targets()}


def inference_row(plan: TaskPlan, row: dict) -> dict:
    """A row without its target columns, so the decoder gets only its prompt."""
    targets = scored_columns(plan)
    return {k: v for k, v in row.items() if k not in targets}


def generation_kwargs(plan: TaskPlan) -> dict[str, int]:
    """``generate()`` settings of a plan (its card's ``generation``, or the generator's defaults)."""
    return {"num_beams": plan.generator.num_beams, "max_new_tokens": plan.generator.max_new_tokens}


@functools.lru_cache(maxsize=64)
def _load_dataset_cached(path: str, name: str | None, data_files: str | None):
    import datasets  # noqa: PLC0415

    local = Path(path)
    if local.is_dir() and ((local / "dataset_dict.json").exists() or (local / "dataset_info.json").exists()):
        loaded = datasets.load_from_disk(str(local))
        return loaded if isinstance(loaded, datasets.DatasetDict) else datasets.DatasetDict({"train": loaded})
    if local.suffix == ".parquet" or (local.is_dir() and any(local.glob("**/*.parquet"))):
        files = str(local) if local.is_file() else str(local / "**" / "*.parquet")
        return datasets.load_dataset("parquet", data_files=yaml.safe_load(data_files) if data_files else files)
    return datasets.load_dataset(path, name, data_files=yaml.safe_load(data_files) if data_files else None)


def _load_dataset(spec: dict):
    data_files = spec.get("data_files")
    return _load_dataset_cached(
        str(spec["path"]), spec.get("name"), yaml.safe_dump(data_files) if data_files is not None else None
    )


def _target_column(plan: TaskPlan) -> str:
    targets = plan.templates[0].targets()
    return targets[0].column if targets else ""


def _check_keys(mapping: dict, known: set, where: str, prefix: str) -> None:
    if not isinstance(mapping, dict):
        raise CardError(where, prefix.rstrip(".") or "(top level)", f"must be a mapping, got {type(mapping).__name__}")
    for key in mapping:
        if key not in known:
            raise CardError(where, f"{prefix}{key}", f"unknown key; known keys: {', '.join(sorted(known))}")


def _column_map(spec, where: str, key: str) -> ColumnMap:
    if isinstance(spec, str):
        return ColumnMap(spec)
    if not isinstance(spec, dict) or "column" not in spec:
        raise CardError(where, key, "must be a dataset column name or {column: ..., transform: ...}")
    _check_keys(spec, COLUMN_KEYS, where, key + ".")
    transform = spec.get("transform")
    if transform is not None and transform not in TRANSFORMS:
        raise CardError(where, f"{key}.transform", f"unknown transform {transform!r}; known: {', '.join(TRANSFORMS)}")
    return ColumnMap(spec["column"], transform, spec.get("sep", " "))


def _read_label_file(name: str, source: str | None, where: str) -> list[str]:
    path = Path(name)
    if not path.is_absolute() and source:
        path = Path(source).parent / path
    if not path.is_file():
        raise CardError(where, "generation.closed_set.file", f"label file {path} does not exist")
    labels = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not labels:
        raise CardError(where, "generation.closed_set.file", f"label file {path} is empty")
    return labels
