"""Share on the Hugging Face Hub: a model with its processor, task cards and a generated model card
in one commit; a dataset with a dataset card.

    from ofa_plus import hub
    hub.push_model("runs/default/final", "me/ofa-plus-tiny", results="runs/default/results.json")
    hub.push_dataset("data/default/mnist", "me/mnist-names", license="cc-by-sa-3.0")

The model card's metadata (`ModelCardData`) carries ``library_name``, ``pipeline_tag``, tags,
datasets, the base model and the evaluation script's results as the ``model-index``; its body lists
each task with its instruction and how to run it, the training settings and the results table.
``model.push_to_hub(repo)`` / ``processor.push_to_hub(repo)`` work as for any transformers model.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

import datasets as hf_datasets
from huggingface_hub import DatasetCard, DatasetCardData, HfApi, ModelCard

from . import __version__
from .evaluation import model_index_entries, results_table, task_type, weights_fingerprint
from .model_card import card_data
from .task_card import TaskCard, tasks_from_dicts

LIBRARY_TAGS = ["ofa-plus", "multimodal", "generalist", "multi-task"]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")
_PLACEHOLDERS = {"IMAGE": '"image.png"', "BOX": "(10, 10, 60, 60)", "TEXT": '"..."', "STRUCT": '"..."'}


def is_repo_id(name: str) -> bool:
    """A Hub id ("user/name" or "name"), not a local path."""
    return bool(_REPO_ID.match(str(name))) and not Path(str(name)).exists() and ".." not in str(name)


def read_results(results: str | Path | dict | None) -> list[dict]:
    """The per-task entries of the evaluation script's ``results.json`` (a path or the loaded dict)."""
    if results is None:
        return []
    data = json.loads(Path(results).read_text()) if isinstance(results, (str, Path)) else results
    if "results" not in data:
        raise ValueError(f"{results}: not a results file of `ofa-plus evaluate` (no 'results' key)")
    return data["results"]


def check_results(results: str | Path | dict, model) -> None:
    """Refuse a results file that was not made from ``model``: its recorded weights fingerprint
    (`weights_fingerprint`, written by `ofa-plus evaluate` and `ofa-plus finetune`) must match."""
    data = json.loads(Path(results).read_text()) if isinstance(results, (str, Path)) else results
    name = results if isinstance(results, (str, Path)) else "the results"
    recorded, actual = data.get("weights_sha256"), weights_fingerprint(model)
    how = "evaluate this model: `ofa-plus evaluate --model MODEL --output results.json`"
    if recorded is None:
        raise ValueError(f"{name} does not record which model it scores (no 'weights_sha256'); {how}")
    if recorded != actual:
        raise ValueError(
            f"{name} scores another model (weights sha256 {recorded[:12]}..., this model's is "
            f"{actual[:12]}...) from {data.get('model', '?')}; {how}"
        )


def pipeline_tag(cards: list[TaskCard]) -> str:
    """The Hub pipeline tag: the one task's type, else image-text-to-text (any image input) or text2text."""
    if len(cards) == 1:
        return task_type(cards[0])
    images = any(s.slot.modality == "IMAGE" for c in cards for s in c.plan.templates[0].slots("encoder"))
    return "image-text-to-text" if images else "text2text-generation"


# ---------------------------------------------------------------------------------------------- model card
def model_card(
    model,
    repo_id: str,
    *,
    results: str | Path | dict | None = None,
    base_model: str | None = None,
    datasets: list[str] | None = None,
    tags: list[str] | None = None,
    license: str | None = None,
    training_args: dict | None = None,
) -> ModelCard:
    """The README of a trained model: metadata (eval results as model-index) and a readable body."""
    cards = list(tasks_from_dicts(getattr(model.config, "task_cards", None)).values())
    entries = read_results(results)
    index_entries = model_index_entries(entries)
    for entry in index_entries:  # a local dataset path is no Hub dataset id: name it by its folder
        if not is_repo_id(entry["dataset_type"]):
            entry["dataset_type"] = f"local/{Path(entry['dataset_type']).name}"
            entry["dataset_name"] = f"{entry['task']} ({entry['dataset_type']})"
    hub_datasets = sorted(
        {*(datasets or []), *(str(c.dataset["path"]) for c in cards if is_repo_id(str(c.dataset["path"])))}
    )
    data = card_data(
        index_entries,
        repo_id.split("/")[-1],
        library_name="transformers",
        pipeline_tag=pipeline_tag(cards) if cards else None,
        tags=LIBRARY_TAGS + list(tags or []),
        datasets=hub_datasets or None,
        base_model=base_model if base_model and is_repo_id(base_model) else None,
        license=license,
    )
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + card_body(repo_id, cards, entries, training_args))


def card_body(repo_id: str, cards: list[TaskCard], entries: list[dict], training_args: dict | None) -> str:
    name = repo_id.split("/")[-1]
    lines = [
        f"# {name}",
        "",
        f"A generalist multi-modal model built with `ofa_plus`: one OFA+-style encoder-decoder that runs "
        f"{_count(len(cards), 'task')}, each declared by a one-line multi-modal instruction. `import ofa_plus` "
        "registers it with the transformers Auto classes and the `multimodal-instruction` pipeline.",
        "",
        "```bash",
        f"pip install 'ofa_plus>={__version__}'    # or, in a checkout of its source: pip install -e .",
        "```",
        "",
        "```python",
        "import ofa_plus",
        "from transformers import AutoModelForSeq2SeqLM, AutoProcessor, pipeline",
        "",
        f'model = AutoModelForSeq2SeqLM.from_pretrained("{repo_id}")',
        f'processor = AutoProcessor.from_pretrained("{repo_id}")',
        "print(list(model.tasks))                 # the tasks below, with their cards",
        f'pipe = pipeline("multimodal-instruction", model="{repo_id}")',
        "```",
        "",
        "## Tasks",
        "",
    ]
    samples = {e["task"]: e.get("samples") or [] for e in entries}
    for card in cards:
        lines += _task_section(repo_id, card, samples.get(card.name, []))
    lines += ["## Training", ""]
    if cards:
        lines += ["| task | batch size | sampling weight | loss weight |", "|---|---:|---:|---:|"]
        lines += [
            f"| {c.name} | {c.training.batch_size} | {c.training.weight:g} | {c.training.loss_weight:g} |"
            for c in cards
        ]
        lines.append("")
    if training_args:
        shown = {k: _public(v) for k, v in training_args.items() if v not in (None, False, [], "") and k != "output"}
        lines += [f"- `{k}`: {json.dumps(v) if isinstance(v, (list, dict)) else v}" for k, v in shown.items()]
        lines.append("")
    lines += ["## Results", ""]
    if entries:
        lines += [
            "Each task's held-out split, next to a trivial baseline (`ofa-plus evaluate`):",
            "",
            results_table(entries),
            "",
        ]
    else:
        lines += ["Not evaluated yet: `ofa-plus evaluate --model DIR --output results.json`.", ""]
    return "\n".join(lines)


def _task_section(repo_id: str, card: TaskCard, samples: list[dict]) -> list[str]:
    plan = card.plan
    example = samples[0]["inputs"] if samples else {}
    args = [f"task={json.dumps(card.name)}"]
    for slot in plan.templates[0].slots("encoder"):
        value = example.get(slot.column)
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, str) and len(value) <= 80 else None
        args.append(f"{slot.column}={shown or _PLACEHOLDERS.get(slot.slot.modality, '...')}")
    g = plan.generator
    if g.closed_set:
        shown = ", ".join(f"`{c}`" for c in g.closed_set[:8]) + (", ..." if len(g.closed_set) > 8 else "")
        output = f"one of {len(g.closed_set)} answers ({shown})"
    else:
        output = {"box": "a box (x0, y0, x1, y1) in pixels", "sequence": "a dict of the target columns"}.get(
            g.kind, "text"
        )
    lines = [f"### `{card.name}`", ""]
    if card.description:
        lines += [card.description, ""]
    lines.append(f"- instruction: `{card.instructions[0]}`")
    if card.instructions[1:]:
        lines.append(f"- other templates: {', '.join(f'`{i}`' for i in card.instructions[1:])}")
    lines += [
        f"- output: {output}",
        f"- generation: {_count(g.num_beams, 'beam')}, at most {g.max_new_tokens} new tokens",
        f"- metrics: {', '.join(card.metrics) or '-'}",
        "",
        "```python",
        "import ofa_plus, transformers",
        f'pipe = transformers.pipeline("multimodal-instruction", model="{repo_id}")',
        f"print(pipe({', '.join(args)}))",
        "```",
        "",
    ]
    return lines


def _public(value):
    """A setting as the card shows it: a path on the machine that trained (absolute, or naming
    something there) becomes its last part, so the card tells nothing of that machine's folders."""
    if isinstance(value, list):
        return [_public(v) for v in value]
    if isinstance(value, str) and not is_repo_id(value) and (Path(value).is_absolute() or Path(value).exists()):
        return f".../{Path(value).name}"
    return value


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


# ---------------------------------------------------------------------------------------------- pushing
def push_model(
    model,
    repo_id: str,
    *,
    processor=None,
    results: str | Path | dict | None = None,
    base_model: str | None = None,
    datasets: list[str] | None = None,
    tags: list[str] | None = None,
    license: str | None = None,
    training_args: dict | None = None,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload ofa_plus model",
) -> str:
    """Push model + processor (both carrying the task cards) + README in one commit; returns its URL.

    ``model`` is a trained model or its folder; with a folder, ``results`` defaults to a
    ``results.json`` in it or beside it and ``training_args`` to its run's ``args.json``."""
    from .modeling_ofa_plus import OFAPlusForConditionalGeneration  # noqa: PLC0415
    from .processing_ofa_plus import OFAPlusProcessor  # noqa: PLC0415

    checked = False  # whether the results were already checked against the model
    if isinstance(model, (str, Path)):
        folder = Path(model)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(
                f"no trained model in {folder} (no config.json); give the folder that "
                "`ofa-plus train` wrote as <output>/final, or `ofa-plus finetune`'s --output"
            )
        model = OFAPlusForConditionalGeneration.from_pretrained(folder)
        processor = processor or OFAPlusProcessor.from_pretrained(folder)
        if results is None and (found := _beside(folder, "results.json")):
            checked = True
            try:
                check_results(found, model)
                results = found
            except ValueError as err:  # not asked for: leave it out rather than refuse the push
                print(f"not putting {found} in the model card: {err}")
        args = _beside(folder, "args.json")
        training_args = training_args if training_args is not None or args is None else json.loads(args.read_text())
    if results is not None and not checked:
        check_results(results, model)
    if processor is None:
        raise ValueError("push_model needs the processor too: push_model(model, repo_id, processor=processor)")
    processor.task_cards = list(getattr(model.config, "task_cards", None) or [])  # their store: the model config
    card = model_card(
        model,
        repo_id,
        results=results,
        base_model=base_model,
        datasets=datasets,
        tags=tags,
        license=license,
        training_args=training_args,
    )
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, private=private, exist_ok=True).repo_id
    with tempfile.TemporaryDirectory() as folder:
        model.save_pretrained(folder)
        processor.save_pretrained(folder)
        card.save(Path(folder) / "README.md")
        commit = api.upload_folder(repo_id=repo_id, folder_path=folder, commit_message=commit_message)
    return commit.commit_url


def _beside(folder: Path, name: str) -> Path | None:
    return next((p for p in (folder / name, folder.parent / name) if p.is_file()), None)


# ---------------------------------------------------------------------------------------------- datasets
def size_category(rows: int) -> str:
    for limit, name in (
        (1_000, "n<1K"),
        (10_000, "1K<n<10K"),
        (100_000, "10K<n<100K"),
        (1_000_000, "100K<n<1M"),
        (10_000_000, "1M<n<10M"),
    ):
        if rows < limit:
            return name
    return "10M<n<100M"


def dataset_card(
    dataset: hf_datasets.DatasetDict,
    *,
    pretty_name: str,
    repo_id: str = "REPO_ID",
    description: str | None = None,
    license: str | None = None,
    task_categories: list[str] | None = None,
    tags: list[str] | None = None,
) -> DatasetCard:
    """A dataset card: metadata (license, size, task categories) and a body with splits and features."""
    description = description or next(iter(dataset.values())).info.description or ""
    rows = sum(len(split) for split in dataset.values())
    data = DatasetCardData(
        pretty_name=pretty_name,
        license=license,
        task_categories=task_categories,
        size_categories=[size_category(rows)],
        tags=LIBRARY_TAGS[:1] + list(tags or []),
    )
    first = next(iter(dataset.values()))
    lines = [
        f"# {pretty_name}",
        "",
        *([description, ""] if description else []),
        "## Splits",
        "",
        "| split | rows |",
        "|---|---:|",
    ]
    lines += [f"| {name} | {len(split)} |" for name, split in dataset.items()]
    lines += ["", "## Features", "", "| column | type |", "|---|---|"]
    lines += [f"| {name} | `{_feature(feature)}` |" for name, feature in first.features.items()]
    lines += [
        "",
        "## Use",
        "",
        "```python",
        "import datasets",
        f'data = datasets.load_dataset("{repo_id}")',
        "```",
        "",
        f"In an `ofa_plus` task card: `dataset: {{path: {repo_id}}}`.",
        "",
    ]
    return DatasetCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines))


def _feature(feature) -> str:
    return getattr(feature, "dtype", None) if isinstance(feature, hf_datasets.Value) else type(feature).__name__


def push_dataset(
    dataset: hf_datasets.DatasetDict | str | Path,
    repo_id: str,
    *,
    pretty_name: str | None = None,
    description: str | None = None,
    license: str | None = None,
    task_categories: list[str] | None = None,
    tags: list[str] | None = None,
    private: bool | None = None,
    token: str | None = None,
) -> str:
    """Push a `DatasetDict` (or a ``save_to_disk`` folder) as Parquet with its dataset card; returns the repo id.

    The card goes first, so ``DatasetDict.push_to_hub`` keeps its body and adds ``dataset_info`` and
    ``configs`` to its metadata."""
    if not isinstance(dataset, hf_datasets.DatasetDict):
        folder = Path(dataset)
        if not (folder / "dataset_dict.json").is_file():
            raise FileNotFoundError(
                f"no DatasetDict in {folder} (no dataset_dict.json); give a folder written by "
                "DatasetDict.save_to_disk, e.g. data/default/mnist"
            )
        pretty_name = pretty_name or folder.name
        dataset = hf_datasets.load_from_disk(str(folder))
    api = HfApi(token=token)
    repo_id = api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True).repo_id
    card = dataset_card(
        dataset,
        pretty_name=pretty_name or repo_id.split("/")[-1],
        repo_id=repo_id,
        description=description,
        license=license,
        task_categories=task_categories,
        tags=tags,
    )
    card.push_to_hub(repo_id, repo_type="dataset", token=token, commit_message="Add dataset card")
    dataset.push_to_hub(repo_id, private=private, token=token, commit_message="Upload data")
    return repo_id
