"""Shared fixtures: small real models, the default processor, and small real images."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from tokenizers import ByteLevelBPETokenizer

from ofa_plus import OFAPlusConfig, OFAPlusForConditionalGeneration, OFAPlusProcessor
from ofa_plus import vocabulary as V

# Tiny models on a small shared CPU: intra-op threads only add synchronisation cost (and stall badly
# when other processes hold the cores), so tests run single-threaded unless OMP_NUM_THREADS says otherwise.
if "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(1)

# OFA's 1,000 location bins (the tiny preset has 32): the box tests check pixel-exact round trips
SMALL = dict(image_size=64, encoder_layers=2, decoder_layers=2, num_bins=1000)


def small_config(**overrides) -> OFAPlusConfig:
    return OFAPlusConfig.from_preset("tiny", **{**SMALL, **overrides})


def small_model(seed: int = 0, **overrides) -> OFAPlusForConditionalGeneration:
    torch.manual_seed(seed)
    return OFAPlusForConditionalGeneration(small_config(**overrides)).eval()


def beam_rows_logits(model, encoder_outputs, attention_mask, token_span: int, copies: int = 3, length: int = 4):
    """``copies`` decoder rows per encoder row (as beams), with random text tokens: their logits fed
    step by step with a cache on the unrepeated ``encoder_outputs``, the cache, and their logits
    teacher-forced on the encoder outputs repeated per row. Beams that share their row's encoder
    states must give the same logits both ways."""
    repeated = type(encoder_outputs)(
        last_hidden_state=encoder_outputs.last_hidden_state.repeat_interleave(copies, 0),
        position_embeddings=None
        if encoder_outputs.position_embeddings is None
        else encoder_outputs.position_embeddings.repeat_interleave(copies, 0),
    )
    torch.manual_seed(0)
    tokens = torch.randint(V.TEXT_OFFSET, V.TEXT_OFFSET + token_span, (copies * attention_mask.shape[0], length))
    stepwise, cache = stepwise_logits(model, encoder_outputs, attention_mask, tokens)
    with torch.no_grad():
        full = model(
            attention_mask=attention_mask.repeat_interleave(copies, 0),
            encoder_outputs=repeated,
            decoder_input_ids=tokens,
            use_cache=False,
        ).logits
    return stepwise, cache, full


def stepwise_logits(model, encoder_outputs, attention_mask, decoder_input_ids):
    """The decoder fed one token at a time with a cache: the logits of every step ``(B, L, V)`` and
    the cache."""
    steps, cache = [], None
    with torch.no_grad():
        for t in range(decoder_input_ids.shape[1]):
            out = model(
                attention_mask=attention_mask,
                encoder_outputs=encoder_outputs,
                decoder_input_ids=decoder_input_ids[:, t : t + 1],
                cache=cache,
                use_cache=True,
            )
            cache = out.cache
            steps.append(out.logits)
    return torch.cat(steps, 1), cache


def shape_image(
    width: int, height: int, shape: str = "ellipse", color: str = "red", box: tuple[int, int, int, int] | None = None
) -> Image.Image:
    """A white canvas with one filled shape (default: the middle half of the image)."""
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    box = box or (width // 4, height // 4, 3 * width // 4, 3 * height // 4)
    if shape == "ellipse":
        draw.ellipse(box, fill=color)
    elif shape == "rectangle":
        draw.rectangle(box, fill=color)
    elif shape == "triangle":
        x0, y0, x1, y1 = box
        draw.polygon([(x0, y1), ((x0 + x1) // 2, y0), (x1, y1)], fill=color)
    else:
        raise ValueError(shape)
    return image


_DIGITS = None


def digit_image(index: int, size: int = 48) -> Image.Image:
    """A handwritten digit of scikit-learn's digits data set (8x8, 16 grey levels), upscaled."""
    global _DIGITS
    if _DIGITS is None:
        from sklearn.datasets import load_digits

        _DIGITS = load_digits().images
    return digit_sprite(_DIGITS[index % len(_DIGITS)], size)


def digit_sprite(image: np.ndarray, size: int) -> Image.Image:
    """An 8x8 digits scan (16 grey levels) as dark ink on white paper, upscaled to size x size."""
    array = (255 - image * 255 / 16).astype(np.uint8)
    return Image.fromarray(array).resize((size, size), Image.NEAREST).convert("RGB")


@pytest.fixture(scope="session")
def config() -> OFAPlusConfig:
    return small_config()


@pytest.fixture(scope="session")
def model(config) -> OFAPlusForConditionalGeneration:
    torch.manual_seed(0)
    return OFAPlusForConditionalGeneration(config).eval()


@pytest.fixture(scope="session")
def processor(config) -> OFAPlusProcessor:
    return OFAPlusProcessor.for_config(config)


@pytest.fixture(scope="session")
def images() -> list[Image.Image]:
    return [
        shape_image(80, 50, "ellipse", "red"),
        shape_image(40, 90, "rectangle", "blue"),
        digit_image(3),
        shape_image(64, 64, "triangle", "green"),
    ]


def write_bpe_vocabulary(folder: Path) -> dict[str, int]:
    """A small GPT-2-style byte-level BPE in BART's order: <s> <pad> </s> <unk>, pieces, <mask>."""
    tokenizer = ByteLevelBPETokenizer()
    text = ["what is in the picture?", "a red circle on a white background", "how many dogs are there?"] * 5
    tokenizer.train_from_iterator(
        text, vocab_size=300, min_frequency=1, special_tokens=["<s>", "<pad>", "</s>", "<unk>"]
    )
    tokenizer.save_model(str(folder))
    vocab = json.loads((folder / "vocab.json").read_text())
    vocab["<mask>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    return vocab
