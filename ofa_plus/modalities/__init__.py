"""Registry of modalities: the only door through which the processor and the model reach modality code.

Adding a modality = one file (here or in your own package) whose `Modality` subclass is decorated
with ``register_modality``; a non-text input modality also names its `ModalityAdaptor`.
"""

from __future__ import annotations

from ..registry import Registry
from .base import COMMON_ATTRIBUTES, Attribute, Modality, ModalityAdaptor, RowInfo, SlotContext

MODALITIES = Registry(
    "modality", lambda name: None if name and name == name.upper() else "must be upper case and non-empty"
)


def register_modality(cls: type[Modality]) -> type[Modality]:
    """Class decorator: make ``cls`` available to instructions as ``[cls.name:...]``."""
    return MODALITIES.register(cls)


def get_modality(name: str) -> type[Modality]:
    return MODALITIES.get_entry(name)


# Importing the files registers them (in this order: the processor batches inputs in registry order).
from . import image, audio, box, phone, struct, text  # noqa: E402,F401,I001

# The processor's sub-processors for the built-in input modalities (saved with it as its attributes).
from .audio import OFAPlusAudioFeatureExtractor  # noqa: E402
from .image import OFAPlusImageProcessor, OFAPlusImageProcessorPil  # noqa: E402

__all__ = [
    "Attribute",
    "COMMON_ATTRIBUTES",
    "MODALITIES",
    "Modality",
    "ModalityAdaptor",
    "OFAPlusAudioFeatureExtractor",
    "OFAPlusImageProcessor",
    "OFAPlusImageProcessorPil",
    "RowInfo",
    "SlotContext",
    "get_modality",
    "register_modality",
]
