"""Sharing through the Hub, against a local fake Hub on 127.0.0.1 (tests/fake_hub.py) so the real
huggingface_hub / transformers / datasets client code runs: push a trained model (one-call helper,
and model.push_to_hub / processor.push_to_hub), load it back by repo id, get the same generations
and task cards; the pushed README's metadata holds the evaluation results; datasets push with a card."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import datasets
import pytest
import torch
from huggingface_hub import DatasetCard, ModelCard, ModelCardData
from huggingface_hub.repocard_data import model_index_to_eval_results
from safetensors.torch import load_file
from transformers import pipeline

from fake_hub import FakeHub
from generalist import toy_generalist
from ofa_plus import OFAPlusForConditionalGeneration, evaluation, hub

ROOT = Path(__file__).resolve().parents[1]
CHARACTERS = ["é", "Ω", "ß", "Ā"]

# What a user runs, in a process whose environment points huggingface_hub at the fake Hub.
CLIENT = textwrap.dedent(
    """
    import json, sys
    import datasets, torch
    import ofa_plus
    from huggingface_hub import DatasetCard, ModelCard
    from transformers import AutoModelForSeq2SeqLM, AutoProcessor, pipeline
    from ofa_plus import hub

    def sampled(pipe):  # seeded sampling: outputs that differ row by row, identical for identical models
        torch.manual_seed(0)
        return pipe(task="characters", character=%r, do_sample=True, temperature=3.0, top_k=20, batch_size=4)

    run, digits, out = sys.argv[1:4]
    hub.push_model(run + "/final", "me/toy", results=run + "/results.json", datasets=["me/digits"])
    model = AutoModelForSeq2SeqLM.from_pretrained(run + "/final")
    processor = AutoProcessor.from_pretrained(run + "/final")
    model.push_to_hub("me/toy-raw")
    processor.push_to_hub("me/toy-raw")
    hub.push_dataset(digits, "me/digits", license="mit", task_categories=["image-classification"])

    result = {}
    for repo in ("me/toy", "me/toy-raw"):
        loaded = AutoModelForSeq2SeqLM.from_pretrained(repo)
        pipe = pipeline("multimodal-instruction", model=repo)
        result[repo] = {
            "model_tasks": sorted(loaded.tasks), "processor_cards": pipe.processor.task_cards,
            "config_cards": loaded.config.task_cards,
            "characters": pipe(task="characters", character=%r, batch_size=2),
            "digits": pipe(task="digits", image=[digits + "/" + f for f in ("0.png", "1.png", "2.png")]),
            "sampled": sampled(pipe),
        }
    card = ModelCard.load("me/toy")
    result["card"] = {"eval": [[r.task_name, r.metric_type, r.metric_value] for r in card.data.eval_results],
                      "text": card.text}
    data = datasets.load_dataset("me/digits")
    result["dataset"] = {split: [len(data[split]), list(data[split]["label"])] for split in data}
    result["dataset_card"] = DatasetCard.load("me/digits", repo_type="dataset").data.to_dict()
    open(out, "w").write(json.dumps(result))
"""
    % (CHARACTERS, CHARACTERS)
)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = toy_generalist(tmp_path_factory)
    evaluation.main(
        ["--model", str(root / "run" / "final"), "--output", str(root / "run" / "results.json"), "--limit", "8"]
    )
    return root / "run"


@pytest.fixture(scope="module")
def digits(run) -> Path:
    """The toy digits DatasetDict, plus three of its images as files for the client."""
    folder = run.parent / "data" / "digits"
    for i, example in enumerate(datasets.load_from_disk(str(folder))["test"].select(range(3))):
        example["image"].save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def pushed(run, digits, tmp_path_factory) -> tuple[dict, Path]:
    """Run the client once against a fresh fake Hub; its report and the Hub's storage folder."""
    tmp = tmp_path_factory.mktemp("hub")
    with FakeHub(tmp / "storage") as fake:
        script = tmp / "client.py"
        script.write_text(CLIENT)
        env = {**os.environ, **fake.env(cache=tmp / "hf_home"), "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
        done = subprocess.run(
            [sys.executable, str(script), str(run), str(digits), str(tmp / "out.json")],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-5000:]
    return json.loads((tmp / "out.json").read_text()), tmp / "storage"


def local_outputs(run: Path, digits: Path) -> dict:
    pipe = pipeline("multimodal-instruction", model=str(run / "final"))
    torch.manual_seed(0)
    sampled = pipe(task="characters", character=CHARACTERS, do_sample=True, temperature=3.0, top_k=20, batch_size=4)
    return {
        "characters": pipe(task="characters", character=CHARACTERS, batch_size=2),
        "digits": pipe(task="digits", image=[str(digits / f"{i}.png") for i in range(3)]),
        "sampled": sampled,
    }


@pytest.mark.slow
def test_push_then_load_by_repo_id_gives_the_same_model(pushed, run, digits):
    report, storage = pushed
    expected = local_outputs(run, digits)
    local_cards = json.loads((run / "final" / "config.json").read_text())["task_cards"]
    for repo in ("me/toy", "me/toy-raw"):
        files = {p.name for p in (storage / "model" / repo).iterdir()}
        assert {
            "config.json",
            "model.safetensors",
            "processor_config.json",
            "tokenizer_config.json",
            "README.md",
        } <= files, repo
        remote = load_file(storage / "model" / repo / "model.safetensors")
        local = load_file(run / "final" / "model.safetensors")
        assert remote.keys() == local.keys() and all(torch.equal(remote[k], local[k]) for k in local), repo
        got = report[repo]
        assert got["characters"] == expected["characters"] and got["digits"] == expected["digits"], repo
        # the same seeded samples, and not one constant string: the rows' samples differ
        assert got["sampled"] == expected["sampled"] and len(set(expected["sampled"])) > 1, repo
        assert got["model_tasks"] == ["characters", "digits"]
        assert got["config_cards"] == local_cards and got["processor_cards"] == local_cards, repo
    digits_card = next(c for c in local_cards if c["name"] == "digits")
    assert len(digits_card["generation"]["closed_set"]) == 10  # the column's values, materialised


@pytest.mark.slow
def test_pushed_model_card_holds_metadata_and_eval_results(pushed, run):
    report, storage = pushed
    card = ModelCard.load(storage / "model" / "me" / "toy" / "README.md")
    data = card.data
    assert data.library_name == "transformers" and data.pipeline_tag == "image-text-to-text"
    assert {"ofa-plus", "multimodal"} <= set(data.tags) and data.datasets == ["me/digits"]
    ModelCardData(**data.to_dict())  # the metadata round-trips through huggingface_hub's own class
    name, results = model_index_to_eval_results(data.to_dict()["model-index"])
    assert name == "toy"
    scores = {
        (e["task"], m): v
        for e in json.loads((run / "results.json").read_text())["results"]
        for m, v in e["scores"].items()
    }
    metric_types = {"accuracy": "accuracy", "exact_match": "exact_match", "bleu4": "bleu"}
    assert {(r.task_name, r.metric_type): r.metric_value for r in results} == {
        (task, metric_types[m]): round(v, 2) for (task, m), v in scores.items()
    }
    assert sorted(map(tuple, report["card"]["eval"])) == sorted(
        (r.task_name, r.metric_type, r.metric_value) for r in results
    )
    body = card.text
    for text in (
        "## Tasks",
        "### `digits`",
        "[IMAGE:image] what does the image describe? -> [TEXT:label,closed_set]",
        'pipe(task="characters", character=',
        "## Training",
        "| digits | 8 | 1 | 1 |",
        "`max_steps`: 20",
        "## Results",
        "| digits | accuracy |",
    ):
        assert text in body, text


@pytest.mark.slow
def test_model_card_snippets_run_as_written(run, digits):
    """Each task's three-line snippet, pointed at the local folder, runs and returns the task's output."""
    card = hub.model_card(
        OFAPlusForConditionalGeneration.from_pretrained(run / "final"), "me/toy", results=run / "results.json"
    )
    blocks = card.text.split("```python\n")[2:]  # after the loading example: one block per task
    assert len(blocks) == 2
    for block in blocks:
        code = (
            block.split("```")[0]
            .replace('"me/toy"', repr(str(run / "final")))
            .replace('"image.png"', repr(str(digits / "0.png")))
        )
        assert len(code.strip().splitlines()) == 3
        printed = []
        exec(code, {"print": printed.append})  # noqa: S102 (our own generated snippet)
        assert len(printed) == 1 and isinstance(printed[0], str)
    assert (
        printed[0]
        in [c for c in json.loads((run / "final" / "config.json").read_text())["task_cards"] if c["name"] == "digits"][
            0
        ]["generation"]["closed_set"]
    )


@pytest.mark.slow
def test_dataset_push_with_card(pushed, digits):
    report, storage = pushed
    original = datasets.load_from_disk(str(digits))
    assert report["dataset"] == {split: [len(original[split]), list(original[split]["label"])] for split in original}
    files = {
        str(p.relative_to(storage / "dataset" / "me" / "digits"))
        for p in (storage / "dataset" / "me" / "digits").rglob("*")
        if p.is_file()
    }
    assert {"README.md", "data/train-00000-of-00001.parquet", "data/test-00000-of-00001.parquet"} <= files
    card = report["dataset_card"]
    assert card["license"] == "mit" and card["size_categories"] == ["n<1K"]
    assert card["task_categories"] == ["image-classification"]
    assert card["dataset_info"]["splits"][0]["num_examples"] == len(original["train"])  # datasets kept our card
    text = DatasetCard.load(storage / "dataset" / "me" / "digits" / "README.md").text
    assert "| train | 152 |" in text and "| image | `Image` |" in text and 'load_dataset("me/digits")' in text


def test_push_errors_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="no trained model in .* give the folder"):
        hub.push_model(tmp_path, "me/x")
    with pytest.raises(FileNotFoundError, match="no DatasetDict in .*save_to_disk"):
        hub.push_dataset(tmp_path, "me/x")
