"""Generation: the decoding constraints of a task plan and the model's `generate()`.

The processor turns a plan's generator settings into `DecodingConstraints` (it holds the tokenizer):
which output kind generates the task and, for token outputs, its token-level rules.
`OFAPlusGenerationMixin.generate` dispatches on that one object: token outputs go through
transformers' `GenerationMixin.generate` with the rules as logits processors (`generate_tokens`),
other output kinds through their own generator (`ofa_plus.outputs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import GenerationMixin, LogitsProcessor, LogitsProcessorList
from transformers.cache_utils import EncoderDecoderCache

from . import vocabulary as V
from .outputs import OUTPUT_KINDS, get_output_kind


class TrieLogitsProcessor(LogitsProcessor):
    """Only continuations of the allowed token sequences (each ending in EOS) keep their scores."""

    def __init__(self, sequences: list[list[int]], prompt_length: int, eos_token_id: int):
        self.root: dict = {}
        for seq in sequences:
            node = self.root
            for token in seq:
                node = node.setdefault(token, {})
        self.prompt_length, self.eos_token_id = prompt_length, eos_token_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        mask = torch.full_like(scores, float("-inf"))
        for row, generated in enumerate(input_ids[:, self.prompt_length :].tolist()):
            node = self.root
            for token in generated:
                node = node.get(token)
                if node is None:
                    break
            allowed = list(node) if node else [self.eos_token_id]  # finished or off-trie: only EOS
            mask[row, allowed] = 0.0
        return scores + mask


class BoxLogitsProcessor(LogitsProcessor):
    """Exactly four location bins per box, ordered x0 <= x1 and y0 <= y1, then EOS."""

    def __init__(self, prompt_length: int, bin_offset: int, num_bins: int, eos_token_id: int):
        self.prompt_length, self.bin_offset, self.num_bins, self.eos = (
            prompt_length,
            bin_offset,
            num_bins,
            eos_token_id,
        )

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        step = input_ids.shape[1] - self.prompt_length
        mask = torch.full_like(scores, float("-inf"))
        if step >= 4:
            mask[:, self.eos] = 0.0
            return scores + mask
        lower = torch.zeros(input_ids.shape[0], dtype=torch.long, device=input_ids.device)
        if step >= 2:  # x1 >= x0, y1 >= y0
            lower = input_ids[:, self.prompt_length + step - 2] - self.bin_offset
        bins = torch.arange(self.num_bins, device=scores.device)
        allowed = bins[None, :] >= lower[:, None]
        mask[:, self.bin_offset : self.bin_offset + self.num_bins] = torch.where(allowed, 0.0, float("-inf"))
        return scores + mask


class AllowedIdsLogitsProcessor(LogitsProcessor):
    """Only the given ids keep their scores (the target's vocabulary under ``target_vocab="modality"``)."""

    def __init__(self, allowed_ids: list[int]):
        self.allowed_ids = torch.tensor(allowed_ids)
        self.mask: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.mask is None or self.mask.shape[-1] != scores.shape[-1] or self.mask.device != scores.device:
            self.mask = torch.full((scores.shape[-1],), float("-inf"), device=scores.device, dtype=scores.dtype)
            self.mask[self.allowed_ids.to(scores.device)] = 0.0
        return scores + self.mask


@dataclass
class DecodingConstraints:
    """How one task is generated: ``output_kind`` names the output kind (`ofa_plus.outputs`) whose
    generator runs; for token outputs ``kind`` is the token-level rule: "free", "closed_set" or "box"."""

    kind: str = "free"
    sequences: list[list[int]] = field(default_factory=list)  # closed set: tokenised candidates + EOS
    eos_token_id: int = V.EOS_ID
    bin_offset: int = V.BIN_OFFSET
    num_bins: int = V.NUM_BINS
    output_kind: str = "tokens"
    # the ids the target can produce (config.target_vocab="modality"); None: the whole vocabulary
    allowed_ids: list[int] | None = None

    def logits_processors(self, prompt_length: int) -> list[LogitsProcessor]:
        if self.kind == "closed_set":
            return [TrieLogitsProcessor(self.sequences, prompt_length, self.eos_token_id)]
        if self.kind == "box":
            return [BoxLogitsProcessor(prompt_length, self.bin_offset, self.num_bins, self.eos_token_id)]
        return [AllowedIdsLogitsProcessor(self.allowed_ids)] if self.allowed_ids is not None else []

    def generate_kwargs(self, prompt_length: int) -> dict:
        """Defaults the constraint implies; explicit generate() arguments win."""
        if self.kind == "box":
            return {"max_new_tokens": 5}  # 4 bins + EOS (the processor forces EOS last)
        if self.kind == "closed_set":
            return {"max_new_tokens": max(len(s) for s in self.sequences)}
        return {}


class OFAPlusGenerationMixin(GenerationMixin):
    """`generate()` of `OFAPlusForConditionalGeneration`, for every output kind."""

    @torch.no_grad()
    def generate(
        self,
        inputs=None,
        generation_config=None,
        logits_processor=None,
        *,
        constraints: DecodingConstraints | None = None,
        **kwargs,
    ):
        """Generate with the output kind and rules of ``constraints`` (from `OFAPlusProcessor`; without
        it: free token generation).

        Token outputs (`generate_tokens`) return what `GenerationMixin.generate` returns; an AUDIO target
        returns a `SpeechGenerationOutput` (mels, ``mel_lengths``, ``stopped``); either way
        ``processor.postprocess`` turns the result into user values."""
        for key in ("num_beams", "max_new_tokens", "num_return_sequences"):
            value = kwargs.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"generate(): {key} must be a positive integer, got {value!r}")
        input_ids = kwargs.get("input_ids", inputs)
        if torch.is_tensor(input_ids) and input_ids.numel() == 0:
            raise ValueError(f"generate(): empty input_ids (shape {tuple(input_ids.shape)}): nothing to encode")
        kind = get_output_kind(constraints.output_kind if constraints is not None else "tokens")
        for key in ("ctc_labels", *(k for known in OUTPUT_KINDS.values() for k in known.label_keys)):
            kwargs.pop(key, None)  # training targets, when a labelled batch is generated from
        return kind.generate(self, inputs, generation_config, logits_processor, constraints, **kwargs)

    def generate_tokens(
        self,
        inputs=None,
        generation_config=None,
        logits_processor=None,
        constraints: DecodingConstraints | None = None,
        **kwargs,
    ):
        """`GenerationMixin.generate` plus the task's token rules: a trie over a closed set of answers, or
        exactly four ordered location bins per box. Rows whose decoder prompts (``no_loss`` prefixes)
        differ in length are generated group by group, so prompts are never padded, and the results
        are right-padded back into one tensor; with a ``decoder_attention_mask`` the prompts are
        generated as they are padded, in one batch."""
        prompts = kwargs.get("decoder_input_ids")
        lengths = None if prompts is None else prompts.ne(self.config.pad_token_id).sum(dim=1)
        if lengths is not None and kwargs.get("decoder_attention_mask") is None and len(set(lengths.tolist())) > 1:
            return self._generate_by_prompt_length(
                inputs, generation_config, logits_processor, constraints, lengths, kwargs
            )
        prompt_length = 1 if prompts is None else prompts.shape[1]
        processors = LogitsProcessorList(logits_processor or [])
        if constraints is not None:
            processors.extend(constraints.logits_processors(prompt_length))
            for key, value in constraints.generate_kwargs(prompt_length).items():
                kwargs.setdefault(key, value)
        return GenerationMixin.generate(
            self, inputs, generation_config=generation_config, logits_processor=processors, **kwargs
        )

    def prepare_inputs_for_generation(self, input_ids, next_sequence_length=None, cache=None, **kwargs):
        # Generation continued from a returned cache gets the whole sequence so far: feed only the
        # positions the cache lacks (transformers slices so only when a decoder mask is given).
        if next_sequence_length is None and cache is not None and cache.get_seq_length():
            next_sequence_length = input_ids.shape[1] - cache.get_seq_length()
        return super().prepare_inputs_for_generation(input_ids, next_sequence_length, cache, **kwargs)

    def _validate_model_kwargs(self, model_kwargs: dict):
        # the adaptors' batch keys reach forward() through its **kwargs, which transformers does not count
        adaptor_keys = set(self.get_encoder().input_keys)
        super()._validate_model_kwargs({k: v for k, v in model_kwargs.items() if k not in adaptor_keys})

    def _expand_inputs_for_generation(self, expand_size=1, is_encoder_decoder=False, input_ids=None, **model_kwargs):
        """Expand the decoder side per beam / returned sequence, but keep one copy of the encoder side.

        The copies of a row would all hold the same encoder states; the decoder's cross-attention
        instead lets a row's beams query its single copy (and its cross-attention cache is never
        reordered), so beam search neither copies nor re-reads the encoder states per beam."""
        encoder_side = ("encoder_outputs", "attention_mask", *self.get_encoder().input_keys)
        shared = {k: model_kwargs.pop(k) for k in encoder_side if k in model_kwargs}
        input_ids, model_kwargs = super()._expand_inputs_for_generation(expand_size, False, input_ids, **model_kwargs)
        return input_ids, {**model_kwargs, **shared}

    def _reorder_cache(self, cache: EncoderDecoderCache, beam_idx: torch.LongTensor) -> EncoderDecoderCache:
        # beams move only within their row, whose cross-attention keys/values they all share
        cache.self_attention_cache.reorder_cache(beam_idx)
        return cache

    def _generate_by_prompt_length(self, inputs, generation_config, logits_processor, constraints, lengths, kwargs):
        encoder = self.get_encoder()
        item_keys = set(encoder.input_keys)  # one entry per image / audio, not per row
        batch_keys = [
            k for k, v in kwargs.items() if torch.is_tensor(v) and v.shape[:1] == lengths.shape and k not in item_keys
        ]
        outputs, rows = [], []
        for length in sorted(set(lengths.tolist())):
            index = (lengths == length).nonzero().flatten()
            group = dict(kwargs)
            for key in batch_keys:
                group[key] = kwargs[key][index]
            group["decoder_input_ids"] = kwargs["decoder_input_ids"][index, :length]
            group.update(encoder.select_items(kwargs["input_ids"], index, kwargs))
            sub_inputs = None if inputs is None else inputs[index]
            outputs.append(self.generate_tokens(sub_inputs, generation_config, logits_processor, constraints, **group))
            rows.append(index)
        width = max(o.shape[1] for o in outputs)
        per_row = outputs[0].shape[0] // len(rows[0])  # num_return_sequences: consecutive sequences per row
        merged = outputs[0].new_full((len(lengths) * per_row, width), self.config.pad_token_id)
        for out, index in zip(outputs, rows):
            index = (index[:, None] * per_row + torch.arange(per_row, device=index.device)).flatten()
            merged[index, : out.shape[1]] = out
        return merged
