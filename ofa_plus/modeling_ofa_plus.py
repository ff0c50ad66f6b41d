"""OFA+ model: modality adaptors, one shared encoder and decoder in OFA's style, tied unified vocabulary.

Layout follows transformers' BART: attention -> layers -> encoder/decoder -> OFAPlusModel ->
OFAPlusForConditionalGeneration. OFA specifics:

* Pre-LayerNorm layers with NormFormer's extras: a LayerNorm after attention, one inside the FFN,
  and a learned scale per attention head.
* Positions enter only as attention biases: absolute position embeddings are projected to a
  Q.K^T bias computed once per forward, and each layer adds its own relative-position bias, looked
  up per modality (1-D log buckets inside a text run, 2-D offsets inside one image) and zero
  between different segments. Nothing is added to the token embeddings except a type embedding.
* Image segments are marked in ``input_ids`` by runs of the ``<image>`` placeholder; the image
  adaptor's patch features replace them, so slots can come in any order and templates may differ
  from row to row within a batch. Audio works the same way with ``<audio>`` placeholders, one per
  subsampled frame (`AudioAdaptor`); an audio segment has 1-D positions and relative buckets like text.
* ASR rows may carry ``ctc_labels`` (phone ids): a CTC loss on the encoder's audio states, with
  logits through the phone rows of the tied embedding, is added with weight ``config.ctc_weight``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin, LogitsProcessorList, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput, Seq2SeqModelOutput

from .configuration_ofa_plus import OFAPlusConfig
from .generation import DecodingConstraints
from .modalities.audio import AudioAdaptor, audio_token_count
from .modalities.audio_target import SpeechHead, generate_speech, speech_forward
from .modalities.image import ImageAdaptor
from .modalities.phone import CTC_BLANK
from . import vocabulary as V


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


def attention(query, key, value, bias: torch.Tensor | None, dropout: float, scale: float) -> torch.Tensor:
    """softmax(q.k^T * scale + bias) v on SDPA, except for a trained bias on CPU.

    SDPA has no CPU kernel that returns the bias's gradient; its generic fallback then makes extra
    passes over the (B, H, Lq, Lk) scores (scaled copies, a "safe" softmax and its masks) that the
    plain form below does not need. The biases here are finite, so no row is fully masked."""
    if bias is None or not bias.requires_grad or query.device.type != "cpu":
        return F.scaled_dot_product_attention(query, key, value, attn_mask=bias, dropout_p=dropout, scale=scale)
    scores = torch.matmul(query * scale, key.transpose(-1, -2))
    scores += bias
    probs = scores.softmax(dim=-1)
    if dropout:
        probs = F.dropout(probs, dropout)
    return torch.matmul(probs, value)


class OFAPlusAttention(nn.Module):
    """Multi-head attention with an additive bias (see `attention`); fused QKV for self-attention."""

    def __init__(self, config: OFAPlusConfig, num_heads: int, is_cross_attention: bool = False, layer_idx: int = 0):
        super().__init__()
        d = config.d_model
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

    def forward(self, hidden_states, key_value_states=None, attn_bias=None, cache: EncoderDecoderCache | None = None):
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
        out = attention(query, key, value, attn_bias, self.dropout if self.training else 0.0, self.scaling)
        if group > 1:
            out = out.unflatten(2, (group, -1)).transpose(1, 2).flatten(0, 1)
        if self.head_scale is not None:
            out = out * self.head_scale.view(1, -1, 1, 1)
        return self.out_proj(out.transpose(1, 2).reshape(hidden_states.shape))


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
        # third such buffer; fresh ones cost page faults on CPU (base encoder, batch 16: 5% of its time).
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

    def forward(self, hidden_states, attn_bias):
        h = self.self_attn_post_norm(self.self_attn(self.self_attn_layer_norm(hidden_states), attn_bias=attn_bias))
        hidden_states = hidden_states + self.drop_path(self.dropout(h))
        h = self.ffn(self.final_layer_norm(hidden_states))
        return hidden_states + self.drop_path(self.dropout(h))


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

    def forward(self, hidden_states, encoder_hidden_states, self_attn_bias, cross_attn_bias, cache=None):
        h = self.self_attn(self.self_attn_layer_norm(hidden_states), attn_bias=self_attn_bias, cache=cache)
        hidden_states = hidden_states + self.drop_path(self.dropout(self.self_attn_post_norm(h)))
        h = self.cross_attn(self.cross_attn_layer_norm(hidden_states), encoder_hidden_states, cross_attn_bias, cache)
        hidden_states = hidden_states + self.drop_path(self.dropout(self.cross_attn_post_norm(h)))
        h = self.ffn(self.final_layer_norm(hidden_states))
        return hidden_states + self.drop_path(self.dropout(h))


class AbsolutePositionBias(nn.Module):
    """OFA's absolute positions: LayerNorm'd embeddings projected to queries/keys, bias = q.k^T."""

    def __init__(self, config: OFAPlusConfig, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.q_linear, self.k_linear = nn.Linear(config.d_model, config.d_model), nn.Linear(config.d_model, config.d_model)
        self.scaling = (config.d_model / num_heads * config.attn_scale_factor) ** -0.5

    def forward(self, query_pos: torch.Tensor, key_pos: torch.Tensor) -> torch.Tensor:
        """(B|1, Lq, d), (B|1, Lk, d) -> (B|1, H, Lq, Lk)"""
        q = self.q_linear(query_pos).unflatten(-1, (self.num_heads, -1)).transpose(1, 2) * self.scaling
        k = self.k_linear(key_pos).unflatten(-1, (self.num_heads, -1)).transpose(1, 2)
        return q @ k.transpose(-1, -2)


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
    _no_split_modules = ["OFAPlusEncoderLayer", "OFAPlusDecoderLayer", "ImageAdaptor", "AudioAdaptor"]
    _supports_sdpa = True

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
        elif isinstance(module, AudioAdaptor):
            init.zeros_(module.type_embedding)
        elif isinstance(module, nn.BatchNorm2d):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
        elif isinstance(module, OFAPlusAttention) and module.head_scale is not None:
            init.ones_(module.head_scale)
        elif isinstance(module, OFAPlusEncoder):
            init.zeros_(module.relative_bias_padding)


class OFAPlusEncoder(nn.Module):
    """Token + image segments -> contextual states. Segment layout is read off ``input_ids``."""

    main_input_name = "input_ids"

    def __init__(self, config: OFAPlusConfig, embed_tokens: nn.Embedding):
        super().__init__()
        self.config = config
        d, heads = config.d_model, config.encoder_attention_heads
        self.embed_tokens = embed_tokens
        self.image_adaptor = ImageAdaptor(config)
        self.audio_adaptor = AudioAdaptor(config)
        self.type_embedding = nn.Embedding(2, d)  # 0 = token, 1 = image patch
        self.layernorm_embedding = nn.LayerNorm(d)
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

    def segment_layout(self, input_ids: torch.Tensor, audio_start: torch.Tensor | None = None):
        """Per token: is it an image patch, its segment id, and its position inside the segment.

        ``audio_start`` marks the first ``<audio>`` placeholder of each audio, to split audios that
        follow each other directly; without it each run of placeholders is one audio."""
        is_image = input_ids == self.config.image_token_id
        kind = is_image.long() + 2 * (input_ids == self.config.audio_token_id).long()  # text 0, image 1, audio 2
        length = input_ids.shape[1]
        index = torch.arange(length, device=input_ids.device).expand_as(input_ids)
        run_start = kind != F.pad(kind[:, :-1], (1, 0), value=-1)
        in_run = index - torch.cummax(torch.where(run_start, index, 0), dim=1).values
        # a run of image placeholders may hold several images back to back: split every image_tokens
        segment_start = (run_start & ~is_image) | (is_image & (in_run % self.config.image_tokens == 0))
        if audio_start is not None:
            segment_start = segment_start | audio_start
        segment_id = segment_start.cumsum(dim=1)
        position = index - torch.cummax(torch.where(segment_start, index, 0), dim=1).values
        return is_image, segment_id, position

    def position_biases(self, input_ids: torch.Tensor, dtype: torch.dtype, audio_start: torch.Tensor | None = None):
        """Every layer's position bias, absolute + relative, as ``(layers, U, H, L, L)``, and per row
        which of the ``U`` distinct layouts it has (None when all rows share one).

        The biases depend only on where the image patches and audio segments are, and the rows of
        one task's batch nearly always share that layout (padding is text too), so they are computed
        once per layout rather than once per row: the same values, a fraction of the work and memory."""
        config = self.config
        # layout code per token: 0 text, 1 image patch, 2 audio frame, 3 first frame of an audio
        codes = (input_ids == config.image_token_id).to(torch.uint8)
        is_audio = input_ids == config.audio_token_id
        if audio_start is not None or bool(is_audio.any()):
            codes = codes + 2 * is_audio.to(torch.uint8)
            if audio_start is not None:
                codes = codes + audio_start.to(torch.uint8)
        layouts, row_layout = torch.unique(codes, dim=0, return_inverse=True)
        layout_ids = torch.where(layouts == 1, config.image_token_id,
                                 torch.where(layouts >= 2, config.audio_token_id, 0))
        is_image, segment_id, position = self.segment_layout(layout_ids, layouts == 3)
        if bool((position[~is_image] >= config.max_positions).any()):
            raise ValueError(f"a text or audio segment is longer than max_positions={config.max_positions}")
        run_end = is_image & ~F.pad(is_image[:, 1:], (0, 1), value=False)
        if bool((position[run_end] != config.image_tokens - 1).any()):  # else patches would leak across rows
            raise ValueError(f"a run of <image> placeholders is not a whole number of images "
                             f"({config.image_tokens} placeholders each)")
        grid, span = config.image_grid_size, 2 * config.image_bucket_size - 1
        row, col = position // grid, position % grid
        text_pos = self.pos_ln(self.embed_positions(position.clamp(max=config.max_positions - 1)))
        image_pos = self.image_pos_ln(self.embed_image_positions((row * config.image_bucket_size + col).clamp(
            max=config.image_bucket_size**2 - 1)))
        pos = torch.where(is_image[..., None], image_pos, text_pos).to(dtype)
        absolute = self.absolute_bias(pos, pos)

        text_bucket = token_relative_buckets(
            position[:, None, :] - position[:, :, None], config.token_bucket_size, config.max_positions
        )
        image_offset = ((row[:, None, :] - row[:, :, None] + config.image_bucket_size - 1) * span
                        + (col[:, None, :] - col[:, :, None] + config.image_bucket_size - 1))
        bucket = torch.where(is_image[:, :, None], self.num_token_buckets + image_offset, text_bucket)
        outside = self.num_token_buckets + span**2  # index of the zero row
        bucket = torch.where(segment_id[:, :, None] == segment_id[:, None, :], bucket, outside)
        # one lookup for every layer's table: (U, L, L, layers * H) -> (layers, U, H, L, L)
        tables = torch.cat([table.weight for table in self.relative_bias], dim=1)
        tables = torch.cat([tables, self.relative_bias_padding.repeat(1, len(self.relative_bias))], dim=0)
        relative = F.embedding(bucket, tables).unflatten(-1, (len(self.relative_bias), -1)).permute(3, 0, 4, 1, 2)
        return absolute + relative.to(dtype), (row_layout if len(layouts) > 1 else None)

    def embed_audio(self, x, input_ids, input_features, input_features_mask):
        """Scatter the adaptor's audio features into the ``<audio>`` placeholders; return the new
        embeddings and the mark of each audio's first placeholder (audios may follow each other)."""
        is_audio = input_ids == self.config.audio_token_id
        if input_features is None:
            raise ValueError("input_ids contain <audio> placeholders but no input_features were given")
        if input_features_mask is None:
            frames = torch.full((input_features.shape[0],), input_features.shape[1], device=input_ids.device)
        else:
            frames = input_features_mask.sum(dim=1).to(input_ids.device)
        counts = audio_token_count(frames)
        n_audio_tokens = int(is_audio.sum())
        if int(counts.sum()) != n_audio_tokens:
            raise ValueError(f"{len(counts)} audios give {int(counts.sum())} audio tokens after subsampling but "
                             f"input_ids hold {n_audio_tokens} <audio> placeholders")
        features = self.audio_adaptor(input_features.to(x.dtype))
        keep = torch.arange(features.shape[1], device=features.device) < counts[:, None].to(features.device)
        x = x.masked_scatter(is_audio[..., None], features[keep].to(x.dtype))
        # the k-th audio starts at the (counts[0] + ... + counts[k-1])-th placeholder in row-major order
        placeholders = is_audio.flatten().nonzero().squeeze(1)
        firsts = (torch.cumsum(counts, 0) - counts)[counts > 0]
        audio_start = torch.zeros(is_audio.numel(), dtype=torch.bool, device=input_ids.device)
        audio_start[placeholders[firsts]] = True
        return x, audio_start.view_as(is_audio)

    def forward(self, input_ids=None, attention_mask=None, pixel_values=None, inputs_embeds=None,
                output_hidden_states=False, return_dict=True, input_features=None, input_features_mask=None,
                **kwargs):
        if input_ids is None:
            raise ValueError("OFAPlusEncoder needs input_ids: they carry the segment layout (image placeholders)")
        is_image = input_ids == self.config.image_token_id
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        n_image_tokens = int(is_image.sum())
        if n_image_tokens:
            if pixel_values is None:
                raise ValueError("input_ids contain <image> placeholders but no pixel_values were given")
            features = self.image_adaptor(pixel_values.to(x.dtype))
            if features.shape[0] * features.shape[1] != n_image_tokens:
                raise ValueError(f"{features.shape[0]} images give {features.shape[0] * features.shape[1]} patch "
                                 f"tokens but input_ids hold {n_image_tokens} <image> placeholders")
            # under autocast the backbone returns bf16/fp16 features while the embeddings stay fp32
            x = x.masked_scatter(is_image[..., None], features.reshape(-1, x.shape[-1]).to(x.dtype))
        audio_start = None
        if bool((input_ids == self.config.audio_token_id).any()):
            x, audio_start = self.embed_audio(x, input_ids, input_features, input_features_mask)
        x = self.dropout(self.layernorm_embedding(x + self.type_embedding(is_image.long())))

        position_bias, row_layout = self.position_biases(input_ids, x.dtype, audio_start)
        if row_layout is not None:  # rows of different layouts: gather each row's biases
            position_bias = position_bias[:, row_layout]
        padding = None if attention_mask is None else _padding_bias(attention_mask, x.dtype)
        hidden_states = [x] if output_hidden_states else None
        for layer, bias in zip(self.layers, position_bias):
            x = layer(x, bias if padding is None else bias + padding)
            if output_hidden_states:
                hidden_states.append(x)
        x = self.layer_norm(x)
        return BaseModelOutput(last_hidden_state=x, hidden_states=tuple(hidden_states) if hidden_states else None)


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
            relative > 0, torch.finfo(dtype).min)
        # every layer's relative bias from one lookup: (Lq, Lk, layers * H) -> (layers, H, Lq, Lk)
        tables = torch.cat([table.weight for table in self.relative_bias], dim=1)
        relative_biases = F.embedding(bucket, tables).unflatten(-1, (len(self.layers), -1)).permute(2, 3, 0, 1)
        return absolute + (relative_biases.to(dtype) + causal)[:, None]

    def forward(self, input_ids, encoder_hidden_states, encoder_attention_mask=None, cache=None, inputs_embeds=None):
        config = self.config
        # inputs_embeds alone: continuous inputs (the speech prenet's frames) rather than tokens
        past = cache.get_seq_length() if cache is not None else 0
        length = (input_ids if input_ids is not None else inputs_embeds).shape[1]
        if past + length > config.max_positions:
            raise ValueError(f"decoder length {past + length} exceeds max_positions={config.max_positions}")
        x = self.embed_tokens(input_ids) if inputs_embeds is None else inputs_embeds
        x = self.dropout(self.layernorm_embedding(x))
        if cache is not None and not torch.is_grad_enabled():
            # Decoding: the biases depend on positions only. Compute them for a block of upcoming
            # positions, keep the block with this generation's cache and slice it at every step.
            start, block = getattr(cache, "ofa_self_attention_biases", (0, None))
            if block is None or past < start or past + length > start + block.shape[-2] or block.dtype != x.dtype:
                start = past
                block = self.self_attention_biases(past, min(config.max_positions, past + max(length, 32)), x.dtype)
                cache.ofa_self_attention_biases = (start, block)
            self_biases = block[..., past - start: past - start + length, : past + length]
        else:
            self_biases = self.self_attention_biases(past, past + length, x.dtype)
        cross_bias = None if encoder_attention_mask is None else _padding_bias(encoder_attention_mask, x.dtype)
        for layer, self_bias in zip(self.layers, self_biases.unbind(0)):
            x = layer(x, encoder_hidden_states, self_bias, cross_bias, cache)
        return self.layer_norm(x)


class OFAPlusModel(OFAPlusPreTrainedModel):
    _tied_weights_keys = {"encoder.embed_tokens.weight": "shared.weight", "decoder.embed_tokens.weight": "shared.weight"}

    def __init__(self, config: OFAPlusConfig):
        super().__init__(config)
        self.shared = nn.Embedding(config.vocab_size, config.d_model, padding_idx=config.pad_token_id)
        self.encoder = OFAPlusEncoder(config, self.shared)
        self.decoder = OFAPlusDecoder(config, self.shared)
        self.post_init()

    def get_input_embeddings(self):
        return self.shared

    def set_input_embeddings(self, value):
        self.shared = self.encoder.embed_tokens = self.decoder.embed_tokens = value

    def get_encoder(self):
        return self.encoder

    def forward(self, input_ids=None, attention_mask=None, pixel_values=None, decoder_input_ids=None,
                encoder_outputs=None, cache: Cache | None = None, use_cache=None, output_hidden_states=None,
                input_features=None, input_features_mask=None, decoder_inputs_embeds=None,
                tied_head_gradient: TiedHeadGradient | None = None, **kwargs):
        """``tied_head_gradient`` (internal, from `OFAPlusForConditionalGeneration`): when the token lookup
        below runs, its backward adds its rows into the LM loss's gradient of the tied table (see there)."""
        inputs_embeds = None
        if (encoder_outputs is None and input_ids is not None and decoder_input_ids is not None
                and decoder_inputs_embeds is None):
            # one lookup for both sides: in training the shared table then takes one gradient from
            # the token lookups rather than two, each as large as the table
            ids = torch.cat([input_ids.flatten(), decoder_input_ids.flatten()])
            if tied_head_gradient is not None and torch.is_grad_enabled() and self.shared.weight.requires_grad:
                tokens = _TiedTokenLookup.apply(ids, self.shared.weight, self.shared.padding_idx, tied_head_gradient)
            else:
                tokens = F.embedding(ids, self.shared.weight, self.shared.padding_idx)
            inputs_embeds, decoder_inputs_embeds = tokens.split([input_ids.numel(), decoder_input_ids.numel()])
            inputs_embeds = inputs_embeds.view(*input_ids.shape, -1)
            decoder_inputs_embeds = decoder_inputs_embeds.view(*decoder_input_ids.shape, -1)
        if encoder_outputs is None:
            encoder_outputs = self.encoder(input_ids=input_ids, attention_mask=attention_mask, pixel_values=pixel_values,
                                           inputs_embeds=inputs_embeds, output_hidden_states=output_hidden_states,
                                           input_features=input_features, input_features_mask=input_features_mask)
        use_cache = self.config.use_cache if use_cache is None else use_cache
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(config=self.config), DynamicCache(config=self.config))
        hidden = self.decoder(decoder_input_ids, encoder_outputs.last_hidden_state, attention_mask,
                              cache if use_cache else None, decoder_inputs_embeds)
        return Seq2SeqModelOutput(
            last_hidden_state=hidden, cache=cache if use_cache else None,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
        )


def _gather_rows(source: torch.Tensor, index: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """source[index] written into ``out`` (in its dtype), without a temporary when the dtypes match."""
    if source.dtype == out.dtype:
        return torch.index_select(source, 0, index, out=out)
    return out.copy_(source.index_select(0, index))


class TiedHeadGradient:
    """Carries the LM loss's gradient of the tied token table to the token lookup's backward pass.

    The table gets gradients from the LM head (dense: every row has a logit) and from the token lookups
    (a few rows). Left to autograd, the lookup's part is a second table-sized buffer, zero-filled and
    then added to the head's (183 MB each at base, page-faulted in fresh every step). Instead the
    loss's backward leaves its dense gradient here, and the lookup's backward, which autograd runs
    after it (the decoder's input comes from the lookup), adds its rows into that buffer and returns
    the sum. The table then still receives one gradient through one AccumulateGrad, so gradient
    hooks (DistributedDataParallel's) fire as usual."""

    def __init__(self):
        self.lookup_in_graph = False  # set by the lookup's forward: only then may the loss hand its part over
        self.head = None  # the loss's gradient of the table, waiting for the lookup's backward


class _TiedTokenLookup(torch.autograd.Function):
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


class _LabelSmoothedLMLoss(torch.autograd.Function):
    """The LM head's label-smoothed token loss, with the head's backward pass on labelled rows only.

    Value and gradients equal ``F.cross_entropy(hidden @ weight.T, labels, ignore_index=-100,
    label_smoothing=eps)``. The forward pass reads the logits the model returns anyway, a few rows at
    a time through one small buffer (no (tokens, vocab) temporaries); the backward pass writes
    softmax - eps / V - (1 - eps) * onehot for the labelled rows into one buffer and multiplies it into
    the hidden states and the weight. Rows without a label (padding, no_loss prompts) cost nothing,
    and neither the log-probabilities nor autograd's separate gradient terms are kept."""

    @staticmethod
    def forward(ctx, hidden, weight, logits, labels, eps: float, tied: TiedHeadGradient | None = None):
        rows = (labels != -100).nonzero().squeeze(1)
        target = labels[rows]
        dtype = torch.promote_types(logits.dtype, torch.float32)  # bf16/fp16 logits: work in fp32
        chunk = max(1, 2**20 // logits.shape[-1])  # ~4 MB of fp32 logits at a time
        buffer = logits.new_empty(min(chunk, len(rows)), logits.shape[-1], dtype=dtype)
        lse, mean = logits.new_empty(len(rows), dtype=dtype), logits.new_empty(len(rows), dtype=dtype)
        for start in range(0, len(rows), chunk):
            end = start + chunk
            part = _gather_rows(logits, rows[start:end], buffer[: len(rows[start:end])])
            mean[start:end] = part.mean(dim=-1)
            top = part.amax(dim=-1, keepdim=True)  # log-sum-exp, in place
            lse[start:end] = part.sub_(top).exp_().sum(dim=-1).log_() + top.squeeze(-1)
        target_logit = logits[rows, target].to(dtype)
        ctx.save_for_backward(hidden, weight, logits, rows, target, lse)
        ctx.eps, ctx.chunk, ctx.tied = eps, chunk, tied
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
            part = _gather_rows(logits, rows[start:end], grad[start:end])
            part.sub_(lse[start:end, None]).exp_().sub_(eps / vocab)
            part[torch.arange(len(part), device=part.device), target[start:end]] -= 1 - eps
            part.mul_(scale)
        grad = grad.to(weight.dtype)
        grad_hidden = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_hidden = torch.zeros_like(hidden)
            grad_hidden[rows] = (grad @ weight).to(hidden.dtype)
        if ctx.needs_input_grad[1]:
            grad_weight = (grad.t() @ hidden[rows].to(grad.dtype)).to(weight.dtype)
            if ctx.tied is not None and ctx.tied.lookup_in_graph:  # the token lookup returns it, with its rows
                ctx.tied.head, grad_weight = grad_weight, None
        return grad_hidden, grad_weight, None, None, None, None


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, start_token_id: int) -> torch.Tensor:
    shifted = labels.new_full(labels.shape, pad_token_id)
    shifted[:, 1:] = labels[:, :-1].masked_fill(labels[:, :-1] == -100, pad_token_id)
    shifted[:, 0] = start_token_id
    return shifted


@dataclass
class OFAPlusSeq2SeqLMOutput(Seq2SeqLMOutput):
    """`Seq2SeqLMOutput` plus ``ctc_loss``: the phone CTC loss (unweighted) when ``ctc_labels`` were given."""

    ctc_loss: torch.FloatTensor | None = None


class OFAPlusForConditionalGeneration(OFAPlusPreTrainedModel, GenerationMixin):
    _tied_weights_keys = {"lm_head.weight": "model.shared.weight"}

    def __init__(self, config: OFAPlusConfig):
        super().__init__(config)
        self.model = OFAPlusModel(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.speech_head = SpeechHead(config)  # AUDIO targets (text-to-speech)
        self.post_init()

    _decoding_head: tuple | None = None  # (what the copy was made from, the (d_model, vocab) copy); see lm_logits

    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """The LM head: ``hidden @ lm_head.weight.T``.

        Decoding on CPU (eval mode, no gradient) multiplies by a cached (d_model, vocab) contiguous copy
        of the weight instead. With the weight's own (vocab, d_model) layout the product of the few rows
        of a decoding step runs 10-20% slower here (base, 59.6k x 768: 44 ms against 36 ms for 16 rows),
        and at base the head is a quarter to a third of each step. The copy costs the table's memory
        again while the model is in eval mode: it is made again when the weight changes (in place or
        replaced) and dropped by ``train()``. Elsewhere (training, CUDA) it is the plain head."""
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

    def forward(self, input_ids=None, attention_mask=None, pixel_values=None, decoder_input_ids=None,
                encoder_outputs=None, cache: Cache | None = None, labels=None, use_cache=None,
                output_hidden_states=None, return_dict=None, input_features=None, input_features_mask=None,
                ctc_labels=None, mel_labels=None, mel_lengths=None, **kwargs):
        r"""
        labels (`torch.LongTensor` of shape `(batch, target_length)`, *optional*):
            Target ids; -100 marks positions without loss (padding, `no_loss` prefixes). When
            `decoder_input_ids` is not given it is `labels` shifted right behind the start token.
        mel_labels (`torch.FloatTensor` of shape `(batch, frames, tts_num_mel_bins)`, *optional*):
            An AUDIO target's log-mel frames (zero-padded; `mel_lengths` gives each row's count). The
            decoder then runs on prenet-embedded frames and the output is an `OFAPlusSpeechOutput`
            with the Tacotron loss (see `ofa_plus.modalities.audio_target`).
        input_features (`torch.FloatTensor` of shape `(audios, frames, audio_feature_size)`, *optional*):
            Filterbanks of the batch's audios in row order (`OFAPlusAudioFeatureExtractor`), with
            `input_features_mask` `(audios, frames)` marking real frames.
        ctc_labels (`torch.LongTensor` of shape `(batch, phones)`, *optional*):
            Phone ids (padded with -100) of each row's transcript: adds `config.ctc_weight` times a
            CTC loss on the encoder states of the row's audio placeholders (with `labels` only).
        """
        if mel_labels is not None:
            return speech_forward(self, input_ids, attention_mask, pixel_values, encoder_outputs, mel_labels,
                                  mel_lengths, input_features=input_features, input_features_mask=input_features_mask)
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None:
                decoder_input_ids = shift_tokens_right(labels, self.config.pad_token_id,
                                                       self.config.decoder_start_token_id)
        # the LM head and the token lookups share one table: one gradient buffer for both (TiedHeadGradient)
        tied = TiedHeadGradient() if labels is not None and self.lm_head.weight is self.model.shared.weight else None
        out = self.model(input_ids, attention_mask, pixel_values, decoder_input_ids, encoder_outputs,
                         cache=cache, use_cache=use_cache, output_hidden_states=output_hidden_states,
                         input_features=input_features, input_features_mask=input_features_mask,
                         tied_head_gradient=tied)
        logits = self.lm_logits(out.last_hidden_state)
        loss = ctc_loss = None
        if labels is not None:  # the loss back-propagates through the head itself, on labelled rows only
            loss = _LabelSmoothedLMLoss.apply(out.last_hidden_state.flatten(0, 1), self.lm_head.weight,
                                              logits.detach().flatten(0, 1), labels.flatten(),
                                              self.config.label_smoothing, tied)
            if ctc_labels is not None:
                ctc_loss = self.phone_ctc_loss(out.encoder_last_hidden_state, input_ids, ctc_labels)
                loss = loss + self.config.ctc_weight * ctc_loss
        return OFAPlusSeq2SeqLMOutput(loss=loss, logits=logits, cache=out.cache,
                                      encoder_last_hidden_state=out.encoder_last_hidden_state,
                                      encoder_hidden_states=out.encoder_hidden_states, ctc_loss=ctc_loss)

    def phone_ctc_logits(self, encoder_states: torch.Tensor) -> torch.Tensor:
        """Encoder states -> scores of the ``NUM_PHONE_SLOTS`` phone classes, through the phone rows of
        the tied embedding; class `phone.CTC_BLANK` (the last, unused phone slot) is the CTC blank."""
        phones = self.model.shared.weight[V.PHONE_OFFSET: V.PHONE_OFFSET + V.NUM_PHONE_SLOTS]
        return encoder_states @ phones.t().to(encoder_states.dtype)

    def phone_ctc_loss(self, encoder_states, input_ids, ctc_labels) -> torch.Tensor:
        """Mean over rows of CTC(-log p(phones | the row's audio states)) / phones (F.ctc_loss "mean")."""
        if input_ids is None:
            raise ValueError("ctc_labels need input_ids: the <audio> placeholders say where the audio states are")
        is_audio = input_ids == self.config.audio_token_id
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
        log_probs = self.phone_ctc_logits(audio_states).float().log_softmax(dim=-1)
        targets = (ctc_labels - V.PHONE_OFFSET).clamp(min=0)
        return F.ctc_loss(log_probs.transpose(0, 1), targets, lengths, (ctc_labels != -100).sum(dim=1),
                          blank=CTC_BLANK, reduction="mean", zero_infinity=True)

    @torch.no_grad()
    def generate(self, inputs=None, generation_config=None, logits_processor=None, *,
                 constraints: DecodingConstraints | None = None, task_plan=None, **kwargs):
        """`GenerationMixin.generate`, plus the task's decoding constraints when the processor gives them.

        ``constraints`` (from `OFAPlusProcessor`) adds the plan's logits processors: a trie over a
        closed set of answers, or exactly four ordered location bins per box. Rows whose decoder
        prompts (``no_loss`` prefixes) differ in length are generated group by group, so prompts are
        never padded, and the results are right-padded back into one tensor.

        For an AUDIO target (the plan's generator kind "audio") it runs
        `ofa_plus.modalities.audio_target.generate_speech` instead and returns a `SpeechGenerationOutput`
        (mels, ``mel_lengths``, ``stopped``) that ``processor.postprocess`` turns into waveforms.
        """
        if (constraints is not None and constraints.kind == "audio") or (
                task_plan is not None and task_plan.generator.kind == "audio"):
            # an AUDIO target: mel frames, not tokens (returns a `SpeechGenerationOutput`)
            return generate_speech(self, inputs if inputs is not None else kwargs.pop("input_ids", None),
                                   generation_config=generation_config, logits_processor=logits_processor, **kwargs)
        del task_plan  # carried by the processor's output for postprocess(); nothing to do here
        kwargs.pop("ctc_labels", None)  # a training target, when a labelled batch is generated from
        prompts = kwargs.get("decoder_input_ids")
        lengths = None if prompts is None else prompts.ne(self.config.pad_token_id).sum(dim=1)
        if lengths is not None and len(set(lengths.tolist())) > 1:
            return self._generate_by_prompt_length(inputs, generation_config, logits_processor, constraints,
                                                   lengths, kwargs)
        prompt_length = 1 if prompts is None else prompts.shape[1]
        processors = LogitsProcessorList(logits_processor or [])
        if constraints is not None:
            processors.extend(constraints.logits_processors(prompt_length))
            for key, value in constraints.generate_kwargs(prompt_length).items():
                kwargs.setdefault(key, value)
        return super().generate(inputs, generation_config=generation_config, logits_processor=processors, **kwargs)

    def _expand_inputs_for_generation(self, expand_size=1, is_encoder_decoder=False, input_ids=None, **model_kwargs):
        """Expand the decoder side per beam / returned sequence, but keep one copy of the encoder side.

        The copies of a row would all hold the same encoder states; the decoder's cross-attention
        instead lets a row's beams query its single copy (and its cross-attention cache is never
        reordered), so beam search neither copies nor re-reads the encoder states per beam."""
        shared = {k: model_kwargs.pop(k) for k in ("encoder_outputs", "attention_mask", "pixel_values",
                                                   "input_features", "input_features_mask") if k in model_kwargs}
        input_ids, model_kwargs = super()._expand_inputs_for_generation(expand_size, False, input_ids, **model_kwargs)
        return input_ids, {**model_kwargs, **shared}

    def _reorder_cache(self, cache: EncoderDecoderCache, beam_idx: torch.LongTensor) -> EncoderDecoderCache:
        # beams move only within their row, whose cross-attention keys/values they all share
        cache.self_attention_cache.reorder_cache(beam_idx)
        return cache

    def _generate_by_prompt_length(self, inputs, generation_config, logits_processor, constraints, lengths, kwargs):
        batch_keys = [k for k, v in kwargs.items() if torch.is_tensor(v) and v.shape[:1] == lengths.shape
                      and k not in ("pixel_values", "input_features", "input_features_mask")]
        outputs, rows = [], []
        for length in sorted(set(lengths.tolist())):
            index = (lengths == length).nonzero().flatten()
            group = dict(kwargs)
            for key in batch_keys:
                group[key] = kwargs[key][index]
            group["decoder_input_ids"] = kwargs["decoder_input_ids"][index, :length]
            if kwargs.get("pixel_values") is not None:
                group["pixel_values"] = _select_images(kwargs["input_ids"], kwargs["pixel_values"], index,
                                                       self.config.image_token_id, self.config.image_tokens)
            if kwargs.get("input_features") is not None:
                keep = _select_audios(kwargs["input_ids"], kwargs.get("input_features_mask"),
                                      kwargs["input_features"], index, self.config.audio_token_id)
                group["input_features"] = kwargs["input_features"][keep]
                if kwargs.get("input_features_mask") is not None:
                    group["input_features_mask"] = kwargs["input_features_mask"][keep]
            sub_inputs = None if inputs is None else inputs[index]
            outputs.append(self.generate(sub_inputs, generation_config, logits_processor,
                                         constraints=constraints, **group))
            rows.append(index)
        width = max(o.shape[1] for o in outputs)
        per_row = outputs[0].shape[0] // len(rows[0])  # num_return_sequences: consecutive sequences per row
        merged = outputs[0].new_full((len(lengths) * per_row, width), self.config.pad_token_id)
        for out, index in zip(outputs, rows):
            index = (index[:, None] * per_row + torch.arange(per_row, device=index.device)).flatten()
            merged[index, : out.shape[1]] = out
        return merged


def _select_images(input_ids, pixel_values, rows, image_token_id, image_tokens):
    """pixel_values hold every image of the batch in order; keep those of ``rows``."""
    per_row = (input_ids == image_token_id).sum(dim=1) // image_tokens
    first = torch.cumsum(per_row, 0) - per_row
    keep = [i for r in rows.tolist() for i in range(int(first[r]), int(first[r] + per_row[r]))]
    return pixel_values[keep]


def _select_audios(input_ids, input_features_mask, input_features, rows, audio_token_id) -> list[int]:
    """Indices of the audios (in the batch's row order) that belong to ``rows``."""
    if input_features_mask is None:
        frames = torch.full((input_features.shape[0],), input_features.shape[1])
    else:
        frames = input_features_mask.sum(dim=1).cpu()
    counts = audio_token_count(frames)
    row_end = torch.cumsum((input_ids == audio_token_id).sum(dim=1).cpu(), 0)
    audio_row = torch.searchsorted(row_end, torch.cumsum(counts, 0) - counts, right=True)
    wanted = set(rows.tolist())
    return [i for i, r in enumerate(audio_row.tolist()) if r in wanted]
