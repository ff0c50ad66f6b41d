"""IMAGE: pixels -> CNN patch features (ResNet stages or MobileNetV2 blocks) with 2-D positions.

Processor half: load any common image value, resize to the model's square size, normalise
(`OFAPlusImageProcessor`, an HF image processor saved with the processor). In the token stream an
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
from PIL import Image
from torch import nn
from transformers.image_processing_backends import PilBackend
from transformers.image_utils import PILImageResampling

from .. import vocabulary as V
from . import register_modality
from .base import Attribute, Modality, ModalityAdaptor, SlotContext


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
        image = load_image(value, ctx.where)
        ctx.row.input_sizes[ctx.slot.column] = image.size  # a BOX of this image is in its original pixels
        processor = ctx.processor
        return cls.preprocess(
            image, processor.image_processor, processor.image_size, ctx.settings.get("mask_ratio", 0.0)
        )

    @classmethod
    def placeholder_count(cls, features, ctx: SlotContext) -> int:
        return ctx.processor.image_tokens

    @classmethod
    def collate(cls, features: list[torch.Tensor], processor) -> dict[str, torch.Tensor]:
        return {"pixel_values": torch.stack(features)}
