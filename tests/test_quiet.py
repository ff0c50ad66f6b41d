"""The commands print their own reports, not the libraries' noise; the switches they turn are put
back afterwards, and messages that are not noise still come through."""

from __future__ import annotations

import logging
import warnings

import datasets
import pytest
from transformers.utils import logging as transformers_logging

from ofa_plus import cli
from ofa_plus.quiet import quiet_libraries

NOISE = [
    "Loading weights",  # transformers' bar when a model loads
    "Writing model shards",  # transformers' bar when a model is saved
    "Removed shared tensor",  # accelerate, at every checkpoint
    "is_gradient_checkpointing",  # a transformers deprecation that peft triggers
]


def test_quiet_libraries_drops_noise_keeps_the_rest_and_restores(caplog):
    caplog.set_level(logging.WARNING)
    verbosity = datasets.logging.get_verbosity()
    with quiet_libraries():
        accelerate = logging.getLogger("accelerate.utils.other")  # what accelerate's logger adapter writes to
        accelerate.warning("[RANK 0] Removed shared tensor {'lm_head.weight'} while saving.")
        accelerate.warning("something else went wrong")
        bar = transformers_logging.tqdm(range(3), desc="Loading weights")
        assert bar.disable
        assert datasets.utils.are_progress_bars_disabled()
        with pytest.warns(UserWarning, match="still shown"):
            warnings.warn("still shown", UserWarning, stacklevel=1)
    assert "Removed shared tensor" not in caplog.text and "something else went wrong" in caplog.text
    # Python callers get the libraries as they were
    assert not logging.getLogger("accelerate.utils.other").filters
    assert transformers_logging.set_tqdm_hook(None) is None
    assert not datasets.utils.are_progress_bars_disabled()
    assert datasets.logging.get_verbosity() == verbosity


@pytest.mark.slow
def test_commands_print_no_library_noise(tmp_path, capfd, caplog, recwarn):
    from test_finetune import write_script_card
    from toy_suite import write_toy_suite

    cards = write_toy_suite(tmp_path / "toy", digits_rows=60)
    new_card = write_script_card(tmp_path / "new_task")
    capfd.readouterr()
    caplog.set_level(logging.INFO)
    run, model = tmp_path / "run", str(tmp_path / "run" / "final")
    common = ["--image-size", "32", "--eval-rows", "2"]
    cli.main(["train", "--cards", str(cards), "--output", str(run), "--max-steps", "2", "--save-every", "1", *common])
    cli.main(["evaluate", "--model", model, "--output", str(tmp_path / "results.json"), "--limit", "2"])
    cli.main(["run", "--model", model, "--task", "characters", "--text", "a"])
    finetune = [
        "--card",
        str(new_card),
        "--output",
        str(tmp_path / "ft"),
        "--lora",
        "--steps",
        "2",
        "--eval-limit",
        "4",
    ]
    cli.main(["finetune", "--model", model, *finetune])
    out, err = capfd.readouterr()
    printed = "\n".join([out, err, caplog.text, *(str(w.message) for w in recwarn)])
    assert (run / "checkpoints" / "step_1").is_dir()  # the checkpoint whose saving accelerate used to comment on
    for noise in NOISE:
        assert noise not in printed, noise
    for report in ("validation loss:", "evaluated 2 tasks", "untuned vs fine-tuned", "training:"):
        assert report in printed, report
