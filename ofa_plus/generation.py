"""Decoding constraints of a task plan, as transformers `LogitsProcessor`s.

The processor turns a plan's generator settings into token-level `DecodingConstraints` (it holds
the tokenizer); `OFAPlusForConditionalGeneration.generate` turns those into logits processors.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import LogitsProcessor

from . import vocabulary as V


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
        for row, generated in enumerate(input_ids[:, self.prompt_length:].tolist()):
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
        self.prompt_length, self.bin_offset, self.num_bins, self.eos = prompt_length, bin_offset, num_bins, eos_token_id

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
        mask[:, self.bin_offset: self.bin_offset + self.num_bins] = torch.where(allowed, 0.0, float("-inf"))
        return scores + mask


@dataclass
class DecodingConstraints:
    """Token-level decoding rules of one task: ``kind`` is "free", "closed_set" or "box" ("audio" marks an
    AUDIO target: ``generate()`` then produces mel frames, with no token rules)."""

    kind: str = "free"
    sequences: list[list[int]] = field(default_factory=list)  # closed set: tokenised candidates + EOS
    eos_token_id: int = V.EOS_ID
    bin_offset: int = V.BIN_OFFSET
    num_bins: int = V.NUM_BINS

    def logits_processors(self, prompt_length: int) -> list[LogitsProcessor]:
        if self.kind == "closed_set":
            return [TrieLogitsProcessor(self.sequences, prompt_length, self.eos_token_id)]
        if self.kind == "box":
            return [BoxLogitsProcessor(prompt_length, self.bin_offset, self.num_bins, self.eos_token_id)]
        return []

    def generate_kwargs(self, prompt_length: int) -> dict:
        """Defaults the constraint implies; explicit generate() arguments win."""
        if self.kind == "box":
            return {"max_new_tokens": 5}  # 4 bins + EOS (the processor forces EOS last)
        if self.kind == "closed_set":
            return {"max_new_tokens": max(len(s) for s in self.sequences)}
        return {}
