"""A two-task suite small enough for training tests: scikit-learn's handwritten digits (image ->
digit name, closed set) and Unicode character names (text -> text), saved as `datasets` folders
with task cards, the way the default suite is."""

from __future__ import annotations

import unicodedata
from pathlib import Path

import datasets
import yaml

from conftest import digit_sprite

DIGIT_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _splits(rows: list[dict], features: datasets.Features, test: int) -> datasets.DatasetDict:
    return datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(rows[2 * test :], features=features),
            "validation": datasets.Dataset.from_list(rows[:test], features=features),
            "test": datasets.Dataset.from_list(rows[test : 2 * test], features=features),
        }
    )


def write_toy_suite(folder: Path, digits_rows: int = 300, corrupt_rows: tuple[int, ...] = ()) -> Path:
    """Build the data and cards under ``folder``; returns the cards folder. Rows listed in
    ``corrupt_rows`` of the digits train split get image bytes no decoder can read."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    rows = []
    for image, label in zip(digits.images[:digits_rows], digits.target[:digits_rows]):
        rows.append({"image": digit_sprite(image, 32), "label": DIGIT_NAMES[label]})
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")})
    digit_data = _splits(rows, features, 24)
    if corrupt_rows:
        train = digit_data["train"].cast_column("image", datasets.Image(decode=False)).to_list()
        for i in corrupt_rows:
            train[i]["image"] = {"bytes": b"\x89PNG\r\n\x1a\n not really a png", "path": None}
        digit_data["train"] = datasets.Dataset.from_list(train, features=features)
    digit_data.save_to_disk(str(folder / "data" / "digits"))

    names = []
    for code in list(range(0x00C0, 0x0180)) + list(range(0x0391, 0x03CA)):
        name = unicodedata.name(chr(code), "")
        if name:
            names.append({"character": chr(code), "name": name.lower(), "references": [name.lower()]})
    features = datasets.Features(
        {
            "character": datasets.Value("string"),
            "name": datasets.Value("string"),
            "references": datasets.Sequence(datasets.Value("string")),
        }
    )
    _splits(names, features, 16).save_to_disk(str(folder / "data" / "characters"))

    cards = folder / "cards"
    cards.mkdir(parents=True, exist_ok=True)
    (cards / "digits.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "digits",
                "instruction": "[IMAGE:image] what does the image describe? -> [TEXT:label,closed_set]",
                "dataset": {"path": str(folder / "data" / "digits")},
                "metrics": ["accuracy"],
                "generation": {"closed_set": {"column": "label"}},
                "training": {"batch_size": 8, "eval_batch_size": 16},
            }
        )
    )
    (cards / "characters.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "characters",
                "instruction": 'what is the name of the character " [TEXT:character] "? -> [TEXT:name]',
                "dataset": {"path": str(folder / "data" / "characters")},
                "references": "references",
                "metrics": ["exact_match", "bleu4"],
                "generation": {"num_beams": 2, "max_new_tokens": 16},
                "training": {"batch_size": 8, "eval_batch_size": 16, "weight": 2.0},
            }
        )
    )
    return cards
