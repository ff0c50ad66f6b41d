"""grounding: find the box of the sprite a text names."""

from __future__ import annotations

import datasets

from .common import BOX, IMAGE, SPLITS, STRING, Build, TaskData, png
from .scene import CANVAS_SIZES, CANVAS_SOURCE, GRID_HOW, grid_scene


def build_grounding(b: Build) -> TaskData:
    rng = b.rng("grounding")
    splits = {}
    for split in SPLITS:
        rows = []
        for _ in range(b.size(CANVAS_SIZES[split])):
            image, sprites = grid_scene(rng, b, split)
            target = sprites[int(rng.integers(len(sprites)))]
            rows.append({"image": png(image), "text": target.name, "region": list(target.box)})
        splits[split] = rows
    return TaskData(
        splits,
        datasets.Features({"image": IMAGE, "text": STRING, "region": BOX}),
        CANVAS_SOURCE,
        "Visual grounding: find the sprite named by the text. " + GRID_HOW,
    )
