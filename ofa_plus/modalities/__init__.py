"""Registry of modalities. Adding a modality = adding one file here that calls ``register_modality``."""

from __future__ import annotations

from .base import COMMON_ATTRIBUTES, Attribute, Modality

MODALITIES: dict[str, type[Modality]] = {}


def register_modality(cls: type[Modality]) -> type[Modality]:
    """Class decorator: make ``cls`` available to instructions as ``[cls.name:...]``."""
    if not cls.name or cls.name != cls.name.upper():
        raise ValueError(f"modality name must be upper case and non-empty, got {cls.name!r}")
    if cls.name in MODALITIES and MODALITIES[cls.name] is not cls:
        raise ValueError(f"modality {cls.name} is already registered by {MODALITIES[cls.name].__module__}")
    MODALITIES[cls.name] = cls
    return cls


def get_modality(name: str) -> type[Modality]:
    try:
        return MODALITIES[name]
    except KeyError:
        raise KeyError(f"unknown modality {name!r}; known: {', '.join(sorted(MODALITIES))}") from None


# Importing the files registers them.
from . import audio, audio_target, box, image, phone, struct, text  # noqa: E402,F401

__all__ = ["Attribute", "COMMON_ATTRIBUTES", "MODALITIES", "Modality", "get_modality", "register_modality"]
