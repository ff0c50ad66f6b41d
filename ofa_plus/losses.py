"""Training losses of the model: the LM head's label-smoothed cross-entropy with its tied-table gradient
kernels, and the phone CTC on the encoder's audio states."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from . import vocabulary as V


def gather_rows(source: torch.Tensor, index: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """source[index] written into ``out`` (in its dtype), without a temporary when the dtypes match."""
    if source.dtype == out.dtype:
        return torch.index_select(source, 0, index, out=out)
    return out.copy_(source.index_select(0, index))


class TiedHeadGradient:
    """Carries the LM loss's gradient of the tied token table to the token lookup's backward pass.

    The table gets gradients from the LM head (dense: every row has a logit) and from the token lookups
    (a few rows). Left to autograd, the lookup's part is a second table-sized buffer, zero-filled and
    then added to the head's (as large as the table, and made fresh every step). Instead the
    loss's backward leaves its dense gradient here, and the lookup's backward, which autograd runs
    after it (the decoder's input comes from the lookup), adds its rows into that buffer and returns
    the sum. The table then still receives one gradient through one AccumulateGrad, so gradient
    hooks (DistributedDataParallel's) fire as usual."""

    def __init__(self):
        self.lookup_in_graph = False  # set by the lookup's forward: only then may the loss hand its part over
        self.head = None  # the loss's gradient of the table, waiting for the lookup's backward


class TiedTokenLookup(torch.autograd.Function):
    """``F.embedding(ids, weight, padding_idx)`` whose backward adds the rows' gradients into the
    tied LM head's gradient of ``weight`` (see `TiedHeadGradient`)."""

    @staticmethod
    def forward(ctx, ids, weight, padding_idx, tied: TiedHeadGradient):
        tied.lookup_in_graph = True
        ctx.save_for_backward(ids)
        ctx.padding_idx, ctx.tied, ctx.weight_layout = padding_idx, tied, (weight.shape, weight.stride())
        return F.embedding(ids, weight, padding_idx)

    @staticmethod
    def backward(ctx, grad_rows):
        (ids,) = ctx.saved_tensors
        grad_weight, ctx.tied.head = ctx.tied.head, None
        if grad_weight is None:  # the loss took no gradient for the table (e.g. only the logits were used)
            grad_weight = grad_rows.new_empty_strided(*ctx.weight_layout).zero_()
        keep = ids != ctx.padding_idx if ctx.padding_idx is not None else slice(None)  # as F.embedding
        grad_weight.index_add_(0, ids[keep], grad_rows[keep].to(grad_weight.dtype))
        return None, grad_weight, None, None


def head_gradients(grad, hidden, weight, rows, needs_input_grad, tied: TiedHeadGradient | None):
    """The gradients of the (tokens, d) hidden states and the weight from the logits' gradient ``grad``
    of the labelled ``rows``; the weight's goes to the token lookup when it is tied (TiedHeadGradient)."""
    grad = grad.to(weight.dtype)
    grad_hidden = grad_weight = None
    if needs_input_grad[0]:
        grad_hidden = torch.zeros_like(hidden)
        grad_hidden[rows] = (grad @ weight).to(hidden.dtype)
    if needs_input_grad[1]:
        grad_weight = (grad.t() @ hidden[rows].to(grad.dtype)).to(weight.dtype)
        if tied is not None and tied.lookup_in_graph:  # the token lookup returns it, with its rows
            tied.head, grad_weight = grad_weight, None
    return grad_hidden, grad_weight


class LMLossGradient:
    """The LM loss's gradient of the logits, handed from `LabelSmoothedLMLoss`'s backward to
    `TiedLMHead`'s: ``grad`` (labelled rows, vocab) at the flat row indices ``rows``, and ``sparse``, the
    same as the sparse tensor autograd passes between the two."""

    def __init__(self):
        self.rows = self.grad = self.sparse = None


class TiedLMHead(torch.autograd.Function):
    """The LM head ``hidden @ weight.T`` of training with labels, whose logits the loss is a function of.

    When the logits' gradient is the LM loss's alone (the sparse tensor `LabelSmoothedLMLoss` handed
    over), the backward pass multiplies the labelled rows only into the hidden states and the weight;
    when the logits fed other terms too, autograd has summed the gradients and the product is dense."""

    @staticmethod
    def forward(ctx, hidden, weight, handoff: LMLossGradient, tied: TiedHeadGradient | None = None):
        ctx.save_for_backward(hidden, weight)
        ctx.handoff, ctx.tied = handoff, tied
        return F.linear(hidden, weight)

    @staticmethod
    def backward(ctx, grad_logits):
        hidden, weight = ctx.saved_tensors
        flat = hidden.flatten(0, -2)
        if grad_logits is ctx.handoff.sparse:  # only the loss used the logits: its labelled rows
            grad, rows = ctx.handoff.grad, ctx.handoff.rows
            ctx.handoff.grad = ctx.handoff.sparse = None
        else:
            grad = grad_logits.to_dense() if grad_logits.is_sparse else grad_logits
            grad, rows = grad.flatten(0, -2), torch.arange(len(flat), device=flat.device)
        grad_hidden, grad_weight = head_gradients(grad, flat, weight, rows, ctx.needs_input_grad, ctx.tied)
        return None if grad_hidden is None else grad_hidden.view_as(hidden), grad_weight, None, None


class LabelSmoothedLMLoss(torch.autograd.Function):
    """The LM head's label-smoothed token loss, with the head's backward pass on labelled rows only.

    Value and gradients equal ``F.cross_entropy(hidden @ weight.T, labels, ignore_index=-100,
    label_smoothing=eps)``. The forward pass reads the logits the model returns anyway, a few rows at
    a time through one small buffer (no (tokens, vocab) temporaries); the backward pass writes
    softmax - eps / V - (1 - eps) * onehot for the labelled rows into one buffer and multiplies it into
    the hidden states and the weight. Rows without a label (padding, no_loss prompts) cost nothing,
    and neither the log-probabilities nor autograd's separate gradient terms are kept.

    With ``handoff`` the loss is a function of ``logits`` (..., vocab) instead, from `TiedLMHead`
    (``hidden`` and ``weight`` are then None): the buffer becomes their sparse gradient, and the
    head does the multiplication."""

    @staticmethod
    def forward(
        ctx,
        hidden,
        weight,
        logits,
        labels,
        eps: float,
        tied: TiedHeadGradient | None = None,
        handoff: LMLossGradient | None = None,
    ):
        ctx.shape, logits, labels = logits.shape, logits.flatten(0, -2), labels.flatten()
        rows = (labels != -100).nonzero().squeeze(1)
        target = labels[rows]
        dtype = torch.promote_types(logits.dtype, torch.float32)  # bf16/fp16 logits: work in fp32
        chunk = max(1, 2**20 // logits.shape[-1])  # ~4 MB of fp32 logits at a time
        buffer = logits.new_empty(min(chunk, len(rows)), logits.shape[-1], dtype=dtype)
        lse, mean = logits.new_empty(len(rows), dtype=dtype), logits.new_empty(len(rows), dtype=dtype)
        for start in range(0, len(rows), chunk):
            end = start + chunk
            part = gather_rows(logits, rows[start:end], buffer[: len(rows[start:end])])
            mean[start:end] = part.mean(dim=-1)
            top = part.amax(dim=-1, keepdim=True)  # log-sum-exp, in place
            lse[start:end] = part.sub_(top).exp_().sum(dim=-1).log_() + top.squeeze(-1)
        target_logit = logits[rows, target].to(dtype)
        ctx.save_for_backward(hidden, weight, logits, rows, target, lse)
        ctx.eps, ctx.chunk, ctx.tied, ctx.handoff = eps, chunk, tied, handoff
        # -log p(target) = lse - z_target; the mean of -log p over the vocabulary = lse - mean(z)
        return (lse - (1 - eps) * target_logit - eps * mean).sum() / len(rows)

    @staticmethod
    def backward(ctx, grad_loss):
        hidden, weight, logits, rows, target, lse = ctx.saved_tensors
        eps, vocab = ctx.eps, logits.shape[-1]
        scale = grad_loss / len(rows)
        grad = torch.empty(len(rows), vocab, dtype=lse.dtype, device=logits.device)
        for start in range(0, len(rows), ctx.chunk):  # chunk by chunk, while it is in cache
            end = start + ctx.chunk
            part = gather_rows(logits, rows[start:end], grad[start:end])
            part.sub_(lse[start:end, None]).exp_().sub_(eps / vocab)
            part[torch.arange(len(part), device=part.device), target[start:end]] -= 1 - eps
            part.mul_(scale)
        if ctx.handoff is not None:
            index = torch.stack(torch.unravel_index(rows, ctx.shape[:-1]))  # rows of the (..., vocab) logits
            with torch.sparse.check_sparse_tensor_invariants(enable=False):  # sorted, unique rows
                sparse = torch.sparse_coo_tensor(index, grad.to(logits.dtype), ctx.shape, is_coalesced=True)
            ctx.handoff.rows, ctx.handoff.grad, ctx.handoff.sparse = rows, grad, sparse
            return None, None, sparse, None, None, None, None
        grad_hidden, grad_weight = head_gradients(grad, hidden, weight, rows, ctx.needs_input_grad, ctx.tied)
        return grad_hidden, grad_weight, None, None, None, None, None


def phone_ctc_logits(encoder_states: torch.Tensor, token_table: torch.Tensor) -> torch.Tensor:
    """Encoder states -> scores of the ``NUM_PHONE_SLOTS`` phone classes, through the phone rows of
    the tied embedding; class ``vocabulary.CTC_BLANK`` (the last, unused phone slot) is the CTC blank."""
    phones = token_table[V.PHONE_OFFSET : V.PHONE_OFFSET + V.NUM_PHONE_SLOTS]
    return encoder_states @ phones.t().to(encoder_states.dtype)


def phone_ctc_loss(encoder_states, input_ids, ctc_labels, token_table, audio_token_id: int) -> torch.Tensor:
    """Mean over rows of CTC(-log p(phones | the row's audio states)) / phones (F.ctc_loss "mean")."""
    if input_ids is None:
        raise ValueError("ctc_labels need input_ids: the <audio> placeholders say where the audio states are")
    is_audio = input_ids == audio_token_id
    rows = (ctc_labels != -100).any(dim=1)
    if not bool(rows.any()):
        return encoder_states.new_zeros(())
    is_audio, states, ctc_labels = is_audio[rows], encoder_states[rows], ctc_labels[rows]
    lengths = is_audio.sum(dim=1)
    if bool((lengths == 0).any()):
        raise ValueError("a row has ctc_labels but no <audio> placeholders")
    # gather each row's audio states to the front: (rows, max audio tokens, d)
    order = torch.sort((~is_audio).to(torch.uint8), dim=1, stable=True).indices[:, : int(lengths.max())]
    audio_states = states.gather(1, order[..., None].expand(-1, -1, states.shape[-1]))
    log_probs = phone_ctc_logits(audio_states, token_table).float().log_softmax(dim=-1)
    targets = (ctc_labels - V.PHONE_OFFSET).clamp(min=0)
    return F.ctc_loss(
        log_probs.transpose(0, 1),
        targets,
        lengths,
        (ctc_labels != -100).sum(dim=1),
        blank=V.CTC_BLANK,
        reduction="mean",
        zero_infinity=True,
    )
