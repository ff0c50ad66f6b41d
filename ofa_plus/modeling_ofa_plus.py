"""OFA+ model: modality adaptors, one shared encoder and decoder in OFA's style, tied unified vocabulary.

Layout follows transformers' BART: attention -> layers -> encoder/decoder -> OFAPlusModel ->
OFAPlusForConditionalGeneration. OFA specifics:

* Pre-LayerNorm layers with NormFormer's extras: a LayerNorm after attention, one inside the FFN,
  and a learned scale per attention head.
* Positions enter only as attention biases: absolute position embeddings are projected to a
  Q.K^T bias computed once per forward, and each layer adds its own relative-position bias, looked
  up per modality (1-D log buckets inside a text run, 2-D offsets inside one image) and zero
  between different segments. Nothing is added to the token embeddings except a type embedding.
* Non-text inputs are marked in ``input_ids`` by runs of their modality's placeholder (``<image>``,
  ``<audio>``); the adaptor of each modality in ``config.adaptors`` (built from the modality
  registry) maps its batch keys to features that replace them, so slots can come in any order and
  templates may differ from row to row within a batch. Image patches get 2-D positions and relative
  offsets ("grid" adaptors); audio frames 1-D ones inside their segment, like text.
* The decoder's output is read by the output kinds of ``config.output_kinds`` (`ofa_plus.outputs`):
  the tied LM head for tokens, which this file trains; heads of other kinds (speech) are built here
  and run by their kind, which `forward` and `generate` dispatch to.
* Two modules of OFA's published checkpoints sit behind config flags (off unless set; the ``ofa-*``
  presets set them): ``patch_layernorm_embedding``, a LayerNorm of the image patches' own, and
  ``cross_position_bias``, an absolute position bias in every cross-attention (decoder positions
  against the encoder's, which the encoder returns in `OFAPlusEncoderOutput.position_embeddings`).
* ASR rows may carry ``ctc_labels`` (phone ids): a CTC loss on the encoder's audio states, with
  logits through the phone rows of the tied embedding, is added with weight ``config.ctc_weight``.

Losses live in ``losses.py``, decoding in ``generation.py``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
)

from .configuration_ofa_plus import OFAPlusConfig
from .generation import OFAPlusGenerationMixin
from .losses import (
    LabelSmoothedLMLoss,
    LMLossGradient,
    TiedHeadGradient,
    TiedLMHead,
    TiedTokenLookup,
    phone_ctc_logits,
    phone_ctc_loss,
)
from .modalities import ModalityAdaptor, get_modality
from .outputs import get_output_kind


def token_relative_buckets(relative: torch.Tensor, bucket_size: int, max_distance: int) -> torch.Tensor:
    """Map signed distances to ``2 * bucket_size - 1`` buckets: exact near 0, logarithmic far away (OFA)."""
    mid = bucket_size // 2
    sign = torch.sign(relative)
    distance = relative.abs().clamp(min=1)
    log_bucket = torch.ceil(torch.log(distance / mid) / math.log((max_distance - 1) / mid) * (mid - 1)) + mid
    log_bucket = log_bucket.clamp(max=bucket_size - 1).long()
    bucket = torch.where(relative.abs() <= mid, relative, log_bucket * sign)
    return bucket + bucket_size - 1


class DropPath(nn.Module):
    """Stochastic depth: drop a whole residual branch per sample (training only)."""

    def __init__(self, rate: float):
        super().__init__()
        self.rate = rate

    def forward(self, x):
        if not self.training or self.rate == 0.0:
            return x
        keep = x.new_empty(x.shape[0], *([1] * (x.dim() - 1))).bernoulli_(1 - self.rate)
        return x * keep / (1 - self.rate)


def eager_attention(query, key, value, bias: torch.Tensor | None, dropout: float, scale: float):
    """softmax(q.k^T * scale + bias) v in plain operations -> (output, attention probabilities)."""
    scores = torch.matmul(query * scale, key.transpose(-1, -2))
    if bias is not None:
        scores += bias
    probs = scores.softmax(dim=-1)
    return torch.matmul(F.dropout(probs, dropout) if dropout else probs, value), probs


def attention(query, key, value, bias: torch.Tensor | None, dropout: float, scale: float) -> torch.Tensor:
    """softmax(q.k^T * scale + bias) v on SDPA, except for a trained bias on CPU.

    SDPA has no CPU kernel that returns the bias's gradient; its generic fallback then makes extra
    passes over the (B, H, Lq, Lk) scores (scaled copies, a "safe" softmax and its masks) that the
    plain form does not need. The biases here are finite, so no row is fully masked."""
    if bias is None or not bias.requires_grad or query.device.type != "cpu":
        return F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=dropout, scale=scale)
    return eager_attention(query, key, value, bias, dropout, scale)[0]


class OFAPlusAttention(nn.Module):
    """Multi-head attention with an additive bias (see `attention`); fused QKV for self-attention."""

    def __init__(self, config: OFAPlusConfig, num_heads: int, is_cross_attention: bool = False, layer_idx: int = 0):
        super().__init__()
        d = config.d_model
        self.config = config  # read at each call: set_attn_implementation() may change it
        self.num_heads, self.head_dim = num_heads, d // num_heads
        self.is_cross_attention, self.layer_idx = is_cross_attention, layer_idx
        self.scaling = (self.head_dim * config.attn_scale_factor) ** -0.5
        self.dropout = config.attention_dropout
        if is_cross_attention:
            self.q_proj, self.kv_proj = nn.Linear(d, d), nn.Linear(d, 2 * d)
        else:
            self.qkv_proj = nn.Linear(d, 3 * d)
        self.out_proj = nn.Linear(d, d)
        self.head_scale = nn.Parameter(torch.ones(num_heads)) if config.normformer else None

    def _heads(self, x: torch.Tensor, parts: int = 1):
        """(B, L, parts * d) -> ``parts`` tensors (B, H, L, head_dim). Unbinding a view (not chunking the
        head-major tensor) lets the backward pass stack the parts' gradients straight into place."""
        if parts == 1:
            return x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2)
        return [part.transpose(1, 2) for part in x.unflatten(-1, (parts, self.num_heads, self.head_dim)).unbind(2)]

    def forward(
        self,
        hidden_states,
        key_value_states=None,
        attn_bias=None,
        cache: EncoderDecoderCache | None = None,
        output_attentions: bool = False,
    ):
        """-> (output, attention probabilities ``(B, H, Lq, Lk)`` when ``output_attentions`` else None)"""
        if self.is_cross_attention:
            query = self._heads(self.q_proj(hidden_states))
            if cache is not None and cache.is_updated.get(self.layer_idx):
                layer = cache.cross_attention_cache.layers[self.layer_idx]
                key, value = layer.keys, layer.values
            else:  # encoder K/V are computed once per generation and then reused
                key, value = self._heads(self.kv_proj(key_value_states), 2)
                if cache is not None:
                    key, value = cache.cross_attention_cache.update(key, value, self.layer_idx)
                    cache.is_updated[self.layer_idx] = True
            group = query.shape[0] // key.shape[0]
            if group > 1:  # consecutive decoder rows (beams) share one encoder row: attend as one longer query
                query = query.unflatten(0, (-1, group)).transpose(1, 2).flatten(2, 3)
        else:
            query, key, value = self._heads(self.qkv_proj(hidden_states), 3)
            if cache is not None:
                key, value = cache.self_attention_cache.update(key, value, self.layer_idx)
            group = 1
        dropout = self.dropout if self.training else 0.0
        # SDPA does not return the probabilities: the plain form computes them
        if output_attentions or self.config._attn_implementation == "eager":
            out, probs = eager_attention(query, key, value, attn_bias, dropout, self.scaling)
        else:
            out, probs = attention(query, key, value, attn_bias, dropout, self.scaling), None
        if group > 1:
            out = out.unflatten(2, (group, -1)).transpose(1, 2).flatten(0, 1)
            if output_attentions:
                probs = probs.unflatten(2, (group, -1)).transpose(1, 2).flatten(0, 1)
        if self.head_scale is not None:
            out = out * self.head_scale.view(1, -1, 1, 1)
        return self.out_proj(out.transpose(1, 2).reshape(hidden_states.shape)), probs if output_attentions else None


# activations with an in-place form: without autograd, fc1's fresh output can be overwritten
_IN_PLACE_ACTIVATIONS = {"gelu": torch.ops.aten.gelu_, "relu": torch.relu_}


class OFAPlusFeedForward(nn.Module):
    def __init__(self, config: OFAPlusConfig, ffn_dim: int):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(config.d_model, ffn_dim), nn.Linear(ffn_dim, config.d_model)
        self.act = ACT2FN[config.activation_function]
        self.act_in_place = _IN_PLACE_ACTIVATIONS.get(config.activation_function)
        self.act_dropout = nn.Dropout(config.activation_dropout)
        self.ffn_layernorm = nn.LayerNorm(ffn_dim) if config.normformer else nn.Identity()  # NormFormer

    def forward(self, x):
        h = self.fc1(x)
        # Inference: one fewer (tokens, ffn_dim) buffer per layer. With NormFormer's LayerNorm that is the
        # third such buffer, and fresh buffers are costly on CPU (benchmarks/README.md).
        act = self.act_in_place if self.act_in_place is not None and not torch.is_grad_enabled() else self.act
        return self.fc2(self.ffn_layernorm(self.act_dropout(act(h))))


class OFAPlusEncoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: OFAPlusConfig, drop_path: float):
        super().__init__()
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model)
        self.self_attn = OFAPlusAttention(config, config.encoder_attention_heads)
        self.self_attn_post_norm = nn.LayerNorm(config.d_model) if config.normformer else nn.Identity()
        self.final_layer_norm = nn.LayerNorm(config.d_model)
        self.ffn = OFAPlusFeedForward(config, config.encoder_ffn_dim)
        self.dropout, self.drop_path = nn.Dropout(config.dropout), DropPath(drop_path)

    def forward(self, hidden_states, attn_bias, output_attentions: bool = False):
        """-> (hidden states, self-attention probabilities or None)"""
        h, probs = self.self_attn(self.self_attn_layer_norm(hidden_states), None, attn_bias, None, output_attentions)
        hidden_states = hidden_states + self.drop_path(self.dropout(self.self_attn_post_norm(h)))
        h = self.ffn(self.final_layer_norm(hidden_states))
        return hidden_states + self.drop_path(self.dropout(h)), probs


class OFAPlusDecoderLayer(GradientCheckpointingLayer):
    def __init__(self, config: OFAPlusConfig, layer_idx: int, drop_path: float):
        super().__init__()
        heads = config.decoder_attention_heads
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model)
        self.self_attn = OFAPlusAttention(config, heads, layer_idx=layer_idx)
        self.self_attn_post_norm = nn.LayerNorm(config.d_model) if config.normformer else nn.Identity()
        self.cross_attn_layer_norm = nn.LayerNorm(config.d_model)
        self.cross_attn = OFAPlusAttention(config, heads, is_cross_attention=True, layer_idx=layer_idx)
        self.cross_attn_post_norm = nn.LayerNorm(config.d_model) if config.normformer else nn.Identity()
        self.final_layer_norm = nn.LayerNorm(config.d_model)
        self.ffn = OFAPlusFeedForward(config, config.decoder_ffn_dim)
        self.dropout, self.drop_path = nn.Dropout(config.dropout), DropPath(drop_path)

    def forward(
        self,
        hidden_states,
        encoder_hidden_states,
        self_attn_bias,
        cross_attn_bias,
        cache=None,
        output_attentions=False,
    ):
        """-> (hidden states, self-attention probabilities, cross-attention probabilities); None without
        ``output_attentions``"""
        h, self_probs = self.self_attn(
            self.self_attn_layer_norm(hidden_states), None, self_attn_bias, cache, output_attentions
        )
        hidden_states = hidden_states + self.drop_path(self.dropout(self.self_attn_post_norm(h)))
        h, cross_probs = self.cross_attn(
            self.cross_attn_layer_norm(hidden_states), encoder_hidden_states, cross_attn_bias, cache, output_attentions
        )
        hidden_states = hidden_states + self.drop_path(self.dropout(self.cross_attn_post_norm(h)))
        h = self.ffn(self.final_layer_norm(hidden_states))
        return hidden_states + self.drop_path(self.dropout(h)), self_probs, cross_probs


class AbsolutePositionBias(nn.Module):
    """OFA's absolute positions: LayerNorm'd embeddings projected to queries/keys, bias = q.k^T."""

    def __init__(self, config: OFAPlusConfig, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q_linear, self.k_linear = (
            nn.Linear(config.d_model, config.d_model),
            nn.Linear(config.d_model, config.d_model),
        )
        self.scaling = (config.d_model / num_heads * config.attn_scale_factor) ** -0.5

    def queries(self, query_pos: torch.Tensor) -> torch.Tensor:
        """(B, Lq, d) -> scaled (B, H, Lq, d / H)"""
        return self.q_linear(query_pos).unflatten(-1, (self.num_heads, -1)).transpose(1, 2) * self.scaling

    def keys(self, key_pos: torch.Tensor) -> torch.Tensor:
        """(B, Lk, d) -> (B, H, Lk, d / H)"""
        return self.k_linear(key_pos).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)

    def forward(self, query_pos: torch.Tensor, key_pos: torch.Tensor) -> torch.Tensor:
        """(B|1, Lq, d), (B|1, Lk, d) -> (B|1, H, Lq, Lk)"""
        return self.queries(query_pos) @ self.keys(key_pos).transpose(-1, -2)


@dataclass
class OFAPlusEncoderOutput(BaseModelOutput):
    """`BaseModelOutput` plus ``position_embeddings`` ``(batch, length, d_model)``: the LayerNorm'd absolute
    position embedding of each input position (text or image), which the decoder's cross-attention
    position bias reads (only with ``config.cross_position_bias``, else None)."""

    position_embeddings: torch.FloatTensor | None = None


def _unpadded_positions(mask: torch.Tensor) -> torch.Tensor:
    """(B, L) 1/0 decoder mask -> each position's index among its row's real tokens (padding gets 0 or
    the last real index): a left-padded prompt gets the positions of the same prompt unpadded."""
    return (mask.long().cumsum(dim=1) - 1).clamp(min=0)


def _padding_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, Lk) 1/0 mask -> (B, 1, 1, Lk) additive bias."""
    return (1.0 - mask[:, None, None, :].to(dtype)) * torch.finfo(dtype).min


class OFAPlusPreTrainedModel(PreTrainedModel):
    config_class = OFAPlusConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    input_modalities = ("text", "image", "audio")
    output_modalities = ("text", "audio")
    supports_gradient_checkpointing = True
    _no_split_modules = ["OFAPlusEncoderLayer", "OFAPlusDecoderLayer"]  # + the adaptors (OFAPlusModel)
    _supports_sdpa = True

    @property
    def tasks(self) -> dict:
        """The task cards the model was trained on (``config.task_cards``), by name."""
        from .task_card import tasks_from_dicts  # noqa: PLC0415 (task cards are a layer above the model)

        return tasks_from_dicts(getattr(self.config, "task_cards", None))

    def mark_tied_weights_as_initialized(self, loading_info):
        # The encoder's and decoder's embed_tokens are the shared table's module itself, so flagging
        # them (tied targets) flags the table too, and transformers then drops it from the missing
        # keys: a checkpoint without it would load with no report and leave it on the meta device.
        # Keep the missing tied sources missing, so they are materialised, initialised or tied to a
        # target that the checkpoint has (e.g. a table stored only as lm_head.weight).
        sources = set(self.all_tied_weights_keys.values()) & set(loading_info.missing_keys)
        super().mark_tied_weights_as_initialized(loading_info)
        loading_info.missing_keys |= sources

    def _init_weights(self, module):
        std = self.config.init_std
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, std=std)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Conv2d):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, ModalityAdaptor):
            module.reset_parameters_of_adaptor()
        elif isinstance(module, nn.BatchNorm2d):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)
        elif isinstance(module, OFAPlusAttention) and module.head_scale is not None:
            init.ones_(module.head_scale)
        elif isinstance(module, OFAPlusEncoder):
            init.zeros_(module.relative_bias_padding)


class OFAPlusEncoder(nn.Module):
    """Token and placeholder segments -> contextual states. Segment layout is read off ``input_ids``."""

    main_input_name = "input_ids"

    def __init__(self, config: OFAPlusConfig, embed_tokens: nn.Embedding):
        super().__init__()
        self.config = config
        d, heads = config.d_model, config.encoder_attention_heads
        self.embed_tokens = embed_tokens
        # one adaptor per non-text input modality, as `<name>_adaptor` (e.g. image_adaptor)
        self.modalities = [get_modality(name) for name in config.adaptors]
        for modality in self.modalities:
            self.add_module(f"{modality.name.lower()}_adaptor", modality.adaptor_class(config))
        self.type_embedding = nn.Embedding(2, d)  # 0 = token, 1 = image patch
        self.layernorm_embedding = nn.LayerNorm(d)
        # OFA normalises image patches with a LayerNorm of their own
        self.patch_layernorm_embedding = nn.LayerNorm(d) if config.patch_layernorm_embedding else None
        self.dropout = nn.Dropout(config.dropout)
        self.embed_positions = nn.Embedding(config.max_positions, d)
        self.embed_image_positions = nn.Embedding(config.image_bucket_size**2, d)
        self.pos_ln, self.image_pos_ln = nn.LayerNorm(d), nn.LayerNorm(d)
        self.absolute_bias = AbsolutePositionBias(config, heads)
        # One relative-bias table per layer: text buckets first, then 2-D image offsets.
        self.num_token_buckets = 2 * config.token_bucket_size - 1
        image_span = 2 * config.image_bucket_size - 1
        self.relative_bias = nn.ModuleList(
            nn.Embedding(self.num_token_buckets + image_span**2, heads) for _ in range(config.encoder_layers)
        )
        self.relative_bias_padding = nn.Parameter(torch.zeros(1, heads), requires_grad=False)  # between segments
        rates = torch.linspace(0, config.drop_path_rate, config.encoder_layers, device="cpu").tolist()  # meta-safe
        self.layers = nn.ModuleList(OFAPlusEncoderLayer(config, r) for r in rates)
        self.layer_norm = nn.LayerNorm(d)
        self.gradient_checkpointing = False

    def adaptor(self, modality) -> ModalityAdaptor:
        return getattr(self, f"{modality.name.lower()}_adaptor")

    @property
    def input_keys(self) -> tuple[str, ...]:
        """The batch keys of every adaptor (``pixel_values``, ``input_features``, ...)."""
        return tuple(key for modality in self.modalities for key in modality.batch_keys)

    def token_kinds(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Per token: 0 for a text token, 1 + k for a placeholder of the k-th adaptor."""
        kinds = torch.zeros_like(input_ids)
        for k, modality in enumerate(self.modalities):
            kinds = kinds.masked_fill(input_ids == modality.placeholder_id, k + 1)
        return kinds

    def segment_layout(self, input_ids: torch.Tensor, item_start: torch.Tensor | None = None):
        """Per token: is it on the image grid, its segment id, and its position inside the segment.

        ``item_start`` marks the first placeholder of each image / audio, to split items that follow
        each other directly; without it a run of image placeholders splits every ``image_tokens`` and
        any other run is one item."""
        return self._layout(self.token_kinds(input_ids), item_start)

    def _layout(self, kinds: torch.Tensor, item_start: torch.Tensor | None):
        is_grid = kinds.new_tensor(
            [False] + [self.adaptor(m).position_kind == "grid" for m in self.modalities], dtype=torch.bool
        )[kinds]
        length = kinds.shape[1]
        index = torch.arange(length, device=kinds.device).expand_as(kinds)
        run_start = kinds != F.pad(kinds[:, :-1], (1, 0), value=-1)
        in_run = index - torch.cummax(torch.where(run_start, index, 0), dim=1).values
        # a run of image placeholders may hold several images back to back: split every image_tokens
        segment_start = run_start | (is_grid & (in_run % self.config.image_tokens == 0))
        if item_start is not None:
            segment_start = segment_start | item_start
        segment_id = segment_start.cumsum(dim=1)
        position = index - torch.cummax(torch.where(segment_start, index, 0), dim=1).values
        return is_grid, segment_id, position

    def position_biases(self, input_ids: torch.Tensor, dtype: torch.dtype, item_start: torch.Tensor | None = None):
        """Every layer's position bias, absolute + relative, as ``(layers, U, H, L, L)``; per row which
        of the ``U`` distinct layouts it has (None when all rows share one); and the LayerNorm'd
        position embeddings of the layouts ``(U, L, d_model)``.

        The biases depend only on where the placeholder segments are, and the rows of one task's
        batch nearly always share that layout (padding is text too), so they are computed once per
        layout rather than once per row: the same values, a fraction of the work and memory."""
        config = self.config
        # layout code per token: its kind, and whether it starts an item
        codes = 2 * self.token_kinds(input_ids)
        if item_start is not None:
            codes = codes + item_start.long()
        layouts, row_layout = torch.unique(codes, dim=0, return_inverse=True)
        is_image, segment_id, position = self._layout(layouts // 2, layouts % 2 == 1)
        if bool((position[~is_image] >= config.max_positions).any()):
            raise ValueError(f"a text or audio segment is longer than max_positions={config.max_positions}")
        run_end = is_image & ~F.pad(is_image[:, 1:], (0, 1), value=False)
        if bool((position[run_end] != config.image_tokens - 1).any()):  # else patches would leak across rows
            raise ValueError(
                f"a run of <image> placeholders is not a whole number of images "
                f"({config.image_tokens} placeholders each)"
            )
        grid, span = config.image_grid_size, 2 * config.image_bucket_size - 1
        row, col = position // grid, position % grid
        text_pos = self.pos_ln(self.embed_positions(position.clamp(max=config.max_positions - 1)))
        image_pos = self.image_pos_ln(
            self.embed_image_positions(
                (row * config.image_bucket_size + col).clamp(max=config.image_bucket_size**2 - 1)
            )
        )
        pos = torch.where(is_image[..., None], image_pos, text_pos).to(dtype)
        absolute = self.absolute_bias(pos, pos)

        text_bucket = token_relative_buckets(
            position[:, None, :] - position[:, :, None], config.token_bucket_size, config.max_positions
        )
        image_offset = (row[:, None, :] - row[:, :, None] + config.image_bucket_size - 1) * span + (
            col[:, None, :] - col[:, :, None] + config.image_bucket_size - 1
        )
        bucket = torch.where(is_image[:, :, None], self.num_token_buckets + image_offset, text_bucket)
        outside = self.num_token_buckets + span**2  # index of the zero row
        bucket = torch.where(segment_id[:, :, None] == segment_id[:, None, :], bucket, outside)
        # one lookup for every layer's table: (U, L, L, layers * H) -> (layers, U, H, L, L)
        tables = torch.cat([table.weight for table in self.relative_bias], dim=1)
        tables = torch.cat([tables, self.relative_bias_padding.repeat(1, len(self.relative_bias))], dim=0)
        relative = F.embedding(bucket, tables).unflatten(-1, (len(self.relative_bias), -1)).permute(3, 0, 4, 1, 2)
        return absolute + relative.to(dtype), (row_layout if len(layouts) > 1 else None), pos

    def embed_inputs(self, x: torch.Tensor, input_ids: torch.Tensor, **batch):
        """Scatter each adaptor's features into its placeholders, item by item in row order; return the
        new embeddings and the mark of each item's first placeholder (None without placeholders)."""
        item_start = None
        for modality in self.modalities:
            is_item = input_ids == modality.placeholder_id
            placeholders = int(is_item.sum())
            if not placeholders:
                continue
            name, first_key = modality.name.lower(), modality.batch_keys[0]
            if batch.get(first_key) is None:
                raise ValueError(f"input_ids contain <{name}> placeholders but no {first_key} were given")
            # floating-point inputs follow the embeddings' dtype (under autocast the features come back in it)
            keys = {
                k: batch[k].to(x.dtype) if batch.get(k) is not None and batch[k].is_floating_point() else batch.get(k)
                for k in modality.batch_keys
            }
            adaptor = self.adaptor(modality)
            counts = adaptor.token_counts(**keys).to(input_ids.device)
            if int(counts.sum()) != placeholders:
                raise ValueError(
                    f"{len(counts)} {name}s give {int(counts.sum())} {adaptor.token_name} but "
                    f"input_ids hold {placeholders} <{name}> placeholders"
                )
            features = adaptor(**keys)
            keep = torch.arange(features.shape[1], device=features.device) < counts[:, None].to(features.device)
            x = x.masked_scatter(is_item[..., None], features[keep].to(x.dtype))
            # the k-th item starts at the (counts[0] + ... + counts[k-1])-th placeholder in row-major order
            positions = is_item.flatten().nonzero().squeeze(1)
            firsts = (torch.cumsum(counts, 0) - counts)[counts > 0]
            last_rows = positions[firsts + counts[counts > 0] - 1] // input_ids.shape[1]
            if bool((positions[firsts] // input_ids.shape[1] != last_rows).any()):
                raise ValueError(f"the <{name}> placeholders of a row are not a whole number of {name}s")
            start = torch.zeros(is_item.numel(), dtype=torch.bool, device=input_ids.device)
            start[positions[firsts]] = True
            item_start = start.view_as(is_item) if item_start is None else item_start | start.view_as(is_item)
        return x, item_start

    def select_items(self, input_ids: torch.Tensor, rows: torch.Tensor, batch: dict) -> dict:
        """The adaptor inputs of ``batch`` (one entry per image / audio, in row order) that belong to
        ``rows`` of ``input_ids``."""
        selected = {}
        for modality in self.modalities:
            keys = {k: batch[k] for k in modality.batch_keys if batch.get(k) is not None}
            if modality.batch_keys[0] not in keys:
                continue
            counts = self.adaptor(modality).token_counts(**keys).cpu()
            row_end = torch.cumsum((input_ids == modality.placeholder_id).sum(dim=1).cpu(), 0)
            item_row = torch.searchsorted(row_end, torch.cumsum(counts, 0) - counts, right=True)
            keep = torch.isin(item_row, rows.cpu()).nonzero().flatten()
            selected.update({k: v[keep.to(v.device)] for k, v in keys.items()})
        return selected

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        output_attentions: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> OFAPlusEncoderOutput | tuple:
        """``kwargs``: the batch keys of the adaptors (``input_features``, ...); others are ignored.

        ``inputs_embeds`` replace the token lookup. The segment layout (which positions are image or
        audio placeholders, filled by the adaptors) is read from ``input_ids``, which must then have
        the same shape; without ``input_ids`` every position is text (e.g. PEFT prompt tuning)."""
        config = self.config
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = config.return_dict if return_dict is None else return_dict
        if inputs_embeds is None:
            if input_ids is None:
                raise ValueError("OFAPlusEncoder needs input_ids or inputs_embeds")
            x = self.embed_tokens(input_ids)
        else:
            x = inputs_embeds
            if input_ids is None:  # all text: a layout of pad tokens (no placeholders)
                input_ids = torch.full(x.shape[:2], config.pad_token_id, dtype=torch.long, device=x.device)
            elif input_ids.shape != x.shape[:2]:
                raise ValueError(
                    f"input_ids {tuple(input_ids.shape)} give the layout of inputs_embeds {tuple(x.shape[:2])}: "
                    "the shapes must match"
                )
        modality_inputs = {k: kwargs[k] for k in self.input_keys if k in kwargs}
        x, item_start = self.embed_inputs(x, input_ids, pixel_values=pixel_values, **modality_inputs)
        kinds = self.token_kinds(input_ids)  # each token's row of the type embedding: its adaptor's type_id
        type_ids = kinds.new_tensor([0] + [self.adaptor(m).type_id for m in self.modalities])[kinds]
        x = x + self.type_embedding(type_ids)
        if self.patch_layernorm_embedding is None:
            x = self.layernorm_embedding(x)
        else:
            is_patch = (input_ids == config.image_token_id)[..., None]
            x = torch.where(is_patch, self.patch_layernorm_embedding(x), self.layernorm_embedding(x))
        x = self.dropout(x)

        position_bias, row_layout, positions = self.position_biases(input_ids, x.dtype, item_start)
        if row_layout is not None:  # rows of different layouts: gather each row's biases
            position_bias = position_bias[:, row_layout]
        padding = None if attention_mask is None else _padding_bias(attention_mask, x.dtype)
        hidden_states = [x] if output_hidden_states else None
        attentions = [] if output_attentions else None
        for layer, bias in zip(self.layers, position_bias):
            x, probs = layer(x, bias if padding is None else bias + padding, output_attentions)
            if output_hidden_states:
                hidden_states.append(x)
            if output_attentions:
                attentions.append(probs)
        if config.cross_position_bias:  # one row of position embeddings per input row
            positions = positions[row_layout] if row_layout is not None else positions.expand(x.shape[0], -1, -1)
        out = OFAPlusEncoderOutput(
            last_hidden_state=self.layer_norm(x),
            hidden_states=tuple(hidden_states) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
            position_embeddings=positions if config.cross_position_bias else None,
        )
        return out if return_dict else out.to_tuple()


class OFAPlusDecoder(nn.Module):
    """Causal decoder over token segments, with OFA's absolute + relative position biases."""

    def __init__(self, config: OFAPlusConfig, embed_tokens: nn.Embedding):
        super().__init__()
        self.config = config
        d = config.d_model
        self.embed_tokens = embed_tokens
        self.layernorm_embedding = nn.LayerNorm(d)
        self.dropout = nn.Dropout(config.dropout)
        self.embed_positions = nn.Embedding(config.max_positions, d)
        self.pos_ln = nn.LayerNorm(d)
        self.absolute_bias = AbsolutePositionBias(config, config.decoder_attention_heads)
        # OFA: decoder positions against the encoder's, added to every layer's cross-attention
        self.cross_absolute_bias = (
            AbsolutePositionBias(config, config.decoder_attention_heads) if config.cross_position_bias else None
        )
        self.relative_bias = nn.ModuleList(
            nn.Embedding(2 * config.token_bucket_size - 1, config.decoder_attention_heads)
            for _ in range(config.decoder_layers)
        )
        rates = torch.linspace(0, config.drop_path_rate, config.decoder_layers, device="cpu").tolist()  # meta-safe
        self.layers = nn.ModuleList(OFAPlusDecoderLayer(config, i, r) for i, r in enumerate(rates))
        self.layer_norm = nn.LayerNorm(d)
        self.gradient_checkpointing = False

    def self_attention_biases(self, start: int, end: int, dtype: torch.dtype) -> torch.Tensor:
        """Every layer's self-attention bias (absolute + relative + causal) for the queries at positions
        ``start..end-1`` over the keys ``0..end-1``: ``(layers, 1, H, end - start, end)``."""
        config = self.config
        key_positions = torch.arange(end, device=self.embed_positions.weight.device)
        pos = self.pos_ln(self.embed_positions(key_positions)).to(dtype)[None]
        absolute = self.absolute_bias(pos[:, start:], pos)  # (1, H, Lq, Lk)
        relative = key_positions[None, :] - key_positions[start:, None]
        bucket = token_relative_buckets(relative, config.token_bucket_size, config.max_positions)
        causal = torch.zeros(relative.shape, dtype=dtype, device=bucket.device).masked_fill(
            relative > 0, torch.finfo(dtype).min
        )
        # every layer's relative bias from one lookup: (Lq, Lk, layers * H) -> (layers, H, Lq, Lk)
        tables = torch.cat([table.weight for table in self.relative_bias], dim=1)
        relative_biases = F.embedding(bucket, tables).unflatten(-1, (len(self.layers), -1)).permute(2, 3, 0, 1)
        return absolute + (relative_biases.to(dtype) + causal)[:, None]

    def padded_self_attention_biases(self, attention_mask: torch.Tensor, start: int, dtype: torch.dtype):
        """`self_attention_biases` for rows with padding (``attention_mask`` over the keys ``0..end-1``,
        0 for padding): a row's positions count its real tokens only, so a left-padded prompt gets the
        biases of the same prompt unpadded, and padded keys are masked. ``(layers, B, H, end - start, end)``."""
        config = self.config
        positions = _unpadded_positions(attention_mask)  # (B, Lk)
        pos = self.pos_ln(self.embed_positions(positions.clamp(max=config.max_positions - 1))).to(dtype)
        absolute = self.absolute_bias(pos[:, start:], pos)  # (B, H, Lq, Lk)
        relative = positions[:, None, :] - positions[:, start:, None]  # (B, Lq, Lk)
        bucket = token_relative_buckets(relative, config.token_bucket_size, config.max_positions)
        index = torch.arange(positions.shape[1], device=positions.device)
        blocked = (index[None, :] > index[start:, None]) | (attention_mask[:, None, :] == 0)
        masked = torch.zeros(blocked.shape, dtype=dtype, device=blocked.device).masked_fill(
            blocked, torch.finfo(dtype).min
        )
        tables = torch.cat([table.weight for table in self.relative_bias], dim=1)
        relative_biases = F.embedding(bucket, tables).unflatten(-1, (len(self.layers), -1)).permute(3, 0, 4, 1, 2)
        return absolute + (relative_biases.to(dtype) + masked[:, None])

    def cross_position_bias(
        self, query_positions: torch.Tensor, encoder_positions: torch.Tensor, group: int, cache, dtype: torch.dtype
    ) -> torch.Tensor:
        """OFA's absolute position bias of the cross-attention: decoder positions ``(1|B_dec, Lq)``
        against the encoder's position embeddings ``(B_enc, Lk, d)``, as ``(B_enc, H, group * Lq, Lk)``:
        the query layout `OFAPlusAttention` uses when ``group`` decoder rows (beams) share an encoder row.
        The keys depend on the encoder side only: with a cache they are projected once per generation."""
        keys = getattr(cache, "ofa_cross_position_keys", None)
        if keys is None or keys.shape[0] != encoder_positions.shape[0] or keys.dtype != dtype:
            keys = self.cross_absolute_bias.keys(encoder_positions.to(dtype))
            if cache is not None:
                cache.ofa_cross_position_keys = keys
        pos = self.pos_ln(self.embed_positions(query_positions.clamp(max=self.config.max_positions - 1))).to(dtype)
        queries = self.cross_absolute_bias.queries(pos)  # (1|B_dec, H, Lq, d / H)
        if queries.shape[0] == 1:  # the same positions in every row
            return (queries @ keys.transpose(-1, -2)).repeat(1, 1, group, 1)
        queries = queries.unflatten(0, (-1, group)).transpose(1, 2).flatten(2, 3)
        return queries @ keys.transpose(-1, -2)

    def forward(
        self,
        input_ids: torch.LongTensor | None,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: EncoderDecoderCache | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        output_attentions: bool = False,
        output_hidden_states: bool = False,
        return_dict: bool = False,
        encoder_position_embeddings: torch.Tensor | None = None,
    ) -> torch.Tensor | BaseModelOutputWithPastAndCrossAttentions:
        """The decoder states after the final LayerNorm; with ``return_dict`` a
        `BaseModelOutputWithPastAndCrossAttentions` that can also hold every layer's states and
        attention probabilities. ``attention_mask`` (B, cached + new positions) marks the decoder's
        own padding, e.g. left-padded prompts. ``encoder_position_embeddings``: the encoder output's
        ``position_embeddings``, needed with ``config.cross_position_bias``."""
        config = self.config
        # inputs_embeds alone: continuous inputs (the speech prenet's frames) rather than tokens
        past = cache.get_seq_length() if cache is not None else 0
        length = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        if past + length > config.max_positions:
            raise ValueError(f"decoder length {past + length} exceeds max_positions={config.max_positions}")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        x = self.dropout(self.layernorm_embedding(x))
        if attention_mask is not None and attention_mask.shape[1] != past + length:
            raise ValueError(
                f"decoder_attention_mask covers {attention_mask.shape[1]} positions, the cache and the "
                f"decoder inputs {past} + {length}"
            )
        if attention_mask is not None and not bool(attention_mask.all()):
            self_biases = self.padded_self_attention_biases(attention_mask, past, x.dtype)
        elif cache is not None and not torch.is_grad_enabled():
            # Decoding: the biases depend on positions only. Compute them for a block of upcoming
            # positions, keep the block with this generation's cache and slice it at every step.
            start, block = getattr(cache, "ofa_self_attention_biases", (0, None))
            if block is None or past < start or past + length > start + block.shape[-2] or block.dtype != x.dtype:
                start = past
                block = self.self_attention_biases(past, min(config.max_positions, past + max(length, 32)), x.dtype)
                cache.ofa_self_attention_biases = (start, block)
            self_biases = block[..., past - start : past - start + length, : past + length]
        else:
            self_biases = self.self_attention_biases(past, past + length, x.dtype)
        cross_bias = None if encoder_attention_mask is None else _padding_bias(encoder_attention_mask, x.dtype)
        if self.cross_absolute_bias is not None:
            if encoder_position_embeddings is None:
                raise ValueError(
                    "config.cross_position_bias needs the encoder's position_embeddings "
                    "(the OFAPlusEncoderOutput of OFAPlusEncoder)"
                )
            if attention_mask is not None and not bool(attention_mask.all()):
                query_positions = _unpadded_positions(attention_mask)[:, past:]
            else:
                query_positions = torch.arange(past, past + length, device=x.device)[None]
            group = x.shape[0] // encoder_hidden_states.shape[0]  # decoder rows (beams) per encoder row
            position_bias = self.cross_position_bias(
                query_positions, encoder_position_embeddings, group, cache, x.dtype
            )
            cross_bias = position_bias if cross_bias is None else position_bias + cross_bias
        hidden_states = [x] if output_hidden_states else None
        self_attentions, cross_attentions = ([], []) if output_attentions else (None, None)
        for layer, self_bias in zip(self.layers, self_biases.unbind(0)):
            x, self_probs, cross_probs = layer(
                x, encoder_hidden_states, self_bias, cross_bias, cache, output_attentions
            )
            if output_hidden_states:
                hidden_states.append(x)
            if output_attentions:
                self_attentions.append(self_probs)
                cross_attentions.append(cross_probs)
        x = self.layer_norm(x)
        if not return_dict:
            return x
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=x,
            cache=cache,
            hidden_states=tuple(hidden_states) if output_hidden_states else None,
            attentions=tuple(self_attentions) if output_attentions else None,
            cross_attentions=tuple(cross_attentions) if output_attentions else None,
        )


class OFAPlusModel(OFAPlusPreTrainedModel):
    _tied_weights_keys = {
        "encoder.embed_tokens.weight": "shared.weight",
        "decoder.embed_tokens.weight": "shared.weight",
    }

    def __init__(self, config: OFAPlusConfig):
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_token_id)
        self.encoder = OFAPlusEncoder(config, self.shared)
        self.decoder = OFAPlusDecoder(config, self.shared)
        self._no_split_modules = [
            *self._no_split_modules,
            *(type(self.encoder.adaptor(m)).__name__ for m in self.encoder.modalities),
        ]
        self.post_init()

    def get_input_embeddings(self):
        return self.shared

    def set_input_embeddings(self, value):
        self.shared = self.encoder.embed_tokens = self.decoder.embed_tokens = value

    def get_encoder(self):
        return self.encoder

    def get_decoder(self):
        return self.decoder

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        encoder_outputs: BaseModelOutput | None = None,
        cache: Cache | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        decoder_inputs_embeds: torch.FloatTensor | None = None,
        tied_head_gradient: TiedHeadGradient | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **modality_inputs,
    ) -> Seq2SeqModelOutput | tuple:
        """``modality_inputs``: the adaptors' batch keys besides ``pixel_values`` (``input_features``,
        ``input_features_mask``, ...). ``tied_head_gradient`` (internal, from
        `OFAPlusForConditionalGeneration`): when the token lookup below runs, its backward adds its rows
        into the LM loss's gradient of the tied table (see `ofa_plus.losses.TiedHeadGradient`).
        ``inputs_embeds``: see `OFAPlusEncoder.forward`; ``decoder_attention_mask``: see `OFAPlusDecoder.forward`."""
        config = self.config
        output_attentions = config.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = config.return_dict if return_dict is None else return_dict
        if (
            encoder_outputs is None
            and input_ids is not None
            and inputs_embeds is None
            and decoder_input_ids is not None
            and decoder_inputs_embeds is None
        ):
            # one lookup for both sides: in training the shared table then takes one gradient from
            # the token lookups rather than two, each as large as the table
            ids = torch.cat([input_ids.flatten(), decoder_input_ids.flatten()])
            if tied_head_gradient is not None and torch.is_grad_enabled() and self.shared.weight.requires_grad:
                tokens = TiedTokenLookup.apply(ids, self.shared.weight, self.shared.padding_idx, tied_head_gradient)
            else:
                tokens = F.embedding(ids, self.shared.weight, self.shared.padding_idx)
            inputs_embeds, decoder_inputs_embeds = tokens.split([input_ids.numel(), decoder_input_ids.numel()])
            inputs_embeds = inputs_embeds.view(*input_ids.shape, -1)
            decoder_inputs_embeds = decoder_inputs_embeds.view(*decoder_input_ids.shape, -1)
        if encoder_outputs is None:
            encoder_inputs = {k: modality_inputs[k] for k in self.encoder.input_keys if k in modality_inputs}
            encoder_outputs = self.encoder(
                input_ids=input_ids,
                attention_mask=attention_mask,
                pixel_values=pixel_values,
                inputs_embeds=inputs_embeds,
                output_attentions=output_attentions,
                output_hidden_states=output_hidden_states,
                return_dict=True,
                **encoder_inputs,
            )
        elif not isinstance(encoder_outputs, BaseModelOutput):  # the encoder's tuple (return_dict=False)
            if config.cross_position_bias:  # whose last entry is then the position embeddings
                *states, positions = encoder_outputs
                encoder_outputs = OFAPlusEncoderOutput(*states, position_embeddings=positions)
            else:
                encoder_outputs = BaseModelOutput(*encoder_outputs)
        use_cache = config.use_cache if use_cache is None else use_cache
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(config=config), DynamicCache(config=config))
        decoder_outputs = self.decoder(
            decoder_input_ids,
            encoder_outputs.last_hidden_state,
            attention_mask,
            cache if use_cache else None,
            decoder_inputs_embeds,
            attention_mask=decoder_attention_mask,
            output_attentions=output_attentions,
            output_hidden_states=output_hidden_states,
            return_dict=True,
            encoder_position_embeddings=getattr(encoder_outputs, "position_embeddings", None),
        )
        out = Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            cache=cache if use_cache else None,
            decoder_hidden_states=decoder_outputs.hidden_states,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
        )
        return out if return_dict else out.to_tuple()


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, start_token_id: int) -> torch.Tensor:
    shifted = labels.new_full(labels.shape, pad_token_id)
    shifted[:, 1:] = labels[:, :-1].masked_fill(labels[:, :-1] == -100, pad_token_id)
    shifted[:, 0] = start_token_id
    return shifted


@dataclass
class OFAPlusSeq2SeqLMOutput(Seq2SeqLMOutput):
    """`Seq2SeqLMOutput` plus ``ctc_loss``: the phone CTC loss (unweighted) when ``ctc_labels`` were given."""

    ctc_loss: torch.FloatTensor | None = None


class OFAPlusForConditionalGeneration(OFAPlusPreTrainedModel, OFAPlusGenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.shared.weight"}

    def __init__(self, config: OFAPlusConfig):
        super().__init__(config)
        self.model = OFAPlusModel(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        # the heads of the other output kinds, as `<name>_head` (e.g. speech_head for AUDIO targets)
        self.output_kinds = [get_output_kind(name) for name in config.output_kinds]
        for kind in self.output_kinds:
            if kind.head_class is not None:
                self.add_module(f"{kind.name}_head", kind.head_class(config))
        self.post_init()

    _decoding_head: tuple | None = None  # (what the copy was made from, the (d_model, vocab) copy); see lm_logits

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The LM head: ``hidden @ lm_head.weight.T``.

        Decoding on CPU (eval mode, no gradient) multiplies by a cached (d_model, vocab) contiguous copy
        of the weight instead: with the weight's own (vocab, d_model) layout the product of the few
        rows of a decoding step is slower there (benchmarks/README.md has the figures). The copy
        costs the table's memory again while the model is in eval mode: it is made again when the
        weight changes (in place or replaced) and dropped by ``train()``. Elsewhere (training, CUDA)
        it is the plain head."""
        weight = self.lm_head.weight
        if self.training or hidden.device.type != "cpu" or (torch.is_grad_enabled() and weight.requires_grad):
            return self.lm_head(hidden)
        made_from = (weight.data_ptr(), weight._version, weight.dtype)
        if self._decoding_head is None or self._decoding_head[0] != made_from:
            self._decoding_head = None  # free the old copy first
            self._decoding_head = (made_from, weight.detach().t().contiguous())
        return hidden @ self._decoding_head[1]

    def train(self, mode: bool = True):
        self._decoding_head = None
        return super().train(mode)

    def get_encoder(self):
        return self.model.encoder

    def get_decoder(self):
        return self.model.decoder

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        pixel_values: torch.FloatTensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        encoder_outputs: BaseModelOutput | None = None,
        cache: Cache | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        input_features: torch.FloatTensor | None = None,
        input_features_mask: torch.Tensor | None = None,
        ctc_labels: torch.LongTensor | None = None,
        label_vocab: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.FloatTensor | None = None,
        decoder_inputs_embeds: torch.FloatTensor | None = None,
        output_attentions: bool | None = None,
        **kwargs,
    ):
        r"""
        labels (`torch.LongTensor` of shape `(batch, target_length)`, *optional*):
            Target ids; -100 marks positions without loss (padding, `no_loss` prefixes). When
            `decoder_input_ids` is not given it is `labels` shifted right behind the start token.
        input_features (`torch.FloatTensor` of shape `(audios, frames, audio_feature_size)`, *optional*):
            Filterbanks of the batch's audios in row order (`OFAPlusAudioFeatureExtractor`), with
            `input_features_mask` `(audios, frames)` marking real frames. Other adaptors' batch keys
            come as keyword arguments too.
        ctc_labels (`torch.LongTensor` of shape `(batch, phones)`, *optional*):
            Phone ids (padded with -100) of each row's transcript: adds `config.ctc_weight` times a
            CTC loss on the encoder states of the row's audio placeholders (with `labels` only).
        label_vocab (`torch.LongTensor` of shape `(ids,)`, *optional*):
            Sorted ids that hold every label (the processor gives it under `config.target_vocab="modality"`):
            the softmax of the loss ranges over these ids only, and `logits` has one column per id.
        decoder_attention_mask (`torch.Tensor` of shape `(batch, cached + decoder_length)`, *optional*):
            1 for real decoder tokens, 0 for padding (e.g. left-padded decoder prompts): padded
            positions are masked and each row's positions count its real tokens only.
        inputs_embeds (`torch.FloatTensor` of shape `(batch, length, d_model)`, *optional*):
            Replace the token lookup of the encoder input. The segment layout comes from `input_ids`
            when given (same shape; placeholders are filled by the adaptors), else every position is text.
        kwargs:
            The targets of another output kind, e.g. `mel_labels` and `mel_lengths` (an AUDIO target's
            log-mel frames, `ofa_plus.outputs.speech`): that kind's head then runs, and its output
            (with its loss) is returned.
        """
        modality_inputs = {"input_features": input_features, "input_features_mask": input_features_mask, **kwargs}
        for kind in self.output_kinds:  # another output kind's targets: its own forward and loss
            if kind.head_class is not None and any(kwargs.get(key) is not None for key in kind.label_keys):
                return kind.forward(
                    self,
                    input_ids=input_ids,
                    attention_mask=attention_mask,
                    pixel_values=pixel_values,
                    encoder_outputs=encoder_outputs,
                    **modality_inputs,
                )
        config = self.config
        return_dict = config.return_dict if return_dict is None else return_dict
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = shift_tokens_right(
                    labels, self.config.pad_token_id, self.config.decoder_start_token_id
                )
        if label_vocab is not None and labels is None:
            raise ValueError("label_vocab restricts the loss's softmax: it needs labels")
        # the LM head and the token lookups share one table: one gradient buffer for both (TiedHeadGradient);
        # a head restricted to label_vocab leaves the sum of the two gradients to autograd
        tied = (
            TiedHeadGradient()
            if labels is not None and label_vocab is None and self.lm_head.weight is self.model.shared.weight
            else None
        )
        out = self.model(
            input_ids,
            attention_mask,
            pixel_values,
            decoder_input_ids,
            encoder_outputs,
            cache=cache,
            use_cache=use_cache,
            output_hidden_states=output_hidden_states,
            decoder_inputs_embeds=decoder_inputs_embeds,
            tied_head_gradient=tied,
            decoder_attention_mask=decoder_attention_mask,
            inputs_embeds=inputs_embeds,
            output_attentions=output_attentions,
            return_dict=True,
            **modality_inputs,
        )
        head = self.lm_head.weight
        if label_vocab is not None:  # the head's rows of the ids the labels can take; labels as their positions
            head = head.index_select(0, label_vocab)
            labels = torch.where(labels == -100, labels, torch.searchsorted(label_vocab, labels))
        loss = ctc_loss = None
        if labels is not None and torch.is_grad_enabled():
            # the loss hands its gradient of the logits to the head, which then works on labelled rows only
            handoff = LMLossGradient()
            logits = TiedLMHead.apply(out.last_hidden_state, head, handoff, tied)
            loss = LabelSmoothedLMLoss.apply(None, None, logits, labels, config.label_smoothing, None, handoff)
        else:
            logits = (
                self.lm_logits(out.last_hidden_state) if label_vocab is None else F.linear(out.last_hidden_state, head)
            )
            if labels is not None:
                loss = LabelSmoothedLMLoss.apply(None, None, logits, labels, config.label_smoothing)
        if labels is not None:
            if ctc_labels is not None:
                ctc_loss = phone_ctc_loss(
                    out.encoder_last_hidden_state,
                    input_ids,
                    ctc_labels,
                    self.model.shared.weight,
                    self.config.audio_token_id,
                )
                loss = loss + self.config.ctc_weight * ctc_loss
        output = OFAPlusSeq2SeqLMOutput(
            loss=loss,
            logits=logits,
            cache=out.cache,
            decoder_hidden_states=out.decoder_hidden_states,
            decoder_attentions=out.decoder_attentions,
            cross_attentions=out.cross_attentions,
            encoder_last_hidden_state=out.encoder_last_hidden_state,
            encoder_hidden_states=out.encoder_hidden_states,
            encoder_attentions=out.encoder_attentions,
            ctc_loss=ctc_loss,
        )
        return output if return_dict else output.to_tuple()

    def phone_ctc_logits(self, encoder_states: torch.Tensor) -> torch.Tensor:
        """Encoder states -> scores of the phone classes, through the phone rows of the tied embedding."""
        return phone_ctc_logits(encoder_states, self.model.shared.weight)
