"""The `ofa-plus` console script: every command has --help, `run` gives what the pipeline gives,
`train` / `evaluate` run the scripts, `push` reaches a (fake, local) Hub, and mistakes are errors
that say what to do."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import pipeline

from conftest import digit_image
from fake_hub import FakeHub
from generalist import toy_generalist
from ofa_plus import cli

ROOT = Path(__file__).resolve().parents[1]
CAPTION = "[IMAGE:image] what does the image describe? -> [TEXT:caption]"


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    return toy_generalist(tmp_path_factory)


@pytest.fixture(scope="module")
def model(toy) -> str:
    return str(toy / "run" / "final")


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("files") / "digit.png"
    digit_image(5, 32).save(path)
    return str(path)


def ofa_plus(*args) -> tuple[int, str, str]:
    """The installed console script, as a user runs it."""
    script = shutil.which("ofa-plus", path=str(Path(sys.executable).parent))
    assert script, "the ofa-plus console script is not installed (pip install -e .)"
    done = subprocess.run(
        [script, *args], capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"}
    )
    return done.returncode, done.stdout, done.stderr


def run(capsys, *args) -> str:
    cli.main(["run", *args])
    return capsys.readouterr().out.strip()


def error(capsys, *args) -> str:
    with pytest.raises(SystemExit) as exit_:
        cli.main(list(args))
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_every_command_has_help(capsys):
    for command, option in (
        ("train", "--cards"),
        ("evaluate", "--model"),
        ("finetune", "--lora"),
        ("run", "--image"),
        ("push", "--repo"),
    ):
        with pytest.raises(SystemExit) as exit_:
            cli.main([command, "--help"])
        assert exit_.value.code == 0 and option in capsys.readouterr().out, command
    cli_help = error(capsys, "frobnicate")
    assert "invalid choice: 'frobnicate'" in cli_help


@pytest.mark.slow
def test_run_gives_what_the_pipeline_gives(model, image, capsys, tmp_path):
    pipe = pipeline("multimodal-instruction", model=model)
    assert run(capsys, "--model", model, "--task", "digits", "--image", image) == pipe(task="digits", image=image)
    assert run(
        capsys,
        "--model",
        model,
        "--instruction",
        CAPTION,
        "--image",
        image,
        "--num-beams",
        "2",
        "--max-new-tokens",
        "4",
    ) == pipe(CAPTION, image=image, num_beams=2, max_new_tokens=4)
    expected = pipe(task="characters", character="Ω")
    assert run(capsys, "--model", model, "--task", "characters", "--text", "Ω") == expected
    assert run(capsys, "--model", model, "--task", "characters", "--input", "character=Ω") == expected
    (tmp_path / "c.txt").write_text("Ω\n")
    assert (
        run(capsys, "--model", model, "--task", "characters", "--input", f"character=@{tmp_path / 'c.txt'}")
        == expected
    )


@pytest.mark.slow
def test_run_errors_say_what_to_do(model, image, capsys, tmp_path):
    assert "unknown task 'mnist'; the model's tasks: characters, digits" in error(
        capsys, "run", "--model", model, "--task", "mnist", "--image", image
    )
    assert "its inputs: [TEXT:character]); use --input COLUMN=VALUE" in error(
        capsys, "run", "--model", model, "--task", "characters", "--image", image
    )
    assert "no value for input column(s) image; give them with --image" in error(
        capsys, "run", "--model", model, "--task", "digits"
    )
    assert "--image nowhere.png: no such file" in error(
        capsys, "run", "--model", model, "--task", "digits", "--image", "nowhere.png"
    )
    assert "write COLUMN=VALUE" in error(capsys, "run", "--model", model, "--task", "characters", "--input", "Ω")
    assert "no trained model at" in error(capsys, "run", "--model", str(tmp_path / "run" / "final"), "--task", "x")
    assert "holds neither a model (config.json) nor a DatasetDict" in error(
        capsys, "push", str(tmp_path), "--repo", "me/x"
    )


@pytest.mark.slow
def test_train_and_evaluate_run_the_scripts(toy, tmp_path):
    cli.main(
        [
            "train",
            "--cards",
            str(toy / "cards"),
            "--output",
            str(tmp_path / "run"),
            "--image-size",
            "64",
            "--max-steps",
            "1",
            "--eval-rows",
            "4",
        ]
    )
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
    cli.main(
        [
            "evaluate",
            "--model",
            str(tmp_path / "run" / "final"),
            "--output",
            str(tmp_path / "results.json"),
            "--limit",
            "4",
        ]
    )
    results = json.loads((tmp_path / "results.json").read_text())["results"]
    assert [(r["task"], r["rows"]) for r in results] == [("characters", 4), ("digits", 4)]


@pytest.mark.slow
def test_console_script_pushes_to_the_hub(model, toy, tmp_path):
    code, out, err = ofa_plus("--help")
    assert code == 0 and all(c in out for c in ("train", "evaluate", "finetune", "run", "push"))
    with FakeHub(tmp_path / "storage") as hub:
        env = {**os.environ, **hub.env(cache=tmp_path / "hf_home"), "OMP_NUM_THREADS": "1"}
        script = shutil.which("ofa-plus", path=str(Path(sys.executable).parent))
        done = subprocess.run(
            [script, "push", model, "--repo", "me/cli", "--license", "apache-2.0"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "pushed" in done.stdout and "me/cli" in done.stdout
        assert {"config.json", "model.safetensors", "README.md"} <= set(hub.files("me/cli"))
        readme = (tmp_path / "storage" / "model" / "me" / "cli" / "README.md").read_text()
        assert "license: apache-2.0" in readme and "`max_steps`: 20" in readme  # args.json of the run
