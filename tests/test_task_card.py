"""Task cards: every mistake is reported when the card is loaded, naming the card file and the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from ofa_plus.task_card import CardError, TaskCard, cards_from_dicts, load_cards
from toy_suite import write_toy_suite

pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    return write_toy_suite(tmp_path_factory.mktemp("cards"), digits_rows=80)


@pytest.fixture()
def digits(suite) -> dict:
    return yaml.safe_load((suite / "digits.yaml").read_text())


def write(tmp_path: Path, card: dict, name: str = "card.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(card))
    return path


def test_cards_load_from_a_folder_with_resolved_closed_sets(suite):
    cards = load_cards(suite)
    assert [c.name for c in cards] == ["characters", "digits"]  # sorted by file name
    digits = cards[1]
    assert digits.closed_set == sorted(digits.closed_set) and "seven" in digits.closed_set
    assert digits.plan.generator.kind == "closed_set" and "seven" in digits.plan.generator.closed_set
    row = digits.to_row(digits.load_split("train")[0])
    assert set(row) == {"image", "label", "references"} and row["references"] == row["label"]
    assert cards[0].training.weight == 2.0 and cards[0].plan.generator.num_beams == 2


def test_saved_card_round_trips_without_its_dataset(suite):
    card = load_cards(suite / "digits.yaml")[0]
    restored = cards_from_dicts([card.to_dict()])[0]
    assert restored.closed_set == card.closed_set
    assert restored.plan.generator == card.plan.generator
    assert restored.instruction == card.instruction


@pytest.mark.parametrize(
    "mutate, key, words",
    [
        (lambda c: c.update(epochs=3), "epochs", "unknown key"),
        (lambda c: c.pop("instruction"), "instruction", "missing"),
        (lambda c: c.update(instruction="[IMAGE:image] -> [TEXT:label"), "instruction", "never closed"),
        (lambda c: c["dataset"].update(revision="main"), "dataset.revision", "unknown key"),
        (lambda c: c["dataset"].update(path="/nonexistent/data"), "dataset.path", "cannot load"),
        (
            lambda c: c["dataset"].update(splits={"train": "train", "test": "heldout"}),
            "dataset.splits.test",
            "not in the dataset",
        ),
        (
            lambda c: c["dataset"].update(splits={"train": "train", "dev": "validation"}),
            "dataset.splits.dev",
            "unknown role",
        ),
        (lambda c: c.update(columns={"label": "digit_name"}), "columns.label", "no column 'digit_name'"),
        (lambda c: c.update(columns={"caption": "label"}), "columns.caption", "no slot 'caption'"),
        (
            lambda c: c.update(columns={"label": {"column": "label", "transform": "upper"}}),
            "columns.label.transform",
            "unknown transform",
        ),
        (
            lambda c: c.update(instruction="[IMAGE:photo] what does the image describe? -> [TEXT:label,closed_set]"),
            "columns.photo",
            "no column 'photo' to fill slot 'photo'",
        ),
        (lambda c: c.update(metrics=["accuracy", "f1_macro"]), "metrics[1]", "unknown metric"),
        (lambda c: c.update(metrics=["sql_execution_match"]), "metrics", "reads column 'db_path'"),
        (lambda c: c.update(references="answers"), "references", "no column 'answers'"),
        (
            lambda c: c["generation"].update(closed_set={"column": "answer"}),
            "generation.closed_set.column",
            "no column 'answer'",
        ),
        (
            lambda c: c["generation"].update(closed_set={"file": "labels.txt"}),
            "generation.closed_set.file",
            "does not exist",
        ),
        (lambda c: c["generation"].update(temperature=0.7), "generation.temperature", "unknown key"),
        (lambda c: c["training"].update(batch_size=0), "training.batch_size", "positive"),
        (lambda c: c["training"].update(epochs=2), "training.epochs", "unknown key"),
        (lambda c: c.update(settings={"question": {"max_length": 8}}), "settings.question", "no slot"),
    ],
)
def test_card_mistakes_are_named_at_load_time(digits, tmp_path, mutate, key, words):
    card = copy.deepcopy(digits)
    mutate(card)
    path = write(tmp_path, card)
    with pytest.raises(CardError) as err:
        load_cards(path)
    assert err.value.key == key
    assert str(path) in str(err.value) and key in str(err.value) and words in str(err.value), str(err.value)


def test_closed_set_from_a_label_file(digits, tmp_path):
    (tmp_path / "labels.txt").write_text("zero\none\n\ntwo\n")
    digits["generation"]["closed_set"] = {"file": "labels.txt"}  # relative to the card file
    card = load_cards(write(tmp_path, digits))[0]
    assert card.closed_set == ["zero", "one", "two"]
    assert card.plan.generator.closed_set == ("zero", "one", "two")


def test_column_transforms_and_repeat_patterns(tmp_path):
    import datasets

    rows = [{"picture": "a.png", "captions": ["a cat", "a kitten"], "boxes": [[1, 2, 3, 4]], "names": ["cat"]}]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "data"))
    card = TaskCard.from_dict(
        {
            "name": "detect",
            "instruction": "[IMAGE:image] what are the objects in the image? -> ( [BOX:boxes] [TEXT:labels] )*",
            "dataset": {"path": str(tmp_path / "data"), "splits": {"train": "train"}},
            "columns": {"image": "picture", "labels": "names"},
        }
    )
    assert card.to_row(rows[0])["labels"] == ["cat"] and card.to_row(rows[0])["boxes"] == [[1, 2, 3, 4]]
    assert card.plan.generator.kind == "sequence"
    joined = TaskCard.from_dict(
        {
            "name": "caption",
            "instruction": "[IMAGE:image] what does the image describe? -> [TEXT:caption]",
            "dataset": {"path": str(tmp_path / "data"), "splits": {"train": "train"}},
            "columns": {"image": "picture", "caption": {"column": "captions", "transform": "first"}},
            "references": "captions",
        }
    )
    row = joined.to_row(rows[0])
    assert row["caption"] == "a cat" and row["references"] == ["a cat", "a kitten"]


def test_duplicate_names_and_empty_folders(digits, tmp_path):
    write(tmp_path, digits, "a.yaml")
    write(tmp_path, digits, "b.yaml")
    with pytest.raises(CardError, match="used by more than one card"):
        load_cards(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no task cards"):
        load_cards(tmp_path / "empty")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cards(tmp_path / "missing.yaml")
