"""Specialists vs generalist (`ofa_plus.compare`): the relative score and its mean on made-up scores,
the options it passes to training, and one end-to-end run on the toy suite."""

from __future__ import annotations

import json

import pytest

from ofa_plus import compare
from ofa_plus.metrics import METRICS
from toy_suite import write_toy_suite


def entry(scores: dict, swapped: dict, baseline: dict, distinct: int = 3) -> dict:
    """The fields of an `evaluate_card` result that the comparison reads."""
    return {
        "scores": scores,
        "swapped_scores": swapped,
        "baseline": baseline,
        "baseline_kind": "most frequent answer",
        "rows": 10,
        "distinct_predictions": distinct,
    }


def test_relative_score_is_generalist_over_specialist_and_inverted_for_errors():
    assert METRICS["accuracy"].higher_is_better and not METRICS["wer"].higher_is_better
    assert compare.relative_score("accuracy", 80.0, 40.0) == 0.5
    # WER: a generalist with twice the specialist's error is at half of it, one with half the error at twice
    assert compare.relative_score("wer", 20.0, 40.0) == 0.5
    assert compare.relative_score("wer", 20.0, 10.0) == 2.0
    assert compare.relative_score("accuracy", 0.0, 10.0) is None
    assert compare.relative_score("wer", 20.0, 0.0) is None


def test_comparison_table_and_mean_over_first_metrics():
    specialists = {
        "digits": {
            2: entry({"accuracy": 30.0}, {"accuracy": 10.0}, {"accuracy": 12.0}),
            4: entry({"accuracy": 80.0}, {"accuracy": 11.0}, {"accuracy": 12.0}),
        },
        "speech": {
            2: entry(
                {"wer": 90.0, "exact_match": 0.0},
                {"wer": 99.0, "exact_match": 0.0},
                {"wer": 100.0, "exact_match": 0.0},
            ),
            4: entry(
                {"wer": 30.0, "exact_match": 5.0},
                {"wer": 95.0, "exact_match": 0.0},
                {"wer": 100.0, "exact_match": 0.0},
            ),
        },
    }
    generalist = {
        "digits": entry({"accuracy": 60.0}, {"accuracy": 9.0}, {"accuracy": 12.0}),
        "speech": entry(
            {"wer": 40.0, "exact_match": 0.0}, {"wer": 97.0, "exact_match": 0.0}, {"wer": 100.0, "exact_match": 0.0}
        ),
    }
    result = compare.comparison(specialists, generalist, {"digits": 3, "speech": 5}, 4, 8)
    assert result["specialist_steps"] == [2, 4] and result["generalist_steps"] == 8
    digits, speech = result["tasks"]
    assert digits["metrics"][0]["relative"] == 60.0 / 80.0
    assert digits["metrics"][0]["specialist"]["2"] == {"score": 30.0, "swapped": 10.0, "distinct_predictions": 3}
    assert speech["metrics"][0]["relative"] == 30.0 / 40.0  # lower is better: specialist / generalist
    assert speech["metrics"][1]["relative"] == 0.0
    assert speech["generalist_micro_batches"] == 5
    # the mean reads each task's first metric only
    assert result["mean_relative"] == pytest.approx((0.75 + 0.75) / 2)
    assert result["mean_over"] == ["digits", "speech"]

    table = compare.comparison_table(result).splitlines()
    assert table[0] == (
        "| task | metric | trivial baseline | specialist 2 steps | specialist 4 steps | generalist 8 steps | relative |"
    )
    assert (
        table[2]
        == "| digits | accuracy | 12.0 (most frequent answer) | 30.0 (10.0) | 80.0 (11.0) | 60.0 (9.0) | 75% |"
    )
    assert table[3].startswith(
        "| speech | wer ↓ | 100.0 (most frequent answer) | 90.0 (99.0) | 30.0 (95.0) | 40.0 (97.0)"
    )
    assert table[-1] == "Mean relative score (first metric of each task, 2 of 2 tasks): 75.0%"

    # a task whose specialist scores 0 has no relative score and stays out of the mean
    specialists["digits"][4] = entry({"accuracy": 0.0}, {"accuracy": 0.0}, {"accuracy": 12.0})
    result = compare.comparison(specialists, generalist, {"digits": 3, "speech": 5}, 4, 8)
    assert result["tasks"][0]["metrics"][0]["relative"] is None
    assert result["mean_relative"] == 0.75 and result["mean_over"] == ["speech"]


def test_budgets_and_the_options_passed_to_training():
    assert compare.budget_steps(12, [0.25, 0.5]) == [3, 6, 12]
    assert compare.budget_steps(3, [0.1, 1.0]) == [1, 3]

    args, recipe = compare.parse_args(
        ["--cards", "a.yaml", "b", "--steps-per-task", "8", "--output", "o", "--limit", "5"]
        + ["--lr", "1e-3", "--limit-rows", "16", "--image-size", "64"]
    )
    assert args.cards == ["a.yaml", "b"] and args.limit == 5 and args.budgets == [0.25, 0.5, 1.0]
    # one micro-batch per step unless asked otherwise: a specialist's step costs what a generalist's does
    assert recipe == ["--lr", "1e-3", "--limit-rows", "16", "--image-size", "64", "--tasks-per-step", "1"]
    _, recipe = compare.parse_args(["--cards", "a", "--steps-per-task", "8", "--output", "o", "--tasks-per-step=2"])
    assert recipe == ["--tasks-per-step=2"]
    base = ["--cards", "a", "--steps-per-task", "8", "--output", "o"]
    for wrong in (["--max-steps", "5"], ["--resume"], ["--no-such-option"], ["--budgets", "0"]):
        with pytest.raises(SystemExit):
            compare.parse_args(base + wrong)


@pytest.mark.slow
def test_compare_trains_specialists_and_a_generalist_and_reports_them(tmp_path, capsys):
    pytest.importorskip("sklearn")
    cards = write_toy_suite(tmp_path, digits_rows=200)
    output = tmp_path / "compare"
    argv = ["--cards", str(cards), "--steps-per-task", "10", "--budgets", "0.5", "--output", str(output)]
    argv += [
        "--limit",
        "16",
        "--image-size",
        "64",
        "--dropout",
        "0",
        "--lr",
        "1e-3",
        "--eval-rows",
        "4",
        "--seed",
        "0",
    ]
    result = compare.main(argv)

    saved = json.loads((output / "compare.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["specialist_steps"] == [5, 10] and saved["generalist_steps"] == 20
    assert [t["task"] for t in saved["tasks"]] == ["characters", "digits"]
    assert [[m["metric"] for m in t["metrics"]] for t in saved["tasks"]] == [["exact_match", "bleu4"], ["accuracy"]]
    # the generalist drew its 20 micro-batches by card weight (characters 2, digits 1)
    counts = {t["task"]: t["generalist_micro_batches"] for t in saved["tasks"]}
    assert sum(counts.values()) == 20 and counts["characters"] > counts["digits"] > 0

    # each specialist was trained on its own card only, the generalist on both
    for task in ("characters", "digits"):
        for steps in (5, 10):
            config = json.loads(
                (output / "specialists" / task / f"steps_{steps}" / "final" / "config.json").read_text()
            )
            assert [c["name"] for c in config["task_cards"]] == [task]
            log = (output / "specialists" / task / f"steps_{steps}" / "log.jsonl").read_text().splitlines()
            assert sum("task_loss" in json.loads(line) for line in log) == steps
    config = json.loads((output / "generalist" / "final" / "config.json").read_text())
    assert sorted(c["name"] for c in config["task_cards"]) == ["characters", "digits"]

    relatives = []
    for task in saved["tasks"]:
        assert task["rows"] == 16
        for m in task["metrics"]:
            assert m["higher_is_better"] and set(m["specialist"]) == {"5", "10"}
            specialist, generalist = m["specialist"]["10"]["score"], m["generalist"]["score"]
            assert m["relative"] == (pytest.approx(generalist / specialist) if specialist else None)
            for scores in [*m["specialist"].values(), m["generalist"]]:
                assert 0 <= scores["score"] <= 100 and 0 <= scores["swapped"] <= 100
        if task["metrics"][0]["relative"] is not None:
            relatives.append(task["metrics"][0]["relative"])
    assert saved["mean_relative"] == (pytest.approx(sum(relatives) / len(relatives)) if relatives else None)

    table = (output / "compare.md").read_text()
    assert table.startswith("| task | metric | trivial baseline | specialist 5 steps | specialist 10 steps |")
    assert len([line for line in table.splitlines() if line.startswith("|")]) == 2 + 3  # header, rule, 3 metrics
    assert table.strip() in capsys.readouterr().out

    # a second run with the same options reuses the trained models and reports the same numbers
    again = compare.main(argv)
    assert capsys.readouterr().out.count("reusing") == 5
    assert json.loads(json.dumps(again)) == saved


@pytest.mark.slow
def test_compare_runs_under_two_processes(tmp_path):
    """`accelerate launch` with two processes: every model trains and is evaluated in the one launch
    (the process group outlives each training run), and the generalist's micro-batch count covers
    both processes' draws."""
    from test_train import ACCELERATE_2, ROOT, run  # noqa: PLC0415 (the launcher and environment of the train tests)

    cards = write_toy_suite(tmp_path, digits_rows=64)
    output = tmp_path / "compare"
    argv = ["--cards", str(cards), "--steps-per-task", "3", "--budgets", "1", "--output", str(output)]
    argv += ["--limit", "8", "--image-size", "64", "--dropout", "0", "--eval-rows", "4"]
    run(ACCELERATE_2 + [str(ROOT / "evaluation" / "compare.py"), *argv])
    saved = json.loads((output / "compare.json").read_text())
    assert saved["generalist_steps"] == 6
    assert sum(t["generalist_micro_batches"] for t in saved["tasks"]) == 2 * 6
    for task in saved["tasks"]:
        assert (output / "specialists" / task["task"] / "steps_3" / "final" / "model.safetensors").exists()
