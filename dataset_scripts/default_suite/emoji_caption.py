"""emoji_caption: Noto Color Emoji renderings captioned with their Unicode names."""

from __future__ import annotations

import datasets
from PIL import Image

from .common import (
    IMAGE,
    SPLITS,
    STRING,
    STRINGS,
    Build,
    TaskData,
    emoji_glyph,
    emoji_name,
    fit,
    light_colour,
    png,
    shuffled,
)

# 50 single-code-point emoji with common, distinct names: every fourth of four blocks of food,
# plants and animals. Fifty, not all 200 of the blocks: a specialist learns 50 names in the main
# job's per-task budget and none of 200 (dataset_scripts/README.md).
CAPTION_EMOJI = [
    *range(0x1F32D, 0x1F380),
    *range(0x1F400, 0x1F43D),
    *range(0x1F950, 0x1F965),
    *range(0x1F980, 0x1F9A3),
][::4]


def build_emoji_caption(b: Build) -> TaskData:
    rng = b.rng("emoji_caption")
    names = [emoji_name(c) for c in CAPTION_EMOJI]
    assert len(set(names)) == len(names), "caption emoji names must be distinct"
    # Split by rendering, not by emoji: a tiny model cannot caption a name it never saw, so every
    # emoji appears in every split, each time in a different rendering (scale, position, background).
    variants = {"train": 24, "validation": 4, "test": 4}
    specs = {split: [] for split in SPLITS}
    for code_point in CAPTION_EMOJI:
        for split, count in variants.items():
            for _ in range(count):
                side = int(rng.integers(38, 65))  # 60-100% of the 64 px canvas
                specs[split].append((code_point, side, rng.random(), rng.random(), light_colour(rng, 120)))
    splits = {}
    for split in SPLITS:
        rows = []
        for code_point, side, fx, fy, background in shuffled(rng, specs[split])[: b.size(len(specs[split]))]:
            sprite = fit(emoji_glyph(code_point), side)
            image = Image.new("RGB", (64, 64), background)
            position = (round(fx * (64 - sprite.width)), round(fy * (64 - sprite.height)))
            image.paste(sprite, position, sprite)
            caption = emoji_name(code_point)
            rows.append({"image": png(image), "caption": caption, "references": [caption]})
        splits[split] = rows
    return TaskData(
        splits,
        datasets.Features({"image": IMAGE, "caption": STRING, "references": STRINGS}),
        "Debian fonts-noto-color-emoji + unicodedata",
        "Emoji captioning: 50 single-code-point emoji (food, plants, animals) of Noto Color Emoji "
        "(Debian fonts-noto-color-emoji, SIL Open Font License 1.1) rendered with Pillow on a 64x64 "
        "canvas; the caption is the code point's Unicode name, lower-cased. Split BY RENDERING: each "
        "emoji is drawn 32 times (random size 60-100% of the canvas, random position, random light "
        "background); 24 renderings go to train, 4 to validation, 4 to test. Test images are new, the "
        "captions are not.",
    )
