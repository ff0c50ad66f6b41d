"""OFA's text backend: GPT-2 byte-level BPE behind OFA+'s reserved ranges.

OFA (like BART) encodes English text with GPT-2's byte-level BPE, given by a ``vocab.json`` and a
``merges.txt``. :class:`OFAPlusBPETokenizer` runs that BPE through the ``tokenizers`` library and
gives the ids OFA+'s layout (:mod:`ofa_plus.vocabulary`): the reserved ids come first, unchanged,
and the BPE pieces follow from ``TEXT_OFFSET`` in ``vocab.json``'s id order. BART's own special pieces
``<s> <pad> </s> <unk> <mask>`` are the reserved ids of the same meaning. This is the order
`ofa_plus.convert_ofa` gives a converted OFA model's token rows, so the two fit together.

The API is :class:`~ofa_plus.tokenization_ofa_plus.OFAPlusTokenizer`'s (``encode_text``,
``decode_text``, ``bin_id``, ``code_id``, ``phone_id``, ``text_offset``, ``num_text_pieces``,
save/load, the processor). Like OFA, text is encoded with a leading space (``"a dog"`` as
``" a dog"``; GPT-2 pieces carry the space before a word) and ``decode_text`` drops that space again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizer

from .tokenization_ofa_plus import OFAPlusTokenizer
from .vocabulary import BOS_ID, EOS_ID, MASK_ID, PAD_ID, TEXT_OFFSET, UNK_ID, reserved_tokens

__all__ = ["OFAPlusBPETokenizer"]

# BART's special pieces -> OFA+'s reserved ids
BPE_SPECIALS = {"<s>": BOS_ID, "<pad>": PAD_ID, "</s>": EOS_ID, "<unk>": UNK_ID, "<mask>": MASK_ID}
WORD_START = "\u0120"  # GPT-2's byte-level form of the space that begins a word ("Ġ")
_RESERVED_TOKENS = reserved_tokens()
_RESERVED_TO_ID = {token: i for i, token in enumerate(_RESERVED_TOKENS)}


class OFAPlusBPETokenizer(OFAPlusTokenizer):
    """GPT-2 byte-level BPE pieces behind the fixed reserved ranges of :mod:`ofa_plus.vocabulary`.

    Args:
        vocab_file: GPT-2/BART ``vocab.json`` (piece -> BPE id).
        merges_file: its ``merges.txt``.
    """

    vocab_files_names = {"vocab_file": "vocab.json", "merges_file": "merges.txt"}

    def __init__(
        self,
        vocab_file: str | os.PathLike,
        merges_file: str | os.PathLike,
        bos_token: str = "<s>",
        eos_token: str = "</s>",
        unk_token: str = "<unk>",
        pad_token: str = "<pad>",
        mask_token: str = "<mask>",
        **kwargs,
    ):
        self.vocab_file, self.merges_file = str(vocab_file), str(merges_file)
        self._load_bpe()
        kwargs.setdefault("split_special_tokens", True)
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        kwargs.pop("special_tokens_pattern", None)
        kwargs.pop("sp_model_kwargs", None)
        # OFAPlusTokenizer's own __init__ loads a SentencePiece model: start one level above it
        PreTrainedTokenizer.__init__(
            self,
            bos_token=bos_token,
            eos_token=eos_token,
            unk_token=unk_token,
            pad_token=pad_token,
            mask_token=mask_token,
            special_tokens_pattern="none",
            token_type_ids_pattern="all_zeros",
            **kwargs,
        )

    def _load_bpe(self) -> None:
        with open(self.vocab_file, encoding="utf-8") as f:
            vocab: dict[str, int] = json.load(f)
        _, merges = models.BPE.read_file(self.vocab_file, self.merges_file)
        model = models.BPE(vocab, merges, unk_token="<unk>" if "<unk>" in vocab else None)
        self.bpe = Tokenizer(model)
        self.bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        self.bpe.decoder = decoders.ByteLevel()
        # BPE id -> OFA+ id; the text pieces in BPE id order, and each piece's OFA+ id
        self._pieces = [p for p, _ in sorted(vocab.items(), key=lambda item: item[1]) if p not in BPE_SPECIALS]
        self._piece_to_id = {p: TEXT_OFFSET + k for k, p in enumerate(self._pieces)}
        self._bpe_to_id = {i: BPE_SPECIALS.get(p, self._piece_to_id.get(p)) for p, i in vocab.items()}
        self._id_to_bpe = {new: old for old, new in self._bpe_to_id.items() if new >= TEXT_OFFSET}

    def __getstate__(self):
        return self.__dict__.copy()

    def __setstate__(self, state):
        self.__dict__.update(state)

    # ------------------------------------------------------------------ vocabulary
    @property
    def vocab_size(self) -> int:
        return TEXT_OFFSET + len(self._pieces)

    @property
    def num_text_pieces(self) -> int:
        return len(self._pieces)

    def get_vocab(self) -> dict[str, int]:
        vocab = dict(_RESERVED_TO_ID)
        vocab.update(self._piece_to_id)
        vocab.update(self._added_tokens_encoder)
        return vocab

    def _lookup(self, token: str) -> int | None:
        """Id of a reserved string or a BPE piece, None if unknown."""
        return _RESERVED_TO_ID.get(token, self._piece_to_id.get(token))

    def _convert_id_to_token(self, index: int) -> str:
        if 0 <= index < TEXT_OFFSET:
            return _RESERVED_TOKENS[index]
        if TEXT_OFFSET <= index < self.vocab_size:
            return self._pieces[index - TEXT_OFFSET]
        return str(self.unk_token)

    def is_word_start(self, token_id: int) -> bool:
        return self.convert_ids_to_tokens(token_id).startswith(WORD_START)

    # ------------------------------------------------------------------ encoding and decoding
    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return self.convert_ids_to_tokens(self.encode_text(text))

    def encode_text(self, text: str) -> list[int]:
        """Ids of ``text`` (no special tokens), with OFA's leading space."""
        if text and not text.startswith(" "):
            text = " " + text
        return [self._bpe_to_id[i] for i in self.bpe.encode(text, add_special_tokens=False).ids]

    def _decode_text_run(self, ids: list[int], follows_other: bool) -> str:
        text = self.bpe.decode([self._id_to_bpe[i] for i in ids], skip_special_tokens=False)
        return text if follows_other else text.removeprefix(" ")

    def decode_text(self, ids: Iterable[int]) -> str:
        """Decode the text ids of ``ids``; reserved and added ids are dropped, and so is OFA's leading space."""
        bpe_ids = [self._id_to_bpe[int(i)] for i in ids if self._is_text_id(int(i))]
        return self.bpe.decode(bpe_ids, skip_special_tokens=False).removeprefix(" ")

    # ------------------------------------------------------------------ files
    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, str]:
        if not os.path.isdir(save_directory):
            raise NotADirectoryError(save_directory)
        prefix = filename_prefix + "-" if filename_prefix else ""
        written = []
        for source, name in ((self.vocab_file, "vocab.json"), (self.merges_file, "merges.txt")):
            out = os.path.join(save_directory, prefix + name)
            if not (os.path.isfile(out) and os.path.samefile(out, source)):
                with open(source, "rb") as f_in, open(out, "wb") as f_out:
                    f_out.write(f_in.read())
            written.append(out)
        return tuple(written)
