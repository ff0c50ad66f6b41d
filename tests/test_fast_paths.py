"""The model's fast paths compute what the plain formulation computes (values and gradients)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import ofa_plus.vocabulary as V
from conftest import beam_rows_logits, small_model
from ofa_plus import OFAPlusProcessor
from ofa_plus.losses import LabelSmoothedLMLoss
from ofa_plus.modeling_ofa_plus import attention

VQA = "[IMAGE:image] [TEXT:question] -> [TEXT:answer]"


def _mixed_layout_batch(processor, images):
    """Row 0: text, an image, text; row 1: text only (padded); row 2: the same layout as row 0."""
    n = processor.image_tokens
    rows = [
        [V.BOS_ID, 3000, 3001] + [V.IMAGE_ID] * n + [3002, V.EOS_ID],
        [V.BOS_ID] + list(range(4000, 4010)) + [V.EOS_ID],
        [V.BOS_ID, 3100, 3101] + [V.IMAGE_ID] * n + [3102, V.EOS_ID],
    ]
    width = max(map(len, rows))
    input_ids = torch.tensor([r + [V.PAD_ID] * (width - len(r)) for r in rows])
    attention_mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    pixels = processor(VQA, image=images[:2], question=["a", "b"])["pixel_values"]
    return rows, input_ids, attention_mask, pixels


def test_position_biases_per_layout_equal_per_row(images):
    """Biases are computed once per distinct layout and gathered per row: each row of a batch with
    mixed layouts must come out as it does alone."""
    model = small_model(seed=5)
    processor = OFAPlusProcessor.for_config(model.config)
    rows, input_ids, attention_mask, pixels = _mixed_layout_batch(processor, images)
    encoder = model.get_encoder()
    with torch.no_grad():
        both = encoder(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixels).last_hidden_state
        singles = [(0, pixels[:1]), (1, None), (2, pixels[1:])]
        for row, row_pixels in singles:
            alone = encoder(input_ids=torch.tensor([rows[row]]), pixel_values=row_pixels).last_hidden_state
            torch.testing.assert_close(both[row, : len(rows[row])], alone[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("padding", [False, True])
def test_attention_with_trained_bias_equals_sdpa(padding):
    """The plain matmul-softmax path (a bias that needs a gradient, on CPU) matches SDPA, gradients too."""
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 7, 16, dtype=torch.float64, requires_grad=True) for _ in range(3))
    bias = torch.randn(1, 4, 7, 7, dtype=torch.float64, requires_grad=True)
    mask = torch.zeros(2, 1, 1, 7, dtype=torch.float64)
    if padding:
        mask[1, ..., 5:] = torch.finfo(torch.float64).min
    results = []
    for fn in (attention, lambda *a: F.scaled_dot_product_attention(*a[:3], attn_mask=a[3], scale=a[5])):
        out = fn(q, k, v, bias + mask, 0.0, 0.3)
        results.append((out, torch.autograd.grad(out.square().sum(), (q, k, v, bias))))
    (out, grads), (expected, expected_grads) = results
    torch.testing.assert_close(out, expected)
    for got, want in zip(grads, expected_grads):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_lm_loss_equals_cross_entropy_on_logits(smoothing):
    """Value and gradients equal F.cross_entropy on hidden @ weight.T, ignored rows included, across
    several row chunks; a loss on the returned logits still back-propagates through them."""
    torch.manual_seed(1)
    hidden = torch.randn(90, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(30_000, 8, dtype=torch.float64, requires_grad=True)  # 34 rows per chunk
    labels = torch.randint(0, 30_000, (90,))
    labels[::3] = -100
    logits = hidden @ weight.t()
    loss = LabelSmoothedLMLoss.apply(hidden, weight, logits.detach(), labels, smoothing)
    expected = F.cross_entropy(logits, labels, ignore_index=-100, label_smoothing=smoothing)
    torch.testing.assert_close(loss, expected)
    extra = logits[:, :5].sum() * 1e-3  # e.g. a distillation term on the returned logits
    got = torch.autograd.grad(2.0 * loss + extra, (hidden, weight))
    logits = hidden @ weight.t()
    expected = F.cross_entropy(logits, labels, ignore_index=-100, label_smoothing=smoothing)
    want = torch.autograd.grad(2.0 * expected + logits[:, :5].sum() * 1e-3, (hidden, weight))
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


class _TableSizedTensors(TorchDispatchMode):
    """Records the storages of all tensors shaped like the token table that ops produce."""

    def __init__(self, shape):
        super().__init__()
        self.shape, self.storages = shape, set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.shape == self.shape:
                self.storages.add(t.untyped_storage().data_ptr())
        return out


def test_training_gradients_equal_plain_cross_entropy(processor, images):
    """model(labels=...) (LM loss on labelled rows, the token lookups' rows added into the tied head's
    gradient) gives the gradients of F.cross_entropy on the returned logits with autograd's lookups,
    and makes one table-sized buffer in the backward pass where autograd's path makes more."""
    inputs = processor(
        VQA, image=images[:3], question=["what?", "which colour is it?", "digit?"], answer=["red", "blue", "three"]
    )
    labels = inputs["labels"]
    assert (labels == -100).any()
    model = small_model(seed=6, dropout=0.0).train()
    table = model.model.shared.weight
    fast = model(**{k: inputs[k] for k in ("input_ids", "attention_mask", "pixel_values", "labels")}).loss
    with _TableSizedTensors(table.shape) as fast_buffers:
        fast.backward()
    fast_grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    out = model(
        **{k: inputs[k] for k in ("input_ids", "attention_mask", "pixel_values", "decoder_input_ids")}, use_cache=False
    )
    plain = F.cross_entropy(out.logits.flatten(0, 1), labels.flatten(), ignore_index=-100, label_smoothing=0.1)
    with _TableSizedTensors(table.shape) as plain_buffers:
        plain.backward()
    torch.testing.assert_close(fast, plain)
    assert len(fast_buffers.storages) == 1 and len(plain_buffers.storages) > 1
    plain_grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert fast_grads.keys() == plain_grads.keys()
    for name in fast_grads:
        scale = plain_grads[name].abs().max().clamp(min=1e-3)
        torch.testing.assert_close(fast_grads[name] / scale, plain_grads[name] / scale, rtol=1e-4, atol=1e-5, msg=name)
    assert fast_grads["model.shared.weight"][V.PAD_ID].abs().sum() > 0  # the head's part of the pad row


def test_tied_table_gradient_with_accumulation_and_extra_terms(processor, images):
    """The tied table's gradient is right when .grad already holds one (gradient accumulation), when the
    returned logits feed another term as well, and when the loss is back-propagated twice."""
    inputs = processor(VQA, image=images[:2], question=["what?", "digit?"], answer=["red", "three"])
    batch = {k: inputs[k] for k in ("input_ids", "attention_mask", "pixel_values", "labels")}
    model = small_model(seed=8, dropout=0.0).train()
    table = model.model.shared.weight

    def plain_loss():
        out = model(
            **{k: inputs[k] for k in ("input_ids", "attention_mask", "pixel_values", "decoder_input_ids")},
            use_cache=False,
        )
        loss = F.cross_entropy(
            out.logits.flatten(0, 1), inputs["labels"].flatten(), ignore_index=-100, label_smoothing=0.1
        )
        return loss, out.logits

    loss, logits = plain_loss()
    (3 * loss + logits[..., :7].square().mean()).backward()
    want = table.grad.clone()
    model.zero_grad(set_to_none=True)
    out = model(**batch)
    total = 2 * out.loss + out.logits[..., :7].square().mean()
    total.backward(retain_graph=True)  # .grad is set ...
    out.loss.backward()  # ... and accumulated into, by a second backward pass through the same graph
    torch.testing.assert_close(table.grad, want, rtol=1e-4, atol=1e-5 * float(want.abs().max()))


def test_beams_share_encoder_states(processor, images):
    """Decoder rows that are copies of an encoder row (beams) attend to that row's single copy of
    the encoder states: the same logits as with the encoder states repeated per copy, with a cache too."""
    model = small_model(seed=7)
    inputs = processor(VQA, image=images[:2], question=["what is it?", "colour?"])
    with torch.no_grad():
        encoder_outputs = model.get_encoder()(
            input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], pixel_values=inputs["pixel_values"]
        )
    stepwise, cache, full = beam_rows_logits(model, encoder_outputs, inputs["attention_mask"], token_span=5000)
    assert cache.cross_attention_cache.layers[0].keys.shape[0] == 2  # the cross-attention cache holds 2 rows
    torch.testing.assert_close(stepwise, full, rtol=1e-5, atol=1e-5)


def test_decoding_head_copy_follows_the_weight():
    """Decoding multiplies by a cached copy of the LM head's weight: same logits as the head, the copy
    reused while the weight is unchanged, made again after an in-place update, dropped by train()."""
    model = small_model(seed=9).eval()
    hidden = torch.randn(3, 5, model.config.d_model)
    with torch.no_grad():
        logits = model.lm_logits(hidden)
        torch.testing.assert_close(logits, model.lm_head(hidden))
        copy = model._decoding_head[1]
        model.lm_logits(hidden)
        assert model._decoding_head[1] is copy
        model.lm_head.weight.mul_(2.0)  # as an optimiser step does
        torch.testing.assert_close(model.lm_logits(hidden), 2.0 * logits)
    with torch.enable_grad():  # with autograd the head itself runs, so the weight gets its gradient
        model.lm_logits(hidden).sum().backward()
    assert model.lm_head.weight.grad is not None
    model.train()
    assert model._decoding_head is None


def test_feed_forward_activation_in_place_without_autograd():
    """Without autograd the feed-forward applies its activation in place: the same output exactly."""
    model = small_model(seed=10).eval()
    ffn = model.model.encoder.layers[0].ffn
    assert ffn.act_in_place is not None  # the default activation (gelu) has an in-place form
    x = torch.randn(2, 7, model.config.d_model)
    with torch.no_grad():
        fast = ffn(x)
    plain = ffn(x)
    assert plain.requires_grad
    torch.testing.assert_close(fast, plain.detach(), rtol=0, atol=0)
