"""OFAPlusProcessor: applies a task plan to raw rows -> model inputs, and generated output -> user values.

Modalities (``ofa_plus.modalities``) and output kinds (``ofa_plus.outputs``) are reached only through
their registries: a row is encoded in one pass over its slots, each slot by its modality's hooks,
and the decoder side by the task's output kind.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import random
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin
from transformers.utils import cached_file

from . import vocabulary as V
from .configuration_ofa_plus import PRESETS, MelSettings, OFAPlusConfig
from .generation import DecodingConstraints
from .instruction import Instruction, PromptText
from .modalities import (
    MODALITIES,
    OFAPlusAudioFeatureExtractor,
    OFAPlusImageProcessor,
    OFAPlusImageProcessorPil,
    RowInfo,
    SlotContext,
)
from .outputs import get_output_kind
from .plan import RepeatPlan, SlotPlan, TaskPlan, TemplatePlan, compile_plan
from .tokenization_ofa_plus import OFAPlusTokenizer
from .tokenization_ofa_plus_bpe import OFAPlusBPETokenizer


class OFAPlusBatch(BatchFeature):
    """Model inputs (``input_ids``, ``attention_mask``, the adaptors' keys such as ``pixel_values`` and
    ``input_features``, the output kind's keys such as ``decoder_input_ids`` and ``labels``) plus
    ``constraints``: how `OFAPlusForConditionalGeneration.generate` generates the task. ``plan`` and
    ``rows`` (attributes, not items) keep what `OFAPlusProcessor.postprocess` needs."""

    plan: TaskPlan
    rows: list[RowInfo]


@dataclass
class RowContext:
    """One row being encoded: its task, template and values, and where errors point."""

    processor: OFAPlusProcessor
    plan: TaskPlan
    template: TemplatePlan
    row: dict[str, Any]
    index: int
    info: RowInfo
    training: bool
    rng: random.Random
    sampling_rate: int | None = None

    def where(self, slot: SlotPlan) -> str:
        return f"{_task(self.plan)}row {self.index}, slot {_slot_text(slot)} (column {slot.slot.position} of the instruction)"

    def value(self, slot: SlotPlan) -> Any:
        if slot.column not in self.row:
            raise ValueError(
                f"{self.where(slot)}: no value for column {slot.column!r}; the row has {sorted(self.row)}"
            )
        return self.row[slot.column]

    def slot_context(self, slot: SlotPlan) -> SlotContext:
        return SlotContext(
            self.processor.tokenizer,
            slot.settings,
            self.where(slot),
            self.training,
            self.rng,
            num_bins=self.processor.num_bins,
            processor=self.processor,
            row=self.info,
            template=self.template,
            slot=slot,
            sampling_rate=self.sampling_rate,
        )

    def encode_items(self, items, with_targets: bool) -> tuple[list[int], list[bool]]:
        """Token ids of a run of text-like items, and per token whether it is scored.

        Without targets (inference) the decoder run stops at the first scored slot: what comes
        before it is the decoder prompt."""
        ids: list[int] = []
        scored: list[bool] = []
        for item in items:
            if isinstance(item, PromptText):
                piece = self.processor._prompt_ids(item.text)
                ids += piece
                scored += [False] * len(piece)
                continue
            if isinstance(item, RepeatPlan):
                if not with_targets and any(s.scored for s in item.slots()):
                    break
                for element in self.repeat_elements(item):
                    sub_ids, sub_scored = dataclasses.replace(self, row=element).encode_items(item.items, with_targets)
                    ids += sub_ids
                    scored += sub_scored
                continue
            if not with_targets and item.scored:
                break
            piece = item.modality.encode(self.value(item), self.slot_context(item))
            ids += piece
            scored += [item.scored] * len(piece)
        return ids, scored

    def check_run_length(self, slots: list[SlotPlan], length: int, side: str) -> None:
        """A run of text tokens longer than the model's positions fails here, naming its longest slot
        and the fix, rather than deep inside the model (truncating silently would change the data)."""
        limit = self.processor.max_positions
        if length <= limit:
            return
        sizes = {s: len(s.modality.encode(self.value(s), self.slot_context(s))) for s in slots if not s.in_repeat}
        if not sizes:
            raise ValueError(f"{_task(self.plan)}row {self.index}: the {side} text is {length} tokens, over {limit}")
        slot = max(sizes, key=sizes.get)
        keep = max(1, sizes[slot] - (length - limit))
        raise ValueError(
            f"{self.where(slot)}: the {side} text holding this slot is {length} tokens ({sizes[slot]} from this "
            f"slot), more than the model's max_positions={limit}; truncate the slot with max_length, e.g. "
            f"[{slot.slot.modality}:{slot.column},max_length={keep}] in the instruction or, in a task card, "
            f"settings: {{{slot.column}: {{max_length: {keep}}}}}"
        )

    def repeat_elements(self, repeat: RepeatPlan) -> list[dict]:
        columns = {s.column for s in repeat.slots()}
        lists = {c: self.value(next(s for s in repeat.slots() if s.column == c)) for c in columns}
        for column, value in lists.items():
            if not isinstance(value, (list, tuple)):
                raise ValueError(
                    f"{_task(self.plan)}row {self.index}: column {column!r} fills a repeat group "
                    f"( ... )* and must hold a list, got {type(value).__name__}"
                )
        lengths = {c: len(v) for c, v in lists.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(
                f"{_task(self.plan)}row {self.index}: the columns of one repeat group must have "
                f"equal lengths, got {lengths}"
            )
        count = next(iter(lengths.values()), 0)
        return [{c: lists[c][k] for c in columns} for k in range(count)]


class OFAPlusProcessor(ProcessorMixin):
    r"""Tokenizer + image processor + audio feature extractor + the instruction machinery.

    ```python
    inputs = processor("[IMAGE:image] what does the image describe? -> [TEXT:caption]", image=img)
    generated = model.generate(**inputs)
    processor.postprocess(generated, inputs)   # -> ["a red apple"]
    ```
    Column values are given as keyword arguments: one value per column for a single row, or a
    list per column for a batch. With all target columns present the output also holds ``labels``.
    Audio arrays need ``sampling_rate=`` (paths, bytes and audio dicts carry their own).
    """

    def __init__(
        self,
        image_processor=None,
        tokenizer=None,
        feature_extractor=None,
        image_patch_stride: int = 16,
        tts_settings: dict | None = None,
        num_bins: int = V.NUM_BINS,
        target_vocab: str = "full",
        max_positions: int = 1024,
        **kwargs,
    ):
        self.image_patch_stride = image_patch_stride
        self.max_positions = max_positions  # the model config's: the longest run of text tokens it can place
        self.num_bins = num_bins  # the model config's location bins: BOX coordinates are quantised to these
        # the model config's target_vocab: "modality" restricts each target's softmax (labels: the
        # ``label_vocab`` batch item; generation: `DecodingConstraints.allowed_ids`) to its modalities' ids
        self.target_vocab = target_vocab
        # AUDIO targets: the model config's tts_* mel settings (`MelSettings`)
        self.tts_settings = MelSettings.from_dict(tts_settings).to_dict()
        self.vocoder = None  # mels -> waveform for AUDIO outputs; None = Griffin-Lim (ofa_plus.outputs.speech)
        kwargs.pop("task_cards", None)  # processors saved by 0.1 kept a copy of the model's cards
        # the cards of the model saved beside it, read from its config.json (their one store); not saved here
        self.task_cards: list[dict] = []
        super().__init__(image_processor, tokenizer, feature_extractor or OFAPlusAudioFeatureExtractor(), **kwargs)

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        # processors saved before audio support have no feature extractor: load the rest, add the default one
        if processor_dict is not None and "feature_extractor" not in processor_dict:
            without_audio = type(
                cls.__name__,
                (cls,),
                {
                    "get_attributes": classmethod(
                        lambda c: [a for a in cls.get_attributes() if a != "feature_extractor"]
                    )
                },
            )
            args = super(cls, without_audio)._get_arguments_from_pretrained(
                pretrained_model_name_or_path, processor_dict, **kwargs
            )
            return [*args, OFAPlusAudioFeatureExtractor()]
        return super()._get_arguments_from_pretrained(pretrained_model_name_or_path, processor_dict, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`ProcessorMixin.from_pretrained`; it also reads the task cards of the model saved beside it
        (``config.json``, their one store), so ``processor.tasks`` works for any trained model."""
        processor = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        processor.task_cards = _model_task_cards(pretrained_model_name_or_path, kwargs)
        return processor

    @property
    def tasks(self) -> dict:
        """The task cards of the model saved beside this processor, by name (``model.tasks`` is the same)."""
        from .task_card import tasks_from_dicts  # noqa: PLC0415 (cards are a layer above the processor)

        return tasks_from_dicts(self.task_cards)

    @staticmethod
    def get_possibly_dynamic_module(module_name):
        # transformers 5.24 fails to look up custom sub-processor classes by name; resolve ours here.
        classes = (
            OFAPlusImageProcessor,
            OFAPlusImageProcessorPil,
            OFAPlusTokenizer,
            OFAPlusBPETokenizer,
            OFAPlusAudioFeatureExtractor,
        )
        ours = {c.__name__: c for c in classes}
        return ours.get(module_name) or ProcessorMixin.get_possibly_dynamic_module(module_name)

    @classmethod
    def from_preset(cls, name: str, tokenizer: OFAPlusTokenizer | None = None) -> OFAPlusProcessor:
        """The processor matching `OFAPlusConfig.from_preset(name)`, with the package's default tokenizer."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        return cls.for_config(OFAPlusConfig.from_preset(name), tokenizer)

    @classmethod
    def for_config(cls, config, tokenizer: OFAPlusTokenizer | None = None) -> OFAPlusProcessor:
        """The processor that feeds a model of ``config``: its image size and patch grid, audio bins, mels."""
        image_processor = OFAPlusImageProcessor(size={"height": config.image_size, "width": config.image_size})
        return cls(
            image_processor,
            tokenizer or OFAPlusTokenizer.from_default(),
            OFAPlusAudioFeatureExtractor(feature_size=config.audio_feature_size),
            image_patch_stride=config.image_size // config.image_grid_size,
            tts_settings=MelSettings.from_config(config).to_dict(),
            num_bins=config.num_bins,
            target_vocab=config.target_vocab,
            max_positions=config.max_positions,
        )

    @property
    def image_size(self) -> int:
        return self.image_processor.size["height"]

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.image_patch_stride) ** 2

    @property
    def mel_settings(self) -> MelSettings:
        return MelSettings.from_dict(self.tts_settings)

    # ------------------------------------------------------------------------------ encoding
    def __call__(
        self,
        instruction: str | Instruction | TaskPlan | None = None,
        *,
        return_tensors: str = "pt",
        training: bool = False,
        closed_set: list[str] | None = None,
        seed: int | None = None,
        sampling_rate: int | None = None,
        **columns,
    ) -> OFAPlusBatch:
        if instruction is None:  # transformers' image-text-to-text convention: images= and text=
            instruction, columns = _image_text_request(columns)
        plan = instruction if isinstance(instruction, TaskPlan) else compile_plan(instruction)
        rows = self._rows_from_columns(plan, columns)
        return self.process_rows(
            plan,
            rows,
            training=training,
            closed_set=closed_set,
            rng=random.Random(seed),
            return_tensors=return_tensors,
            sampling_rate=sampling_rate,
        )

    def split_rows(self, plan: TaskPlan, columns: dict[str, Any]) -> tuple[list[dict[str, Any]], bool]:
        """Keyword columns -> (rows, whether the columns held a batch rather than one row)."""
        rows = self._rows_from_columns(plan, columns)
        return rows, not (len(rows) == 1 and rows[0] is columns)

    def _rows_from_columns(self, plan: TaskPlan, columns: dict[str, Any]) -> list[dict[str, Any]]:
        """Keyword columns -> rows. The first column the plan knows decides single row vs batch."""
        slots = {s.column: s for t in plan.templates for s in t.slots()}
        known = [c for c in columns if c in slots]
        if not known:
            return [columns]

        def single(column):
            s = slots[column]
            value = columns[column]
            if s.in_repeat:  # one row's value is a list of items
                return isinstance(value, (list, tuple)) and all(s.modality.is_single(v) for v in value)
            return s.modality.is_single(value)

        if single(known[0]) or not _is_batch(columns[known[0]]):
            return [columns]  # a bad single value is reported by its modality, with row and slot
        size = len(columns[known[0]])
        for column, value in columns.items():
            if not _is_batch(value) or len(value) != size:
                raise ValueError(
                    f"column {known[0]!r} holds a batch of {size} values, so every column must be a "
                    f"list of {size}; column {column!r} is "
                    f"{type(value).__name__}{f' of {len(value)}' if hasattr(value, '__len__') else ''}"
                )
        return [{c: columns[c][i] for c in columns} for i in range(size)]

    def process_rows(
        self,
        plan: TaskPlan,
        rows: list[dict[str, Any]],
        *,
        training: bool = False,
        closed_set: list[str] | None = None,
        rng: random.Random | None = None,
        return_tensors: str = "pt",
        sampling_rate: int | None = None,
        row_numbers: list[int] | None = None,
    ) -> OFAPlusBatch:
        """Encode rows of one task into one padded batch (the collate step of training, too).
        ``sampling_rate`` is the rate of audio given as bare arrays; ``row_numbers`` are the rows'
        numbers in their split, for error messages (default: their position in ``rows``)."""
        if not rows:
            raise ValueError(f"{_task(plan)}an empty batch: give at least one row (the columns hold empty lists)")
        rng = rng or random.Random()
        for template in plan.templates:  # batch-level work first (e.g. one espeak-ng call for all phones)
            for s in template.slots():
                if not s.in_repeat:
                    s.modality.prepare([r.get(s.column) for r in rows], s.settings)
        targets = {s.column for t in plan.templates for s in t.targets()}
        with_targets = [targets <= row.keys() for row in rows]
        if targets and any(with_targets) and not all(with_targets):
            missing = next(i for i, ok in enumerate(with_targets) if not ok)
            raise ValueError(
                f"{_task(plan)}row {missing}: target columns {sorted(targets - rows[missing].keys())} "
                f"are missing while other rows have them"
            )
        train_mode = bool(targets) and all(with_targets)
        output_kind = get_output_kind(plan.output_kind)
        numbers = range(len(rows)) if row_numbers is None else row_numbers
        encoded = [
            self._encode_row(plan, output_kind, row, i, training, rng, train_mode, sampling_rate)
            for i, row in zip(numbers, rows)
        ]

        data: dict[str, Any] = {
            "input_ids": _pad([e["input_ids"] for e in encoded], self.tokenizer.pad_token_id),
            "attention_mask": _pad([[1] * len(e["input_ids"]) for e in encoded], 0),
        }
        for modality in MODALITIES.values():  # every image, audio, ... of the batch, in row order
            features = [f for e in encoded for slot, f in e["features"] if slot.modality is modality]
            if features:
                data.update(modality.collate(features, self))
        auxiliary = sorted({key for e in encoded for key in e["auxiliary"]})
        for key in auxiliary:
            data[key] = _pad([e["auxiliary"].get(key, []) for e in encoded], -100)
        data.update(output_kind.collate([e["decoder"] for e in encoded], self, train_mode))
        data = {k: torch.tensor(v) if isinstance(v, list) else v for k, v in data.items()}
        data["constraints"] = self.constraints(plan, closed_set)
        if train_mode and "labels" in data and data["constraints"].allowed_ids is not None:
            data["label_vocab"] = self._label_vocab(plan, data["constraints"].allowed_ids, data["labels"], numbers)
        batch = OFAPlusBatch(data)
        batch.plan = plan
        batch.rows = [e["info"] for e in encoded]
        return batch

    def constraints(self, plan: TaskPlan, closed_set: list[str] | None = None) -> DecodingConstraints:
        kind = plan.generator.kind
        if kind == "closed_set":
            candidates = closed_set or plan.generator.closed_set
            if candidates:
                # tokenise candidates exactly as the target slot's labels are (uncased, max_length, ...)
                target = plan.templates[0].targets()[0]
                ctx = SlotContext(self.tokenizer, target.settings, f"{_task(plan)}closed_set of {_slot_text(target)}")
                sequences = [target.modality.encode(c, ctx) + [V.EOS_ID] for c in candidates]
                allowed = sorted({t for s in sequences for t in s}) if self.target_vocab == "modality" else None
                return DecodingConstraints("closed_set", sequences, allowed_ids=allowed)
            kind = "free"  # bare closed_set with no candidates: generate freely
        elif closed_set:
            raise ValueError(f"{_task(plan)}closed_set= was given but the target slot has no closed_set attribute")
        return DecodingConstraints(
            "box" if kind == "box" else "free",
            num_bins=self.num_bins,
            output_kind=plan.output_kind,
            allowed_ids=self._modality_ids(plan) if self.target_vocab == "modality" else None,
        )

    def _modality_ids(self, plan: TaskPlan) -> list[int] | None:
        """Every id the plan's target slots can produce, plus EOS (None: any id, or not a token output)."""
        ids, targets = {V.EOS_ID}, [s for t in plan.templates for s in t.targets()]
        for slot in targets:
            ranges = slot.modality.output_ids(SlotContext(self.tokenizer, slot.settings, "", num_bins=self.num_bins))
            if ranges is None:
                return None
            ids.update(i for r in ranges for i in r)
        return sorted(ids) if targets else None

    def _label_vocab(self, plan: TaskPlan, allowed: list[int], labels: torch.Tensor, numbers) -> torch.Tensor:
        """The ids the batch's token softmax ranges over; every label must be one of them (``numbers``:
        the rows' numbers in their split, for the error)."""
        vocab = torch.tensor(allowed)
        scored = labels[labels != -100]
        outside = scored[~torch.isin(scored, vocab)]
        if len(outside):
            row = numbers[int((labels == outside[0]).nonzero()[0, 0])]
            raise ValueError(
                f"{_task(plan)}row {row}: label id {int(outside[0])} is not an id its target slots can produce "
                f"(target_vocab='modality'; a closed-set label that is not among the candidates?)"
            )
        return vocab

    @functools.lru_cache(maxsize=4096)
    def _prompt_ids(self, text: str) -> list[int]:
        return self.tokenizer.encode_text(text)

    def _encode_row(
        self,
        plan: TaskPlan,
        output_kind,
        row: dict,
        index: int,
        training: bool,
        rng,
        with_targets: bool,
        sampling_rate: int | None = None,
    ) -> dict:
        template_index = rng.randrange(len(plan.templates)) if training else 0
        template = plan.templates[template_index]
        ctx = RowContext(self, plan, template, row, index, RowInfo(template_index), training, rng, sampling_rate)
        # non-text inputs first: a BOX anywhere in the row refers to its image's original size
        features = [(s, _load_slot(ctx, s)) for s in template.slots("encoder") if not s.modality.text_like]
        loaded = iter(features)
        input_ids: list[int] = []
        for segment in template.encoder:
            if segment.kind == "tokens":
                ids, _ = ctx.encode_items(segment.items, True)
                ids = [V.BOS_ID, *ids, V.EOS_ID] if segment.bos_eos else ids
                ctx.check_run_length(segment.slots(), len(ids), "encoder")
                input_ids += ids
            else:  # one non-text slot: its run of placeholders
                slot, item = next(loaded)
                input_ids += [slot.modality.placeholder_id] * slot.modality.placeholder_count(
                    item, ctx.slot_context(slot)
                )
        auxiliary: dict[str, list[int]] = {}
        if with_targets:
            for s in template.targets():
                for key, ids in s.modality.auxiliary_labels(ctx.value(s), ctx.slot_context(s)).items():
                    auxiliary[key] = auxiliary.get(key, []) + ids
        return {
            "input_ids": input_ids,
            "features": features,
            "auxiliary": auxiliary,
            "info": ctx.info,
            "decoder": output_kind.encode_row(ctx, with_targets),
        }

    # ------------------------------------------------------------------------------ decoding
    def postprocess(self, generated, inputs: OFAPlusBatch, **options) -> list[Any]:
        """What ``model.generate(**inputs)`` returned -> one value per row, decoded by the task's output
        kind: text, a box in original-image pixels, or for several / repeated targets a dict (repeat
        groups give a list of dicts); for an AUDIO target ``{"audio": float32 array, "sampling_rate":
        int}`` through ``vocoder=`` (default ``self.vocoder``; None = Griffin-Lim), with
        ``return_mels=True`` also its ``"mel"`` (frames, n_mels) log-mel."""
        return get_output_kind(inputs.plan.output_kind).decode(generated, inputs, self, **options)

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def post_process_image_text_to_text(self, generated_outputs, skip_special_tokens: bool = True, **kwargs):
        """What transformers' image-text-to-text pipeline decodes its output with: each row's text as a
        TEXT target decodes it (text pieces only, stripped), so that pipeline answers what
        `OFAPlusPipeline` does; with ``skip_special_tokens=False`` every token, as ``batch_decode``."""
        if not skip_special_tokens:
            return self.batch_decode(generated_outputs, skip_special_tokens=False, **kwargs)
        return [
            self.tokenizer.decode_text(row.tolist() if hasattr(row, "tolist") else row).strip()
            for row in generated_outputs
        ]

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)


IMAGE_TEXT_INSTRUCTION = "[IMAGE:image] [TEXT:text] -> [TEXT:answer]"


def _image_text_request(columns: dict) -> tuple[str, dict]:
    """``processor(images=..., text=...)`` (what transformers' image-text-to-text pipeline calls): the
    text is the prompt after the image, as in "[IMAGE:image] what does the image describe? -> ..."."""
    if "images" not in columns or "text" not in columns:
        raise ValueError(
            "give an instruction, e.g. processor('[IMAGE:image] what does the image describe? -> "
            "[TEXT:caption]', image=img), or images= and text= (image-text-to-text)"
        )
    images, text = columns["images"], columns["text"]
    if isinstance(images, (list, tuple)) and isinstance(text, str):
        text = [text] * len(images)  # one prompt for every image
    return IMAGE_TEXT_INSTRUCTION, {"image": images, "text": text}


def _model_task_cards(path, kwargs: dict) -> list[dict]:
    """``task_cards`` of the ``config.json`` beside a processor (a folder or Hub repo), or []."""
    hub = {
        k: kwargs[k]
        for k in ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
        if k in kwargs
    }
    config = cached_file(
        path,
        "config.json",
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
        **hub,
    )
    if config is None:
        return []
    with open(config, encoding="utf-8") as f:
        return json.load(f).get("task_cards") or []


def _slot_text(slot: SlotPlan) -> str:
    return f"[{slot.slot.modality}:{slot.column}]"


class UnreadableValue(ValueError):
    """A row's value for one slot cannot be read (a corrupt or empty image, an undecodable clip).
    Training, evaluation and the pipeline leave such a row out and name it by ``slot``."""

    def __init__(self, message: str, slot: str):
        super().__init__(message)
        self.slot = slot


def _load_slot(ctx: RowContext, slot: SlotPlan) -> Any:
    try:
        return slot.modality.load(ctx.value(slot), ctx.slot_context(slot))
    except UnreadableValue:
        raise
    except (ValueError, OSError) as err:
        raise UnreadableValue(str(err), _slot_text(slot)) from err


def _task(plan: TaskPlan) -> str:
    return f"task {plan.name!r}, " if plan.name else ""


def _is_batch(value) -> bool:
    """A list of per-row values (a 4-D image array/tensor is a batch of images, too)."""
    return isinstance(value, (list, tuple)) or (isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim >= 1)


def _pad(sequences: list[list[int]], value: int) -> list[list[int]]:
    width = max((len(s) for s in sequences), default=0)
    return [s + [value] * (width - len(s)) for s in sequences]
