"""Small generalists trained by the real training script, for the serving tests (pipeline, Hub,
fine-tuning, CLI). Each is trained once per test session."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from ofa_plus import train
from toy_suite import write_toy_suite

ROOT = Path(__file__).resolve().parents[1]
_TRAINED: dict[str, Path] = {}


@contextlib.contextmanager
def inside(folder: Path):
    """Run with ``folder`` as the working directory (the default cards read data/default/... from it)."""
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(cwd)


def toy_generalist(tmp_path_factory, steps: int = 20) -> Path:
    """The two-task toy suite (digits: image -> closed set; characters: text -> text), trained
    ``steps`` steps; returns the run folder (model in ``final/``, cards in ``cards/``)."""
    key = f"toy-{steps}"
    if key not in _TRAINED:
        root = tmp_path_factory.mktemp("toy_generalist")
        cards = write_toy_suite(root, digits_rows=200)
        train.main(
            [
                "--cards",
                str(cards),
                "--output",
                str(root / "run"),
                "--image-size",
                "64",
                "--dropout",
                "0",
                "--lr",
                "1e-3",
                "--max-steps",
                str(steps),
                "--eval-rows",
                "8",
                "--seed",
                "0",
            ]
        )
        _TRAINED[key] = root
    return _TRAINED[key]


def default_generalist(tmp_path_factory, steps: int = 3) -> Path:
    """The default run's recipe, scaled down: the default suite built with 12 rows per split and
    the tiny model trained on all of ``task_cards/default``. Returns the folder to run inside
    (``data/default/...``); the model is ``run/final`` in it."""
    key = f"default-{steps}"
    if key not in _TRAINED:
        from dataset_scripts import default_suite

        root = tmp_path_factory.mktemp("default_generalist")
        with inside(root):
            default_suite.build("data/default", limit=12, seed=0)
            train.main(
                [
                    "--cards",
                    str(ROOT / "task_cards" / "default"),
                    "--output",
                    "run",
                    "--image-size",
                    "64",
                    "--dropout",
                    "0",
                    "--lr",
                    "1e-3",
                    "--max-steps",
                    str(steps),
                    "--batch-size",
                    "4",
                    "--eval-rows",
                    "4",
                    "--seed",
                    "0",
                ]
            )
        _TRAINED[key] = root
    return _TRAINED[key]
