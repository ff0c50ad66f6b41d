"""What every modality declares: its slot attributes, its processor half and (optionally) its adaptor.

A modality is the unit a contributor adds: one file under ``ofa_plus/modalities/`` that subclasses
:class:`Modality` and decorates it with :func:`ofa_plus.modalities.register_modality`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True)
class Attribute:
    """One slot attribute, e.g. ``mask_ratio=0.3`` or the flag ``no_loss``.

    ``kind`` is the value type: ``bool`` (a bare flag), ``int``, ``float``, ``str`` or ``"choices"``
    (a ``|``-separated list such as ``closed_set=yes|no|maybe``). An attribute whose kind is
    ``"choices"`` with ``flag_allowed`` may also be written bare (``closed_set``: candidates come
    from the task card or the call).
    ``side`` is where it may appear: ``"both"``, ``"encoder"`` or ``"decoder"`` (target-only).
    """

    kind: Any
    side: str = "both"
    flag_allowed: bool = False
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""


# Attributes every modality accepts.
COMMON_ATTRIBUTES: dict[str, Attribute] = {
    "preprocess": Attribute(str, help="name of a non-default preprocessing recipe"),
    "adaptor": Attribute(str, help="name of a non-default adaptor"),
}

# Attributes shared by the modalities whose values become text tokens (TEXT, STRUCT).
TEXT_ATTRIBUTES: dict[str, Attribute] = {
    "max_length": Attribute(int, minimum=1, help="truncate to this many tokens"),
    "uncased": Attribute(bool, help="lower-case before tokenising"),
    "no_punctuation": Attribute(bool, help="strip punctuation before tokenising"),
    "disable_auto_boseos": Attribute(bool, help="do not wrap this run of text in BOS ... EOS"),
    "no_loss": Attribute(bool, side="decoder", help="teacher-forced prefix: fed to the decoder, not scored"),
}


@dataclass
class SlotContext:
    """What a modality needs to encode or decode one slot value of one row."""

    tokenizer: Any
    settings: dict[str, Any]
    where: str  # "task 'x', row 3, slot [TEXT:cap] (column 12)" for error messages
    training: bool = False
    rng: random.Random = field(default_factory=random.Random)
    image_size: tuple[int, int] | None = None  # (width, height) of the image a BOX refers to
    num_bins: int = 1000


class Modality:
    """Processor half of a modality. Subclasses set the class variables and override the hooks.

    ``text_like`` modalities turn a value into token ids (`encode`) that are merged with the
    neighbouring text-like slots into one BOS ... EOS run and embedded by the shared token
    embedding; they turn generated ids back into a value with `decode`. The others produce
    features that a dedicated adaptor (``adaptor_class``, the model half) maps to ``d_model``.
    """

    name: ClassVar[str] = ""
    text_like: ClassVar[bool] = True
    attributes: ClassVar[dict[str, Attribute]] = {}
    adaptor_class: ClassVar[type | None] = None
    preprocess_recipes: ClassVar[tuple[str, ...]] = ()  # the names ``preprocess=`` accepts

    @classmethod
    def all_attributes(cls) -> dict[str, Attribute]:
        return {**COMMON_ATTRIBUTES, **cls.attributes}

    @classmethod
    def is_single(cls, value: Any) -> bool:
        """True if ``value`` is one row's value (not a batch of them)."""
        raise NotImplementedError

    @classmethod
    def encode(cls, value: Any, ctx: SlotContext) -> list[int]:
        raise NotImplementedError

    @classmethod
    def decode(cls, ids: list[int], ctx: SlotContext) -> Any:
        raise NotImplementedError
