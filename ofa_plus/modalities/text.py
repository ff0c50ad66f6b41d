"""TEXT: free text, tokenised with the unified tokenizer; shares the token embedding (no adaptor)."""

from __future__ import annotations

import string

from .. import vocabulary as V
from . import register_modality
from .base import TEXT_ATTRIBUTES, Attribute, Modality, SlotContext
from .phone import DEFAULT_VOICE, ctc_phone_ids, phonemize

TEXT_PHONE = "text_phone"  # preprocess recipe: a target's phones become the CTC labels of the audio

_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_text(text: str, settings: dict) -> str:
    if settings.get("uncased"):
        text = text.lower()
    if settings.get("no_punctuation"):
        text = text.translate(_PUNCTUATION)
    return " ".join(text.split())


def span_mask(ids: list[int], ratio: float, tokenizer, rng) -> list[int]:
    """BART-style whole-word span masking: Poisson(3)-long word spans each become one <mask>."""
    starts = [i for i, t in enumerate(ids) if tokenizer.is_word_start(t)] or [0]
    if starts[0] != 0:
        starts.insert(0, 0)
    words = [ids[a:b] for a, b in zip(starts, starts[1:] + [len(ids)])]
    to_mask = round(len(words) * ratio)
    masked = [False] * len(words)
    while sum(masked) < to_mask:
        length = max(1, _poisson(3.0, rng))
        start = rng.randrange(len(words))
        for k in range(start, min(start + length, len(words))):
            masked[k] = True
    out: list[int] = []
    for word, is_masked in zip(words, masked):
        if not is_masked:
            out.extend(word)
        elif not out or out[-1] != V.MASK_ID:
            out.append(V.MASK_ID)
    return out


def _poisson(lam: float, rng) -> int:
    # Knuth's method: fine for a small lambda, and uses the caller's seeded RNG.
    threshold, k, p = 2.718281828459045**-lam, 0, 1.0
    while True:
        p *= rng.random()
        if p <= threshold:
            return k
        k += 1


@register_modality
class TextModality(Modality):
    name = "TEXT"
    text_like = True
    # text_phone (a target beside an AUDIO input): the processor adds the text's phones as ctc_labels
    preprocess_recipes = (TEXT_PHONE,)
    attributes = {
        **TEXT_ATTRIBUTES,
        "closed_set": Attribute(
            "choices",
            side="decoder",
            flag_allowed=True,
            help="answer is one of these candidates (bare: from the card or the call)",
        ),
        "mask_ratio": Attribute(
            float,
            side="encoder",
            minimum=0.0,
            maximum=1.0,
            help="BART-style span masking of this share of words (training only)",
        ),
        "noise_ratio": Attribute(
            float,
            minimum=0.0,
            maximum=1.0,
            help="replace this share of tokens with random text tokens (training only)",
        ),
    }

    @classmethod
    def is_single(cls, value) -> bool:
        return isinstance(value, str)

    @classmethod
    def check_slot(cls, slot, template) -> str | None:
        if slot.settings.get("preprocess") == TEXT_PHONE and (
            slot.side != "decoder" or not any(e.slot.modality == "AUDIO" for e in template.slots("encoder"))
        ):
            return (
                "preprocess=text_phone (phone CTC on the audio) needs a target slot and an AUDIO slot on the "
                "encoder side"
            )
        return None

    @classmethod
    def prepare(cls, values, settings) -> None:
        if settings.get("preprocess") == TEXT_PHONE:  # all of the batch's texts in one espeak-ng call
            phonemize([v for v in values if isinstance(v, str) and v.strip()], settings.get("voice", DEFAULT_VOICE))

    @classmethod
    def auxiliary_labels(cls, value, ctx: SlotContext) -> dict[str, list[int]]:
        if ctx.settings.get("preprocess") != TEXT_PHONE:
            return {}
        if not isinstance(value, str):
            raise ValueError(f"{ctx.where}: text_phone needs a string, got {type(value).__name__}")
        return {"ctc_labels": ctc_phone_ids(value, ctx.where)}

    @classmethod
    def encode(cls, value, ctx: SlotContext) -> list[int]:
        if not isinstance(value, str):
            raise ValueError(f"{ctx.where}: expected a string, got {type(value).__name__}: {value!r:.80}")
        ids = ctx.tokenizer.encode_text(normalize_text(value, ctx.settings))
        if ctx.training and ctx.settings.get("mask_ratio"):
            ids = span_mask(ids, ctx.settings["mask_ratio"], ctx.tokenizer, ctx.rng)
        if ctx.training and ctx.settings.get("noise_ratio"):
            low, high = V.TEXT_OFFSET, len(ctx.tokenizer)
            ids = [ctx.rng.randrange(low, high) if ctx.rng.random() < ctx.settings["noise_ratio"] else t for t in ids]
        if ctx.settings.get("max_length"):
            ids = ids[: ctx.settings["max_length"]]
        return ids

    @classmethod
    def decode(cls, ids: list[int], ctx: SlotContext) -> str:
        return ctx.tokenizer.decode_text([i for i in ids if i >= V.TEXT_OFFSET or i == V.UNK_ID]).strip()

    @classmethod
    def output_ids(cls, ctx: SlotContext) -> list[range]:
        return [range(V.UNK_ID, V.UNK_ID + 1), range(V.TEXT_OFFSET, len(ctx.tokenizer))]  # what decode keeps
