"""Images of every common mode and depth are read as they look (16-bit, 32-bit, float, transparency,
palette, CMYK, EXIF rotation); huge images are decoded reduced; bombs and empty images are errors
that name the row and slot."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from conftest import digit_image
from ofa_plus.modalities.image import read_image
from ofa_plus.plan import compile_plan

CAPTION = compile_plan("[IMAGE:image] what does the image describe? -> [TEXT:caption]")
GROUNDING = compile_plan("[IMAGE:image] which region does the text describe? [TEXT:text] -> [BOX:region]")


def pixels(processor, image) -> np.ndarray:
    return processor.process_rows(CAPTION, [{"image": image}])["pixel_values"][0].numpy()


def grey(index: int) -> np.ndarray:
    """A handwritten digit (dark ink on white) as 8-bit grey levels."""
    return np.asarray(digit_image(index, 48).convert("L"))


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def jpeg(image: Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, **options)
    return buffer.getvalue()


def with_alpha(mode: str, index: int) -> Image.Image:
    """The digit's ink on a fully transparent background whose hidden colour is black."""
    ink = grey(index)
    alpha = np.where(ink < 255, 255, 0).astype(np.uint8)
    luminance = np.where(ink < 255, ink, 0).astype(np.uint8)
    if mode == "LA":
        return Image.fromarray(np.stack([luminance, alpha], -1), "LA")
    return Image.fromarray(np.stack([luminance] * 3 + [alpha], -1), "RGBA")


def palette_with_transparency(index: int) -> Image.Image:
    """Palette index i is grey level i, except index 0: black, and the transparent background."""
    ink = grey(index)
    image = Image.fromarray(np.where(ink < 255, np.maximum(ink, 1), 0).astype(np.uint8), "P")
    image.putpalette([v for i in range(256) for v in (i, i, i)])
    image.info["transparency"] = 0
    return Image.open(io.BytesIO(png(image)))


def rotated_jpeg(index: int) -> bytes:
    """The digit stored turned a quarter, with EXIF orientation 6 saying how to set it upright."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return jpeg(digit_image(index, 48).transpose(Image.Transpose.ROTATE_90), exif=exif.tobytes())


VARIANTS = {
    "16-bit PNG": lambda i: png(Image.fromarray(grey(i).astype(np.uint16) * 257)),
    "uint16 array": lambda i: grey(i).astype(np.uint16) * 257,
    "32-bit I mode": lambda i: Image.fromarray(grey(i).astype(np.int32) * 257, "I"),
    "float array in [0, 1]": lambda i: grey(i).astype(np.float32) / 255,
    "LA with transparency": lambda i: png(with_alpha("LA", i)),
    "RGBA with transparency": lambda i: with_alpha("RGBA", i),
    "P with transparency": palette_with_transparency,
    "CMYK JPEG": lambda i: jpeg(digit_image(i, 48).convert("CMYK")),
    "EXIF-rotated JPEG": rotated_jpeg,
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_every_mode_and_depth_reads_like_the_8_bit_image(processor, variant):
    """Twenty digits in each form give the pixels of the same digit saved as 8-bit RGB."""
    for index in range(20):
        expected = pixels(processor, digit_image(index, 48))
        got = pixels(processor, VARIANTS[variant](index))
        tolerance = 0.06 if "JPEG" in variant else 0.01  # pixels are in [-1, 1]; JPEG is lossy
        assert np.abs(got - expected).mean() < tolerance, (variant, index)


def test_exif_rotation_gives_the_upright_size_for_boxes(processor):
    batch = processor.process_rows(GROUNDING, [{"image": rotated_jpeg(3), "text": "the digit"}])
    assert batch.rows[0].input_sizes["image"] == (48, 48)
    wide = Image.new("RGB", (80, 40), "white")
    exif = Image.Exif()
    exif[0x0112] = 6
    image, size = read_image(jpeg(wide, exif=exif.tobytes()), "row 0")
    assert image.size == size == (40, 80)


def test_huge_images_are_decoded_reduced_but_boxes_keep_original_pixels(processor):
    huge = Image.new("RGB", (8000, 6000), "white")
    huge.paste(digit_image(7, 3000), (2500, 1500))
    data = jpeg(huge)
    started = time.perf_counter()
    image, size = read_image(data, "row 0", 64)
    took = time.perf_counter() - started
    assert size == (8000, 6000) and 64 <= min(image.size) < 128 and took < 1.0
    batch = processor.process_rows(GROUNDING, [{"image": data, "text": "the digit"}])
    assert batch.rows[0].input_sizes["image"] == (8000, 6000)
    # a lossless file that cannot be decoded reduced is box-reduced right after decoding
    image, size = read_image(png(Image.new("L", (1024, 1024), 128)), "row 0", 64)
    assert size == (1024, 1024) and image.size == (64, 64) and image.mode == "RGB"


def test_a_decompression_bomb_is_an_unreadable_image(processor, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 100x100 is then over twice the limit
    with pytest.raises(ValueError, match=r"row 0, slot \[IMAGE:image\].*cannot read image.*MAX_IMAGE_PIXELS"):
        processor.process_rows(CAPTION, [{"image": png(Image.new("RGB", (100, 100)))}])


@pytest.mark.parametrize(
    "empty", [np.zeros((0, 0, 3), np.uint8), np.zeros((4, 0), np.uint8), Image.new("RGB", (0, 0))]
)
def test_an_empty_image_is_a_clear_error(processor, empty):
    with pytest.raises(ValueError, match=r"row 0, slot \[IMAGE:image\].*the image is empty \(\d+x\d+ pixels\)"):
        processor.process_rows(CAPTION, [{"image": empty}])
