"""IMAGE: pixels -> CNN patch features (ResNet stages or MobileNetV2 blocks) with 2-D positions.

Processor half: load any common image value, resize to the model's square size, normalise
(`OFAPlusImageProcessor`, an HF image processor saved with the processor: torchvision-backed, with
`OFAPlusImageProcessorPil` as its PIL twin where torchvision is missing or ``backend="pil"`` asks). In the token stream an
image is a run of ``image_tokens`` ``<image>`` placeholders that the model replaces with patches.
Model half: `ImageAdaptor`, torchvision ResNet stages (OFA keeps stages 1-3: stride 16, so
480 px -> 30x30 patches) or MobileNetV2 blocks cut at the same stride, and a linear projection to
``d_model``. `ImageAdaptor.load_backbone_weights` starts the CNN from ImageNet weights.
"""

from __future__ import annotations

import io
import os
from typing import Any

import numpy as np
import torch
import torchvision
from PIL import Image, ImageOps
from torch import nn
from transformers.image_processing_backends import PilBackend, TorchvisionBackend
from transformers.image_utils import PILImageResampling

from .. import vocabulary as V
from . import register_modality
from .base import Attribute, Modality, ModalityAdaptor, SlotContext


class _OFAPlusImageSettings:
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


# transformers' naming: the torchvision class carries the plain name, the PIL one ends in "Pil"; both
# save ``image_processor_type: OFAPlusImageProcessor``, so either loads a processor saved by the other.
class OFAPlusImageProcessor(_OFAPlusImageSettings, TorchvisionBackend):
    """OFA's image preprocessing on torchvision (batched tensor ops; the default backend)."""


class OFAPlusImageProcessorPil(_OFAPlusImageSettings, PilBackend):
    """OFA's image preprocessing on PIL and NumPy (the fallback backend)."""


def load_image(value: Any, where: str) -> Image.Image:
    """Accept a PIL image, a path, raw bytes, a ``datasets`` Image dict, or an HxWxC / CxHxW array."""
    return read_image(value, where)[0]


def read_image(value: Any, where: str, size: int | None = None) -> tuple[Image.Image, tuple[int, int]]:
    """Any image value -> (8-bit RGB image upright, its width and height as stored upright).

    16-bit and float pixels are scaled to 8 bits by their depth, transparency is laid on white,
    EXIF rotation is applied. With ``size``, a large file is decoded reduced (JPEG draft, then
    `Image.reduce`) but never below ``size`` on either side. Anything unreadable is a ValueError
    that starts with ``where``."""
    if isinstance(value, dict) and ("bytes" in value or "path" in value):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (bytes, bytearray)):
        value = io.BytesIO(value)
    try:
        if isinstance(value, Image.Image):
            image, original = _upright(value, None)
        elif isinstance(value, (str, os.PathLike, io.BytesIO)):
            with Image.open(value) as img:
                image, original = _upright(img, size)
        elif isinstance(value, (np.ndarray, torch.Tensor)):
            image, original = _upright(Image.fromarray(_array_to_uint8(value, where)), None)
        else:
            raise TypeError(f"expected a PIL image, path, bytes or array, got {type(value).__name__}")
        if 0 in original:
            raise ValueError(f"the image is empty ({original[0]}x{original[1]} pixels)")
        if size and min(image.size) >= 2 * size:  # a large image: cheap box downscale first
            image = image.reduce(min(image.size) // size)
    except Image.DecompressionBombError as err:
        raise ValueError(
            f"{where}: cannot read image: {err} (raise PIL.Image.MAX_IMAGE_PIXELS if you trust the file)"
        ) from err
    except (OSError, ValueError, TypeError, SyntaxError) as err:
        if str(err).startswith(where):
            raise
        raise ValueError(f"{where}: cannot read image: {err}") from err
    return image, original


# EXIF orientations that turn the image a quarter: width and height swap when it is set upright
_QUARTER_TURNS = {5, 6, 7, 8}


def _upright(img: Image.Image, size: int | None) -> tuple[Image.Image, tuple[int, int]]:
    """Decode (reduced when ``size`` allows), apply EXIF orientation, convert to 8-bit RGB."""
    width, height = img.size
    if img.getexif().get(0x0112) in _QUARTER_TURNS:
        width, height = height, width
    if size and img.format == "JPEG":  # decode at 1/2, 1/4 or 1/8 scale, no smaller than size
        img.draft(None, (size, size))
    img = ImageOps.exif_transpose(img)
    return _to_rgb(img), (width, height)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):  # deeper than 8 bits: scale, not clip
        img = Image.fromarray(_array_to_uint8(np.asarray(img), "image"))
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")


def _array_to_uint8(value, where: str) -> np.ndarray:
    """HxW, HxWxC or CxHxW pixels of any depth -> HxW(xC) uint8: 16-bit values are divided by 257,
    floats in [0, 1] multiplied by 255, other values clipped to [0, 255]."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.ndim == 3 and array.shape[0] in (1, 3, 4) and array.shape[-1] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (2, 3, 4)):
        raise ValueError(f"{where}: an image array must be HxW, HxWxC or CxHxW, got shape {array.shape}")
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if array.size == 0:
        return array.astype(np.uint8)
    top = array.max()
    if np.issubdtype(array.dtype, np.floating):
        array = array * (255.0 if top <= 1.0 else 1.0)
    elif array.dtype == np.uint16 or 255 < top <= 65535:  # 16-bit samples (uint16, or PIL's 32-bit "I" mode)
        array = array / 257.0
    return np.clip(np.rint(array), 0, 255).astype(np.uint8)


# MobileNetV2 feature blocks that end at stride 4, 8, 16, 32 (the ResNet stage counts 1-4)
MOBILENET_V2_BLOCKS = {1: 4, 2: 7, 3: 14, 4: 18}
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class ImageAdaptor(ModalityAdaptor):
    """A torchvision CNN cut at stride ``2 ** (image_backbone_stages + 1)`` (ResNet stem + stages, or
    MobileNetV2 feature blocks), then a projection to d_model. Its patches sit on a 2-D grid."""

    position_kind = "grid"
    type_id = 1
    token_name = "patch tokens"

    def __init__(self, config):
        super().__init__()
        self.tokens_per_image = config.image_tokens
        cnn = getattr(torchvision.models, config.image_backbone)(weights=None)
        if config.image_backbone == "mobilenet_v2":
            blocks = MOBILENET_V2_BLOCKS[config.image_backbone_stages]
            kept = [(f"features.{i}", cnn.features[i]) for i in range(blocks)]
        else:
            names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
            kept = [(name, getattr(cnn, name)) for name in names[: 4 + config.image_backbone_stages]]
        self.backbone = nn.Sequential(*(module for _, module in kept))
        self.backbone_name = config.image_backbone
        self.source_names = [name for name, _ in kept]  # where each block sits in a torchvision checkpoint
        channels = [m for m in self.backbone.modules() if isinstance(m, nn.BatchNorm2d)][-1].num_features
        self.proj = nn.Linear(channels, config.d_model)
        self.pretrained = config.image_backbone_pretrained
        if self.pretrained:  # ImageNet statistics, not the batch's: single-task batches would shift them
            _freeze_batchnorm(self.backbone)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, H/stride * W/stride, d_model), patches in row-major order."""
        if self.pretrained:  # pixels arrive normalised with mean = std = 0.5; ImageNet weights expect its own
            mean = pixel_values.new_tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
            std = pixel_values.new_tensor(IMAGENET_STD).view(1, 3, 1, 1)
            pixel_values = (pixel_values * 0.5 + 0.5 - mean) / std
        features = self.backbone(pixel_values)
        return self.proj(features.flatten(2).transpose(1, 2))

    def token_counts(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return torch.full((pixel_values.shape[0],), self.tokens_per_image, device=pixel_values.device)

    def load_backbone_weights(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load a torchvision checkpoint of the same CNN (e.g. its ImageNet weights) into the kept blocks."""
        if not self.pretrained:
            raise ValueError(
                "load_backbone_weights needs a model configured with image_backbone_pretrained=True "
                "(fixed BatchNorm statistics, ImageNet pixel statistics)"
            )
        wanted = {}
        for key in self.backbone.state_dict():
            block, rest = key.split(".", 1)
            wanted[key] = f"{self.source_names[int(block)]}.{rest}"
        missing = [name for name in wanted.values() if name not in state_dict]
        if missing:
            raise ValueError(
                f"the backbone checkpoint lacks {len(missing)} tensor(s), e.g. {missing[:3]}: "
                f"is it a checkpoint of torchvision's {self.backbone_name}?"
            )
        self.backbone.load_state_dict({key: state_dict[name] for key, name in wanted.items()})


def _freeze_batchnorm(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, torchvision.ops.misc.FrozenBatchNorm2d(child.num_features, eps=child.eps))
        else:
            _freeze_batchnorm(child)


@register_modality
class ImageModality(Modality):
    name = "IMAGE"
    text_like = False
    output_kind = None  # image generation (image codes) is not built yet
    placeholder_id = V.IMAGE_ID
    adaptor_class = ImageAdaptor
    batch_keys = ("pixel_values",)
    attributes = {
        "mask_ratio": Attribute(float, minimum=0.0, maximum=1.0, help="blank a central square of this share"),
    }

    @classmethod
    def is_single(cls, value) -> bool:
        return not isinstance(value, (list, tuple)) and not (
            isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 4
        )

    @staticmethod
    def preprocess(
        image: Image.Image, image_processor: OFAPlusImageProcessor, size: int, mask_ratio: float = 0.0
    ) -> torch.Tensor:
        pixels = image_processor(image, size={"height": size, "width": size}, return_tensors="pt")["pixel_values"][0]
        if mask_ratio:  # OFA's image infilling: keep a border of (1 - ratio) / 2 of the side
            border = int(size * (1 - mask_ratio) / 2)
            pixels[:, border : size - border, border : size - border] = 0.0
        return pixels

    @classmethod
    def load(cls, value, ctx: SlotContext) -> torch.Tensor:
        processor = ctx.processor
        image, original = read_image(value, ctx.where, processor.image_size)
        ctx.row.input_sizes[ctx.slot.column] = original  # a BOX of this image is in its original pixels
        return cls.preprocess(
            image, processor.image_processor, processor.image_size, ctx.settings.get("mask_ratio", 0.0)
        )

    @classmethod
    def placeholder_count(cls, features, ctx: SlotContext) -> int:
        return ctx.processor.image_tokens

    @classmethod
    def collate(cls, features: list[torch.Tensor], processor) -> dict[str, torch.Tensor]:
        return {"pixel_values": torch.stack(features)}
