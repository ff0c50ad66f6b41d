"""Model tests: checkpoints through the Auto classes, cached decoding, padding, image placement, loss, sizes."""

from __future__ import annotations

import os

import huggingface_hub
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM, AutoProcessor

import ofa_plus.vocabulary as V
from conftest import digit_image, shape_image, small_model, stepwise_logits
from ofa_plus import OFAPlusConfig, OFAPlusForConditionalGeneration, OFAPlusModel, OFAPlusProcessor

CAPTION = "[IMAGE:image] what does the image describe? -> [TEXT:caption]"
VQA = "[IMAGE:image] [TEXT:question] -> [TEXT:answer]"


def _logits(model, inputs, decoder_input_ids, **kwargs):
    with torch.no_grad():
        return model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            pixel_values=inputs.get("pixel_values"),
            decoder_input_ids=decoder_input_ids,
            use_cache=False,
            **kwargs,
        )


# ------------------------------------------------------------------------------------- checkpoints
def test_save_pretrained_loads_with_auto_classes_offline(tmp_path, monkeypatch, images):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import: patch it too
    # stride 8 (2 backbone stages) so the processor's non-default patch stride must survive the round trip
    model = small_model(seed=1, image_backbone_stages=2)
    processor = OFAPlusProcessor.for_config(model.config)
    assert processor.image_tokens == 64
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    files = os.listdir(tmp_path)
    assert "model.safetensors" in files and not any(f.endswith(".bin") for f in files), files

    config = AutoConfig.from_pretrained(tmp_path)
    assert isinstance(config, OFAPlusConfig)
    for key in (
        "d_model",
        "encoder_layers",
        "decoder_layers",
        "image_size",
        "image_backbone",
        "image_backbone_stages",
        "vocab_size",
        "label_smoothing",
        "vocabulary_layout_version",
        "tie_word_embeddings",
    ):
        assert getattr(config, key) == getattr(model.config, key), key
    assert config.to_diff_dict() == {
        **model.config.to_diff_dict(),
        "transformers_version": config.transformers_version,
    }

    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    loaded_processor = AutoProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, OFAPlusForConditionalGeneration) and isinstance(loaded_processor, OFAPlusProcessor)
    assert loaded_processor.image_tokens == processor.image_tokens == loaded.config.image_tokens
    # tying survives loading
    assert loaded.lm_head.weight.data_ptr() == loaded.model.shared.weight.data_ptr()
    assert loaded.model.encoder.embed_tokens is loaded.model.shared is loaded.model.decoder.embed_tokens
    state, loaded_state = model.state_dict(), loaded.state_dict()
    assert state.keys() == loaded_state.keys()
    assert all(torch.equal(state[k], loaded_state[k]) for k in state)

    batch = dict(image=images[:3], question=["what is it?", "which colour is the shape?", "digit?"])
    inputs, loaded_inputs = processor(VQA, **batch), loaded_processor(VQA, **batch)
    for key in ("input_ids", "attention_mask", "pixel_values"):
        assert torch.equal(inputs[key], loaded_inputs[key]), key
    decoder_input_ids = torch.tensor([[V.BOS_ID, 9800, 9900, 10000]] * 3)
    assert torch.equal(
        _logits(model, inputs, decoder_input_ids).logits, _logits(loaded, loaded_inputs, decoder_input_ids).logits
    )
    for kwargs in (dict(num_beams=1), dict(num_beams=3)):
        expected = model.generate(**inputs, max_new_tokens=8, **kwargs)
        assert torch.equal(expected, loaded.generate(**loaded_inputs, max_new_tokens=8, **kwargs)), kwargs
        assert processor.postprocess(expected, inputs) == loaded_processor.postprocess(expected, loaded_inputs)

    base = AutoModel.from_pretrained(tmp_path)
    assert type(base) is OFAPlusModel
    base_state = base.state_dict()
    assert all(torch.equal(base_state[k], state["model." + k]) for k in base_state)


# ------------------------------------------------------------------------------------------ cache
@pytest.mark.parametrize("num_beams", [1, 3, 4])
def test_generate_with_cache_equals_without(model, processor, images, num_beams):
    inputs = processor(
        VQA,
        image=images,
        question=[
            "what is in the picture?",
            "colour?",
            "which digit is this?",
            "is there a triangle in the middle of the picture?",
        ],
    )
    cached = model.generate(**inputs, num_beams=num_beams, max_new_tokens=10)
    uncached = model.generate(**inputs, num_beams=num_beams, max_new_tokens=10, use_cache=False)
    assert cached.shape[0] == 4
    assert torch.equal(cached, uncached)


def test_incremental_logits_equal_teacher_forced(model, processor, images):
    inputs = processor(CAPTION, image=images[:3])
    torch.manual_seed(3)
    decoder_input_ids = torch.cat([torch.full((3, 1), V.BOS_ID), torch.randint(V.TEXT_OFFSET, 15_000, (3, 7))], 1)
    full = _logits(model, inputs, decoder_input_ids).logits
    with torch.no_grad():
        encoder_outputs = model.get_encoder()(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], pixel_values=inputs["pixel_values"]
        )
    stepwise, cache = stepwise_logits(model, encoder_outputs, inputs["attention_mask"], decoder_input_ids)
    assert cache.get_seq_length() == decoder_input_ids.shape[1]
    torch.testing.assert_close(stepwise, full, rtol=0, atol=1e-5)
    # a cached prefix of 3 then the remaining 5 tokens at once
    with torch.no_grad():
        first = model(
            attention_mask=inputs["attention_mask"],
            encoder_outputs=encoder_outputs,
            decoder_input_ids=decoder_input_ids[:, :3],
            use_cache=True,
        )
        rest = model(
            attention_mask=inputs["attention_mask"],
            encoder_outputs=encoder_outputs,
            decoder_input_ids=decoder_input_ids[:, 3:],
            cache=first.cache,
            use_cache=True,
        )
    torch.testing.assert_close(torch.cat([first.logits, rest.logits], 1), full, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------------------------- padding
def test_padding_invariance(model, processor, images):
    short = dict(image=images[0], question="what?")
    long = dict(image=images[1], question="what is the shape in the middle of this picture and which colour is it?")
    alone = processor(VQA, **short)
    batch = processor(VQA, image=[short["image"], long["image"]], question=[short["question"], long["question"]])
    n = alone["input_ids"].shape[1]
    assert batch["input_ids"].shape[1] > n and batch["attention_mask"][0, n:].eq(0).all()
    assert torch.equal(batch["input_ids"][0, :n], alone["input_ids"][0])
    decoder_input_ids = torch.tensor([[V.BOS_ID, 9800, 9900, 10000, 11000]])
    one = _logits(model, alone, decoder_input_ids)
    both = _logits(model, batch, decoder_input_ids.expand(2, -1))
    torch.testing.assert_close(
        both.encoder_last_hidden_state[0, :n], one.encoder_last_hidden_state[0], rtol=1e-5, atol=1e-5
    )
    torch.testing.assert_close(both.logits[0], one.logits[0], rtol=1e-5, atol=1e-5)
    for num_beams in (1, 3):
        gen_one = model.generate(**alone, num_beams=num_beams, max_new_tokens=8)
        gen_both = model.generate(**batch, num_beams=num_beams, max_new_tokens=8)
        assert processor.postprocess(gen_one, alone)[0] == processor.postprocess(gen_both, batch)[0]


# -------------------------------------------------------------------------------- image placement
def test_segment_layout_text_two_images_text(model, config):
    encoder = model.model.encoder
    T = config.image_tokens
    ids = [V.BOS_ID, 9600, 9601, V.EOS_ID] + [V.IMAGE_ID] * (2 * T) + [V.BOS_ID, 9602, V.EOS_ID]
    is_image, segment_id, position = encoder.segment_layout(torch.tensor([ids]))
    assert is_image[0].tolist() == [False] * 4 + [True] * 2 * T + [False] * 3
    assert segment_id[0].tolist() == [1] * 4 + [2] * T + [3] * T + [4] * 3
    assert position[0].tolist() == [0, 1, 2, 3] + list(range(T)) * 2 + [0, 1, 2]


def test_segment_layout_from_processor(processor, config, images):
    instruction = "[TEXT:before] [IMAGE:a] [IMAGE:b] [TEXT:after] -> [TEXT:out]"
    inputs = processor(instruction, before="look at", a=images[0], b=images[1], after="and compare")
    T = config.image_tokens
    ids = inputs["input_ids"][0].tolist()
    start = ids.index(V.IMAGE_ID)
    assert ids[start : start + 2 * T] == [V.IMAGE_ID] * 2 * T and ids.count(V.IMAGE_ID) == 2 * T
    assert inputs["pixel_values"].shape == (2, 3, config.image_size, config.image_size)
    is_image, segment_id, position = OFAPlusForConditionalGeneration(config).model.encoder.segment_layout(
        inputs["input_ids"]
    )
    assert segment_id[0, start : start + T].unique().numel() == 1
    assert segment_id[0, start + T] == segment_id[0, start] + 1
    assert position[0, start : start + 2 * T].tolist() == list(range(T)) * 2
    assert segment_id[0, start + 2 * T] == segment_id[0, start] + 2 and position[0, start + 2 * T] == 0


def test_image_features_land_on_their_placeholders(model, processor, config):
    """Rows with different layouts in one batch: each image's patches replace its own placeholders."""
    T = config.image_tokens
    pics = [shape_image(64, 64, "ellipse", "red"), digit_image(7, 64), shape_image(50, 80, "rectangle", "blue")]
    pixels = torch.stack([processor(CAPTION, image=p)["pixel_values"][0] for p in pics])
    row0 = [V.BOS_ID, 9600, V.EOS_ID] + [V.IMAGE_ID] * T  # text, image 0
    row1 = [V.IMAGE_ID] * (2 * T) + [V.BOS_ID, 9601, 9602, V.EOS_ID]  # images 1, 2 back to back, text
    width = len(row1)
    input_ids = torch.tensor([row0 + [V.PAD_ID] * (width - len(row0)), row1])
    mask = (torch.arange(width)[None] < torch.tensor([[len(row0)], [len(row1)]])).long()
    encoder = model.model.encoder
    with torch.no_grad():
        out = encoder(input_ids=input_ids, attention_mask=mask, pixel_values=pixels, output_hidden_states=True)
        features = encoder.image_adaptor(pixels)
        expected = encoder.layernorm_embedding(features + encoder.type_embedding.weight[1])
    embedded = out.hidden_states[0]
    torch.testing.assert_close(embedded[0, 3 : 3 + T], expected[0])
    torch.testing.assert_close(embedded[1, :T], expected[1])
    torch.testing.assert_close(embedded[1, T : 2 * T], expected[2])
    # swapping the two images of row 1 changes the encoding (order matters)
    with torch.no_grad():
        swapped = encoder(input_ids=input_ids, attention_mask=mask, pixel_values=pixels[[0, 2, 1]])
    assert not torch.allclose(swapped.last_hidden_state[1], out.last_hidden_state[1], atol=1e-4)
    torch.testing.assert_close(swapped.last_hidden_state[0], out.last_hidden_state[0])


def test_placeholder_image_count_mismatch_raises(model, processor, images):
    inputs = processor(CAPTION, image=images[:2])
    encoder = model.model.encoder
    with pytest.raises(ValueError, match="placeholders"):
        encoder(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            pixel_values=inputs["pixel_values"][:1],
        )
    with pytest.raises(ValueError, match="pixel_values"):
        encoder(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
    extra = torch.cat([inputs["pixel_values"], inputs["pixel_values"][:1]])
    with pytest.raises(ValueError, match="placeholders"):
        model(
            **{k: inputs[k] for k in ("input_ids", "attention_mask")},
            pixel_values=extra,
            decoder_input_ids=torch.full((2, 1), V.BOS_ID),
        )
    # same total, but one row holds half an image more and the other half an image less
    T = model.config.image_tokens
    ids = inputs["input_ids"].clone()
    row0, row1 = ids[0].tolist(), ids[1].tolist()
    half = T // 2
    row0 = row0[:T] + [V.IMAGE_ID] * half + row0[T:]
    row1 = row1[half:]
    width = max(len(row0), len(row1))
    bad = torch.tensor([r + [V.PAD_ID] * (width - len(r)) for r in (row0, row1)])
    with pytest.raises(ValueError, match="whole number of images"):
        encoder(input_ids=bad, attention_mask=bad.ne(V.PAD_ID).long(), pixel_values=inputs["pixel_values"])


# ------------------------------------------------------------------------------------------- loss
def _manual_loss(logits, labels, smoothing):
    return F.cross_entropy(
        logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100, label_smoothing=smoothing
    )


def test_loss_ignores_masked_positions_and_uses_label_smoothing(images):
    model = small_model(seed=2, label_smoothing=0.1)
    processor = OFAPlusProcessor.for_config(model.config)
    inputs = processor(
        CAPTION, image=images[:3], caption=["a red ellipse", "a tall blue rectangle on white", "a handwritten three"]
    )
    labels, decoder_input_ids = inputs["labels"], inputs["decoder_input_ids"]
    assert (labels == -100).any(), "rows of different lengths must be padded with -100"
    # teacher forcing: decoder inputs are the labels shifted right behind BOS
    assert decoder_input_ids[:, 0].eq(V.BOS_ID).all()
    valid = (labels[:, :-1] != -100) & (decoder_input_ids[:, 1:] != V.PAD_ID)
    assert torch.equal(decoder_input_ids[:, 1:][valid], labels[:, :-1][valid])
    assert torch.equal(decoder_input_ids.ne(V.PAD_ID).sum(1), labels.ne(-100).sum(1))
    assert labels.gather(1, labels.ne(-100).sum(1, keepdim=True) - 1).eq(V.EOS_ID).all()  # each row ends in EOS
    model_inputs = {k: inputs[k] for k in ("input_ids", "attention_mask", "pixel_values", "decoder_input_ids")}
    with torch.no_grad():
        out = model(**model_inputs, labels=labels)
    torch.testing.assert_close(out.loss, _manual_loss(out.logits, labels, 0.1))
    # label smoothing is read from the config
    model.config.label_smoothing = 0.0
    with torch.no_grad():
        plain = model(**model_inputs, labels=labels)
    model.config.label_smoothing = 0.1
    keep = labels != -100
    expected = -torch.log_softmax(plain.logits.float(), -1)[keep].gather(-1, labels[keep][:, None]).mean()
    torch.testing.assert_close(plain.loss, expected)
    assert not torch.allclose(plain.loss, out.loss)
    # masking more positions = those positions no longer count
    masked = labels.clone()
    masked[0, 1:] = -100
    with torch.no_grad():
        partial = model(**model_inputs, labels=masked)
    torch.testing.assert_close(partial.loss, _manual_loss(partial.logits, masked, 0.1))
    torch.testing.assert_close(partial.logits, out.logits)  # explicit decoder inputs: logits unchanged
    # without decoder_input_ids the model shifts labels itself (-100 -> pad)
    with torch.no_grad():
        shifted = model(**{k: model_inputs[k] for k in ("input_ids", "attention_mask", "pixel_values")}, labels=labels)
    torch.testing.assert_close(shifted.logits[keep], out.logits[keep])
    torch.testing.assert_close(shifted.loss, out.loss)


def test_gradient_reaches_image_adaptor(images):
    model = small_model(seed=4).train()
    processor = OFAPlusProcessor.for_config(model.config)
    inputs = processor(CAPTION, image=images[:2], caption=["a red ellipse", "a blue rectangle"])
    loss = model(**inputs).loss
    assert torch.isfinite(loss)
    loss.backward()
    adaptor = model.model.encoder.image_adaptor
    for name, parameter in [("backbone.0.weight", adaptor.backbone[0].weight), ("proj.weight", adaptor.proj.weight)]:
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    assert model.model.shared.weight.grad.abs().sum() > 0
    # the between-segment bias row is fixed (zero) and gets no gradient
    assert model.model.encoder.relative_bias_padding.grad is None


# ------------------------------------------------------------------------------------ model sizes
def _count(name: str) -> int:
    config = OFAPlusConfig.from_preset(name)
    with torch.device("meta"):
        model = OFAPlusForConditionalGeneration(config)
    return sum(p.numel() for p in model.parameters())  # tied embeddings counted once


@pytest.mark.parametrize("name, expected", [("base", 180e6), ("large", 470e6)])
def test_parameter_counts_match_ofa(name, expected):
    count = _count(name)
    print(f"{name}: {count / 1e6:.1f}M parameters (OFA-{name}: {expected / 1e6:.0f}M)")
    assert abs(count - expected) / expected < 0.10
