"""What every modality declares: its slot attributes, its processor half and (optionally) its adaptor.

A modality is the unit a contributor adds: one file under ``ofa_plus/modalities/`` (or anywhere) that
subclasses :class:`Modality` and decorates it with :func:`ofa_plus.modalities.register_modality`. The
processor and the model reach a modality only through the hooks below.

* A **text-like** modality (TEXT, BOX, PHONE, STRUCT) turns a value into token ids (`encode`) that
  join the neighbouring text-like slots in one BOS ... EOS run and share the token embedding; on
  the decoder side `decode` turns generated ids back into a value.
* Any other input modality (IMAGE, AUDIO) is a run of its ``placeholder_id`` in ``input_ids``: the
  processor `load`s a value into features, emits `placeholder_count` placeholders and `collate`s
  the batch's features into its ``batch_keys``; the model's `ModalityAdaptor` (``adaptor_class``)
  maps those features to ``d_model`` vectors that replace the placeholders.
* ``output_kind`` names the output kind (`ofa_plus.outputs`) that generates the modality as a target.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from .. import vocabulary as V

if TYPE_CHECKING:
    from ..plan import SlotPlan, TemplatePlan


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
class RowInfo:
    """What decoding a row's output needs: its template, its inputs' original sizes by column (an
    image's (width, height), which BOX slots refer to) and its decoder-prompt length."""

    template: int
    input_sizes: dict[str, Any] = field(default_factory=dict)
    prompt_length: int = 1

    @property
    def image_sizes(self) -> dict[str, Any]:
        """``input_sizes`` (the name of 0.1, when only images recorded theirs)."""
        return self.input_sizes


@dataclass
class SlotContext:
    """What a modality needs to encode or decode one slot value of one row."""

    tokenizer: Any
    settings: dict[str, Any]
    where: str  # "task 'x', row 3, slot [TEXT:cap] (column 12)" for error messages
    training: bool = False
    rng: random.Random = field(default_factory=random.Random)
    image_size: tuple[int, int] | None = None  # (width, height) of the image a BOX refers to, when known
    num_bins: int = V.NUM_BINS
    processor: Any = None  # the OFAPlusProcessor: its image processor, feature extractor, sizes
    row: RowInfo | None = None  # the row being encoded or decoded
    template: TemplatePlan | None = None
    slot: SlotPlan | None = None
    sampling_rate: int | None = None  # the rate of audio given as bare arrays (processor(..., sampling_rate=))


class Modality:
    """One modality. Subclasses set the class variables and override the hooks they need."""

    name: ClassVar[str] = ""
    text_like: ClassVar[bool] = True
    attributes: ClassVar[dict[str, Attribute]] = {}
    preprocess_recipes: ClassVar[tuple[str, ...]] = ()  # the names ``preprocess=`` accepts
    # the output kind (ofa_plus.outputs) that generates this modality as a target; None: input only
    output_kind: ClassVar[str | None] = "tokens"
    # inputs that are not text-like: placeholder token, model half, model-input keys of collate()
    placeholder_id: ClassVar[int | None] = None
    adaptor_class: ClassVar[type[ModalityAdaptor] | None] = None
    batch_keys: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def all_attributes(cls) -> dict[str, Attribute]:
        return {**COMMON_ATTRIBUTES, **cls.attributes}

    @classmethod
    def is_single(cls, value: Any) -> bool:
        """True if ``value`` is one row's value (not a batch of them)."""
        raise NotImplementedError

    @classmethod
    def check_slot(cls, slot: SlotPlan, template: TemplatePlan) -> str | None:
        """A problem with this slot in this template (an instruction error), or None."""
        return None

    @classmethod
    def prepare(cls, values: list[Any], settings: dict[str, Any]) -> None:
        """Called once per batch with one slot's values of every row, before any row is encoded:
        the place for work that is cheaper for many values at once (PHONE runs espeak-ng once)."""

    # -------------------------------------------------------------------------- text-like slots
    @classmethod
    def encode(cls, value: Any, ctx: SlotContext) -> list[int]:
        raise NotImplementedError

    @classmethod
    def decode(cls, ids: list[int], ctx: SlotContext) -> Any:
        raise NotImplementedError

    @classmethod
    def value_end(cls, ids: list[int], start: int) -> int:
        """Where this slot's generated value ends when more slots follow it in one sequence:
        text runs up to the next location bin (a BOX takes exactly its four)."""
        end = start
        while end < len(ids) and not V.BIN_OFFSET <= ids[end] < V.BIN_OFFSET + V.NUM_BINS:
            end += 1
        return end

    @classmethod
    def output_ids(cls, ctx: SlotContext) -> list[range] | None:
        """The vocabulary ids this modality can produce as a target (the model's softmax is restricted
        to them, plus EOS, under ``config.target_vocab="modality"``); None: any id."""
        return None

    @classmethod
    def auxiliary_labels(cls, value: Any, ctx: SlotContext) -> dict[str, list[int]]:
        """Extra training targets a target slot adds to the batch, by batch key (padded with -100):
        ``preprocess=text_phone`` on TEXT gives the phones of the text as ``ctc_labels``."""
        return {}

    # -------------------------------------------------------------------------- placeholder inputs
    @classmethod
    def load(cls, value: Any, ctx: SlotContext) -> Any:
        """One slot value -> its features (what `collate` batches). May record the value's original
        size in ``ctx.row.input_sizes[ctx.slot.column]`` for slots that refer to it."""
        raise NotImplementedError

    @classmethod
    def placeholder_count(cls, features: Any, ctx: SlotContext) -> int:
        """How many ``placeholder_id`` tokens the features fill in ``input_ids``."""
        raise NotImplementedError

    @classmethod
    def collate(cls, features: list[Any], processor: Any) -> dict[str, torch.Tensor]:
        """The features of every item of the batch, in row order -> the model inputs ``batch_keys``."""
        raise NotImplementedError


class ModalityAdaptor(nn.Module):
    """The model half of a placeholder modality: its batch keys -> one ``d_model`` vector per placeholder.

    The encoder builds one per modality of ``config.adaptors`` (as ``<name>_adaptor``), calls it with
    the batch keys of its modality, and scatters the features of each item into that item's run of
    placeholders, in row order. ``position_kind`` is how the encoder places the features: "sequence"
    (1-D positions and relative buckets, like text) or "grid" (2-D, the image patch grid);
    ``type_id`` is its row in the encoder's type embedding (0 = token, 1 = image patch)."""

    position_kind: ClassVar[str] = "sequence"
    type_id: ClassVar[int] = 0
    token_name: ClassVar[str] = "tokens"  # what its placeholders hold, for error messages

    def forward(self, **batch: torch.Tensor) -> torch.Tensor:
        """-> (items, tokens, d_model): the features of each item, padded to the longest."""
        raise NotImplementedError

    def token_counts(self, **batch: torch.Tensor) -> torch.Tensor:
        """-> (items,) long: how many placeholders each item fills (its first that many features)."""
        raise NotImplementedError

    def reset_parameters_of_adaptor(self) -> None:
        """Initialise what the generic initialisation (Linear, Conv2d, LayerNorm, ...) does not cover,
        with `transformers.initialization` (which leaves weights loaded from a checkpoint alone)."""
