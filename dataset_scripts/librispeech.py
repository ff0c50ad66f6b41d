"""LibriSpeech, read from its release folder layout, as a ``datasets.DatasetDict``.

    python -m dataset_scripts.librispeech --root /data/LibriSpeech --output data/librispeech \\
        [--subsets train-clean-100 dev-clean test-clean]

The release (openslr.org/12, CC BY 4.0) unpacks to

    LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>-<utterance>.flac
    LibriSpeech/<subset>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt   ("<id> <TRANSCRIPT>" lines)

Each subset becomes one split, its name with "_" for "-" (``dev-clean`` -> ``dev_clean``), with
columns ``id``, ``audio`` (``datasets.Audio()``: the FLAC bytes as released, 16 kHz), ``text``
(the transcript as released: upper case, no punctuation), ``speaker`` and ``chapter``. Every
FLAC needs a transcript line and every line a FLAC; anything else stops with the file named.
``--root`` may be the ``LibriSpeech`` folder or the folder holding it.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import datasets

from .speech_release import ReleaseLayoutError, build_from_command_line, save_splits

SUBSETS = (
    "train-clean-100",
    "train-clean-360",
    "train-other-500",
    "dev-clean",
    "dev-other",
    "test-clean",
    "test-other",
)
FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "audio": datasets.Audio(),
        "text": datasets.Value("string"),
        "speaker": datasets.Value("string"),
        "chapter": datasets.Value("string"),
    }
)
DESCRIPTION = (
    "LibriSpeech ASR corpus (Panayotov, Chen, Povey, Khudanpur 2015; openslr.org/12; licence CC BY "
    "4.0): read English audiobook speech from LibriVox, 16 kHz FLAC as released, transcripts "
    "upper case without punctuation. Split = the release's subset ({subset})."
)
LINE = re.compile(r"(\d+)-(\d+)-(\d+) (.+)")


def release_folder(root: str | Path) -> Path:
    root = Path(root)
    if (root / "LibriSpeech").is_dir():
        root = root / "LibriSpeech"
    if not root.is_dir():
        raise ReleaseLayoutError(f"librispeech: {root} is not a folder")
    return root


def split_name(subset: str) -> str:
    return subset.replace("-", "_")


def read_chapter(folder: Path, speaker: str, chapter: str) -> list[tuple[Path, dict]]:
    """(audio file, row) for each utterance of one chapter folder, in transcript order."""
    transcript = folder / f"{speaker}-{chapter}.trans.txt"
    audio = {p.name: p for p in folder.glob("*.flac")}
    if not transcript.is_file():
        raise ReleaseLayoutError(
            f"librispeech: missing transcript {transcript} (the chapter folder holds {len(audio)} .flac files)"
        )
    rows, seen = [], set()
    for number, line in enumerate(transcript.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        match = LINE.fullmatch(line.strip())
        where = f"{transcript}, line {number}"
        if match is None:
            raise ReleaseLayoutError(
                f"librispeech: {where}: expected '<speaker>-<chapter>-<utterance> <TRANSCRIPT>', got {line[:80]!r}"
            )
        if match.group(1, 2) != (speaker, chapter):
            raise ReleaseLayoutError(
                f"librispeech: {where}: utterance {line.split()[0]} does not belong to "
                f"speaker {speaker}, chapter {chapter}"
            )
        utterance = line.split()[0]
        if utterance in seen:
            raise ReleaseLayoutError(f"librispeech: {where}: utterance {utterance} is listed twice")
        seen.add(utterance)
        path = audio.pop(f"{utterance}.flac", None)
        if path is None:
            raise ReleaseLayoutError(f"librispeech: {where}: no audio file {folder / (utterance + '.flac')}")
        rows.append(
            (path, {"id": utterance, "text": " ".join(match.group(4).split()), "speaker": speaker, "chapter": chapter})
        )
    if audio:
        extra = sorted(audio)
        raise ReleaseLayoutError(
            f"librispeech: audio without a transcript line in {transcript}: "
            f"{folder / extra[0]}" + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
        )
    return rows


def read_subset(folder: Path) -> list[tuple[Path, dict]]:
    rows = []
    for speaker_folder in sorted(p for p in folder.iterdir() if p.is_dir()):
        chapters = sorted(p for p in speaker_folder.iterdir() if p.is_dir())
        for chapter_folder in chapters:
            rows += read_chapter(chapter_folder, speaker_folder.name, chapter_folder.name)
    if not rows:
        raise ReleaseLayoutError(
            f"librispeech: no utterances under {folder} "
            "(expected <speaker>/<chapter>/<speaker>-<chapter>-<utterance>.flac)"
        )
    return rows


def build(root: str | Path, output: str | Path, subsets: list[str] | None = None) -> datasets.DatasetDict:
    """Read the subsets (default: every known subset present under ``root``) and save them to ``output``."""
    root = release_folder(root)
    if subsets is None:
        subsets = [s for s in SUBSETS if (root / s).is_dir()]
        if not subsets:
            raise ReleaseLayoutError(f"librispeech: {root} holds none of the subsets {', '.join(SUBSETS)}")
    missing = [s for s in subsets if not (root / s).is_dir()]
    if missing:
        raise ReleaseLayoutError(f"librispeech: subset folder(s) missing under {root}: {', '.join(missing)}")
    splits = {split_name(s): read_subset(root / s) for s in subsets}
    description = DESCRIPTION.format(subset=", ".join(subsets))
    return save_splits(splits, FEATURES, output, description)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="the LibriSpeech folder of the release (or its parent)")
    parser.add_argument("--output", default="data/librispeech", help="folder for the saved DatasetDict")
    parser.add_argument("--subsets", nargs="+", help="subset folders to read (default: all present)")
    args = parser.parse_args(argv)
    build_from_command_line("librispeech", args.output, lambda: build(args.root, args.output, args.subsets))


if __name__ == "__main__":
    main()
