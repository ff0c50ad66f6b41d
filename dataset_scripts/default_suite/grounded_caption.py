"""grounded_caption: describe the sprite inside a given box."""

from __future__ import annotations

import datasets

from .common import BOX, IMAGE, SPLITS, STRING, STRINGS, Build, TaskData, png
from .scene import CANVAS_SIZES, CANVAS_SOURCE, GRID_HOW, grid_scene


def build_grounded_caption(b: Build) -> TaskData:
    rng = b.rng("grounded_caption")
    splits = {}
    for split in SPLITS:
        rows = []
        for _ in range(b.size(CANVAS_SIZES[split])):
            image, sprites = grid_scene(rng, b, split)
            target = sprites[int(rng.integers(len(sprites)))]
            caption = target.name
            rows.append({"image": png(image), "region": list(target.box), "caption": caption, "references": [caption]})
        splits[split] = rows
    return TaskData(
        splits,
        datasets.Features({"image": IMAGE, "region": BOX, "caption": STRING, "references": STRINGS}),
        CANVAS_SOURCE,
        "Grounded captioning: name the sprite inside the given box ('seven', 'dog face'). " + GRID_HOW,
    )
