"""Specialists vs generalist: one model per task against one model for all tasks, same recipe.

    python evaluation/compare.py --cards task_cards/default --steps-per-task 300 --output runs/compare \\
        [--budgets 0.25 0.5 1] [--limit 200] [any ofa_plus.train option: --preset, --image-size, --lr, ...]

Trains one specialist per card for N steps (and, for each fraction in ``--budgets``, another for
that fraction of N), one generalist on all cards for N x (number of cards) steps, evaluates every
model with `ofa_plus.evaluation`, and writes ``compare.json`` and ``compare.md``: per task and
metric the trivial baseline, each specialist, the generalist, their rows-swapped scores and the
relative score (generalist / specialist, inverted for lower-is-better metrics), plus its mean over
tasks on each card's first metric, as the OFASys paper reports it.

Every model trains one micro-batch per step unless ``--tasks-per-step`` says otherwise, so a
specialist and the generalist spend the same compute per task (the generalist draws its tasks by
card weight; ``compare.json`` records how many micro-batches each task got). A specialist of a
smaller budget is a separate run, not a checkpoint of the longer one: warm-up and decay follow
``--max-steps``, so a checkpoint midway is not what training for that many steps gives. A rerun
with the same options and cards reuses the models already trained in ``--output``.
"""

from __future__ import annotations

import argparse
import collections
import json
import sys
import time
from pathlib import Path

from accelerate import Accelerator

from . import train
from .cli import HelpFormatter
from .evaluation import evaluate_card
from .metrics import METRICS
from .modeling_ofa_plus import OFAPlusForConditionalGeneration
from .multitask import step_tasks, task_probabilities
from .processing_ofa_plus import OFAPlusProcessor
from .task_card import TaskCard, load_cards

# options of ofa_plus.train that this command sets itself for each run
OWN_TRAIN_OPTIONS = ("--cards", "--output", "--max-steps", "--resume")
DONE_FILE = "compare_done.json"  # written once a run's model is complete: what it was trained with


def parse_args(argv=None) -> tuple[argparse.Namespace, list[str]]:
    """This command's options, and the rest: the training recipe, handed to ``ofa_plus.train`` as is."""
    p = argparse.ArgumentParser(
        prog="evaluation/compare.py",
        description=__doc__.split("\n\n")[0],
        epilog="Every other option is an ofa_plus.train option (python -m ofa_plus.train --help), e.g. "
        "--preset, --image-size, --lr, --batch-size, --dropout, --image-backbone, --backbone-weights, "
        "--tasks-per-step, --seed; it applies to every run.",
        formatter_class=HelpFormatter,
        allow_abbrev=False,  # an abbreviation could take a train option (--limit vs --limit-rows)
    )
    p.add_argument("--cards", nargs="+", required=True, help="task card files and/or folders")
    p.add_argument("--steps-per-task", type=int, required=True, help="N: each specialist's optimiser steps")
    p.add_argument("--output", required=True, help="folder for the runs, compare.json and compare.md")
    p.add_argument(
        "--budgets",
        type=float,
        nargs="+",
        default=[0.25, 0.5, 1.0],
        help="fractions of N at which each specialist is also trained and scored (1 is always included)",
    )
    p.add_argument("--limit", type=int, help="evaluate at most this many rows per task")
    p.add_argument("--split", default="test", choices=["test", "validation"])
    args, recipe = p.parse_known_args(argv)
    if args.steps_per_task < 1:
        p.error("--steps-per-task must be at least 1")
    if any(not 0 < b <= 1 for b in args.budgets):
        p.error("--budgets are fractions of --steps-per-task, in (0, 1]")
    taken = [o for o in recipe if o.split("=")[0] in OWN_TRAIN_OPTIONS]
    if taken:
        p.error(f"{', '.join(taken)}: set by this command for each run")
    if "--tasks-per-step" not in {o.split("=")[0] for o in recipe}:
        recipe += ["--tasks-per-step", "1"]
    train.parse_args(recipe + ["--cards", "-", "--output", "-"])  # stops here on an option train does not know
    return args, recipe


def budget_steps(steps_per_task: int, budgets: list[float]) -> list[int]:
    """The specialists' step counts, ascending, always ending with ``steps_per_task``."""
    return sorted({max(1, round(b * steps_per_task)) for b in budgets} | {steps_per_task})


def train_model(folder: Path, cards: list[TaskCard], steps: int, recipe: list[str]) -> Path:
    """Train on ``cards`` for ``steps`` steps into ``folder`` (or reuse the model a run with the same
    arguments and cards left there); returns the model folder."""
    argv = ["--cards", *[c.source for c in cards], "--output", str(folder), "--max-steps", str(steps), *recipe]
    done = {"argv": argv, "cards": [c.to_dict() for c in cards]}
    marker = folder / DONE_FILE
    if marker.exists() and json.loads(marker.read_text()) == json.loads(json.dumps(done, default=str)):
        print(f"reusing {folder / 'final'} (trained with the same arguments and cards)")
        return folder / "final"
    marker.unlink(missing_ok=True)
    final = train.main(argv)
    if Accelerator().is_main_process:
        marker.write_text(json.dumps(done, default=str))
    return final


def evaluate_model(model_dir: Path, cards: list[TaskCard], args: argparse.Namespace) -> dict[str, dict]:
    """``evaluate_card`` for each card: {task: entry}."""
    accelerator = Accelerator()
    model = OFAPlusForConditionalGeneration.from_pretrained(model_dir).to(accelerator.device).eval()
    processor = OFAPlusProcessor.from_pretrained(model_dir)
    return {card.name: evaluate_card(model, processor, card, accelerator, args.split, args.limit) for card in cards}


def micro_batches_per_task(cards: list[TaskCard], steps: int, recipe: list[str]) -> dict[str, int]:
    """How many micro-batches of each task a run of ``steps`` steps on ``cards`` draws (as train does),
    over all data-parallel processes of this launch."""
    options = train.parse_args(recipe + ["--cards", "-", "--output", "-"])
    per_step = options.tasks_per_step or len(cards)
    probabilities = task_probabilities(cards, options.temperature)
    world = Accelerator().num_processes
    counts = collections.Counter(
        task
        for step in range(steps)
        for task in step_tasks(options.seed, step, probabilities, per_step * world)  # all ranks' draws
    )
    return {card.name: counts[i] for i, card in enumerate(cards)}


def relative_score(metric: str, specialist: float, generalist: float) -> float | None:
    """Generalist / specialist, or specialist / generalist where lower is better (1 = as good as the
    specialist, above 1 = better); None where the denominator is 0."""
    if METRICS[metric].higher_is_better:
        return generalist / specialist if specialist else None
    return specialist / generalist if generalist else None


def model_scores(entry: dict, metric: str) -> dict:
    return {
        "score": entry["scores"][metric],
        "swapped": entry["swapped_scores"][metric],
        "distinct_predictions": entry["distinct_predictions"],
    }


def comparison(
    specialists: dict[str, dict[int, dict]],
    generalist: dict[str, dict],
    micro_batches: dict[str, int],
    steps_per_task: int,
    generalist_steps: int,
) -> dict:
    """The numbers of compare.json from the evaluation entries: ``specialists[task][steps]`` and
    ``generalist[task]`` are `evaluate_card` results."""
    tasks = []
    for name, entry in generalist.items():
        metrics = []
        for metric in entry["scores"]:
            runs = specialists[name]
            full = runs[steps_per_task]["scores"][metric]
            metrics.append(
                {
                    "metric": metric,
                    "higher_is_better": METRICS[metric].higher_is_better,
                    "baseline": entry["baseline"][metric],
                    "specialist": {str(steps): model_scores(runs[steps], metric) for steps in sorted(runs)},
                    "generalist": model_scores(entry, metric),
                    "relative": relative_score(metric, full, entry["scores"][metric]),
                }
            )
        tasks.append(
            {
                "task": name,
                "rows": entry["rows"],
                "baseline_kind": entry["baseline_kind"],
                "generalist_micro_batches": micro_batches[name],
                "metrics": metrics,
            }
        )
    mean, over = mean_relative(tasks)
    return {
        "steps_per_task": steps_per_task,
        "specialist_steps": sorted({s for runs in specialists.values() for s in runs}),
        "generalist_steps": generalist_steps,
        "tasks": tasks,
        "mean_relative": mean,
        "mean_over": over,
    }


def mean_relative(tasks: list[dict]) -> tuple[float | None, list[str]]:
    """The mean relative score over tasks on each task's first metric, and the tasks it covers (those
    where the relative score is defined)."""
    defined = [(t["task"], t["metrics"][0]["relative"]) for t in tasks if t["metrics"][0]["relative"] is not None]
    if not defined:
        return None, []
    return sum(r for _, r in defined) / len(defined), [name for name, _ in defined]


def _cell(scores: dict) -> str:
    return f"{scores['score']:.1f} ({scores['swapped']:.1f})"


def comparison_table(result: dict) -> str:
    """compare.md: one row per task and metric."""
    budgets = result["specialist_steps"]
    lines = [
        "| task | metric | trivial baseline | "
        + " | ".join(f"specialist {s} steps" for s in budgets)
        + f" | generalist {result['generalist_steps']} steps | relative |",
        "|---|---|---:|" + "---:|" * len(budgets) + "---:|---:|",
    ]
    for task in result["tasks"]:
        for k, m in enumerate(task["metrics"]):
            arrow = "" if m["higher_is_better"] else " ↓"
            relative = "-" if m["relative"] is None else f"{100 * m['relative']:.0f}%"
            kind = f" ({task['baseline_kind']})" if k == 0 else ""
            lines.append(
                f"| {task['task'] if k == 0 else ''} | {m['metric']}{arrow} | {m['baseline']:.1f}{kind} | "
                + " | ".join(_cell(m["specialist"][str(s)]) for s in budgets)
                + f" | {_cell(m['generalist'])} | {relative} |"
            )
    mean = result["mean_relative"]
    lines += [
        "",
        "In parentheses: the rows-swapped score (each prediction scored against another row's reference; "
        "about the score itself when a model ignores its input). Relative: generalist / specialist at "
        f"{result['steps_per_task']} steps (specialist / generalist for ↓ metrics).",
        "",
        "Generalist micro-batches per task: "
        + ", ".join(f"{t['task']} {t['generalist_micro_batches']}" for t in result["tasks"])
        + ".",
        "",
        f"Mean relative score (first metric of each task, {len(result['mean_over'])} of "
        f"{len(result['tasks'])} tasks): " + ("-" if mean is None else f"{100 * mean:.1f}%"),
    ]
    return "\n".join(lines)


def main(argv=None) -> dict:
    args, recipe = parse_args(argv)
    cards = load_cards(args.cards)
    output = Path(args.output)
    started = time.time()
    steps = budget_steps(args.steps_per_task, args.budgets)
    specialists: dict[str, dict[int, dict]] = {}
    for card in cards:
        specialists[card.name] = {}
        for budget in steps:
            model = train_model(output / "specialists" / card.name / f"steps_{budget}", [card], budget, recipe)
            specialists[card.name][budget] = evaluate_model(model, [card], args)[card.name]
    generalist_steps = args.steps_per_task * len(cards)
    model = train_model(output / "generalist", cards, generalist_steps, recipe)
    generalist = evaluate_model(model, cards, args)

    micro_batches = micro_batches_per_task(cards, generalist_steps, recipe)
    result = comparison(specialists, generalist, micro_batches, args.steps_per_task, generalist_steps)
    result.update(cards=[c.source for c in cards], recipe=recipe, split=args.split, limit=args.limit)
    accelerator = Accelerator()
    if accelerator.is_main_process:
        output.mkdir(parents=True, exist_ok=True)
        (output / "compare.json").write_text(json.dumps(result, indent=1))
        table = comparison_table(result)
        (output / "compare.md").write_text(table + "\n")
        print(table)
        print(f"compared {len(cards)} specialists with one generalist in {time.time() - started:.0f} s; see {output}")
    accelerator.wait_for_everyone()
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
    train.end_processes()
