"""LJSpeech 1.1, read from its release folder layout, as a ``datasets.DatasetDict``.

    python -m dataset_scripts.ljspeech --root /data/LJSpeech-1.1 --output data/ljspeech \\
        [--validation 100] [--test 500] [--seed 0]

The release (keithito.com/LJ-Speech-Dataset, public domain) unpacks to

    LJSpeech-1.1/metadata.csv    "<id>|<transcription>|<normalized transcription>" per line
    LJSpeech-1.1/wavs/<id>.wav   22.05 kHz mono 16-bit PCM

The release has no splits; a seeded shuffle holds out ``--validation`` and ``--test`` clips. Columns:
``id``, ``audio`` (``datasets.Audio()``: the WAV bytes as released), ``text`` (the normalized
transcription: numbers and abbreviations written out, what is spoken), ``raw_text`` (the
transcription as written) and ``speaker`` (always "LJ": one reader). ``metadata.csv`` is split on
"|" only: its transcriptions contain quote marks that a CSV reader would take as quoting. Every
line needs a WAV and every WAV a line; anything else stops with the file named. ``--root`` may be
the ``LJSpeech-1.1`` folder or the folder holding it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import datasets
import numpy as np

from .speech_release import ReleaseLayoutError, build_from_command_line, save_splits

FEATURES = datasets.Features(
    {
        "id": datasets.Value("string"),
        "audio": datasets.Audio(),
        "text": datasets.Value("string"),
        "raw_text": datasets.Value("string"),
        "speaker": datasets.Value("string"),
    }
)
DESCRIPTION = (
    "LJ Speech 1.1 (Keith Ito and Linda Johnson 2017; keithito.com/LJ-Speech-Dataset; public domain): "
    "13,100 clips of one reader reading non-fiction books, 22.05 kHz WAV as released. `text` is the "
    "normalized transcription. No official split: a seeded shuffle (seed {seed}) holds out "
    "{validation} validation and {test} test clips."
)


def release_folder(root: str | Path) -> Path:
    root = Path(root)
    if (root / "LJSpeech-1.1").is_dir():
        root = root / "LJSpeech-1.1"
    if not (root / "metadata.csv").is_file():
        raise ReleaseLayoutError(f"ljspeech: missing transcript {root / 'metadata.csv'}")
    if not (root / "wavs").is_dir():
        raise ReleaseLayoutError(f"ljspeech: missing audio folder {root / 'wavs'}")
    return root


def read_release(root: Path) -> list[tuple[Path, dict]]:
    """(audio file, row) for each line of metadata.csv, in file order."""
    metadata = root / "metadata.csv"
    audio = {p.stem: p for p in (root / "wavs").glob("*.wav")}
    rows, seen = [], set()
    for number, line in enumerate(metadata.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{metadata}, line {number}"
        fields = line.split("|")
        if len(fields) != 3 or not fields[0].strip():
            raise ReleaseLayoutError(
                f"ljspeech: {where}: expected 'id|transcription|normalized transcription', "
                f"got {len(fields)} field(s): {line[:80]!r}"
            )
        clip, raw, normalized = (f.strip() for f in fields)
        if clip in seen:
            raise ReleaseLayoutError(f"ljspeech: {where}: clip {clip} is listed twice")
        seen.add(clip)
        if not (normalized or raw):
            raise ReleaseLayoutError(f"ljspeech: {where}: clip {clip} has no transcription")
        path = audio.pop(clip, None)
        if path is None:
            raise ReleaseLayoutError(f"ljspeech: {where}: no audio file {root / 'wavs' / (clip + '.wav')}")
        rows.append((path, {"id": clip, "text": normalized or raw, "raw_text": raw, "speaker": "LJ"}))
    if audio:
        extra = sorted(audio.values())
        raise ReleaseLayoutError(
            f"ljspeech: audio without a line in {metadata}: {extra[0]}"
            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else "")
        )
    if not rows:
        raise ReleaseLayoutError(f"ljspeech: {metadata} lists no clips")
    return rows


def build(
    root: str | Path, output: str | Path, validation: int = 100, test: int = 500, seed: int = 0
) -> datasets.DatasetDict:
    """Read the release under ``root``, hold out validation / test clips, save to ``output``."""
    rows = read_release(release_folder(root))
    if validation < 0 or test < 0 or validation + test >= len(rows):
        raise ReleaseLayoutError(
            f"ljspeech: cannot hold out {validation} validation + {test} test clips of "
            f"{len(rows)} (the train split would be empty)"
        )
    order = np.random.default_rng(seed).permutation(len(rows))
    # each split keeps the release's order (clips of one chapter stay together)
    parts = {
        "train": order[validation + test :],
        "validation": order[:validation],
        "test": order[validation : validation + test],
    }
    splits = {split: [rows[i] for i in sorted(indices)] for split, indices in parts.items()}
    return save_splits(splits, FEATURES, output, DESCRIPTION.format(seed=seed, validation=validation, test=test))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", required=True, help="the LJSpeech-1.1 folder of the release (or its parent)")
    parser.add_argument("--output", default="data/ljspeech", help="folder for the saved DatasetDict")
    parser.add_argument("--validation", type=int, default=100, help="clips held out for validation")
    parser.add_argument("--test", type=int, default=500, help="clips held out for test")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    build_from_command_line(
        "ljspeech", args.output, lambda: build(args.root, args.output, args.validation, args.test, args.seed)
    )


if __name__ == "__main__":
    main()
