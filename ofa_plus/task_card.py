"""Task cards: one YAML file per task, checked completely when loaded (format: task_cards/README.md).

A card ties an instruction to a dataset (where it lives, how its columns fill the slots), to
metrics, and to generation and training settings. Every mistake a card can hold is found by
`load_cards`, before a run starts, and named with the card file and the key.
"""

from __future__ import annotations

import collections
import functools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .instruction import InstructionError
from .modalities import Attribute
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
CLOSED_SET_KEYS = {"column", "file"}
# a card's name becomes a file name (loss curves, specialist folders): no separators, no leading dot
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}")
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
        if not isinstance(data["name"], str) or not NAME_RE.fullmatch(data["name"]):
            raise CardError(
                where,
                "name",
                f"must be letters, digits, '_', '-' or '.' (at most 100, not starting with '.', '-' or '_'; "
                f"it names files), got {data['name']!r}",
            )
        if not isinstance(data.get("description", ""), str):
            raise CardError(where, "description", "must be a string")

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
        for key in ("path", "name"):
            if key in dataset and (not isinstance(dataset[key], str) or not dataset[key]):
                raise CardError(where, f"dataset.{key}", f"must be a non-empty string, got {dataset[key]!r}")
        dataset = {"splits": {role: role for role in SPLIT_ROLES}, **dataset}
        _check_keys(dataset["splits"], set(SPLIT_ROLES), where, "dataset.splits.", "unknown role; roles are")
        for role, split in dataset["splits"].items():
            if not isinstance(split, str) or not split:
                raise CardError(where, f"dataset.splits.{role}", f"must be a split name, got {split!r}")
        if "train" not in dataset["splits"]:
            raise CardError(where, "dataset.splits", "needs a 'train' split")

        columns = {}
        _check_keys(data.get("columns") or {}, None, where, "columns.")
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

        references = data.get("references")
        if references is not None and (not isinstance(references, str) or not references):
            raise CardError(where, "references", f"must be a dataset column name, got {references!r}")
        metrics = data.get("metrics") or []
        metrics = [metrics] if isinstance(metrics, str) else metrics
        if not isinstance(metrics, list):
            raise CardError(where, "metrics", f"must be a metric name or a list of them, got {metrics!r}")
        from .metrics import METRICS  # noqa: PLC0415 (metrics pull in scoring libraries; load them only here)

        for k, metric in enumerate(metrics):
            if not isinstance(metric, str) or metric not in METRICS:
                raise CardError(
                    where, f"metrics[{k}]", f"unknown metric {metric!r}; known: {', '.join(sorted(METRICS))}"
                )

        generation = data.get("generation") or {}
        _check_keys(generation, GENERATION_KEYS, where, "generation.")
        generation = dict(generation)
        for key in ("num_beams", "max_new_tokens"):  # generate() needs positive integers
            if key in generation and not _positive_int(generation[key]):
                raise CardError(where, f"generation.{key}", f"must be a positive integer, got {generation[key]!r}")
        training = data.get("training") or {}
        _check_keys(training, set(TrainingSettings.__dataclass_fields__), where, "training.")
        _check_training(training, where)
        settings = data.get("settings") or {}
        _check_settings(settings, plan, where)

        card = cls(
            name=data["name"],
            instructions=instructions,
            dataset=dataset,
            columns=columns,
            references=references,
            metrics=metrics,
            generation=generation,
            training=TrainingSettings(**{k: type(getattr(TrainingSettings, k))(v) for k, v in training.items()}),
            settings=settings,
            description=data.get("description", ""),
            source=source,
        )
        closed = generation.get("closed_set")
        _check_closed_set(closed, where)
        if isinstance(closed, list):
            card.closed_set = [str(c) for c in closed]
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
        _check_metrics_fit(metrics, card.plan, where)
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
            import datasets  # noqa: PLC0415

            train = splits[self.dataset["splits"]["train"]]
            feature = train.features[column]
            if not isinstance(feature, datasets.Value):  # candidates are plain strings or numbers
                raise CardError(
                    self.where,
                    "generation.closed_set.column",
                    f"column {column!r} holds {type(feature).__name__} values, not plain labels",
                )
            values = train.unique(column)
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
        text = file.read_text()
        try:
            duplicate = _duplicate_key(yaml.compose(text, Loader=yaml.SafeLoader))
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise CardError(str(file), "(yaml)", f"not valid YAML: {err}") from None
        if duplicate:
            key, line = duplicate
            raise CardError(str(file), key, f"given twice (the second time on line {line})")
        cards.append(TaskCard.from_dict(data, source=str(file), check_dataset=check_dataset))
    names = collections.Counter(c.name for c in cards)
    duplicated = [n for n, count in names.items() if count > 1]
    if duplicated:
        sources = [c.source for c in cards if c.name == duplicated[0]]
        raise CardError(repr(duplicated[0]), "name", f"used by more than one card: {', '.join(sources)}")
    return cards


def _duplicate_key(node, path: str = "") -> tuple[str, int] | None:
    """The first key given twice in one mapping of a composed YAML document, with its line, or None
    (plain YAML keeps the last value silently)."""
    if isinstance(node, yaml.MappingNode):
        seen = set()
        for key_node, value_node in node.value:
            key = f"{path}{key_node.value}"
            if key in seen:
                return key, key_node.start_mark.line + 1
            seen.add(key)
            found = _duplicate_key(value_node, key + ".")
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for k, item in enumerate(node.value):
            found = _duplicate_key(item, f"{path.rstrip('.')}[{k}].")
            if found:
                return found
    return None


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


def _check_keys(mapping: dict, known: set | None, where: str, prefix: str, unknown: str = "unknown key; known keys:"):
    """``mapping`` is a mapping whose keys are strings (and among ``known`` unless it is None)."""
    if not isinstance(mapping, dict):
        raise CardError(where, prefix.rstrip(".") or "(top level)", f"must be a mapping, got {type(mapping).__name__}")
    for key in mapping:
        if not isinstance(key, str):
            raise CardError(where, f"{prefix}{key}", f"keys must be strings, got {type(key).__name__} {key!r}")
        if known is not None and key not in known:
            raise CardError(where, f"{prefix}{key}", f"{unknown} {', '.join(sorted(known))}")


def _positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_training(training: dict, where: str) -> None:
    """Batch sizes are whole numbers; sampling and loss weights finite positive numbers."""
    for key, value in training.items():
        if isinstance(TrainingSettings.__dataclass_fields__[key].default, int):
            if not _positive_int(value):
                raise CardError(where, f"training.{key}", f"must be a positive integer, got {value!r}")
        elif not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
            raise CardError(where, f"training.{key}", f"must be a positive finite number, got {value!r}")


def _check_settings(settings: dict, plan: TaskPlan, where: str) -> None:
    """``settings: {column: {attribute: value}}``: each attribute must be one the column's slots take on
    their side, with a value of the attribute's type (as if written in the instruction)."""
    _check_keys(settings, None, where, "settings.")
    for column, values in settings.items():
        slots = [s for t in plan.templates for s in t.slots() if s.column == column]
        if not slots:
            raise CardError(where, f"settings.{column}", f"the instruction has no slot {column!r}")
        _check_keys(values, None, where, f"settings.{column}.")
        for name, value in values.items():
            key = f"settings.{column}.{name}"
            for s in slots:
                known = {a: spec for a, spec in s.modality.all_attributes().items() if spec.side in ("both", s.side)}
                if name not in known:
                    raise CardError(
                        where,
                        key,
                        f"{s.slot.modality} on the {s.side} side has no attribute {name!r}; "
                        f"known: {', '.join(sorted(known))}",
                    )
                problem = _setting_problem(known[name], value)
                if problem:
                    raise CardError(where, key, f"{problem}, got {value!r}")


def _setting_problem(spec: Attribute, value) -> str | None:
    """What is wrong with ``value`` for an attribute of this kind, or None."""
    if spec.kind is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if spec.kind == "choices":
        if isinstance(value, list) and value and all(isinstance(v, (str, int, float)) and str(v) for v in value):
            return None
        return "must be a non-empty list of candidates"
    if spec.kind is str:
        return None if isinstance(value, str) and value.strip() else "must be a non-empty string"
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if spec.kind is int and not (number and isinstance(value, int)):
        return "must be an integer"
    if spec.kind is float and not (number and math.isfinite(value)):
        return "must be a finite number"
    if spec.minimum is not None and value < spec.minimum:
        return f"must be >= {spec.minimum}"
    if spec.maximum is not None and value > spec.maximum:
        return f"must be <= {spec.maximum}"
    return None


def _check_closed_set(closed, where: str) -> None:
    key = "generation.closed_set"
    if closed is None:
        return
    if isinstance(closed, list):
        for k, candidate in enumerate(closed):
            if (
                not isinstance(candidate, (str, int, float))
                or isinstance(candidate, bool)
                or not str(candidate).strip()
            ):
                raise CardError(where, f"{key}[{k}]", f"a candidate must be a non-empty string, got {candidate!r}")
        if not closed:
            raise CardError(where, key, "an empty list of candidates")
        return
    if not isinstance(closed, dict):
        raise CardError(where, key, "must be a list, {column: ...} or {file: ...}")
    _check_keys(closed, CLOSED_SET_KEYS, where, key + ".")
    if len(closed) != 1:
        raise CardError(where, key, "give exactly one of {column: ...} and {file: ...}")
    ((name, value),) = closed.items()
    if not isinstance(value, str) or not value:
        raise CardError(where, f"{key}.{name}", f"must be a non-empty string, got {value!r}")


def _check_metrics_fit(metrics: list[str], plan: TaskPlan, where: str) -> None:
    """A metric scores one kind of prediction (text, a box, audio); the task must produce that kind."""
    from .metrics import METRICS  # noqa: PLC0415

    produced = prediction_kind(plan)
    for k, metric in enumerate(metrics):
        scores = METRICS[metric].prediction
        if scores != produced:
            raise CardError(
                where,
                f"metrics[{k}]",
                f"metric {metric!r} scores {scores} predictions, but the task's target gives {produced}",
            )


def prediction_kind(plan: TaskPlan) -> str:
    """What a task's prediction is, as metrics see it: "box", "audio" or "text"."""
    if plan.generator.kind == "box":
        return "box"
    return "audio" if plan.output_kind == "speech" else "text"


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
