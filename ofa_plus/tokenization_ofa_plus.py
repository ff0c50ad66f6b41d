"""The unified OFA+ tokenizer: one id space for text, location bins, image codes and phones.

Ids follow :mod:`ofa_plus.vocabulary`: the reserved ids ``0 .. TEXT_OFFSET-1`` (specials, ``<bin_i>``,
``<code_i>``, ``<phone_x>``) come first and never move; SentencePiece piece ``k`` has id
``TEXT_OFFSET + k``, except SentencePiece's own unknown piece, which maps to ``<unk>`` (= ``UNK_ID``).

:class:`OFAPlusTokenizer` is a transformers "slow" (Python) tokenizer, so ``save_pretrained`` /
``from_pretrained`` / ``AutoTokenizer`` / ``__call__`` / ``decode`` / padding all work as usual.
Behaviour that differs from most Hugging Face tokenizers, on purpose:

* no BOS/EOS is added (``build_inputs_with_special_tokens`` returns the ids unchanged): the
  processor puts ``<s>`` / ``</s>`` around runs of text itself;
* encoding a string never yields a reserved id other than ``<unk>``: the text ``"<bin_3>"`` or
  ``"<s>"`` is just characters. Reserved ids are reached through the API instead:
  ``convert_tokens_to_ids("<bin_3>")``, :meth:`OFAPlusTokenizer.bin_id`, :meth:`~OFAPlusTokenizer.code_id`,
  :meth:`~OFAPlusTokenizer.phone_id`;
* decoding renders reserved ids as their strings (``"<bin_3>"``); ``skip_special_tokens=True``
  drops only the special tokens pad/bos/eos/unk/mask. Text runs decode exactly
  (``decode(encode(s)) == s``: identity normalisation, no whitespace folding, byte fallback).

Shipped default tokenizer
-------------------------
``ofa_plus/assets/tokenizer/`` holds a unigram SentencePiece model of 8000 pieces trained on
``default_corpus()`` (docstrings of the Python standard library, Unicode character names, number
words); load it with :meth:`OFAPlusTokenizer.from_default`. Training (the corpus, ``train_tokenizer``
and the command that rebuilds the asset or trains on your own text) lives in
:mod:`ofa_plus.tokenizer_training`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import sentencepiece as spm
from transformers import PreTrainedTokenizer
from transformers.tokenization_utils_base import AddedToken

from .vocabulary import (
    BIN_OFFSET,
    BOS_ID,
    CODE_OFFSET,
    EOS_ID,
    MASK_ID,
    NUM_BINS,
    NUM_CODES,
    NUM_PHONE_SLOTS,
    PAD_ID,
    PHONE_OFFSET,
    PHONES,
    TEXT_OFFSET,
    UNK_ID,
    reserved_tokens,
)

__all__ = ["OFAPlusTokenizer", "DEFAULT_TOKENIZER_DIR"]

DEFAULT_TOKENIZER_DIR = Path(__file__).resolve().parent / "assets" / "tokenizer"
VOCAB_FILES_NAMES = {"vocab_file": "spiece.model"}
SPIECE_UNDERLINE = "\u2581"

_RESERVED_TOKENS: list[str] = reserved_tokens()
_RESERVED_TO_ID: dict[str, int] = {tok: i for i, tok in enumerate(_RESERVED_TOKENS)}
_PHONE_TO_ID: dict[str, int] = {sym: PHONE_OFFSET + i for i, sym in enumerate(PHONES)}
assert (PAD_ID, BOS_ID, EOS_ID, UNK_ID, MASK_ID) == tuple(
    _RESERVED_TO_ID[t] for t in ("<pad>", "<s>", "</s>", "<unk>", "<mask>")
)


def _default_vocab_file() -> str:
    path = DEFAULT_TOKENIZER_DIR / VOCAB_FILES_NAMES["vocab_file"]
    if not path.is_file():  # e.g. a zipped install: go through importlib.resources
        from importlib import resources

        ref = resources.files("ofa_plus").joinpath("assets", "tokenizer", VOCAB_FILES_NAMES["vocab_file"])
        with resources.as_file(ref) as p:
            return str(p)
    return str(path)


class OFAPlusTokenizer(PreTrainedTokenizer):
    """SentencePiece text pieces shifted behind the fixed reserved ranges of :mod:`ofa_plus.vocabulary`.

    Args:
        vocab_file: path of a SentencePiece ``.model`` file; ``None`` loads the shipped default.
        sp_model_kwargs: passed to ``sentencepiece.SentencePieceProcessor``.
    """

    vocab_files_names = VOCAB_FILES_NAMES
    model_input_names = ["input_ids", "attention_mask"]

    def __init__(
        self,
        vocab_file: str | os.PathLike | None = None,
        bos_token: str = "<s>",
        eos_token: str = "</s>",
        unk_token: str = "<unk>",
        pad_token: str = "<pad>",
        mask_token: str = "<mask>",
        sp_model_kwargs: dict[str, Any] | None = None,
        **kwargs,
    ):
        self.vocab_file = str(vocab_file) if vocab_file is not None else _default_vocab_file()
        self.sp_model_kwargs = dict(sp_model_kwargs or {})
        self.sp_model = self._load_sp_model(model_file=self.vocab_file)
        # plain text never turns into special ids; padding side etc. keep transformers' defaults
        kwargs.setdefault("split_special_tokens", True)
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        kwargs.pop("special_tokens_pattern", None)
        super().__init__(
            bos_token=bos_token,
            eos_token=eos_token,
            unk_token=unk_token,
            pad_token=pad_token,
            mask_token=mask_token,
            sp_model_kwargs=self.sp_model_kwargs,
            special_tokens_pattern="none",
            token_type_ids_pattern="all_zeros",
            **kwargs,
        )

    # ------------------------------------------------------------------ sentencepiece plumbing
    def _load_sp_model(self, model_file: str | None = None, proto: bytes | None = None):
        sp = spm.SentencePieceProcessor(**self.sp_model_kwargs)
        if proto is not None:
            sp.LoadFromSerializedProto(proto)
        else:
            sp.Load(model_file)
        self._sp_unk = sp.unk_id()
        self._sp_size = sp.get_piece_size()
        return sp

    def __getstate__(self):
        state = self.__dict__.copy()
        state["sp_model"] = None
        state["_sp_model_proto"] = self.sp_model.serialized_model_proto()
        return state

    def __setstate__(self, state):
        proto = state.pop("_sp_model_proto")
        self.__dict__.update(state)
        self.sp_model = self._load_sp_model(proto=proto)

    # ------------------------------------------------------------------ vocabulary
    @property
    def vocab_size(self) -> int:
        """Reserved ids + SentencePiece pieces (= ``len(self)`` unless tokens were added)."""
        return TEXT_OFFSET + self._sp_size

    @property
    def text_offset(self) -> int:
        return TEXT_OFFSET

    @property
    def num_text_pieces(self) -> int:
        return self._sp_size

    def __len__(self) -> int:
        return self.total_vocab_size or self._compute_total_vocab_size()

    def _compute_total_vocab_size(self) -> int:
        extra = [i for i in getattr(self, "_added_tokens_decoder", {}) if i >= self.vocab_size]
        return max([self.vocab_size - 1, *extra]) + 1

    def _update_total_vocab_size(self):
        self.total_vocab_size = self._compute_total_vocab_size()

    def get_vocab(self) -> dict[str, int]:
        vocab = dict(_RESERVED_TO_ID)
        for k in range(self._sp_size):
            if k != self._sp_unk:
                vocab.setdefault(self.sp_model.id_to_piece(k), TEXT_OFFSET + k)
        vocab.update(self._added_tokens_encoder)
        return vocab

    def _add_tokens(self, new_tokens, special_tokens: bool = False) -> int:
        """Tokens already in the vocabulary (reserved strings, pieces) keep their id; others are appended."""
        if not new_tokens:
            return 0
        next_index = len(self)
        num_added = 0
        for token in new_tokens:
            if not isinstance(token, (str, AddedToken)):
                raise TypeError(f"Token {token} is not a string but a {type(token)}.")
            if str(token) == "":
                continue
            if isinstance(token, str):
                if token in self._added_tokens_encoder:
                    continue
                is_special = token in self.all_special_tokens or special_tokens
                token = AddedToken(token, rstrip=False, lstrip=False, normalized=not is_special, special=is_special)
            elif special_tokens:
                token.__setstate__({"special": True, "normalized": token.normalized})
            if token.content in self._added_tokens_encoder:
                continue
            existing = self._lookup(token.content)
            if existing is not None:
                token_index = existing
            else:
                token_index = next_index
                next_index += 1
                num_added += 1
            if token.special and str(token) not in self.all_special_tokens:
                self._extra_special_tokens.append(token)
            self._added_tokens_decoder[token_index] = token
            self._added_tokens_encoder[token.content] = token_index
        self._update_trie()
        self._update_total_vocab_size()
        return num_added

    def _lookup(self, token: str) -> int | None:
        """Id of a reserved string or a SentencePiece piece, None if unknown."""
        if token in _RESERVED_TO_ID:
            return _RESERVED_TO_ID[token]
        pid = self.sp_model.piece_to_id(token)
        if pid == self._sp_unk:
            return None
        return TEXT_OFFSET + pid

    def _convert_token_to_id(self, token: str) -> int:
        i = self._lookup(token)
        return UNK_ID if i is None else i

    def _convert_id_to_token(self, index: int) -> str:
        if 0 <= index < TEXT_OFFSET:
            return _RESERVED_TOKENS[index]
        if TEXT_OFFSET <= index < self.vocab_size:
            return self.sp_model.id_to_piece(index - TEXT_OFFSET)
        return str(self.unk_token)

    # ------------------------------------------------------------------ encoding
    def _tokenize(self, text: str, **kwargs) -> list[str]:
        return self.sp_model.encode(text, out_type=str)

    def encode_text(self, text: str) -> list[int]:
        """Ids of ``text`` (no special tokens), straight through SentencePiece."""
        unk, off = self._sp_unk, TEXT_OFFSET
        return [UNK_ID if i == unk else off + i for i in self.sp_model.encode(text)]

    def _encode_plus(self, text, text_pair=None, *args, is_split_into_words: bool = False, **kwargs):
        # Strings go straight to ids through SentencePiece (never through token strings, so a piece
        # spelled like a reserved token can never be mistaken for it). Batches recurse into here.
        if not is_split_into_words:
            if isinstance(text, str) and text:
                text = self.encode_text(text)
            if isinstance(text_pair, str) and text_pair:
                text_pair = self.encode_text(text_pair)
        return super()._encode_plus(text, text_pair, *args, is_split_into_words=is_split_into_words, **kwargs)

    def build_inputs_with_special_tokens(self, token_ids_0: list[int], token_ids_1: list[int] | None = None):
        """No BOS/EOS: the processor adds them around runs of text. Pairs are simply concatenated."""
        return list(token_ids_0) + (list(token_ids_1) if token_ids_1 is not None else [])

    def get_special_tokens_mask(self, token_ids_0, token_ids_1=None, already_has_special_tokens: bool = False):
        if already_has_special_tokens:
            return super().get_special_tokens_mask(token_ids_0, token_ids_1, already_has_special_tokens=True)
        return [0] * (len(token_ids_0) + (len(token_ids_1) if token_ids_1 is not None else 0))

    def create_token_type_ids_from_sequences(self, token_ids_0, token_ids_1=None):
        return [0] * (len(token_ids_0) + (len(token_ids_1) if token_ids_1 is not None else 0))

    # ------------------------------------------------------------------ decoding
    def _is_text_id(self, i: int) -> bool:
        return TEXT_OFFSET <= i < self.vocab_size and i not in self._added_tokens_decoder

    def _decode(
        self,
        token_ids: int | list[int],
        skip_special_tokens: bool = False,
        clean_up_tokenization_spaces: bool | None = None,
        **kwargs,
    ) -> str:
        """Runs of text ids decode through SentencePiece (exact); other ids render as their strings.

        A text run that follows a reserved token keeps its leading space (``"<bin_3> a dog"``);
        reserved tokens are not separated by spaces (``"<bin_1><bin_2>"``).
        """
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        skip = set(self.all_special_ids) if skip_special_tokens else set()
        parts: list[str] = []
        run: list[int] = []

        def flush():
            if run:
                parts.append(self._decode_text_run(run, follows_other=bool(parts)))
                run.clear()

        for i in token_ids:
            i = int(i)
            if i in skip:
                continue
            if self._is_text_id(i):
                run.append(i)
            else:
                flush()
                parts.append(self.convert_ids_to_tokens(i))
        flush()
        text = "".join(parts)
        if (
            clean_up_tokenization_spaces
            if clean_up_tokenization_spaces is not None
            else self.clean_up_tokenization_spaces
        ):
            text = self.clean_up_tokenization(text)
        return text

    def _decode_text_run(self, ids: list[int], follows_other: bool) -> str:
        """A run of text ids as text; after a reserved token it keeps its leading space."""
        pieces = [i - TEXT_OFFSET for i in ids]
        text = self.sp_model.decode(pieces)
        if follows_other and self.sp_model.id_to_piece(pieces[0]).startswith(SPIECE_UNDERLINE):
            text = " " + text
        return text

    def is_word_start(self, token_id: int) -> bool:
        """Whether the text piece ``token_id`` starts a word (for whole-word masking)."""
        return self.convert_ids_to_tokens(token_id).startswith(SPIECE_UNDERLINE)

    def decode_text(self, ids: Iterable[int]) -> str:
        """Decode the text ids of ``ids`` through SentencePiece; reserved and added ids are dropped."""
        return self.sp_model.decode([int(i) - TEXT_OFFSET for i in ids if self._is_text_id(int(i))])

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return self._decode([self._convert_token_to_id_with_added_voc(t) for t in tokens])

    # ------------------------------------------------------------------ reserved ranges
    @staticmethod
    def bin_id(i: int) -> int:
        """Id of location bin ``<bin_i>``, ``0 <= i < NUM_BINS``."""
        if not 0 <= int(i) < NUM_BINS:
            raise ValueError(f"bin index {i} out of range [0, {NUM_BINS})")
        return BIN_OFFSET + int(i)

    @staticmethod
    def code_id(i: int) -> int:
        """Id of image code ``<code_i>``, ``0 <= i < NUM_CODES``."""
        if not 0 <= int(i) < NUM_CODES:
            raise ValueError(f"code index {i} out of range [0, {NUM_CODES})")
        return CODE_OFFSET + int(i)

    @staticmethod
    def phone_id(symbol: str) -> int:
        """Id of a phone: an IPA symbol of ``vocabulary.PHONES`` (``"ə"``) or its token (``"<phone_ə>"``)."""
        if symbol in _PHONE_TO_ID:
            return _PHONE_TO_ID[symbol]
        i = _RESERVED_TO_ID.get(symbol)
        if i is not None and PHONE_OFFSET <= i < PHONE_OFFSET + NUM_PHONE_SLOTS:
            return i
        raise KeyError(f"unknown phone {symbol!r}")

    @staticmethod
    def is_bin(token_id: int) -> bool:
        return BIN_OFFSET <= token_id < BIN_OFFSET + NUM_BINS

    @staticmethod
    def is_code(token_id: int) -> bool:
        return CODE_OFFSET <= token_id < CODE_OFFSET + NUM_CODES

    @staticmethod
    def is_phone(token_id: int) -> bool:
        return PHONE_OFFSET <= token_id < PHONE_OFFSET + NUM_PHONE_SLOTS

    def is_text(self, token_id: int) -> bool:
        return TEXT_OFFSET <= token_id < self.vocab_size

    # ------------------------------------------------------------------ files
    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str]:
        if not os.path.isdir(save_directory):
            raise NotADirectoryError(save_directory)
        out = os.path.join(save_directory, (filename_prefix + "-" if filename_prefix else "") + "spiece.model")
        if not (os.path.isfile(out) and os.path.samefile(out, self.vocab_file)):
            with open(out, "wb") as f:
                f.write(self.sp_model.serialized_model_proto())
        return (out,)

    @classmethod
    def from_default(cls, **kwargs) -> OFAPlusTokenizer:
        """The tokenizer shipped in ``ofa_plus/assets/tokenizer`` (see the module docstring)."""
        if DEFAULT_TOKENIZER_DIR.is_dir():
            return cls.from_pretrained(str(DEFAULT_TOKENIZER_DIR), **kwargs)
        from importlib import resources

        with resources.as_file(resources.files("ofa_plus").joinpath("assets", "tokenizer")) as d:
            return cls.from_pretrained(str(d), **kwargs)


if __name__ == "__main__":  # the command's earlier name keeps working (see ofa_plus.tokenizer_training)
    from .tokenizer_training import main

    sys.exit(main())
