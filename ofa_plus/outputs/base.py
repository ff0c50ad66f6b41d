"""The hooks of an output kind (see `ofa_plus.outputs`)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn


class OutputKind:
    """One kind of decoder output. Subclasses set the class variables and implement the hooks.

    ``generator`` and ``loss`` name the generator and loss in the task plan; ``label_keys`` are the
    batch keys of its training targets (their presence in ``model(**batch)`` selects this kind);
    ``head_class`` (``__init__(config)``) is the model module it needs besides the shared decoder."""

    name: ClassVar[str] = ""
    generator: ClassVar[str] = ""
    loss: ClassVar[str] = ""
    label_keys: ClassVar[tuple[str, ...]] = ()
    head_class: ClassVar[type[nn.Module] | None] = None

    @classmethod
    def check_template(cls, template) -> str | None:
        """A problem with a template whose decoder side this kind generates (an instruction error), or
        None. By default a non-token target fills the decoder side alone."""
        items = [i for segment in template.decoder for i in segment.items]
        targets = template.targets()
        if len(items) > 1 or not targets:
            slot = next(s for s in template.slots("decoder") if s.modality.output_kind == cls.name)
            return (
                f"an {slot.slot.modality} target must be the only item on the decoder side "
                f"(no prompt text, other slots or no_loss)"
            )
        return None

    # ------------------------------------------------------------------------------ processor half
    @classmethod
    def encode_row(cls, row, with_targets: bool) -> dict[str, Any]:
        """The decoder side of one row (``row`` is the processor's `RowContext`): what `collate` needs."""
        raise NotImplementedError

    @classmethod
    def collate(cls, encoded: list[dict[str, Any]], processor, with_targets: bool) -> dict[str, torch.Tensor]:
        """Every row's `encode_row` output -> batch keys (``label_keys`` when ``with_targets``)."""
        raise NotImplementedError

    @classmethod
    def decode(cls, generated, inputs, processor, **options) -> list[Any]:
        """What ``model.generate`` returned for a batch -> one user value per row."""
        raise NotImplementedError

    # ------------------------------------------------------------------------------ model half
    @classmethod
    def forward(cls, model, **inputs):
        """Teacher-forced forward with the loss (``inputs`` holds ``label_keys``)."""
        raise NotImplementedError

    @classmethod
    def generate(cls, model, inputs=None, generation_config=None, logits_processor=None, constraints=None, **kwargs):
        raise NotImplementedError
