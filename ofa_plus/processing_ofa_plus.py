"""OFAPlusProcessor: applies a task plan to raw rows -> model inputs, and generated ids -> user values."""

from __future__ import annotations

import functools
import json
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import BatchFeature, ProcessorMixin
from transformers.utils import cached_file

from . import vocabulary as V
from .configuration_ofa_plus import PRESETS
from .generation import DecodingConstraints
from .instruction import Instruction, PromptText
from .modalities import audio_target
from .modalities.base import SlotContext
from .modalities.audio import OFAPlusAudioFeatureExtractor, audio_token_count, load_audio, pad_features
from .modalities.image import ImageModality, OFAPlusImageProcessor, load_image
from .modalities.phone import ctc_phone_ids, phonemize
from .plan import RepeatPlan, SlotPlan, TaskPlan, TemplatePlan, compile_plan
from .task_card import TaskCard, get_task, tasks_from_dicts
from .tokenization_ofa_plus import OFAPlusTokenizer


@dataclass
class RowInfo:
    """What decoding a row's output needs: its template, image sizes and decoder-prompt length."""

    template: int
    image_sizes: dict[str, tuple[int, int]] = field(default_factory=dict)
    prompt_length: int = 1


class OFAPlusBatch(BatchFeature):
    """Model inputs (``input_ids``, ``attention_mask``, ``pixel_values``, ``input_features``,
    ``input_features_mask``, ``decoder_input_ids``, ``labels``, ``ctc_labels``) plus ``task_plan`` and
    ``constraints``, which `OFAPlusForConditionalGeneration.generate`
    accepts. ``rows`` (an attribute, not an item) keeps per-row decoding information."""

    rows: list[RowInfo]


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

    def __init__(self, image_processor=None, tokenizer=None, feature_extractor=None, image_patch_stride: int = 16,
                 task_cards: list[dict] | None = None, tts_settings: dict | None = None, **kwargs):
        self.image_patch_stride = image_patch_stride
        # AUDIO targets: the model config's tts_* mel settings (`audio_target.MelSettings`)
        self.tts_settings = audio_target.MelSettings.from_dict(tts_settings).to_dict()
        self.vocoder = None  # mels -> waveform for AUDIO outputs; None = Griffin-Lim (see audio_target)
        self.task_cards = list(task_cards or [])  # the model's task cards (saved in processor_config.json)
        super().__init__(image_processor, tokenizer, feature_extractor or OFAPlusAudioFeatureExtractor(), **kwargs)

    @classmethod
    def _get_arguments_from_pretrained(cls, pretrained_model_name_or_path, processor_dict=None, **kwargs):
        # processors saved before audio support have no feature extractor: load the rest, add the default one
        if processor_dict is not None and "feature_extractor" not in processor_dict:
            without_audio = type(cls.__name__, (cls,), {"get_attributes": classmethod(
                lambda c: [a for a in cls.get_attributes() if a != "feature_extractor"])})
            args = super(cls, without_audio)._get_arguments_from_pretrained(pretrained_model_name_or_path,
                                                                             processor_dict, **kwargs)
            return [*args, OFAPlusAudioFeatureExtractor()]
        return super()._get_arguments_from_pretrained(pretrained_model_name_or_path, processor_dict, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """`ProcessorMixin.from_pretrained`; a processor saved without task cards takes those of the
        model saved beside it (``config.json``), so ``processor.tasks`` works for any trained model."""
        processor = super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        if not processor.task_cards:
            processor.task_cards = _model_task_cards(pretrained_model_name_or_path, kwargs)
        return processor

    @property
    def tasks(self) -> dict[str, TaskCard]:
        """The task cards this processor carries, by name (run one with ``processor.task(name)``)."""
        return tasks_from_dicts(self.task_cards)

    def task(self, name: str) -> TaskCard:
        """The card of task ``name``; an unknown name is an error listing the known tasks."""
        return get_task(self.tasks, name)

    @staticmethod
    def get_possibly_dynamic_module(module_name):
        # transformers 5.24 fails to look up custom sub-processor classes by name; resolve ours here.
        ours = {c.__name__: c for c in (OFAPlusImageProcessor, OFAPlusTokenizer, OFAPlusAudioFeatureExtractor)}
        return ours.get(module_name) or ProcessorMixin.get_possibly_dynamic_module(module_name)

    @classmethod
    def from_preset(cls, name: str, tokenizer: OFAPlusTokenizer | None = None) -> "OFAPlusProcessor":
        """The processor matching `OFAPlusConfig.from_preset(name)`, with the package's default tokenizer."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
        size = PRESETS[name]["image_size"]
        image_processor = OFAPlusImageProcessor(size={"height": size, "width": size})
        return cls(image_processor, tokenizer or OFAPlusTokenizer.from_default())

    @classmethod
    def for_config(cls, config, tokenizer: OFAPlusTokenizer | None = None) -> "OFAPlusProcessor":
        image_processor = OFAPlusImageProcessor(size={"height": config.image_size, "width": config.image_size})
        return cls(image_processor, tokenizer or OFAPlusTokenizer.from_default(),
                   OFAPlusAudioFeatureExtractor(feature_size=config.audio_feature_size),
                   image_patch_stride=2 ** (config.image_backbone_stages + 1),
                   tts_settings=audio_target.MelSettings.from_config(config).to_dict())

    @property
    def image_size(self) -> int:
        return self.image_processor.size["height"]

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.image_patch_stride) ** 2

    # ------------------------------------------------------------------------------ encoding
    def __call__(self, instruction: str | Instruction | TaskPlan | None = None, *, return_tensors: str = "pt",
                 training: bool = False, closed_set: list[str] | None = None, seed: int | None = None,
                 sampling_rate: int | None = None, **columns) -> OFAPlusBatch:
        if instruction is None:  # transformers' image-text-to-text convention: images= and text=
            instruction, columns = _image_text_request(columns)
        plan = instruction if isinstance(instruction, TaskPlan) else compile_plan(instruction)
        rows = self._rows_from_columns(plan, columns)
        return self.process_rows(plan, rows, training=training, closed_set=closed_set,
                                 rng=random.Random(seed), return_tensors=return_tensors, sampling_rate=sampling_rate)

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
                raise ValueError(f"column {known[0]!r} holds a batch of {size} values, so every column must be a "
                                 f"list of {size}; column {column!r} is "
                                 f"{type(value).__name__}{f' of {len(value)}' if hasattr(value, '__len__') else ''}")
        return [{c: columns[c][i] for c in columns} for i in range(size)]

    def process_rows(self, plan: TaskPlan, rows: list[dict[str, Any]], *, training: bool = False,
                     closed_set: list[str] | None = None, rng: random.Random | None = None,
                     return_tensors: str = "pt", sampling_rate: int | None = None) -> OFAPlusBatch:
        """Encode rows of one task into one padded batch (the collate step of training, too).
        ``sampling_rate`` is the rate of audio given as bare arrays."""
        rng = rng or random.Random()
        _prefetch_phones(plan, rows)
        targets = {s.column for t in plan.templates for s in t.targets()}
        with_targets = [targets <= row.keys() for row in rows]
        if targets and any(with_targets) and not all(with_targets):
            missing = next(i for i, ok in enumerate(with_targets) if not ok)
            raise ValueError(f"{_task(plan)}row {missing}: target columns {sorted(targets - rows[missing].keys())} "
                             f"are missing while other rows have them")
        train_mode = bool(targets) and all(with_targets)
        encoded = [self._encode_row(plan, row, i, training, rng, train_mode, sampling_rate)
                   for i, row in enumerate(rows)]

        pad = self.tokenizer.pad_token_id
        data: dict[str, Any] = {
            "input_ids": _pad([e["input_ids"] for e in encoded], pad),
            "attention_mask": _pad([[1] * len(e["input_ids"]) for e in encoded], 0),
        }
        pixels = [p for e in encoded for p in e["pixels"]]
        if pixels:
            data["pixel_values"] = torch.stack(pixels)
        audios = [a for e in encoded for a in e["audios"]]
        if audios:
            data.update(pad_features(audios, self.feature_extractor.padding_value))
        if train_mode and any(e.get("ctc") is not None for e in encoded):
            data["ctc_labels"] = _pad([e.get("ctc") or [] for e in encoded], -100)
        speech = "decoder_input_ids" not in encoded[0]  # an AUDIO target: mel frames, no decoder tokens
        if speech and train_mode:
            data["mel_labels"], data["mel_lengths"] = audio_target.collate_mels([e["mel"] for e in encoded])
        elif train_mode:
            data["decoder_input_ids"] = _pad([e["decoder_input_ids"] for e in encoded], pad)
            data["labels"] = _pad([e["labels"] for e in encoded], -100)
        elif not speech and any(len(e["decoder_input_ids"]) > 1 for e in encoded):  # no_loss prefixes: prompts
            data["decoder_input_ids"] = _pad([e["decoder_input_ids"] for e in encoded], pad)
        data = {k: torch.tensor(v) if isinstance(v, list) else v for k, v in data.items()}
        data["task_plan"] = plan
        data["constraints"] = self.constraints(plan, closed_set)
        batch = OFAPlusBatch(data)
        batch.rows = [e["info"] for e in encoded]
        return batch

    def constraints(self, plan: TaskPlan, closed_set: list[str] | None = None) -> DecodingConstraints:
        kind = plan.generator.kind
        if kind == "closed_set":
            candidates = closed_set or plan.generator.closed_set
            if not candidates:
                return DecodingConstraints("free")  # bare closed_set with no candidates: generate freely
            # tokenise candidates exactly as the target slot's labels are (uncased, max_length, ...)
            target = plan.templates[0].targets()[0]
            ctx = SlotContext(self.tokenizer, target.settings, f"{_task(plan)}closed_set of {_slot_text(target)}")
            return DecodingConstraints("closed_set", [target.modality.encode(c, ctx) + [V.EOS_ID] for c in candidates])
        if closed_set:
            raise ValueError(f"{_task(plan)}closed_set= was given but the target slot has no closed_set attribute")
        return DecodingConstraints(kind if kind in ("box", "audio") else "free")

    @functools.lru_cache(maxsize=4096)
    def _prompt_ids(self, text: str) -> list[int]:
        return self.tokenizer.encode_text(text)

    def _encode_row(self, plan: TaskPlan, row: dict, index: int, training: bool, rng, with_targets: bool,
                    sampling_rate: int | None = None) -> dict:
        template_index = rng.randrange(len(plan.templates)) if training else 0
        template = plan.templates[template_index]
        info = RowInfo(template_index)
        pixels: list[torch.Tensor] = []
        audios: list[torch.Tensor] = []
        for s in template.slots("encoder"):
            if s.slot.modality == "AUDIO":
                where = self._where(plan, index, s)
                extractor = self.feature_extractor
                wave = load_audio(self._value(plan, row, index, s), where, sampling_rate,
                                  extractor.sampling_rate, extractor.max_audio_seconds)
                audios.append(extractor.features(wave, training, rng, where))
            if s.slot.modality == "IMAGE":
                image = load_image(self._value(plan, row, index, s), self._where(plan, index, s))
                info.image_sizes[s.column] = image.size
                pixels.append(ImageModality.preprocess(image, self.image_processor, self.image_size,
                                                       s.settings.get("mask_ratio", 0.0)))
        input_ids: list[int] = []
        audio_lengths = iter(a.shape[0] for a in audios)
        for segment in template.encoder:
            if segment.kind == "IMAGE":
                input_ids += [V.IMAGE_ID] * self.image_tokens
                continue
            if segment.kind == "AUDIO":
                input_ids += [V.AUDIO_ID] * audio_token_count(next(audio_lengths))
                continue
            ids, _ = self._encode_items(plan, template, segment.items, row, index, info, training, rng, True)
            input_ids += [V.BOS_ID, *ids, V.EOS_ID] if segment.bos_eos else ids
        speech = _speech_target(template)
        if speech is not None:  # the decoder side is one AUDIO target: its mels, no decoder tokens
            out = {"input_ids": input_ids, "pixels": pixels, "audios": audios, "info": info}
            if with_targets:
                out["mel"] = audio_target.mel_target(self._value(plan, row, index, speech),
                                                     self._where(plan, index, speech), self.mel_settings)
            return out
        ids, scored = [], []
        for segment in template.decoder:
            seg_ids, seg_scored = self._encode_items(plan, template, segment.items, row, index, info, training, rng,
                                                     with_targets)
            ids += seg_ids
            scored += seg_scored
        common = {"input_ids": input_ids, "pixels": pixels, "audios": audios, "info": info}
        if with_targets:
            full = [V.BOS_ID, *ids, V.EOS_ID]
            # EOS is a target whenever the template has one, even if the targets are empty (no objects, "")
            full_scored = [False, *scored, any(scored) or bool(template.targets())]
            labels = [t if s else -100 for t, s in zip(full[1:], full_scored[1:])]
            return {**common, "decoder_input_ids": full[:-1], "labels": labels,
                    "ctc": self._ctc_labels(plan, template, row, index)}
        info.prompt_length = 1 + len(ids)
        return {**common, "decoder_input_ids": [V.BOS_ID, *ids], "ctc": None}

    def _ctc_labels(self, plan, template: TemplatePlan, row, index) -> list[int] | None:
        """Phone ids of the row's ``preprocess=text_phone`` targets (the CTC targets of its audio)."""
        slots = [s for s in template.targets() if s.settings.get("preprocess") == "text_phone"]
        if not slots:
            return None
        ids = []
        for s in slots:
            value = self._value(plan, row, index, s)
            if not isinstance(value, str):
                raise ValueError(f"{self._where(plan, index, s)}: text_phone needs a string, "
                                 f"got {type(value).__name__}")
            ids += ctc_phone_ids(value, self._where(plan, index, s))
        return ids

    def _encode_items(self, plan, template: TemplatePlan, items, row, index, info, training, rng, with_targets):
        """Token ids of a run of text-like items, and per token whether it is scored.

        Without targets (inference) the decoder run stops at the first scored slot: what comes
        before it is the decoder prompt."""
        ids: list[int] = []
        scored: list[bool] = []
        for item in items:
            if isinstance(item, PromptText):
                piece = self._prompt_ids(item.text)
                ids += piece
                scored += [False] * len(piece)
                continue
            if isinstance(item, RepeatPlan):
                if not with_targets and any(s.scored for s in item.slots()):
                    break
                for element in self._repeat_elements(plan, item, row, index):
                    sub_ids, sub_scored = self._encode_items(plan, template, item.items, element, index, info,
                                                             training, rng, with_targets)
                    ids += sub_ids
                    scored += sub_scored
                continue
            if not with_targets and item.scored:
                break
            ctx = self._context(plan, template, index, item, info, training, rng)
            piece = item.modality.encode(self._value(plan, row, index, item), ctx)
            ids += piece
            scored += [item.scored] * len(piece)
        return ids, scored

    def _repeat_elements(self, plan, repeat: RepeatPlan, row, index) -> list[dict]:
        columns = {s.column for s in repeat.slots()}
        lists = {c: self._value(plan, row, index, next(s for s in repeat.slots() if s.column == c)) for c in columns}
        for column, value in lists.items():
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"{_task(plan)}row {index}: column {column!r} fills a repeat group ( ... )* and "
                                 f"must hold a list, got {type(value).__name__}")
        lengths = {c: len(v) for c, v in lists.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"{_task(plan)}row {index}: the columns of one repeat group must have equal lengths, "
                             f"got {lengths}")
        count = next(iter(lengths.values()), 0)
        return [{c: lists[c][k] for c in columns} for k in range(count)]

    def _context(self, plan, template, index, slot: SlotPlan, info: RowInfo, training, rng) -> SlotContext:
        image_size = None
        if slot.slot.modality == "BOX":
            image_size = info.image_sizes[_box_image(template, slot)]
        return SlotContext(self.tokenizer, slot.settings, self._where(plan, index, slot), training, rng,
                           image_size, V.NUM_BINS)

    @staticmethod
    def _where(plan, index, slot: SlotPlan) -> str:
        return f"{_task(plan)}row {index}, slot {_slot_text(slot)} (column {slot.slot.position} of the instruction)"

    def _value(self, plan, row, index, slot: SlotPlan):
        if slot.column not in row:
            raise ValueError(f"{self._where(plan, index, slot)}: no value for column {slot.column!r}; "
                             f"the row has {sorted(row)}")
        return row[slot.column]

    @property
    def mel_settings(self) -> audio_target.MelSettings:
        return audio_target.MelSettings.from_dict(self.tts_settings)

    # ------------------------------------------------------------------------------ decoding
    def postprocess(self, generated: torch.Tensor, inputs: OFAPlusBatch, vocoder=None,
                    return_mels: bool = False) -> list[Any]:
        """Generated ids -> one value per row: text, a box in original-image pixels, or for several
        / repeated targets a dict (repeat groups give a list of dicts). For an AUDIO target,
        ``generated`` is generate()'s mel output and each row becomes ``{"audio": float32 array,
        "sampling_rate": int}`` through ``vocoder`` (default ``self.vocoder``; None = Griffin-Lim), with
        ``return_mels`` also its ``"mel"`` (frames, n_mels) log-mel."""
        plan: TaskPlan = inputs["task_plan"]
        if plan.generator.kind == "audio":
            return audio_target.decode_speech(generated, self.mel_settings, vocoder or self.vocoder, return_mels)
        generated = generated.tolist() if torch.is_tensor(generated) else generated
        rows = inputs.rows
        if len(generated) % len(rows):
            raise ValueError(f"{len(generated)} sequences for {len(rows)} rows")
        per_row = len(generated) // len(rows)  # num_return_sequences > 1 -> a list per row
        values = []
        for i, ids in enumerate(generated):
            info = rows[i // per_row]
            ids = ids[info.prompt_length:]
            if V.EOS_ID in ids:
                ids = ids[: ids.index(V.EOS_ID)]
            ids = [t for t in ids if t != V.PAD_ID]
            values.append(self._decode_row(plan, plan.templates[info.template], ids, info))
        if per_row > 1:
            return [values[i: i + per_row] for i in range(0, len(values), per_row)]
        return values

    def _decode_row(self, plan: TaskPlan, template: TemplatePlan, ids: list[int], info: RowInfo):
        targets = template.targets()
        if plan.generator.kind != "sequence":
            return self._decode_slot(template, targets[0], ids, info) if targets else self.tokenizer.decode_text(ids)
        out, position = {}, 0
        items = [i for seg in template.decoder for i in seg.items]
        for item in _after_prompt(items):
            if isinstance(item, RepeatPlan):
                elements = []
                while position < len(ids):
                    element, position = self._consume(template, item.items, ids, position, info)
                    elements.append(element)
                for s in item.slots():
                    out[s.column] = [e.get(s.column) for e in elements]
            else:
                element, position = self._consume(template, [item], ids, position, info)
                out.update(element)
        return out

    def _consume(self, template, items, ids, position, info):
        """Read one value per scored slot: a BOX takes 4 bins, text takes tokens up to the next bin."""
        element = {}
        for item in items:
            if isinstance(item, PromptText):
                position += len(self._prompt_ids(item.text))
            elif item.slot.modality == "BOX":
                element[item.column] = self._decode_slot(template, item, ids[position: position + 4], info)
                position += 4
            else:
                end = position
                while end < len(ids) and not V.BIN_OFFSET <= ids[end] < V.BIN_OFFSET + V.NUM_BINS:
                    end += 1
                element[item.column] = self._decode_slot(template, item, ids[position:end], info)
                position = max(end, position + 1)
        return element, position

    def _decode_slot(self, template, slot: SlotPlan, ids, info: RowInfo):
        image_size = info.image_sizes.get(_box_image(template, slot)) if slot.slot.modality == "BOX" else None
        ctx = SlotContext(self.tokenizer, slot.settings, f"output slot {_slot_text(slot)}", image_size=image_size)
        return slot.modality.decode(ids, ctx)

    def batch_decode(self, *args, **kwargs):
        return self.tokenizer.batch_decode(*args, **kwargs)

    def decode(self, *args, **kwargs):
        return self.tokenizer.decode(*args, **kwargs)


IMAGE_TEXT_INSTRUCTION = "[IMAGE:image] [TEXT:text] -> [TEXT:answer]"


def _image_text_request(columns: dict) -> tuple[str, dict]:
    """``processor(images=..., text=...)`` (what transformers' image-text-to-text pipeline calls): the
    text is the prompt after the image, as in "[IMAGE:image] what does the image describe? -> ..."."""
    if "images" not in columns or "text" not in columns:
        raise ValueError("give an instruction, e.g. processor('[IMAGE:image] what does the image describe? -> "
                         "[TEXT:caption]', image=img), or images= and text= (image-text-to-text)")
    images, text = columns["images"], columns["text"]
    if isinstance(images, (list, tuple)) and isinstance(text, str):
        text = [text] * len(images)  # one prompt for every image
    return IMAGE_TEXT_INSTRUCTION, {"image": images, "text": text}


def _model_task_cards(path, kwargs: dict) -> list[dict]:
    """``task_cards`` of the ``config.json`` beside a processor (a folder or Hub repo), or []."""
    hub = {k: kwargs[k] for k in ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder")
           if k in kwargs}
    config = cached_file(path, "config.json", _raise_exceptions_for_missing_entries=False,
                         _raise_exceptions_for_connection_errors=False, **hub)
    if config is None:
        return []
    with open(config, encoding="utf-8") as f:
        return json.load(f).get("task_cards") or []


def _prefetch_phones(plan: TaskPlan, rows: list[dict]) -> None:
    """Turn every text of the batch that needs phones into phones with one espeak-ng call (cached)."""
    by_voice: dict[str, list[str]] = {}
    for template in plan.templates:
        for s in template.slots():
            wanted = s.settings.get("preprocess") == "text_phone" or (
                s.slot.modality == "PHONE" and not s.settings.get("phonemized"))
            if wanted and not s.in_repeat:
                texts = [r.get(s.column) for r in rows]
                by_voice.setdefault(s.settings.get("voice", "en-us"), []).extend(
                    t for t in texts if isinstance(t, str) and t.strip())
    for voice, texts in by_voice.items():
        phonemize(texts, voice)


def _after_prompt(items):
    """Decoder items from the first scored one on (the prompt before it is not in the output)."""
    for k, item in enumerate(items):
        scored = item.slots() if isinstance(item, RepeatPlan) else [item] if isinstance(item, SlotPlan) else []
        if any(s.scored for s in scored):
            return items[k:]
    return []


def _speech_target(template: TemplatePlan) -> SlotPlan | None:
    targets = template.targets()
    return targets[0] if targets and targets[0].slot.modality == "AUDIO" else None


def _box_image(template: TemplatePlan, slot: SlotPlan) -> str:
    return slot.settings.get("image") or next(s.column for s in template.slots("encoder") if s.slot.modality == "IMAGE")


def _slot_text(slot: SlotPlan) -> str:
    return f"[{slot.slot.modality}:{slot.column}]"


def _task(plan: TaskPlan) -> str:
    return f"task {plan.name!r}, " if plan.name else ""


def _is_batch(value) -> bool:
    """A list of per-row values (a 4-D image array/tensor is a batch of images, too)."""
    return isinstance(value, (list, tuple)) or (isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim >= 1)


def _pad(sequences: list[list[int]], value: int) -> list[list[int]]:
    width = max((len(s) for s in sequences), default=0)
    return [s + [value] * (width - len(s)) for s in sequences]
