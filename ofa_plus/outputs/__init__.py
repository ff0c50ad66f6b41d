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

from ..registry import Registry
from .base import OutputKind

OUTPUT_KINDS = Registry(
    "output kind", lambda name: None if name and name == name.lower() else "must be lower case and non-empty"
)


def register_output_kind(cls: type[OutputKind]) -> type[OutputKind]:
    """Class decorator: make ``cls`` available as the output kind ``cls.name``."""
    return OUTPUT_KINDS.register(cls)


def get_output_kind(name: str) -> type[OutputKind]:
    return OUTPUT_KINDS.get_entry(name)


# Importing the files registers them.
from . import speech, tokens  # noqa: E402,F401

__all__ = ["OUTPUT_KINDS", "OutputKind", "get_output_kind", "register_output_kind"]
