"""grounded_caption: describe the sprite inside a given box."""

from __future__ import annotations

import datasets

from .common import BOX, IMAGE, SPLITS, STRING, STRINGS, Build, TaskData, article, png
from .scene import CANVAS_HOW, CANVAS_SIZES, CANVAS_SOURCE, Sprite, draw_scene


def region_caption(sprite: Sprite) -> str:
    if sprite.ink is not None:
        return f"a handwritten {sprite.name} in {sprite.ink} ink"
    return f"an emoji of {article(sprite.name)} {sprite.name}"


def build_grounded_caption(b: Build) -> TaskData:
    rng = b.rng("grounded_caption")
    splits = {}
    for split in SPLITS:
        rows = []
        for _ in range(b.size(CANVAS_SIZES[split])):
            image, sprites = draw_scene(rng, b, split)
            target = sprites[int(rng.integers(len(sprites)))]
            caption = region_caption(target)
            rows.append({"image": png(image), "region": list(target.box), "caption": caption, "references": [caption]})
        splits[split] = rows
    return TaskData(
        splits,
        datasets.Features({"image": IMAGE, "region": BOX, "caption": STRING, "references": STRINGS}),
        CANVAS_SOURCE,
        "Grounded captioning: describe the sprite inside the given box ('a handwritten seven in dark "
        "blue ink', 'an emoji of a dog face'). " + CANVAS_HOW,
    )
