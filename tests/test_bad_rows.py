"""Unreadable rows (a corrupt image) are treated alike by training, evaluation and the pipeline:
left out, counted, and named by task, split, row, slot and reason."""

from __future__ import annotations

import json
import logging
import random
import shutil

import datasets
import pytest
from transformers import pipeline

from conftest import digit_image, small_config
from generalist import toy_generalist
from ofa_plus import OFAPlusProcessor, evaluation
from ofa_plus.multitask import TaskStream, collate
from ofa_plus.task_card import load_cards
from ofa_plus.train import report_skipped
from toy_suite import write_toy_suite

NOT_AN_IMAGE = b"\x89PNG\r\n\x1a\n not really a png"


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return toy_generalist(tmp_path_factory)


@pytest.fixture(scope="module")
def corrupt_cards(toy, tmp_path_factory):
    """The toy suite's cards on a copy of its data whose digits test rows 2 and 5 are not images."""
    root = tmp_path_factory.mktemp("corrupt_suite")
    shutil.copytree(toy / "data", root / "data")
    shutil.copytree(toy / "cards", root / "cards")
    digits = datasets.load_from_disk(str(toy / "data" / "digits"))
    features = digits["test"].features
    test = digits["test"].cast_column("image", datasets.Image(decode=False)).to_list()
    for i in (2, 5):
        test[i]["image"] = {"bytes": NOT_AN_IMAGE, "path": None}
    digits["test"] = datasets.Dataset.from_list(test, features=features)
    shutil.rmtree(root / "data" / "digits")
    digits.save_to_disk(str(root / "data" / "digits"))
    for card in (root / "cards").glob("*.yaml"):
        card.write_text(card.read_text().replace(str(toy / "data"), str(root / "data")))
    return root / "cards"


def test_evaluation_skips_counts_and_names_unreadable_rows(toy, corrupt_cards, tmp_path, capsys):
    output = tmp_path / "results.json"
    args = ["--model", str(toy / "run" / "final"), "--cards", str(corrupt_cards), "--output", str(output)]
    evaluation.main([*args, "--limit", "8"])
    printed = capsys.readouterr().out
    results = {r["task"]: r for r in json.loads(output.read_text())["results"]}
    digits = results["digits"]
    assert digits["rows"] == 8 and digits["failed"] == 2
    assert [(s["task"], s["split"], s["index"], s["slot"]) for s in digits["skipped_rows"]] == [
        ("digits", "test", 2, "[IMAGE:image]"),
        ("digits", "test", 5, "[IMAGE:image]"),
    ]
    assert all(
        "cannot read image" in s["reason"] and f"row {s['index']}," in s["reason"] for s in digits["skipped_rows"]
    )
    assert results["characters"]["skipped_rows"] == [] and results["characters"]["failed"] == 0
    # the printed table shows the failed rows, and a summary names them
    header = next(line for line in printed.splitlines() if line.startswith("| task"))
    assert "failed rows" in header
    digits_line = next(line for line in printed.splitlines() if line.startswith("| digits"))
    cells = [c.strip() for c in digits_line.split("|")]
    assert cells[header.split("|").index(" failed rows ")] == "2"
    assert "unreadable rows: task 'digits': 2 distinct row(s)" in printed
    assert "split 'test', row 2, slot [IMAGE:image]" in printed


def test_training_names_split_slot_and_the_real_row(tmp_path):
    cards = write_toy_suite(tmp_path, digits_rows=80, corrupt_rows=(3, 7))
    card = next(c for c in load_cards([str(cards)]) if c.name == "digits")
    processor = OFAPlusProcessor.for_config(small_config())
    stream = TaskStream.for_card(card, 0, seed=0)
    indices = [0, 3, 5, 7]
    batch, skipped = collate(processor, card, stream.rows(indices), indices, training=True, rng=random.Random(0))
    assert batch["pixel_values"].shape[0] == 2
    assert [(s.index, s.split, s.slot) for s in skipped] == [
        (3, "train", "[IMAGE:image]"),
        (7, "train", "[IMAGE:image]"),
    ]
    # the reason points at the row's number in its split, not at its place in the retried batch
    assert "row 3," in skipped[0].reason and "row 7," in skipped[1].reason


def test_skipped_rows_summary_pairs_each_row_with_its_own_reason(tmp_path, capsys, toy):
    cards = load_cards([str(toy / "cards")])
    skipped = [
        {"task": "digits", "index": 9, "reason": "row 9: the clip is empty", "split": "train", "slot": "[AUDIO:a]"},
        {"task": "digits", "index": 4, "reason": "row 4: cannot read image", "split": "train", "slot": "[IMAGE:i]"},
    ]
    report_skipped(skipped, tmp_path, cards)
    printed = capsys.readouterr().out
    assert "row 4, slot [IMAGE:i], reason: row 4: cannot read image" in printed
    assert "the clip is empty" not in printed


def test_pipeline_gives_none_for_an_unreadable_row_and_names_it(toy, tmp_path, caplog):
    pipe = pipeline("multimodal-instruction", model=str(toy / "run" / "final"), device="cpu")
    path = tmp_path / "digit.png"
    digit_image(4, 32).save(path)
    with caplog.at_level(logging.WARNING):
        values = pipe(task="digits", image=[str(path), NOT_AN_IMAGE, str(path)], batch_size=3)
    assert values[1] is None and values[0] == values[2] and isinstance(values[0], str)
    assert [(s["task"], s["index"], s["slot"]) for s in pipe.skipped_rows] == [("digits", 1, "[IMAGE:image]")]
    assert "1 of 3 row(s) could not be read" in caplog.text and "cannot read image" in caplog.text
    # a single unreadable input is an error that names its slot
    with pytest.raises(ValueError, match=r"\[IMAGE:image\].*cannot read image"):
        pipe(task="digits", image=NOT_AN_IMAGE)
