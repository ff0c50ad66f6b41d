"""OFA's two modules behind config flags: the patch LayerNorm and the cross-attention position bias."""

from __future__ import annotations

import pytest
import torch

import ofa_plus.vocabulary as V
from conftest import beam_rows_logits, small_model
from ofa_plus import OFAPlusConfig

OFA_FLAGS = dict(patch_layernorm_embedding=True, cross_position_bias=True)


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """Give LayerNorms and linear layers values far from their init, so a wrong path shows."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.add_(torch.randn(parameter.shape, generator=generator) * 0.2)


def _batch(model, seed: int = 0):
    """Two rows: an image then text, and text only (padded); pixel values for the one image."""
    n = model.config.image_tokens
    torch.manual_seed(seed)
    rows = [
        [V.IMAGE_ID] * n + [V.BOS_ID, *torch.randint(V.TEXT_OFFSET, V.TEXT_OFFSET + 500, (5,)).tolist(), V.EOS_ID],
        [V.BOS_ID, *torch.randint(V.TEXT_OFFSET, V.TEXT_OFFSET + 500, (9,)).tolist(), V.EOS_ID],
    ]
    width = max(map(len, rows))
    input_ids = torch.tensor([r + [V.PAD_ID] * (width - len(r)) for r in rows])
    pixels = torch.randn(1, 3, model.config.image_size, model.config.image_size)
    return dict(input_ids=input_ids, attention_mask=(input_ids != V.PAD_ID).long(), pixel_values=pixels)


@pytest.fixture(scope="module")
def ofa_model():
    model = small_model(seed=11, **OFA_FLAGS)
    _randomise(model.model.encoder.patch_layernorm_embedding, 1)
    _randomise(model.model.decoder.cross_absolute_bias, 2)
    return model


def test_flags_default_off_and_add_only_their_modules():
    assert not OFAPlusConfig().patch_layernorm_embedding and not OFAPlusConfig().cross_position_bias
    plain = small_model(seed=0, cross_position_bias=False).state_dict()  # the tiny preset turns it on
    flagged = small_model(seed=0, **OFA_FLAGS).state_dict()
    assert set(flagged) - set(plain) == {
        "model.encoder.patch_layernorm_embedding.weight",
        "model.encoder.patch_layernorm_embedding.bias",
        "model.decoder.cross_absolute_bias.q_linear.weight",
        "model.decoder.cross_absolute_bias.q_linear.bias",
        "model.decoder.cross_absolute_bias.k_linear.weight",
        "model.decoder.cross_absolute_bias.k_linear.bias",
    }
    assert set(plain) <= set(flagged)


def test_neutral_modules_give_the_plain_model(ofa_model):
    """The patch LayerNorm equal to the text one and a zero cross bias: the model without the flags."""
    plain = small_model(seed=0, cross_position_bias=False)
    flagged = small_model(seed=0, **OFA_FLAGS)
    flagged.load_state_dict(plain.state_dict(), strict=False)
    encoder = flagged.model.encoder
    encoder.patch_layernorm_embedding.load_state_dict(encoder.layernorm_embedding.state_dict())
    torch.nn.init.zeros_(flagged.model.decoder.cross_absolute_bias.k_linear.weight)
    torch.nn.init.zeros_(flagged.model.decoder.cross_absolute_bias.k_linear.bias)
    batch = _batch(plain)
    decoder_input_ids = torch.tensor([[V.BOS_ID, V.TEXT_OFFSET + 7, V.TEXT_OFFSET + 9]] * 2)
    with torch.no_grad():
        expected = plain(**batch, decoder_input_ids=decoder_input_ids).logits
        got = flagged(**batch, decoder_input_ids=decoder_input_ids).logits
        changed = ofa_model(**batch, decoder_input_ids=decoder_input_ids).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(changed, expected, atol=1e-3)


def test_patch_layernorm_touches_patches_only(ofa_model):
    batch = _batch(ofa_model)
    encoder = ofa_model.model.encoder
    with torch.no_grad():
        before = encoder(**batch).last_hidden_state
        saved = {k: v.clone() for k, v in encoder.patch_layernorm_embedding.state_dict().items()}
        encoder.patch_layernorm_embedding.weight.mul_(2)
        after = encoder(**batch).last_hidden_state
        encoder.patch_layernorm_embedding.load_state_dict(saved)
    # the text-only row does not change; the image row does
    torch.testing.assert_close(after[1], before[1])
    assert not torch.allclose(after[0], before[0], atol=1e-3)


def test_encoder_returns_position_embeddings_per_row(ofa_model):
    batch = _batch(ofa_model)
    with torch.no_grad():
        out = ofa_model.get_encoder()(**batch)
        alone = ofa_model.get_encoder()(input_ids=batch["input_ids"][1:]).position_embeddings
    assert out.position_embeddings.shape == out.last_hidden_state.shape
    torch.testing.assert_close(out.position_embeddings[1], alone[0])
    assert small_model(seed=0, cross_position_bias=False).get_encoder()(**batch).position_embeddings is None


def test_tuple_encoder_outputs_carry_the_positions(ofa_model):
    batch = _batch(ofa_model)
    decoder_input_ids = torch.tensor([[V.BOS_ID, V.TEXT_OFFSET + 3]] * 2)
    with torch.no_grad():
        expected = ofa_model(**batch, decoder_input_ids=decoder_input_ids).logits
        states = ofa_model.get_encoder()(**batch, return_dict=False)
        got = ofa_model(
            attention_mask=batch["attention_mask"], encoder_outputs=states, decoder_input_ids=decoder_input_ids
        ).logits
    torch.testing.assert_close(got, expected)


def test_beams_share_encoder_rows_with_the_cross_bias(ofa_model):
    """Three decoder rows per encoder row, fed step by step with a cache: the logits of the encoder
    outputs repeated per row, teacher-forced."""
    batch = _batch(ofa_model)
    with torch.no_grad():
        encoder_outputs = ofa_model.get_encoder()(**batch)
    stepwise, _, full = beam_rows_logits(ofa_model, encoder_outputs, batch["attention_mask"], token_span=500)
    torch.testing.assert_close(stepwise, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("num_beams", [1, 3])
def test_generate_with_cache_equals_without(ofa_model, num_beams):
    batch = _batch(ofa_model)
    cached = ofa_model.generate(**batch, num_beams=num_beams, max_new_tokens=6)
    uncached = ofa_model.generate(**batch, num_beams=num_beams, max_new_tokens=6, use_cache=False)
    assert torch.equal(cached, uncached)


def test_prompts_of_different_lengths_generate_as_alone(ofa_model):
    """Rows with decoder prompts of different lengths are generated group by group: each as alone."""
    batch = _batch(ofa_model)
    prompts = torch.tensor([[V.BOS_ID, V.TEXT_OFFSET + 4, V.TEXT_OFFSET + 5], [V.BOS_ID, V.TEXT_OFFSET + 6, V.PAD_ID]])
    together = ofa_model.generate(**batch, decoder_input_ids=prompts, max_new_tokens=4)
    first = ofa_model.generate(
        input_ids=batch["input_ids"][:1],
        attention_mask=batch["attention_mask"][:1],
        pixel_values=batch["pixel_values"],
        decoder_input_ids=prompts[:1],
        max_new_tokens=4,
    )
    second = ofa_model.generate(
        input_ids=batch["input_ids"][1:],
        attention_mask=batch["attention_mask"][1:],
        decoder_input_ids=prompts[1:, :2],
        max_new_tokens=4,
    )
    assert torch.equal(together[0, : first.shape[1]], first[0])
    assert torch.equal(together[1, : second.shape[1]], second[0])


def test_left_padded_prompts_get_the_positions_of_unpadded_ones(ofa_model):
    """With a decoder attention mask, a left-padded prompt's cross bias uses its real positions."""
    batch = _batch(ofa_model)
    prompts = torch.tensor([[V.BOS_ID, V.TEXT_OFFSET + 4, V.TEXT_OFFSET + 5], [V.PAD_ID, V.BOS_ID, V.TEXT_OFFSET + 6]])
    with torch.no_grad():
        padded = ofa_model(**batch, decoder_input_ids=prompts, decoder_attention_mask=(prompts != V.PAD_ID)).logits
        alone = ofa_model(
            input_ids=batch["input_ids"][1:],
            attention_mask=batch["attention_mask"][1:],
            decoder_input_ids=prompts[1:, 1:],
        ).logits
    torch.testing.assert_close(padded[1, 1:], alone[0], rtol=1e-5, atol=1e-5)


def test_ofa_presets():
    for name, (d, layers, backbone, size) in {
        "ofa-tiny": (256, (4, 4), "resnet50", 256),
        "ofa-medium": (512, (4, 4), "resnet101", 256),
        "ofa-base": (768, (6, 6), "resnet101", 384),
        "ofa-large": (1024, (12, 12), "resnet152", 480),
        "ofa-huge": (1280, (24, 12), "resnet152", 480),
    }.items():
        config = OFAPlusConfig.from_preset(name)
        assert (config.d_model, (config.encoder_layers, config.decoder_layers)) == (d, layers)
        assert (config.image_backbone, config.image_size, config.encoder_ffn_dim) == (backbone, size, 4 * d)
        assert config.d_model // config.encoder_attention_heads in (64, 80)
        assert config.normformer and config.patch_layernorm_embedding and config.cross_position_bias
        assert not config.image_backbone_pretrained and config.vocab_size == V.TEXT_OFFSET + 50_260
