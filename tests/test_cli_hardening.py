"""Bad input at the command line and around it gets a pointed message, not a traceback: damaged or
missing model folders, an unreachable Hub, another model's results, a checkpoint with foreign
pickles. Plus what the command was missing: --version, `tasks`, text-to-speech in `run`."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import pipeline

from conftest import digit_image, small_config
from generalist import toy_generalist
from ofa_plus import OFAPlusForConditionalGeneration, OFAPlusProcessor, __version__, cli, evaluation, hub, train


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return toy_generalist(tmp_path_factory)


@pytest.fixture(scope="module")
def model(toy) -> str:
    return str(toy / "run" / "final")


@pytest.fixture(scope="module")
def results(toy, model) -> Path:
    """results.json of the toy model, as `ofa-plus evaluate` writes it."""
    path = toy / "hardening" / "results.json"
    evaluation.main(["--model", model, "--output", str(path), "--limit", "4"])
    return path


@pytest.fixture(scope="module")
def other_model(tmp_path_factory) -> str:
    """A model with other weights (and no results of its own)."""
    folder = tmp_path_factory.mktemp("other") / "final"
    torch.manual_seed(1)
    config = small_config()
    OFAPlusForConditionalGeneration(config).save_pretrained(folder)
    OFAPlusProcessor.for_config(config).save_pretrained(folder)
    return str(folder)


def error(capsys, *args) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli.main(list(args))
    assert exit_.value.code == 2
    return capsys.readouterr().err


def script(*args, env=None) -> subprocess.CompletedProcess:
    path = shutil.which("ofa-plus", path=str(Path(sys.executable).parent))
    return subprocess.run(
        [path, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})},
    )


def test_version_and_help_without_empty_defaults(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"ofa-plus {__version__}"
    for command in ("train", "evaluate", "finetune", "run", "push", "tasks"):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        text = capsys.readouterr().out
        assert "--help" in text and "(default: None)" not in text, command
        assert "--video" not in text
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "(default: tiny)" in capsys.readouterr().out


def test_tasks_lists_the_models_tasks_and_instructions(model, capsys):
    cards = cli.tasks([model])
    printed = capsys.readouterr().out
    assert [c["name"] for c in cards] == ["characters", "digits"]
    assert "instruction: [IMAGE:image] what does the image describe? -> [TEXT:label,closed_set]" in printed
    assert "one of 10 answers" in printed and f"ofa-plus run --model {model} --task digits" in printed


def test_evaluate_names_a_missing_model_folder(capsys, tmp_path):
    err = error(capsys, "evaluate", "--model", str(tmp_path / "no" / "model"), "--output", str(tmp_path / "r.json"))
    assert "no trained model at" in err and "ofa-plus train" in err


def test_truncated_weights_are_a_message_in_run_and_evaluate(model, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(model, broken)
    weights = broken / "model.safetensors"
    with open(weights, "r+b") as f:
        f.truncate(weights.stat().st_size // 2)
    image = tmp_path / "digit.png"
    digit_image(1, 32).save(image)
    for args in (
        ["run", "--model", str(broken), "--task", "digits", "--image", str(image)],
        ["evaluate", "--model", str(broken), "--output", str(tmp_path / "r.json")],
    ):
        err = error(capsys, *args)
        assert "model.safetensors is incomplete or damaged" in err and "Traceback" not in err, args


@pytest.mark.slow
def test_push_to_an_unreachable_hub_is_a_message(model, tmp_path):
    done = script(
        "push",
        model,
        "--repo",
        "me/x",
        env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_TOKEN": "hf_x", "HF_HUB_OFFLINE": "0"},
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "cannot reach the Hub" in done.stderr


def test_push_refuses_another_models_results(model, other_model, results, capsys, tmp_path):
    recorded = json.loads(results.read_text())
    assert recorded["weights_sha256"] == evaluation.weights_fingerprint(
        OFAPlusForConditionalGeneration.from_pretrained(model)
    )
    err = error(capsys, "push", other_model, "--repo", "me/x", "--results", str(results))
    assert "scores another model" in err and "ofa-plus evaluate --model" in err
    hub.check_results(results, OFAPlusForConditionalGeneration.from_pretrained(model))  # its own model: fine
    unmarked = tmp_path / "unmarked.json"
    unmarked.write_text(json.dumps({k: v for k, v in recorded.items() if k != "weights_sha256"}))
    err = error(capsys, "push", model, "--repo", "me/x", "--results", str(unmarked))
    assert "does not record which model it scores" in err


def test_model_card_has_an_install_line_and_no_local_paths(toy, model, results):
    args = json.loads((toy / "run" / "args.json").read_text())
    assert any(str(toy) in str(v) for v in args.values())  # the run's settings name local folders
    text = hub.model_card(
        OFAPlusForConditionalGeneration.from_pretrained(model), "me/toy", results=results, training_args=args
    ).content
    assert "pip install 'ofa_plus>=" in text
    assert str(toy) not in text and str(Path(toy).parent) not in text


@pytest.fixture(scope="module")
def speaker(tmp_path_factory) -> str:
    """An untrained model with a speech head (what it says does not matter here)."""
    folder = tmp_path_factory.mktemp("speaker") / "model"
    torch.manual_seed(0)
    config = small_config(tts_frames_per_step=4, tts_max_frames=40)
    OFAPlusForConditionalGeneration(config).eval().save_pretrained(folder)
    OFAPlusProcessor.for_config(config).save_pretrained(folder)
    return str(folder)


@pytest.mark.parametrize(
    "instruction, fill",
    [
        ("[PHONE:text] -> [AUDIO:audio]", ["--text", "Good morning."]),
        ("[TEXT:text] -> [AUDIO:audio]", ["--input", "text=Yes."]),
    ],
)
def test_run_speaks_into_a_wav_file(speaker, tmp_path, capsys, instruction, fill):
    value = cli.run(["--model", speaker, "--instruction", instruction, *fill, "--output-dir", str(tmp_path / "wavs")])
    shown = json.loads(capsys.readouterr().out)
    assert shown["path"] == str(tmp_path / "wavs" / "0000.wav") and shown["sampling_rate"] == 16000
    with wave.open(shown["path"], "rb") as f:
        assert f.getnframes() == len(value["audio"]) == shown["samples"]
    err = error(capsys, "run", "--model", speaker, "--instruction", instruction, *fill)
    assert "give --output-dir DIR" in err


def test_pipeline_takes_sampling_rate_for_bare_arrays(speaker):
    pipe = pipeline("multimodal-instruction", model=speaker, device="cpu")
    tone = np.sin(np.arange(8000) * 2 * np.pi * 440 / 8000).astype(np.float32)
    text = pipe(
        "[AUDIO:audio] what is the text of the speech? -> [TEXT:text]",
        audio=tone,
        sampling_rate=8000,
        max_new_tokens=3,
    )
    assert isinstance(text, str)


class _Marker:
    """Unpickling this creates a file: the proof that a checkpoint's pickle ran code."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


@pytest.mark.slow
def test_resume_refuses_a_checkpoint_with_foreign_pickles(toy, tmp_path):
    args = ["--cards", str(toy / "cards"), "--output", str(tmp_path / "run"), "--image-size", "64"]
    train.main([*args, "--max-steps", "1", "--eval-rows", "2", "--limit-rows", "16"])
    checkpoint = next((tmp_path / "run" / "checkpoints").glob("step_*"))
    custom = sorted(checkpoint.glob("custom_checkpoint_*.pkl"))
    assert custom, sorted(p.name for p in checkpoint.iterdir())
    marker = tmp_path / "code_ran"
    custom[-1].write_bytes(pickle.dumps({"step": _Marker(marker), "skipped": []}))
    with pytest.raises(ValueError, match="holds objects other than tensors and plain values"):
        train.main([*args, "--max-steps", "2", "--eval-rows", "2", "--limit-rows", "16", "--resume"])
    assert not marker.exists()
