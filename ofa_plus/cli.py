"""The ``ofa-plus`` command: train, evaluate, fine-tune, run and share generalist models.

    ofa-plus train    --cards task_cards/default --output runs/x [--max-steps N] ...
    ofa-plus evaluate --model runs/x/final --output runs/x/results.json
    ofa-plus finetune --model runs/x/final --card my_task.yaml --output runs/my_task [--lora] [--push me/x]
    ofa-plus run      --model runs/x/final --task mnist --image digit.png
    ofa-plus run      --model runs/x/final --image cat.png \
                      --instruction "[IMAGE:image] what does the image describe? -> [TEXT:caption]"
    ofa-plus push     runs/x/final --repo me/ofa-plus-tiny [--results runs/x/results.json]
    ofa-plus push     data/default/mnist --repo me/mnist-names          (a DatasetDict folder)
    ofa-plus tasks    runs/x/final                                      (its tasks and instructions)
    ofa-plus convert-ofa ofa-tiny-download runs/ofa-tiny [--image-size 256] (a published OFA checkpoint)
    ofa-plus --version

``ofa-plus COMMAND --help`` explains each command.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from huggingface_hub.errors import HTTPError
from safetensors import SafetensorError

from . import __version__
from .quiet import quiet_libraries
from .threads import THREADS_HELP, threads_option

COMMANDS = {
    "train": "multi-task training with Accelerate (python -m ofa_plus.train)",
    "evaluate": "generate and score a model on its task cards (evaluation/run.py)",
    "finetune": "fine-tune a trained model on one new task card (full or LoRA), evaluate, optionally push",
    "run": "run one instruction, or one of the model's tasks by name, on files and values",
    "push": "push a model folder (with task cards and a model card) or a dataset folder to the Hub",
    "tasks": "list a model's tasks: name, instruction, output and metrics",
    "convert-ofa": "convert a published OFA checkpoint folder (Hub or ModelScope layout) into an OFA+ model",
}
# what each file option fills: the instruction's one encoder slot of these modalities
FILE_OPTIONS = {"image": ("IMAGE",), "audio": ("AUDIO",), "text": ("TEXT", "PHONE")}


class UsageError(Exception):
    """A mistake on the command line; the message says what to do instead."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default only where it has one (not "(default: None)" on required options)."""

    def _get_help_string(self, action: argparse.Action) -> str:
        if action.default in (None, False, [], "") or action.required:
            return action.help or ""
        return super()._get_help_string(action)


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="ofa-plus",
        description=__doc__.split("\n\n")[0],
        epilog="\n".join(f"  {c:<9} {h}" for c, h in COMMANDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=list(COMMANDS), metavar="COMMAND", help=", ".join(COMMANDS))
    parser.add_argument("--version", action="version", version=f"ofa-plus {__version__}")
    if argv[:1] == ["--version"]:
        parser.parse_args(argv[:1])  # prints the version and exits
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        parser.exit(0 if argv else 2)
    command, rest = parser.parse_args(argv[:1]).command, argv[1:]
    try:
        if command == "train":
            from . import train  # noqa: PLC0415

            train.main(rest)
            train.end_processes()
        elif command == "evaluate":
            from . import evaluation  # noqa: PLC0415

            _require_model(evaluation.parse_args(rest).model)
            evaluation.main(rest)
        elif command == "finetune":
            from . import finetune  # noqa: PLC0415

            _require_model(finetune.parse_args(rest).model)
            finetune.main(rest)
        elif command == "run":
            run(rest)
        elif command == "tasks":
            tasks(rest)
        elif command == "convert-ofa":
            convert_ofa(rest)
        else:
            push(rest)
    except (UsageError, ValueError, OSError) as err:  # bad cards/instructions, missing files, unreachable Hub ids
        parser.exit(2, f"ofa-plus {command}: error: {err}\n")
    except SafetensorError as err:
        parser.exit(
            2,
            f"ofa-plus {command}: error: cannot read the model's weights ({err}); its model.safetensors is "
            "incomplete or damaged: copy, download or train it again\n",
        )
    except HTTPError as err:  # the Hub cannot be reached (transformers wraps this for downloads, not pushes)
        parser.exit(2, f"ofa-plus {command}: error: cannot reach the Hub ({err}); check the network or HF_ENDPOINT\n")


def _require_model(model: str) -> None:
    """A local-looking model path must hold a saved model; say how to make one if not."""
    path = Path(model)
    if (path.exists() or model.startswith((".", "/", "~")) or model.count("/") > 1) and not (
        path / "config.json"
    ).is_file():
        raise UsageError(
            f"no trained model at {model!r} (no config.json there). Train one with "
            "`ofa-plus train --cards CARDS --output runs/x` and pass runs/x/final, or give a Hub id"
        )


# ---------------------------------------------------------------------------------------------- run
def run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ofa-plus run", description=COMMANDS["run"] + ".", formatter_class=HelpFormatter)
    p.add_argument("--model", required=True, help="a trained model folder or Hub id")
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--task", help="one of the model's tasks by name (its card sets instruction and decoding)")
    what.add_argument("--instruction", help='e.g. "[IMAGE:image] what does the image describe? -> [TEXT:caption]"')
    for option, modalities in FILE_OPTIONS.items():
        slots = " or ".join(f"[{m}:...]" for m in modalities)
        p.add_argument(
            f"--{option}",
            help=f"fills the instruction's {slots} input slot" + (" (a file path)" if option != "text" else ""),
        )
    p.add_argument(
        "--input",
        action="append",
        default=[],
        metavar="COLUMN=VALUE",
        help="fill a column by name (repeatable); a value starting with @ is read from that file path",
    )
    p.add_argument("--num-beams", type=int, help="override the task's beam count")
    p.add_argument("--max-new-tokens", type=int, help="override the task's output length")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: the first GPU if there is one)")
    p.add_argument("--num-threads", type=threads_option, help=THREADS_HELP)
    p.add_argument("--output-dir", help="speech outputs: write each as a 16-bit WAV in this folder (needed for them)")
    return p


@quiet_libraries()
def run(argv: list[str]) -> object:
    args = run_parser().parse_args(argv)
    _require_model(args.model)
    from transformers import pipeline  # noqa: PLC0415

    from .pipeline import TASK  # noqa: PLC0415
    from .plan import compile_plan  # noqa: PLC0415
    from .task_card import get_task  # noqa: PLC0415

    pipe = pipeline(TASK, model=args.model, device=args.device, num_threads=args.num_threads)
    plan = get_task(pipe.tasks, args.task).plan if args.task else compile_plan(args.instruction)
    columns = _columns(plan, args)
    settings = {k: v for k, v in (("num_beams", args.num_beams), ("max_new_tokens", args.max_new_tokens)) if v}
    if plan.output_kind == "speech":
        if not args.output_dir:
            raise UsageError("this task generates speech: give --output-dir DIR to write it as a WAV file")
        settings["output_dir"] = args.output_dir
    elif args.output_dir:
        raise UsageError(f"--output-dir writes speech; this task generates {plan.generator.kind}")
    value = pipe(task=args.task, **columns, **settings) if args.task else pipe(args.instruction, **columns, **settings)
    print(value if isinstance(value, str) else json.dumps(_shown(value), ensure_ascii=False))
    return value


def _shown(value):
    """What `run` prints: speech as its file, rate and length (the samples are in the WAV file)."""
    if isinstance(value, dict) and "audio" in value:
        return {"path": str(value["path"]), "sampling_rate": value["sampling_rate"], "samples": len(value["audio"])}
    return value


def _columns(plan, args) -> dict:
    inputs = plan.templates[0].slots("encoder")
    columns = {}
    for option, modalities in FILE_OPTIONS.items():
        value = getattr(args, option)
        if value is None:
            continue
        slots = [s.column for s in inputs if s.slot.modality in modalities]
        if len(slots) != 1:
            have = ", ".join(f"[{s.slot.modality}:{s.column}]" for s in inputs) or "none"
            wanted = " or ".join(f"[{m}:...]" for m in modalities)
            raise UsageError(
                f"--{option} fills the one {wanted} input slot, but the instruction has "
                f"{len(slots) or 'no'} such slot(s) (its inputs: {have}); use --input COLUMN=VALUE"
            )
        if option != "text" and not Path(value).is_file():
            raise UsageError(f"--{option} {value}: no such file")
        columns[slots[0]] = value
    for item in args.input:
        column, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"--input {item!r}: write COLUMN=VALUE, e.g. --input question='what colour is it?'")
        columns[column] = Path(value[1:]).read_text().strip() if value.startswith("@") else value
    missing = [s.column for s in inputs if s.column not in columns]
    if missing:
        raise UsageError(
            f"no value for input column(s) {', '.join(missing)}; give them with "
            + ", ".join(_option_for(s) for s in inputs if s.column in missing)
        )
    return columns


def _option_for(slot) -> str:
    option = next((o for o, m in FILE_OPTIONS.items() if slot.slot.modality in m), None)
    return f"--{option}" if option else f"--input {slot.column}=VALUE"


# ---------------------------------------------------------------------------------------------- push
def push_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ofa-plus push",
        description=COMMANDS["push"] + ". Log in first (`hf auth login`) or set HF_TOKEN.",
        formatter_class=HelpFormatter,
    )
    p.add_argument("path", help="a model folder (config.json) or a DatasetDict folder (dataset_dict.json)")
    p.add_argument("--repo", required=True, help="the Hub repo id, e.g. me/ofa-plus-tiny")
    p.add_argument("--results", help="model: results.json of `ofa-plus evaluate` (default: one in or beside PATH)")
    p.add_argument("--base-model", help="model: the Hub id it was fine-tuned from")
    p.add_argument(
        "--dataset", action="append", default=[], dest="datasets", help="model: Hub dataset id (repeatable)"
    )
    p.add_argument("--tag", action="append", default=[], dest="tags", help="extra tag (repeatable)")
    p.add_argument("--license", help="license id, e.g. apache-2.0, mit, cc-by-sa-3.0")
    p.add_argument(
        "--task-category",
        action="append",
        default=[],
        dest="task_categories",
        help="dataset: Hub task category (repeatable)",
    )
    p.add_argument("--private", action="store_true", help="create the repo as private")
    p.add_argument("--token", help="Hub token (default: the logged-in one or HF_TOKEN)")
    return p


@quiet_libraries()
def push(argv: list[str]) -> str:
    args = push_parser().parse_args(argv)
    from huggingface_hub.errors import HfHubHTTPError  # noqa: PLC0415

    from . import hub  # noqa: PLC0415

    path = Path(args.path)
    try:
        if (path / "dataset_dict.json").is_file():
            where = hub.push_dataset(
                path,
                args.repo,
                license=args.license,
                task_categories=args.task_categories or None,
                tags=args.tags,
                private=args.private or None,
                token=args.token,
            )
        elif (path / "config.json").is_file():
            where = hub.push_model(
                path,
                args.repo,
                results=args.results,
                base_model=args.base_model,
                datasets=args.datasets,
                tags=args.tags,
                license=args.license,
                private=args.private or None,
                token=args.token,
            )
        else:
            raise UsageError(
                f"{path} holds neither a model (config.json) nor a DatasetDict (dataset_dict.json); give "
                "the folder `ofa-plus train` wrote as <output>/final, or a save_to_disk dataset folder"
            )
    except HfHubHTTPError as err:
        status = getattr(err.response, "status_code", None)
        hint = " Log in with `hf auth login` or set HF_TOKEN." if status in (401, 403) else ""
        raise UsageError(f"the Hub refused the push ({status}): {str(err).splitlines()[0]}.{hint}") from None
    print(f"pushed {path} to {args.repo}: {where}")
    return where


# ---------------------------------------------------------------------------------------------- tasks
def tasks(argv: list[str]) -> list[dict]:
    p = argparse.ArgumentParser(prog="ofa-plus tasks", description=COMMANDS["tasks"] + ".")
    p.add_argument("model", help="a trained model folder or Hub id")
    args = p.parse_args(argv)
    _require_model(args.model)
    from .configuration_ofa_plus import OFAPlusConfig  # noqa: PLC0415
    from .task_card import tasks_from_dicts  # noqa: PLC0415

    cards = list(tasks_from_dicts(OFAPlusConfig.from_pretrained(args.model).task_cards).values())
    if not cards:
        print(f"{args.model} carries no task cards; run it with --instruction")
    for card in cards:
        g = card.plan.generator
        output = f"one of {len(g.closed_set)} answers" if g.closed_set else g.kind
        print(f"{card.name}")
        for instruction in card.instructions:
            print(f"  instruction: {instruction}")
        print(f"  output: {output}; metrics: {', '.join(card.metrics) or '-'}")
        print(f"  run: ofa-plus run --model {args.model} --task {card.name} ...")
    return [card.to_dict() for card in cards]


# ---------------------------------------------------------------------------------------- convert-ofa
def convert_ofa(argv: list[str]):
    p = argparse.ArgumentParser(
        prog="ofa-plus convert-ofa", description=COMMANDS["convert-ofa"] + ".", formatter_class=HelpFormatter
    )
    p.add_argument("src", help="folder with config.json, pytorch_model.bin, vocab.json and merges.txt")
    p.add_argument("dst", help="folder to write the OFA+ model to")
    p.add_argument(
        "--image-size",
        type=int,
        help="the checkpoint's patch_image_size; needed when its config.json / configuration.json does not say it",
    )
    args = p.parse_args(argv)
    from .convert_ofa import convert_ofa as convert  # noqa: PLC0415 (torch-heavy)

    report = convert(args.src, args.dst, image_size=args.image_size)
    config = report.config
    print(
        f"converted {report.converted} tensors ({len(report.dropped)} dropped: text-to-image path and buffers) into "
        f"{args.dst}: {config.d_model} d, {config.encoder_layers}+{config.decoder_layers} layers, "
        f"{config.image_backbone} at {config.image_size} px"
    )
    return report


if __name__ == "__main__":
    main()
