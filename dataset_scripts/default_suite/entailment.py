"""entailment: yes / no / maybe hypotheses about a canvas of sprites."""

from __future__ import annotations

import datasets
import numpy as np

from .common import IMAGE, SPLITS, STRING, Build, TaskData, article, png, shuffled
from .scene import CANVAS_HOW, CANVAS_SOURCE, Sprite, draw_scene, sprite_names

# hypotheses that no picture can settle: the label is "maybe"
UNDETERMINED = (
    "the {a} was drawn by a child .",
    "the {a} was added to the picture last .",
    "the {a} was made on a monday .",
    "the {a} is the artist's favourite .",
    "someone is about to erase the {a} .",
    "the {a} was copied from a book .",
)
MIN_OFFSET = 12  # px between centres before "left of" / "above" counts as visible
MIN_AREA_RATIO = 1.6  # area ratio before "bigger than" counts as visible


def relation_hypothesis(rng: np.random.Generator, sprites: list[Sprite], label: str) -> str | None:
    """A yes/no hypothesis about where or how big the sprites are; None when the scene has no clear
    pair for the drawn relation. Both labels use the same wordings, so only the image tells them apart."""
    kind = ["horizontal", "vertical", "size"][int(rng.integers(3))]
    pairs = [(p, q) for p in sprites for q in sprites if p is not q]
    if kind == "horizontal":
        pairs = [(p, q) for p, q in pairs if q.centre[0] - p.centre[0] >= MIN_OFFSET]  # p is left of q
        words = ("left of", "right of")
    elif kind == "vertical":
        pairs = [(p, q) for p, q in pairs if q.centre[1] - p.centre[1] >= MIN_OFFSET]  # p is above q
        words = ("above", "below")
    else:
        pairs = [(p, q) for p, q in pairs if q.area >= MIN_AREA_RATIO * p.area]  # p is smaller
        words = ("smaller than", "bigger than")
    if not pairs:
        return None
    p, q = pairs[int(rng.integers(len(pairs)))]
    word = int(rng.integers(2))
    first, second = (p, q) if word == 0 else (q, p)  # true statement: "p left of q" or "q right of p"
    if label == "no":
        first, second = second, first
    return f"the {first.name} is {words[word]} the {second.name} ."


def build_entailment(b: Build) -> TaskData:
    rng = b.rng("entailment")
    names = sprite_names()
    sizes = {"train": 4500, "validation": 200, "test": 450}
    splits = {}
    for split in SPLITS:
        rows = []
        for i in range(b.size(sizes[split])):
            image, sprites = draw_scene(rng, b, split)
            label = ("yes", "no", "maybe")[i % 3]  # balanced labels
            hypothesis = None
            if label == "maybe":
                a = sprites[int(rng.integers(len(sprites)))].name
                hypothesis = UNDETERMINED[int(rng.integers(len(UNDETERMINED)))].format(a=a)
            elif rng.random() < 0.6:
                hypothesis = relation_hypothesis(rng, sprites, label)
            if hypothesis is None:  # presence: a sprite on the canvas, or one that is not there
                present = [s.name for s in sprites]
                pool = present if label == "yes" else [n for n in names if n not in present]
                name = pool[int(rng.integers(len(pool)))]
                hypothesis = f"there is {article(name)} {name} ."
            rows.append({"image": png(image), "hypothesis": hypothesis, "label": label})
        splits[split] = shuffled(rng, rows)
    return TaskData(
        splits,
        datasets.Features({"image": IMAGE, "hypothesis": STRING, "label": STRING}),
        CANVAS_SOURCE,
        "Visual entailment (yes / no / maybe, balanced): hypotheses about the canvas. 'yes' and 'no' "
        "share wordings: which sprites are present ('there is a seven .'), left of / right of, above / "
        f"below (centres at least {MIN_OFFSET} px apart) and bigger / smaller (area ratio at least "
        f"{MIN_AREA_RATIO}). 'maybe' hypotheses are about things no picture shows ('the seven was "
        "drawn by a child .'). " + CANVAS_HOW,
    )
