"""The Accelerate training and evaluation scripts, run as users run them (subprocesses) on a small
real two-task suite: exact resume after SIGKILL, two processes, corrupt rows, batching."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from huggingface_hub.repocard_data import model_index_to_eval_results
from safetensors.torch import load_file

from ofa_plus.multitask import TaskStream, bucketed_batches, step_tasks, task_probabilities
from ofa_plus.task_card import load_cards
from toy_suite import write_toy_suite

pytest.importorskip("sklearn")
ROOT = Path(__file__).resolve().parents[1]
TRAIN = [sys.executable, "-m", "ofa_plus.train", "--image-size", "64", "--dropout", "0.1", "--lr", "1e-3"]
EVALUATE = [sys.executable, str(ROOT / "evaluation" / "run.py")]
ACCELERATE_2 = [
    sys.executable,
    "-m",
    "accelerate.commands.launch",
    "--multi_gpu",
    "--num_processes",
    "2",
    "--num_machines",
    "1",
    "--mixed_precision",
    "no",
    "--dynamo_backend",
    "no",
]


def env() -> dict:
    # one thread per process: the same arithmetic in every run, and two processes fit two cores
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "OMP_NUM_THREADS": "1",
        "ACCELERATE_USE_CPU": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(ROOT),
    }


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=ROOT, env=env(), capture_output=True, text=True, timeout=600, **kwargs)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    return write_toy_suite(tmp_path_factory.mktemp("toy"))


def weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "final" / "model.safetensors")


@pytest.mark.slow
def test_resume_after_sigkill_ends_with_the_weights_of_an_uninterrupted_run(suite, tmp_path):
    common = ["--cards", str(suite), "--max-steps", "12", "--save-every", "4", "--seed", "3"]
    run(TRAIN + common + ["--output", str(tmp_path / "straight")])

    killed = tmp_path / "killed"
    process = subprocess.Popen(
        TRAIN + common + ["--output", str(killed)],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    marker = killed / "checkpoints" / "step_4" / "train_state_done"
    deadline = time.time() + 300
    while not marker.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert marker.exists() and not (killed / "final").exists(), "the run must die after a checkpoint, before the end"
    log = [json.loads(line) for line in (killed / "log.jsonl").read_text().splitlines()]
    assert 4 <= len(log) < 12

    resumed = run(TRAIN + common + ["--output", str(killed), "--resume"])
    assert "resumed from" in resumed.stdout + resumed.stderr
    straight, again = weights(tmp_path / "straight"), weights(killed)
    assert straight.keys() == again.keys()
    for name in straight:
        torch.testing.assert_close(again[name], straight[name], rtol=1e-5, atol=1e-6, msg=name)
    # the same loss curve, step for step
    curve = lambda d: [
        (r["step"], r["task_loss"])
        for r in map(json.loads, (d / "log.jsonl").read_text().splitlines())
        if "task_loss" in r
    ]
    first, second = curve(tmp_path / "straight"), curve(killed)
    assert [s for s, _ in first] == [s for s, _ in second] == list(range(12))
    for (_, a), (_, b) in zip(first, second):
        assert a.keys() == b.keys() and all(abs(a[k] - b[k]) < 1e-4 for k in a)


@pytest.mark.slow
def test_two_processes_train_and_evaluate_like_one(suite, tmp_path):
    out = tmp_path / "ddp"
    trained = run(
        ACCELERATE_2
        + [
            "-m",
            "ofa_plus.train",
            "--image-size",
            "64",
            "--cards",
            str(suite),
            "--max-steps",
            "6",
            "--output",
            str(out),
        ]
    )
    assert "on 2 process(es)" in trained.stdout  # `accelerate launch --cpu` would have started one
    assert (out / "final" / "model.safetensors").exists()
    assert sorted(p.name for p in (out / "loss_curves").iterdir()) == ["characters.png", "digits.png"]

    one = tmp_path / "one.json"
    two = tmp_path / "two.json"
    run(EVALUATE + ["--model", str(out / "final"), "--output", str(one), "--limit", "20"])
    evaluated = run(
        ACCELERATE_2
        + [str(ROOT / "evaluation" / "run.py"), "--model", str(out / "final"), "--output", str(two), "--limit", "20"]
    )
    assert "evaluated 2 tasks" in evaluated.stdout
    results = [json.loads(p.read_text())["results"] for p in (one, two)]
    assert [(r["task"], r["rows"]) for r in results[0]] == [("characters", 16), ("digits", 20)]
    for a, b in zip(*results):
        assert a["scores"] == b["scores"] and a["samples"] == b["samples"] and a["rows"] == b["rows"] > 0
    assert one.with_suffix(".md").read_text() == two.with_suffix(".md").read_text()
    # the model-index block is what huggingface_hub's model-card classes read back
    index = json.loads(one.read_text())["model_index"]
    parsed = model_index_to_eval_results(index)[1]
    assert {(r.task_name, r.metric_type) for r in parsed} == {
        ("characters", "exact_match"),
        ("characters", "bleu"),
        ("digits", "accuracy"),
    }
    accuracy = next(r for r in parsed if r.task_name == "digits")
    assert accuracy.metric_value == round(results[0][1]["scores"]["accuracy"], 2)
    card = ModelCard("---\n" + yaml.safe_dump({"model-index": index}) + "---\n")
    assert len(card.data.eval_results) == 3


@pytest.mark.slow
def test_corrupt_images_are_skipped_counted_and_reported(tmp_path):
    cards = write_toy_suite(tmp_path, digits_rows=120, corrupt_rows=(3, 7))
    done = run(
        TRAIN
        + [
            "--cards",
            str(cards),
            "--max-steps",
            "6",
            "--limit-rows",
            "16",
            "--tasks-per-step",
            "4",
            "--output",
            str(tmp_path / "run"),
        ]
    )
    skipped = json.loads((tmp_path / "run" / "skipped_rows.json").read_text())
    assert {s["index"] for s in skipped} == {3, 7}
    assert all(s["task"] == "digits" and "cannot read image" in s["reason"] for s in skipped)
    assert "skipped rows: task 'digits'" in done.stdout and "2 distinct row(s)" in done.stdout
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()


@pytest.mark.slow
def test_trained_model_carries_its_cards(suite, tmp_path):
    run(TRAIN + ["--cards", str(suite), "--max-steps", "1", "--output", str(tmp_path / "run")])
    config = json.loads((tmp_path / "run" / "final" / "config.json").read_text())
    saved = {c["name"]: c for c in config["task_cards"]}
    assert sorted(saved) == ["characters", "digits"]
    assert saved["digits"]["generation"]["closed_set"] == [
        "eight",
        "five",
        "four",
        "nine",
        "one",
        "seven",
        "six",
        "three",
        "two",
        "zero",
    ]


# ---------------------------------------------------------------------------------------------- batching
def test_bucketed_batches_cover_every_row_once_and_cut_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 200, size=1000)
    bucketed = bucketed_batches(lengths, 16, np.random.default_rng(1))
    shuffled = bucketed_batches(lengths, 16, np.random.default_rng(1), bucketing=False)
    for batches in (bucketed, shuffled):
        assert sorted(np.concatenate(batches).tolist()) == list(range(1000))

    def padding(batches):
        return sum(int(lengths[b].max()) * len(b) - int(lengths[b].sum()) for b in batches) / sum(
            int(lengths[b].max()) * len(b) for b in batches
        )

    assert padding(bucketed) < 0.1 < 0.3 < padding(shuffled)
    again = bucketed_batches(lengths, 16, np.random.default_rng(1))
    assert all((a == b).all() for a, b in zip(bucketed, again))


def test_task_sampling_follows_weights_and_temperature():
    class Card:  # only the training weight matters here
        def __init__(self, weight):
            self.training = type("T", (), {"weight": weight})()

    cards = [Card(1.0), Card(3.0)]
    assert task_probabilities(cards).tolist() == [0.25, 0.75]
    assert np.allclose(task_probabilities(cards, temperature=1e9), [0.5, 0.5])
    draws = [t for step in range(400) for t in step_tasks(0, step, task_probabilities(cards), 4)]
    assert 0.7 < np.mean(draws) < 0.8
    assert step_tasks(0, 7, task_probabilities(cards), 4) == step_tasks(0, 7, task_probabilities(cards), 4)
    # two processes draw their own share of a step's tasks: together the draw of one process doing both
    ranks = [step_tasks(0, 7, task_probabilities(cards), 2, rank, world=2) for rank in range(2)]
    assert ranks[0] + ranks[1] == step_tasks(0, 7, task_probabilities(cards), 4)
    mixed = sum(
        len(set(step_tasks(0, s, [0.5, 0.5], 1, 0, 2) + step_tasks(0, s, [0.5, 0.5], 1, 1, 2))) == 2
        for s in range(100)
    )
    assert 30 < mixed < 70  # about half the steps mix two tasks


def test_processes_read_disjoint_batches_of_one_task(suite):
    card = next(c for c in load_cards(suite) if c.name == "digits")
    seen = []
    for rank in range(2):
        stream = TaskStream.for_card(card, 0, seed=5, rank=rank, world=2)
        seen.append([i for _ in range(8) for i in stream.next_indices().tolist()])
    assert not set(seen[0]) & set(seen[1])
    epoch = set(seen[0]) | set(seen[1])
    assert len(epoch) == 2 * 8 * 8 and epoch <= set(range(len(card.load_split("train"))))
