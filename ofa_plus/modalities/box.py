"""BOX: (x0, y0, x1, y1) in pixels of an image of the same instruction, as 4 location-bin tokens.

Coordinates are quantised relative to the referenced image (OFA: ``round(c / size * (bins - 1))``),
so they follow the image through its resize: that is the image+box co-transform. Decoding maps
bins back to pixels of the *original* image.
"""

from __future__ import annotations

import numbers

from .. import vocabulary as V
from . import register_modality
from .base import Attribute, Modality, SlotContext


@register_modality
class BoxModality(Modality):
    name = "BOX"
    text_like = True
    attributes = {
        "image": Attribute(str, help="column of the IMAGE slot the box refers to (default: the first image)"),
        "no_loss": Attribute(bool, side="decoder", help="teacher-forced prefix: fed to the decoder, not scored"),
    }

    @classmethod
    def is_single(cls, value) -> bool:
        return hasattr(value, "__len__") and len(value) == 4 and all(isinstance(c, numbers.Real) for c in value)

    @classmethod
    def check_slot(cls, slot, template) -> str | None:
        images = [s.column for s in template.slots("encoder") if s.slot.modality == "IMAGE"]
        wanted = slot.settings.get("image")
        if not images:
            return "a BOX slot needs an IMAGE slot on the encoder side: box coordinates are pixels of that image"
        if wanted is not None and wanted not in images:
            return f"BOX refers to image column {wanted!r}, but the encoder side has IMAGE slots {images}"
        return None

    @staticmethod
    def image_size(ctx: SlotContext) -> tuple[int, int] | None:
        """(width, height) of the image the box refers to: given, or the row's image of that column."""
        if ctx.image_size is not None or ctx.row is None:
            return ctx.image_size
        column = ctx.slot.settings.get("image") or next(
            s.column for s in ctx.template.slots("encoder") if s.slot.modality == "IMAGE"
        )
        return ctx.row.input_sizes.get(column)

    @classmethod
    def encode(cls, value, ctx: SlotContext) -> list[int]:
        if not cls.is_single(value):
            raise ValueError(f"{ctx.where}: a box is 4 numbers (x0, y0, x1, y1) in pixels, got {value!r:.80}")
        x0, y0, x1, y1 = (float(c) for c in value)
        width, height = cls.image_size(ctx)
        if not (0 <= x0 <= x1 <= width and 0 <= y0 <= y1 <= height):
            raise ValueError(
                f"{ctx.where}: box {tuple(value)} is not an ordered box inside the "
                f"{width}x{height} image (need 0 <= x0 <= x1 <= width, 0 <= y0 <= y1 <= height)"
            )
        top = ctx.num_bins - 1
        return [
            V.BIN_OFFSET + round(c / size * top) for c, size in ((x0, width), (y0, height), (x1, width), (y1, height))
        ]

    @classmethod
    def decode(cls, ids: list[int], ctx: SlotContext) -> tuple[float, float, float, float] | None:
        """4 bin ids -> box in original-image pixels; None when the ids are not 4 bins."""
        bins = [i - V.BIN_OFFSET for i in ids if V.BIN_OFFSET <= i < V.BIN_OFFSET + ctx.num_bins]
        if len(bins) != 4:
            return None
        width, height = cls.image_size(ctx)
        top = ctx.num_bins - 1
        x0, y0, x1, y1 = (b / top * size for b, size in zip(bins, (width, height, width, height)))
        return (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))

    @classmethod
    def value_end(cls, ids: list[int], start: int) -> int:
        return start + 4  # a box is always its four bins

    @classmethod
    def output_ids(cls, ctx: SlotContext) -> list[range]:
        return [range(V.BIN_OFFSET, V.BIN_OFFSET + ctx.num_bins)]
