"""What the LibriSpeech and LJSpeech scripts share: an error type that names the offending file,
and writing rows whose audio is read from files into a saved ``DatasetDict``."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import datasets


class ReleaseLayoutError(ValueError):
    """The folder does not have the layout of the release it claims to be (the message says where)."""


def _rows(paths_and_rows: list[tuple[Path, dict]]) -> Iterable[dict]:
    for path, row in paths_and_rows:
        # the file's own bytes (FLAC / WAV as released): decoding and resampling are the AUDIO slot's job
        yield {**row, "audio": {"bytes": path.read_bytes(), "path": path.name}}


def save_splits(
    splits: dict[str, list[tuple[Path, dict]]], features: datasets.Features, output: str | Path, description: str
) -> datasets.DatasetDict:
    """Write ``{split: [(audio file, row without audio)]}`` to ``output`` with ``save_to_disk``.

    Rows are streamed through ``Dataset.from_generator`` into a throw-away cache, so a release of
    many gigabytes never sits in memory, and a rebuild never reuses a stale cache.
    """
    result = datasets.DatasetDict()
    with tempfile.TemporaryDirectory(prefix="speech-release-") as cache:
        for split, rows in splits.items():
            dataset = datasets.Dataset.from_generator(
                _rows, features=features, cache_dir=cache, gen_kwargs={"paths_and_rows": rows}
            )
            dataset.info.description = description
            result[split] = dataset
        result.save_to_disk(str(output))
    return datasets.load_from_disk(str(output))


def build_from_command_line(name: str, output: str | Path, build: Callable[[], datasets.DatasetDict]) -> None:
    """Run a release builder for its command: a layout error ends the program with its message (which
    names the file), and the split sizes are printed."""
    start = time.perf_counter()
    try:
        result = build()
    except ReleaseLayoutError as error:
        raise SystemExit(str(error)) from None
    counts = ", ".join(f"{split}: {len(data)}" for split, data in result.items())
    print(f"{name} written to {output} ({counts}) in {time.perf_counter() - start:.1f} s")
