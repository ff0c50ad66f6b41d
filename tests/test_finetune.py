"""`ofa-plus finetune`: a briefly trained toy generalist learns a task it never saw (which alphabet
a letter's Unicode name belongs to) with LoRA, beats the untuned model on the card's metric, and
the merged result loads as a plain model and runs through pipeline() by task name."""

from __future__ import annotations

import json
import random
import unicodedata
from pathlib import Path

import datasets
import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForSeq2SeqLM, pipeline

from conftest import digit_image
from generalist import toy_generalist
from ofa_plus import OFAPlusForConditionalGeneration, cli

pytestmark = pytest.mark.slow  # every test here trains a model first

SCRIPTS = ("latin", "greek", "cyrillic")


def write_script_card(folder: Path) -> Path:
    """A new task from unicodedata: 'latin small letter a with grave' -> 'latin'; 56 letters per
    alphabet (10 test, 6 validation, 40 train each), so the most frequent answer scores a third."""
    letters = {s: [] for s in SCRIPTS}
    for code in [*range(0x00C0, 0x0250), *range(0x0391, 0x03CA), *range(0x0410, 0x0450)]:
        name = unicodedata.name(chr(code), "").lower()
        if name.split(" ")[0] in letters:
            letters[name.split(" ")[0]].append({"name": name, "script": name.split(" ")[0]})
    rng = random.Random(0)
    splits = {"train": [], "validation": [], "test": []}
    for rows in letters.values():
        rng.shuffle(rows)
        splits["test"] += rows[:10]
        splits["validation"] += rows[10:16]
        splits["train"] += rows[16:56]
    rng.shuffle(splits["train"])
    features = datasets.Features({"name": datasets.Value("string"), "script": datasets.Value("string")})
    datasets.DatasetDict(
        {k: datasets.Dataset.from_list(v, features=features) for k, v in splits.items()}
    ).save_to_disk(str(folder / "data" / "script"))
    card = folder / "script.yaml"
    card.write_text(
        yaml.safe_dump(
            {
                "name": "script",
                "instruction": 'which alphabet is " [TEXT:name] " from? -> [TEXT:script,closed_set]',
                "dataset": {"path": str(folder / "data" / "script")},
                "metrics": ["accuracy"],
                "generation": {"closed_set": {"column": "script"}},
                "training": {"batch_size": 16},
            }
        )
    )
    return card


@pytest.fixture(scope="module")
def generalist(tmp_path_factory) -> Path:
    return toy_generalist(tmp_path_factory) / "run" / "final"


@pytest.fixture(scope="module")
def card(tmp_path_factory) -> Path:
    return write_script_card(tmp_path_factory.mktemp("new_task"))


def test_lora_finetune_beats_the_untuned_model_and_runs_by_name(generalist, card, tmp_path):
    out = tmp_path / "script"
    cli.main(
        [
            "finetune",
            "--model",
            str(generalist),
            "--card",
            str(card),
            "--output",
            str(out),
            "--lora",
            "--steps",
            "150",
            "--lr",
            "3e-3",
        ]
    )
    results = json.loads((out / "results.json").read_text())
    untuned, tuned = results["untuned"]["scores"]["accuracy"], results["results"][0]["scores"]["accuracy"]
    baseline = results["results"][0]["baseline"]["accuracy"]
    assert baseline == pytest.approx(100 / 3)  # always answering one alphabet
    assert tuned >= 80 and tuned > untuned + 30 and tuned > baseline + 30
    # it reads its input: given other rows' predictions, the same references score far lower
    assert results["results"][0]["swapped_scores"]["accuracy"] < tuned - 30

    # LoRA is merged: a plain model, same parameter names as the generalist, embeddings untouched
    model = AutoModelForSeq2SeqLM.from_pretrained(out)
    assert type(model) is OFAPlusForConditionalGeneration
    before, after = load_file(generalist / "model.safetensors"), load_file(out / "model.safetensors")
    assert before.keys() == after.keys()
    assert torch.equal(before["model.shared.weight"], after["model.shared.weight"])
    assert not torch.equal(
        before["model.decoder.layers.0.cross_attn.q_proj.weight"],
        after["model.decoder.layers.0.cross_attn.q_proj.weight"],
    )
    assert sorted(model.tasks) == ["characters", "digits", "script"]
    assert model.tasks["script"].closed_set == sorted(SCRIPTS)

    pipe = pipeline("multimodal-instruction", model=str(out))
    test = datasets.load_from_disk(str(card.parent / "data" / "script"))["test"]
    answers = pipe(task="script", name=list(test["name"]), batch_size=16)
    accuracy = 100 * sum(a == s for a, s in zip(answers, test["script"])) / len(test)
    assert accuracy == pytest.approx(tuned)
    readme = (out / "README.md").read_text()
    assert "### `script`" in readme and "model-index" in readme and '"lora": true' not in readme
    assert json.loads((out / "args.json").read_text())["lora_targets"] == [
        "qkv_proj",
        "q_proj",
        "kv_proj",
        "out_proj",
        "fc1",
        "fc2",
    ]


def test_full_finetune_updates_every_weight_and_keeps_the_old_tasks(generalist, card, tmp_path):
    out = tmp_path / "full"
    cli.main(
        [
            "finetune",
            "--model",
            str(generalist),
            "--card",
            str(card),
            "--output",
            str(out),
            "--steps",
            "2",
            "--eval-limit",
            "6",
        ]
    )
    before, after = load_file(generalist / "model.safetensors"), load_file(out / "model.safetensors")
    assert not torch.equal(before["model.shared.weight"], after["model.shared.weight"])
    model = AutoModelForSeq2SeqLM.from_pretrained(out)
    assert sorted(model.tasks) == ["characters", "digits", "script"]
    assert (
        pipeline("multimodal-instruction", model=str(out))(task="digits", image=digit_image(7))
        in model.tasks["digits"].closed_set
    )


def test_finetune_errors_say_what_to_do(generalist, card, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["finetune", "--model", str(tmp_path / "nothing"), "--card", str(card), "--output", str(tmp_path)])
    assert exit_.value.code == 2 and "no trained model at" in capsys.readouterr().err
    two = tmp_path / "two_cards"
    two.mkdir()
    for name in ("a", "b"):
        (two / f"{name}.yaml").write_text(card.read_text().replace("name: script", f"name: {name}"))
    with pytest.raises(SystemExit):
        cli.main(["finetune", "--model", str(generalist), "--card", str(two), "--output", str(tmp_path / "x")])
    assert "--card takes one task card" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["finetune", "--model", str(generalist), "--card", str(tmp_path / "no.yaml"), "--output", "x"])
    assert "task card path" in capsys.readouterr().err
