"""The model behaves like a transformers model: output flags (per call and from the config), tuple
outputs, decoder masks, generation continued from a cache, assisted decoding with outputs requested,
loading checkpoints with a missing or aliased tied table, inputs_embeds, a loss connected to the
returned logits, initialisation from the meta device and the attention implementations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from ofa_plus import OFAPlusConfig, OFAPlusForConditionalGeneration
from ofa_plus import vocabulary as V

LAYERS = 2


def tiny_config(**overrides) -> OFAPlusConfig:
    settings = dict(
        d_model=32,
        encoder_layers=LAYERS,
        decoder_layers=LAYERS,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        image_size=32,
        dropout=0.0,
        init_std=0.5,  # a random model that does not repeat one token
    )
    return OFAPlusConfig.from_preset("tiny", **{**settings, **overrides})


def tiny_model(seed: int = 0, **overrides) -> OFAPlusForConditionalGeneration:
    torch.manual_seed(seed)
    return OFAPlusForConditionalGeneration(tiny_config(**overrides)).eval()


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def _inputs():
    torch.manual_seed(1)
    input_ids = torch.randint(V.TEXT_OFFSET, V.TEXT_OFFSET + 3000, (2, 5))
    decoder_input_ids = torch.cat(
        [torch.full((2, 1), V.BOS_ID), torch.randint(V.TEXT_OFFSET, V.TEXT_OFFSET + 3000, (2, 3))], dim=1
    )
    return input_ids, decoder_input_ids


# ------------------------------------------------------------------------------------- output flags
def test_hidden_states_per_call_and_from_the_config(model):
    x, d = _inputs()
    with torch.no_grad():
        plain = model(input_ids=x, decoder_input_ids=d)
        out = model(input_ids=x, decoder_input_ids=d, output_hidden_states=True)
        assert plain.decoder_hidden_states is None and plain.encoder_hidden_states is None
        assert len(out.decoder_hidden_states) == len(out.encoder_hidden_states) == LAYERS + 1
        assert out.decoder_hidden_states[0].shape == (2, 4, 32)
        # the last layer's states, through the final LayerNorm and the head, are the logits
        last = model.model.decoder.layer_norm(out.decoder_hidden_states[-1])
        torch.testing.assert_close(model.lm_head(last), out.logits)
        torch.testing.assert_close(out.logits, plain.logits)
        model.config.output_hidden_states = True
        try:
            from_config = model(input_ids=x, decoder_input_ids=d)
        finally:
            model.config.output_hidden_states = False
    assert len(from_config.decoder_hidden_states) == LAYERS + 1
    torch.testing.assert_close(from_config.decoder_hidden_states[-1], out.decoder_hidden_states[-1])


def test_attentions_per_call_and_from_the_config(model):
    x, d = _inputs()
    mask = torch.ones_like(x)
    mask[1, -2:] = 0
    with torch.no_grad():
        plain = model(input_ids=x, attention_mask=mask, decoder_input_ids=d)
        out = model(input_ids=x, attention_mask=mask, decoder_input_ids=d, output_attentions=True)
        # transformers allows config.output_attentions only with the eager implementation
        eager = tiny_model(attn_implementation="eager")
        eager.config.output_attentions = True
        from_config = eager(input_ids=x, attention_mask=mask, decoder_input_ids=d)
    assert plain.decoder_attentions is None and plain.cross_attentions is None and plain.encoder_attentions is None
    torch.testing.assert_close(out.logits, plain.logits)  # the plain form computes the same
    for result in (out, from_config):
        assert len(result.encoder_attentions) == len(result.decoder_attentions) == len(result.cross_attentions)
        assert result.encoder_attentions[0].shape == (2, 2, 5, 5)
        assert result.decoder_attentions[0].shape == (2, 2, 4, 4)
        assert result.cross_attentions[0].shape == (2, 2, 4, 5)
    for got, want in zip(from_config.decoder_attentions, out.decoder_attentions):  # the same weights
        torch.testing.assert_close(got, want)
    for probs in (*out.encoder_attentions, *out.decoder_attentions, *out.cross_attentions):
        torch.testing.assert_close(probs.sum(-1), torch.ones(probs.shape[:-1]))
    decoder = out.decoder_attentions[0]
    assert (decoder.triu(diagonal=1) == 0).all()  # causal
    assert (out.cross_attentions[0][1, ..., -2:] == 0).all()  # padded encoder positions
    assert (out.encoder_attentions[0][1, ..., -2:] == 0).all()


def test_tuple_outputs_per_call_and_from_the_config(model):
    x, d = _inputs()
    labels = d.roll(-1, dims=1)
    with torch.no_grad():
        out = model(input_ids=x, decoder_input_ids=d, labels=labels)
        as_tuple = model(input_ids=x, decoder_input_ids=d, labels=labels, return_dict=False)
        base = model.model(input_ids=x, decoder_input_ids=d, return_dict=False)
        model.config.return_dict = False
        try:
            from_config = model(input_ids=x, decoder_input_ids=d, labels=labels)
        finally:
            model.config.return_dict = True
    for result in (as_tuple, from_config):
        assert type(result) is tuple
        loss, logits = result[:2]
        torch.testing.assert_close(loss, out.loss)
        torch.testing.assert_close(logits, out.logits)
    assert type(base) is tuple
    torch.testing.assert_close(model.lm_head(base[0]), out.logits)


# ------------------------------------------------------------------------------------ decoder masks
def test_decoder_mask_with_left_padded_prompts(model):
    """A left-padded decoder prompt with its mask gives the logits of the same prompt unpadded, in a
    batch with a longer prompt, and generates the same tokens."""
    x, _ = _inputs()
    long_prompt = torch.tensor([[V.BOS_ID, 9700, 9701, 9702]])
    short_prompt = torch.tensor([[V.BOS_ID, 9800]])
    padded = torch.cat([long_prompt, F.pad(short_prompt, (2, 0), value=V.PAD_ID)])
    mask = padded.ne(V.PAD_ID).long()
    with torch.no_grad():
        batched = model(input_ids=x, decoder_input_ids=padded, decoder_attention_mask=mask).logits
        alone = model(input_ids=x[1:], decoder_input_ids=short_prompt).logits
        first = model(input_ids=x[:1], decoder_input_ids=long_prompt).logits
    torch.testing.assert_close(batched[1, 2:], alone[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(batched[0], first[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="covers 3 positions"):
        model(input_ids=x, decoder_input_ids=padded, decoder_attention_mask=mask[:, 1:])

    settings = dict(max_new_tokens=4, do_sample=False, eos_token_id=None, pad_token_id=V.PAD_ID)
    together = model.generate(x, decoder_input_ids=padded, decoder_attention_mask=mask, **settings)
    single = model.generate(x[1:], decoder_input_ids=short_prompt, **settings)
    assert together[1, 2:].tolist() == single[0].tolist()


def test_generation_continued_from_a_returned_cache(model):
    x, _ = _inputs()
    settings = dict(do_sample=False, eos_token_id=None, pad_token_id=V.PAD_ID, return_dict_in_generate=True)
    settings.update(output_scores=True)
    whole = model.generate(x, max_new_tokens=8, **settings)
    first = model.generate(x, max_new_tokens=4, **settings)
    rest = model.generate(x, cache=first.cache, decoder_input_ids=first.sequences, max_new_tokens=4, **settings)
    assert rest.sequences.tolist() == whole.sequences.tolist()
    assert rest.cache.get_seq_length() == whole.cache.get_seq_length() == whole.sequences.shape[1] - 1
    torch.testing.assert_close(torch.stack(rest.scores), torch.stack(whole.scores[4:]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("flag", ["output_attentions", "output_hidden_states"])
def test_generate_returns_the_requested_outputs(model, flag):
    x, _ = _inputs()
    settings = dict(max_new_tokens=3, do_sample=False, eos_token_id=None, pad_token_id=V.PAD_ID)
    out = model.generate(x, return_dict_in_generate=True, **{flag: True}, **settings)
    per_step = out.decoder_attentions if flag == "output_attentions" else out.decoder_hidden_states
    encoder = out.encoder_attentions if flag == "output_attentions" else out.encoder_hidden_states
    assert len(per_step) == 3 and all(t is not None for step in per_step for t in step)
    assert len(encoder) == LAYERS + (flag == "output_hidden_states")
    if flag == "output_attentions":
        assert all(t is not None for step in out.cross_attentions for t in step)
    # assisted (speculative) decoding with the outputs requested: the same tokens as plain greedy
    assistant = tiny_model(seed=3)
    assisted = model.generate(
        x[:1], assistant_model=assistant, return_dict_in_generate=True, **{flag: True}, **settings
    )
    assert assisted.sequences.tolist() == out.sequences[:1].tolist()
    steps = assisted.decoder_attentions if flag == "output_attentions" else assisted.decoder_hidden_states
    assert all(t is not None for step in steps for t in step)


# --------------------------------------------------------------------------------------- loading
def test_checkpoints_with_a_missing_or_aliased_token_table(model, tmp_path):
    x, d = _inputs()
    model.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    table = weights.pop("model.shared.weight")
    with torch.no_grad():
        expected = model(input_ids=x, decoder_input_ids=d).logits

    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    missing, info = OFAPlusForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert "model.shared.weight" in info["missing_keys"]
    assert missing.model.shared.weight.device.type == "cpu"
    assert missing.lm_head.weight is missing.model.shared.weight is missing.model.encoder.embed_tokens.weight
    with torch.no_grad():
        assert torch.isfinite(missing(input_ids=x, decoder_input_ids=d).logits).all()

    save_file({**weights, "lm_head.weight": table}, tmp_path / "model.safetensors", metadata={"format": "pt"})
    aliased, info = OFAPlusForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    assert torch.equal(aliased.model.shared.weight, table)
    assert aliased.lm_head.weight is aliased.model.shared.weight is aliased.model.decoder.embed_tokens.weight
    with torch.no_grad():
        torch.testing.assert_close(aliased.eval()(input_ids=x, decoder_input_ids=d).logits, expected)


# ---------------------------------------------------------------------------------- inputs_embeds
def test_inputs_embeds(model):
    x, d = _inputs()
    embeds = model.get_input_embeddings()(x)
    with torch.no_grad():
        expected = model(input_ids=x, decoder_input_ids=d).logits
        # text only: no input_ids needed (e.g. PEFT prompt tuning, which prepends learned embeddings)
        torch.testing.assert_close(model(inputs_embeds=embeds, decoder_input_ids=d).logits, expected)
        # with input_ids, the embeddings are used and the ids give the layout
        changed = model(input_ids=x, inputs_embeds=embeds + 1.0, decoder_input_ids=d).logits
        torch.testing.assert_close(changed, model(inputs_embeds=embeds + 1.0, decoder_input_ids=d).logits)
        assert not torch.allclose(changed, expected)
        with pytest.raises(ValueError, match="shapes must match"):
            model(input_ids=x[:, :3], inputs_embeds=embeds, decoder_input_ids=d)
    settings = dict(max_new_tokens=3, do_sample=False, eos_token_id=None, pad_token_id=V.PAD_ID)
    assert model.generate(inputs_embeds=embeds, **settings).tolist() == model.generate(x, **settings).tolist()


def test_peft_prompt_tuning():
    """PEFT's prompt tuning prepends learned embeddings (inputs_embeds, no input_ids): it trains them
    and generates."""
    from peft import PromptTuningConfig, TaskType, get_peft_model  # noqa: PLC0415 (a heavy import)

    tuned = get_peft_model(tiny_model(), PromptTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=3))
    x, d = _inputs()
    out = tuned.train()(input_ids=x, attention_mask=torch.ones_like(x), decoder_input_ids=d, labels=d.roll(-1, 1))
    out.loss.backward()
    assert [n for n, p in tuned.named_parameters() if p.grad is not None] == [
        "prompt_encoder.default.embedding.weight"
    ]
    generated = tuned.eval().generate(
        input_ids=x, attention_mask=torch.ones_like(x), max_new_tokens=3, do_sample=False
    )
    assert generated.shape[0] == 2


def test_inputs_embeds_with_image_placeholders():
    model = tiny_model(seed=4)
    tokens = model.config.image_tokens
    x = torch.tensor([[V.TEXT_OFFSET + 5] + [V.IMAGE_ID] * tokens + [V.TEXT_OFFSET + 6]])
    pixels = torch.randn(1, 3, 32, 32)
    d = torch.tensor([[V.BOS_ID, 9700]])
    with torch.no_grad():
        expected = model(input_ids=x, pixel_values=pixels, decoder_input_ids=d).logits
        embeds = model.get_input_embeddings()(x)
        got = model(input_ids=x, inputs_embeds=embeds, pixel_values=pixels, decoder_input_ids=d).logits
    torch.testing.assert_close(got, expected)


# ------------------------------------------------------------------------------------------ loss
def test_loss_is_a_function_of_the_returned_logits():
    model = tiny_model(seed=5).train()
    x, d = _inputs()
    labels = d.roll(-1, dims=1)
    labels[0, -1] = -100
    out = model(input_ids=x, decoder_input_ids=d, labels=labels)
    (grad,) = torch.autograd.grad(out.loss, out.logits, retain_graph=True)
    logits = out.logits.detach().requires_grad_()
    plain = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, label_smoothing=0.1)
    (want,) = torch.autograd.grad(plain, logits)
    torch.testing.assert_close(grad.to_dense(), want)
    torch.testing.assert_close(out.loss, plain)
    out.loss.backward()  # and the usual backward pass still reaches the weights
    assert model.model.shared.weight.grad.abs().sum() > 0


def test_label_smoothing_is_a_setting():
    assert OFAPlusConfig().label_smoothing == 0.0  # plain cross-entropy, as transformers models
    assert all(OFAPlusConfig.from_preset(name).label_smoothing == 0.1 for name in ("tiny", "base", "large"))
    model = tiny_model(seed=6, label_smoothing=0.0)
    x, d = _inputs()
    labels = d.roll(-1, dims=1)
    with torch.no_grad():
        out = model(input_ids=x, decoder_input_ids=d, labels=labels)
    torch.testing.assert_close(out.loss, F.cross_entropy(out.logits.flatten(0, 1), labels.flatten()))


# --------------------------------------------------------------------------- meta-device initialisation
def test_batchnorm_counters_are_initialised_from_the_meta_device():
    with torch.device("meta"):
        model = OFAPlusForConditionalGeneration(tiny_config())
    model.to_empty(device="cpu")
    counters = [b for name, b in model.named_buffers() if name.endswith("num_batches_tracked")]
    assert counters
    for counter in counters:
        counter.fill_(12345)  # what uninitialised memory may hold
    model.init_weights()
    assert all(int(counter) == 0 for counter in counters)


# ------------------------------------------------------------------------ attention implementations
def test_eager_attention_equals_sdpa(monkeypatch):
    x, d = _inputs()
    sdpa, eager = tiny_model(seed=7), tiny_model(seed=7, attn_implementation="eager")
    assert sdpa.config._attn_implementation == "sdpa" and eager.config._attn_implementation == "eager"
    with torch.no_grad():
        expected = sdpa(input_ids=x, decoder_input_ids=d).logits

        def no_sdpa(*args, **kwargs):
            raise AssertionError("SDPA ran under attn_implementation='eager'")

        monkeypatch.setattr(F, "scaled_dot_product_attention", no_sdpa)
        got = eager(input_ids=x, decoder_input_ids=d).logits
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
