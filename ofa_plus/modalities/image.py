"""IMAGE: pixels -> ResNet-stage patch features with 2-D positions.

Processor half: load any common image value, resize to the model's square size, normalise
(`OFAPlusImageProcessor`, an HF image processor saved with the processor). In the token stream an
image is a run of ``image_tokens`` ``<image>`` placeholders that the model replaces with patches.
Model half: `ImageAdaptor`, torchvision ResNet stages (OFA keeps stages 1-3: stride 16, so
480 px -> 30x30 patches) and a linear projection to ``d_model``.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import nn
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import PILImageResampling

from . import register_modality
from .base import Attribute, Modality


class OFAPlusImageProcessor(PilBackend):
    """Resize to a square ``size`` (bicubic), scale to [0, 1], normalise with mean = std = 0.5 (OFA)."""

    model_input_names = ["pixel_values"]
    resample = PILImageResampling.BICUBIC
    size = {"height": 480, "width": 480}
    image_mean = [0.5, 0.5, 0.5]
    image_std = [0.5, 0.5, 0.5]
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True


def load_image(value: Any, where: str) -> Image.Image:
    """Accept a PIL image, a path, raw bytes, a ``datasets`` Image dict, or an HxWxC / CxHxW array."""
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, dict) and ("bytes" in value or "path" in value):
        value = value.get("bytes") or value.get("path")
    try:
        if isinstance(value, (str, os.PathLike)):
            with Image.open(value) as img:
                return img.convert("RGB")
        if isinstance(value, (bytes, bytearray)):
            with Image.open(io.BytesIO(value)) as img:
                return img.convert("RGB")
    except (OSError, ValueError) as err:
        raise ValueError(f"{where}: cannot read image: {err}") from err
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        array = value
        if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
            array = array.transpose(1, 2, 0)
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.ndim not in (2, 3):
            raise ValueError(f"{where}: an image array must be HxW, HxWxC or CxHxW, got shape {value.shape}")
        if array.dtype != np.uint8:
            scale = 255.0 if array.max(initial=0) <= 1.0 else 1.0
            array = np.clip(array * scale, 0, 255).astype(np.uint8)
        return Image.fromarray(array).convert("RGB")
    raise ValueError(f"{where}: expected a PIL image, path, bytes or array, got {type(value).__name__}")


@register_modality
class ImageModality(Modality):
    name = "IMAGE"
    text_like = False
    attributes = {
        "mask_ratio": Attribute(float, minimum=0.0, maximum=1.0, help="blank a central square of this share"),
    }

    @classmethod
    def is_single(cls, value) -> bool:
        return not isinstance(value, (list, tuple)) and not (
            isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 4)

    @staticmethod
    def preprocess(image: Image.Image, image_processor: OFAPlusImageProcessor, size: int,
                   mask_ratio: float = 0.0) -> torch.Tensor:
        pixels = image_processor(image, size={"height": size, "width": size}, return_tensors="pt")["pixel_values"][0]
        if mask_ratio:  # OFA's image infilling: keep a border of (1 - ratio) / 2 of the side
            border = int(size * (1 - mask_ratio) / 2)
            pixels[:, border: size - border, border: size - border] = 0.0
        return pixels


class ImageAdaptor(nn.Module):
    """torchvision ResNet stem + the first ``image_backbone_stages`` stages, then a projection to d_model."""

    def __init__(self, config):
        super().__init__()
        resnet = getattr(torchvision.models, config.image_backbone)(weights=None)
        stages = [resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4][: config.image_backbone_stages]
        self.backbone = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool, *stages)
        block = stages[-1][-1]
        channels = (block.bn3 if hasattr(block, "bn3") else block.bn2).num_features
        self.proj = nn.Linear(channels, config.d_model)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, H/16 * W/16, d_model), patches in row-major order."""
        features = self.backbone(pixel_values)
        return self.proj(features.flatten(2).transpose(1, 2))


ImageModality.adaptor_class = ImageAdaptor
