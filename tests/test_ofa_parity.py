"""A converted OFA checkpoint computes what OFA computes: modelscope's OFA implementation as the reference.

The reference is modelscope's ``OFAModel``, imported from the wheel `make setup` unpacks into
``.venv/downloads/modelscope`` (no modelscope install: its package ``__init__``s pull in fairseq).
Each test builds OFA with random weights, saves it in the Hub layout with a small byte-level BPE
vocabulary, converts it with `ofa_plus.convert_ofa` and compares both models on the same inputs.
"""

from __future__ import annotations

import importlib
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoModelForSeq2SeqLM, BartTokenizer

import ofa_plus.vocabulary as V
from conftest import write_bpe_vocabulary
from ofa_plus import OFAPlusProcessor
from ofa_plus.convert_ofa import OFA_NUM_BINS, OFA_NUM_CODES, OFACheckpointError, convert_ofa

MODELSCOPE = Path(__file__).resolve().parents[1] / ".venv" / "downloads" / "modelscope" / "modelscope"
OFA_PACKAGE = "modelscope.models.multi_modal.ofa"
IMAGE_SIZE = 64  # a 4x4 patch grid
TINY = dict(d_model=256, layers=(4, 4), heads=4, resnet="resnet50")


def load_reference():
    """modelscope's OFAConfig and OFAModel, skipping the package __init__s (they import fairseq)."""
    if not (MODELSCOPE / "models" / "multi_modal" / "ofa" / "modeling_ofa.py").is_file():
        pytest.skip(f"modelscope's OFA is not unpacked at {MODELSCOPE} (run `make setup`)")
    for name in ("modelscope", "modelscope.models", "modelscope.models.multi_modal", OFA_PACKAGE):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(MODELSCOPE.joinpath(*name.split(".")[1:]))]
            sys.modules[name] = package
    vit = types.ModuleType(f"{OFA_PACKAGE}.vit")  # ViT variants only; the ResNet models never build one
    vit.vit_base = vit.vit_large = vit.vit_huge = vit.vit_large_336 = None
    sys.modules.setdefault(vit.__name__, vit)
    configuration = importlib.import_module(f"{OFA_PACKAGE}.configuration_ofa")
    modeling = importlib.import_module(f"{OFA_PACKAGE}.modeling_ofa")
    configuration.OFAConfig.forced_bos_token_id = None  # transformers 5 no longer sets it on configs
    return configuration.OFAConfig, modeling.OFAModel


def build_ofa_checkpoint(folder: Path, d_model: int, layers: tuple[int, int], heads: int, resnet: str, seed: int = 0):
    """An OFA model with every tensor random (LayerNorms, head scales and BatchNorm statistics too),
    saved as the Hub holds it; returns the model."""
    config_class, model_class = load_reference()
    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_bpe_vocabulary(folder)
    config = config_class(
        vocab_size=len(vocab) + OFA_NUM_CODES + OFA_NUM_BINS,
        d_model=d_model,
        encoder_layers=layers[0],
        decoder_layers=layers[1],
        encoder_attention_heads=heads,
        decoder_attention_heads=heads,
        encoder_ffn_dim=4 * d_model,
        decoder_ffn_dim=4 * d_model,
        resnet_type=resnet,
    )
    torch.manual_seed(seed)
    model = model_class(config).eval()
    with torch.no_grad():
        for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
            if not tensor.is_floating_point():
                continue
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
            elif bool((tensor == 1).all()):  # LayerNorm / BatchNorm weights, head scales
                tensor.copy_(1 + 0.2 * torch.randn_like(tensor))
            else:
                tensor.add_(0.05 * torch.randn_like(tensor))
            if name.endswith(".bn3.weight"):  # small residual branches: deep random ResNets overflow otherwise
                tensor.mul_(0.2)
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    hub_config = {k: getattr(config, k) for k in ("vocab_size", "d_model", "encoder_layers", "decoder_layers")}
    hub_config.update(resnet_type=resnet, encoder_attention_heads=heads, normformer=True, architectures=["OFAModel"])
    (folder / "config.json").write_text(json.dumps(hub_config))
    return model, vocab


def to_ofa_plus_ids(ids: torch.Tensor, vocab: dict[str, int]) -> torch.Tensor:
    """OFA token ids -> OFA+ ids (the permutation the converter applies to the token rows)."""
    specials = {vocab["<s>"]: V.BOS_ID, vocab["<pad>"]: V.PAD_ID, vocab["</s>"]: V.EOS_ID, vocab["<unk>"]: V.UNK_ID}
    specials[vocab["<mask>"]] = V.MASK_ID
    table = torch.empty(len(vocab) + OFA_NUM_CODES + OFA_NUM_BINS, dtype=torch.long)
    table[: len(vocab) - 1] = V.TEXT_OFFSET + torch.arange(len(vocab) - 1) - 4  # BPE pieces 4..
    for old, new in specials.items():
        table[old] = new
    table[len(vocab) :] = torch.cat(
        [V.CODE_OFFSET + torch.arange(OFA_NUM_CODES), V.BIN_OFFSET + torch.arange(OFA_NUM_BINS)]
    )
    return table[ids]


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory):
    """(OFA reference, converted OFA+ model, vocab.json, folder) at OFA-tiny dimensions."""
    folder = tmp_path_factory.mktemp("ofa-tiny")
    reference, vocab = build_ofa_checkpoint(folder / "ofa", **TINY)
    convert_ofa(folder / "ofa", folder / "converted", image_size=IMAGE_SIZE)
    converted = AutoModelForSeq2SeqLM.from_pretrained(folder / "converted").eval()
    return reference, converted, vocab, folder


def _text(vocab, lengths: list[int], seed: int) -> torch.Tensor:
    """OFA-id rows <s> pieces </s>, right-padded with <pad>."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for length in lengths:
        pieces = torch.randint(4, len(vocab) - 1, (length,), generator=generator).tolist()
        rows.append([vocab["<s>"], *pieces, vocab["</s>"]])
    width = max(map(len, rows))
    return torch.tensor([r + [vocab["<pad>"]] * (width - len(r)) for r in rows])


def _decoder_ids(vocab, batch: int, length: int, seed: int) -> torch.Tensor:
    """<s> then BPE pieces, codes and bins (OFA ids)."""
    generator = torch.Generator().manual_seed(seed)
    bpe = torch.randint(4, len(vocab) - 1, (batch, length), generator=generator)
    bins = len(vocab) + OFA_NUM_CODES + torch.randint(0, OFA_NUM_BINS, (batch, length), generator=generator)
    ids = torch.where(torch.rand(batch, length, generator=generator) < 0.7, bpe, bins)
    return torch.cat([torch.full((batch, 1), vocab["<s>"]), ids], 1)


def _ofa_plus_inputs(model, text: torch.Tensor, vocab, with_image: bool) -> dict:
    ids = to_ofa_plus_ids(text, vocab)
    if with_image:
        ids = torch.cat([torch.full((len(ids), model.config.image_tokens), V.IMAGE_ID), ids], 1)
    return dict(input_ids=ids, attention_mask=(ids != V.PAD_ID).long())


def _compare(reference, converted, vocab, text, images, decoder_ids):
    """Encoder states (real positions) and logits (over OFA's ids) of both models."""
    with torch.no_grad():
        expected = reference(
            input_ids=text,
            patch_images=images,
            patch_masks=None if images is None else torch.ones(len(text), dtype=torch.bool),
            decoder_input_ids=decoder_ids,
        )
        inputs = _ofa_plus_inputs(converted, text, vocab, images is not None)
        got = converted(**inputs, pixel_values=images, decoder_input_ids=to_ofa_plus_ids(decoder_ids, vocab))
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(
        got.encoder_last_hidden_state[real], expected.encoder_last_hidden_state[real], rtol=0, atol=1e-4
    )
    ofa_ids = torch.arange(expected.logits.shape[-1])
    torch.testing.assert_close(got.logits[..., to_ofa_plus_ids(ofa_ids, vocab)], expected.logits, rtol=0, atol=1e-4)


def test_image_and_text_with_padding(tiny_pair):
    reference, converted, vocab, _ = tiny_pair
    images = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(1))
    _compare(reference, converted, vocab, _text(vocab, [9, 5], 2), images, _decoder_ids(vocab, 2, 6, 3))


def test_text_only_with_padding(tiny_pair):
    reference, converted, vocab, _ = tiny_pair
    _compare(reference, converted, vocab, _text(vocab, [12, 3], 4), None, _decoder_ids(vocab, 2, 8, 5))


def test_long_text_uses_the_log_buckets(tiny_pair):
    reference, converted, vocab, _ = tiny_pair
    _compare(reference, converted, vocab, _text(vocab, [300], 6), None, _decoder_ids(vocab, 1, 200, 7))


def _reference_greedy(reference, text, images, vocab, steps: int) -> torch.Tensor:
    """OFA's greedy decoding by full forwards, over OFA's own ids."""
    tokens = torch.full((len(text), 1), vocab["<s>"])
    with torch.no_grad():
        for _ in range(steps):
            logits = reference(
                input_ids=text,
                patch_images=images,
                patch_masks=torch.ones(len(text), dtype=torch.bool),
                decoder_input_ids=tokens,
            ).logits
            tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], 1)
    return tokens


def test_greedy_generation_and_step_logits_equal(tiny_pair):
    """Cached greedy decoding picks OFA's tokens, and each step's scores are OFA's logits."""
    reference, converted, vocab, _ = tiny_pair
    text = _text(vocab, [7, 4], 8)
    images = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(9))
    expected = _reference_greedy(reference, text, images, vocab, steps=8)
    inputs = _ofa_plus_inputs(converted, text, vocab, with_image=True)
    out = converted.generate(
        **inputs,
        pixel_values=images,
        max_new_tokens=8,
        min_new_tokens=8,
        num_beams=1,
        do_sample=False,
        output_logits=True,
        return_dict_in_generate=True,
    )
    assert torch.equal(out.sequences, to_ofa_plus_ids(expected, vocab))
    with torch.no_grad():
        teacher_forced = reference(
            input_ids=text,
            patch_images=images,
            patch_masks=torch.ones(2, dtype=torch.bool),
            decoder_input_ids=expected,
        ).logits
    ofa_ids = to_ofa_plus_ids(torch.arange(teacher_forced.shape[-1]), vocab)
    steps = torch.stack(out.logits, 1)[..., ofa_ids]
    torch.testing.assert_close(steps, teacher_forced[:, :-1], rtol=0, atol=1e-4)


def test_processor_and_generate_give_ofas_caption(tiny_pair):
    """From images and an instruction, through the converted folder's processor: OFA's input ids (image,
    then <s> text </s> in BART's BPE with OFA's leading space) and OFA's greedy tokens."""
    reference, converted, vocab, folder = tiny_pair
    processor = OFAPlusProcessor.from_pretrained(folder / "converted")
    pixels = np.random.default_rng(16).integers(0, 256, (2, 80, 70, 3), dtype=np.uint8)
    batch = processor(
        "[IMAGE:image] what does the image describe? -> [TEXT:caption]", image=[Image.fromarray(p) for p in pixels]
    )
    bart = BartTokenizer(str(folder / "ofa" / "vocab.json"), str(folder / "ofa" / "merges.txt"))
    text = bart(" what does the image describe?", return_tensors="pt")["input_ids"].repeat(2, 1)  # <s> ... </s>
    assert torch.equal(batch["input_ids"][:, converted.config.image_tokens :], to_ofa_plus_ids(text, vocab))
    expected = _reference_greedy(reference, text, batch["pixel_values"], vocab, steps=6)
    generated = converted.generate(**batch, max_new_tokens=6, min_new_tokens=6, num_beams=1, do_sample=False)
    assert torch.equal(generated, to_ofa_plus_ids(expected, vocab))


def test_beams_get_ofa_logits(tiny_pair):
    """Decoder rows sharing an encoder row (as beams do) get OFA's logits of that row."""
    reference, converted, vocab, _ = tiny_pair
    text = _text(vocab, [6, 8], 10)
    images = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(11))
    decoder_ids = _decoder_ids(vocab, 6, 5, 12)
    with torch.no_grad():
        expected = reference(
            input_ids=text.repeat_interleave(3, 0),
            patch_images=images.repeat_interleave(3, 0),
            patch_masks=torch.ones(6, dtype=torch.bool),
            decoder_input_ids=decoder_ids,
        ).logits
        inputs = _ofa_plus_inputs(converted, text, vocab, with_image=True)
        encoder_outputs = converted.get_encoder()(**inputs, pixel_values=images)
        got = converted(
            attention_mask=inputs["attention_mask"],
            encoder_outputs=encoder_outputs,
            decoder_input_ids=to_ofa_plus_ids(decoder_ids, vocab),
        ).logits
    ofa_ids = to_ofa_plus_ids(torch.arange(expected.shape[-1]), vocab)
    torch.testing.assert_close(got[..., ofa_ids], expected, rtol=0, atol=1e-4)
    beams = converted.generate(**inputs, pixel_values=images, num_beams=3, max_new_tokens=5)
    assert beams.shape[0] == 2


def test_converted_model_suppresses_ids_ofa_lacks(tiny_pair):
    _, converted, vocab, _ = tiny_pair
    suppressed = set(converted.generation_config.suppress_tokens)
    assert len(suppressed) == (V.NUM_SPECIAL_SLOTS - 5) + V.NUM_PHONE_SLOTS
    assert V.IMAGE_ID in suppressed and V.PHONE_OFFSET in suppressed and V.EOS_ID not in suppressed
    assert converted.config.vocab_size == V.TEXT_OFFSET + len(vocab) - 5


def test_bad_inputs_name_file_and_tensor(tmp_path):
    folder = tmp_path / "ofa"
    build_ofa_checkpoint(folder, d_model=64, layers=(1, 1), heads=2, resnet="resnet50")
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    with pytest.raises(OFACheckpointError, match="--image-size"):
        convert_ofa(folder, tmp_path / "out")

    with pytest.raises(OFACheckpointError, match="image size 100: must be a multiple of 16"):
        convert_ofa(folder, tmp_path / "out", image_size=100)

    vocab = json.loads((folder / "vocab.json").read_text())
    (folder / "vocab.json").write_text(json.dumps({**vocab, "extra": len(vocab)}))
    with pytest.raises(OFACheckpointError, match=r"encoder\.embed_tokens\.weight has \d+ rows, but vocab\.json"):
        convert_ofa(folder, tmp_path / "out", image_size=IMAGE_SIZE)
    (folder / "vocab.json").write_text(json.dumps(vocab))

    data = (folder / "pytorch_model.bin").read_bytes()
    (folder / "pytorch_model.bin").write_bytes(data[: len(data) // 2])
    with pytest.raises(OFACheckpointError, match="pytorch_model.bin: cannot be read"):
        convert_ofa(folder, tmp_path / "out", image_size=IMAGE_SIZE)

    broken = dict(state)
    broken["encoder.layers.0.fc2.weight"] = broken["encoder.layers.0.fc2.weight"][:, :10]
    torch.save(broken, folder / "pytorch_model.bin")
    with pytest.raises(OFACheckpointError, match=r"encoder\.layers\.0\.ffn\.fc2\.weight has shape"):
        convert_ofa(folder, tmp_path / "out", image_size=IMAGE_SIZE)

    broken = {k: v for k, v in state.items() if k != "decoder.layers.0.cross_attn.v_proj.bias"}
    torch.save(broken, folder / "pytorch_model.bin")
    with pytest.raises(OFACheckpointError, match=r"lacks tensor decoder\.layers\.0\.cross_attn\.v_proj\.bias"):
        convert_ofa(folder, tmp_path / "out", image_size=IMAGE_SIZE)

    torch.save({**state, "encoder.extra.weight": torch.zeros(1)}, folder / "pytorch_model.bin")
    with pytest.raises(OFACheckpointError, match=r"unknown tensor encoder\.extra\.weight"):
        convert_ofa(folder, tmp_path / "out", image_size=IMAGE_SIZE)


def test_every_tensor_is_converted_or_dropped(tmp_path):
    folder = tmp_path / "ofa"
    reference, _ = build_ofa_checkpoint(folder, d_model=64, layers=(2, 1), heads=2, resnet="resnet101")
    report = convert_ofa(folder, tmp_path / "out", image_size=IMAGE_SIZE)
    assert report.converted + len(report.dropped) == len(reference.state_dict())
    assert set(report.dropped.values()) <= {
        "bucket buffer, computed on the fly",
        "buffer of the image-code path",
        "image-code path (text-to-image)",
        "tied to encoder.embed_tokens.weight",
    }
    assert report.config.image_backbone == "resnet101" and report.config.encoder_layers == 2


def test_cli_converts_and_reports_errors(tmp_path, capsys):
    from ofa_plus.cli import main  # noqa: PLC0415

    folder = tmp_path / "ofa"
    _, vocab = build_ofa_checkpoint(folder, d_model=64, layers=(1, 1), heads=2, resnet="resnet50")
    with pytest.raises(SystemExit) as exit_info:
        main(["convert-ofa", str(folder), str(tmp_path / "out")])
    assert exit_info.value.code == 2 and "--image-size" in capsys.readouterr().err
    main(["convert-ofa", str(folder), str(tmp_path / "out"), "--image-size", str(IMAGE_SIZE)])
    assert "resnet50 at 64 px" in capsys.readouterr().out
    assert AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "out").config.cross_position_bias
    # the processor beside it tokenizes text as OFA does (BART's BPE, leading space), in OFA+'s ids
    processor = OFAPlusProcessor.from_pretrained(tmp_path / "out")
    bart = BartTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    expected = bart(" what is in the picture?", add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    assert processor.tokenizer.encode_text("what is in the picture?") == to_ofa_plus_ids(expected, vocab).tolist()


@pytest.mark.parametrize(
    "size",
    [
        dict(d_model=512, layers=(1, 1), heads=8, resnet="resnet101"),  # OFA-medium's widths
        dict(d_model=1280, layers=(2, 1), heads=16, resnet="resnet152"),  # OFA-huge's: head_dim 80
    ],
    ids=["medium-widths", "huge-widths"],
)
def test_bigger_sizes_with_fewer_layers(tmp_path, size):
    reference, vocab = build_ofa_checkpoint(tmp_path / "ofa", **size)
    convert_ofa(tmp_path / "ofa", tmp_path / "out", image_size=IMAGE_SIZE)
    converted = AutoModelForSeq2SeqLM.from_pretrained(tmp_path / "out").eval()
    images = torch.randn(2, 3, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(13))
    _compare(reference, converted, vocab, _text(vocab, [8, 4], 14), images, _decoder_ids(vocab, 2, 5, 15))
