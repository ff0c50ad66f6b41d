"""The image processor: torchvision-backed by default, loaded without backend warnings, equal to its
PIL twin within a pixel or two, and still loading processors saved by the PIL-only versions."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging

from ofa_plus import OFAPlusConfig, OFAPlusImageProcessor, OFAPlusImageProcessorPil, OFAPlusProcessor

SAVED = Path(__file__).parent / "fixtures" / "saved_model"  # saved by 0.1.0, when the processor was PIL-only
PIXEL = 2 / 255  # one 8-bit step, in normalised units (mean = std = 0.5)


def _scene(width: int, height: int) -> Image.Image:
    """A photo-like test image: smooth gradients, filled shapes with hard edges, a thin line."""
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], -1)
    image = Image.fromarray(rgb.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse((width // 5, height // 5, width // 2, height // 2), fill=(220, 30, 30))
    draw.rectangle((width // 2, height // 3, width - 5, height - 5), fill=(20, 20, 200), outline=(255, 255, 255))
    draw.line((0, height - 1, width - 1, 0), fill=(0, 0, 0), width=2)
    return image


def _load_quietly(load):
    """Run ``load`` and return (its result, what transformers logged meanwhile)."""
    logging.warning_once.cache_clear()  # a warning given earlier in the session would be hidden otherwise
    with CaptureLogger(logging.get_logger("transformers")) as captured:
        result = load()
    return result, captured.out


@pytest.mark.parametrize(
    "load",
    [
        lambda: OFAPlusProcessor.from_pretrained(SAVED),
        lambda: OFAPlusProcessor.from_preset("tiny"),
        lambda: OFAPlusProcessor.for_config(OFAPlusConfig.from_preset("tiny")),
    ],
    ids=["from_pretrained", "from_preset", "for_config"],
)
def test_processor_loads_torchvision_backend_without_warning(load):
    processor, logged = _load_quietly(load)
    assert "backend" not in logged, logged
    assert type(processor.image_processor) is OFAPlusImageProcessor
    assert processor.image_processor.backend == "torchvision"


def test_old_saved_processor_keeps_its_settings_and_pil_is_one_argument_away():
    saved = json.loads((SAVED / "processor_config.json").read_text())["image_processor"]
    processor = OFAPlusProcessor.from_pretrained(SAVED)
    assert processor.image_size == saved["size"]["height"] == 32
    assert list(processor.image_processor.image_mean) == saved["image_mean"]
    pil = OFAPlusProcessor.from_pretrained(SAVED, backend="pil")
    assert type(pil.image_processor) is OFAPlusImageProcessorPil
    assert pil.image_size == 32


def test_both_backends_save_the_same_type_and_load_each_other(tmp_path):
    pil = OFAPlusProcessor.from_preset("tiny")
    pil.image_processor = OFAPlusImageProcessorPil(size={"height": 64, "width": 64})
    pil.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "processor_config.json").read_text())["image_processor"]
    assert saved["image_processor_type"] == "OFAPlusImageProcessor"
    assert saved == {**OFAPlusImageProcessor(size={"height": 64, "width": 64}).to_dict(), **saved}
    loaded = OFAPlusProcessor.from_pretrained(tmp_path)
    assert type(loaded.image_processor) is OFAPlusImageProcessor
    assert loaded.image_size == 64


@pytest.mark.parametrize("width, height", [(300, 200), (640, 480), (1000, 300), (24, 24)])
@pytest.mark.parametrize("size", [32, 128, 480])
def test_torchvision_pixels_match_pil_within_rounding(width, height, size):
    image = _scene(width, height)
    target = {"height": size, "width": size}
    fast = OFAPlusImageProcessor()(image, size=target, return_tensors="pt")["pixel_values"]
    slow = OFAPlusImageProcessorPil()(image, size=target, return_tensors="pt")["pixel_values"]
    assert fast.shape == slow.shape == (1, 3, size, size)
    difference = (fast - slow).abs()
    assert difference.max().item() <= 2 * PIXEL + 1e-6  # rounding, never a different picture
    assert difference.mean().item() <= 0.05 * PIXEL


def test_odd_downscale_differs_only_near_hard_edges():
    # PIL clips to 8 bits between its horizontal and vertical passes, torchvision does not: where bicubic
    # overshoots at a hard edge the two differ by more than rounding, elsewhere they agree.
    image = _scene(37, 53)
    target = {"height": 32, "width": 32}
    fast = OFAPlusImageProcessor()(image, size=target, return_tensors="pt")["pixel_values"]
    slow = OFAPlusImageProcessorPil()(image, size=target, return_tensors="pt")["pixel_values"]
    difference = (fast - slow).abs()
    assert difference.mean().item() <= 0.5 * PIXEL
    assert (difference > 2 * PIXEL).float().mean().item() <= 0.05
