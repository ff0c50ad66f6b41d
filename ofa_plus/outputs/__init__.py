"""Registry of output kinds: how a task's target is trained, generated and decoded.

An output kind is one class (a subclass of `OutputKind`, decorated with `register_output_kind`) that
knows everything about one kind of decoder output: the decoder side of a row in the processor
(`encode_row`), the batch keys of its targets (`collate`, ``label_keys``), its head module on the
model (``head_class``, built as ``model.<name>_head``), its training forward with the loss
(`forward`), its generator (`generate`) and how generated output becomes user values (`decode`).
A modality names the kind that generates it as a target (`Modality.output_kind`). The package ships
"tokens" (token sequences: text, boxes, phones, tables) and "speech" (mel frames).
"""

from __future__ import annotations

from .base import OutputKind

OUTPUT_KINDS: dict[str, type[OutputKind]] = {}


def register_output_kind(cls: type[OutputKind]) -> type[OutputKind]:
    """Class decorator: make ``cls`` available as the output kind ``cls.name``."""
    if not cls.name or cls.name != cls.name.lower():
        raise ValueError(f"an output kind's name must be lower case and non-empty, got {cls.name!r}")
    if cls.name in OUTPUT_KINDS and OUTPUT_KINDS[cls.name] is not cls:
        raise ValueError(f"output kind {cls.name} is already registered by {OUTPUT_KINDS[cls.name].__module__}")
    OUTPUT_KINDS[cls.name] = cls
    return cls


def get_output_kind(name: str) -> type[OutputKind]:
    try:
        return OUTPUT_KINDS[name]
    except KeyError:
        raise KeyError(f"unknown output kind {name!r}; known: {', '.join(sorted(OUTPUT_KINDS))}") from None


# Importing the files registers them.
from . import speech, tokens  # noqa: E402,F401

__all__ = ["OUTPUT_KINDS", "OutputKind", "get_output_kind", "register_output_kind"]
