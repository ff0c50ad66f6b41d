"""OFAPlusBPETokenizer: GPT-2 byte-level BPE (OFA's and BART's text) behind OFA+'s reserved ranges."""

from __future__ import annotations

import pickle

import pytest
from transformers import AutoTokenizer, BartTokenizer

import ofa_plus.vocabulary as V
from conftest import write_bpe_vocabulary
from ofa_plus import OFAPlusBPETokenizer, OFAPlusConfig, OFAPlusProcessor

TEXTS = ["what is in the picture?", "a red circle  on a white background!", "Hello, world's 12 dogs", "naïve café ☕"]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bpe")
    vocab = write_bpe_vocabulary(folder)
    return folder, vocab


@pytest.fixture(scope="module")
def tokenizer(files):
    folder, _ = files
    return OFAPlusBPETokenizer(folder / "vocab.json", folder / "merges.txt")


def _ofa_plus_id(bpe_id: int, vocab: dict[str, int]) -> int:
    specials = {"<s>": V.BOS_ID, "<pad>": V.PAD_ID, "</s>": V.EOS_ID, "<unk>": V.UNK_ID, "<mask>": V.MASK_ID}
    piece = next(p for p, i in vocab.items() if i == bpe_id)
    return specials[piece] if piece in specials else V.TEXT_OFFSET + bpe_id - 4


@pytest.mark.parametrize("text", TEXTS)
def test_ids_are_barts_with_a_leading_space_moved_behind_the_reserved_ranges(files, tokenizer, text):
    folder, vocab = files
    bart = BartTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))
    expected = [_ofa_plus_id(i, vocab) for i in bart(" " + text, add_special_tokens=False)["input_ids"]]
    assert tokenizer.encode_text(text) == expected
    assert tokenizer(text)["input_ids"] == expected
    assert tokenizer.decode_text(expected) == text


def test_sizes_and_reserved_ranges(files, tokenizer):
    _, vocab = files
    assert tokenizer.num_text_pieces == len(vocab) - 5 and len(tokenizer) == V.TEXT_OFFSET + len(vocab) - 5
    assert tokenizer.text_offset == V.TEXT_OFFSET
    assert (tokenizer.bin_id(3), tokenizer.code_id(2)) == (V.BIN_OFFSET + 3, V.CODE_OFFSET + 2)
    assert tokenizer.convert_tokens_to_ids("<bin_3>") == V.BIN_OFFSET + 3
    assert tokenizer.pad_token_id == V.PAD_ID and tokenizer.eos_token_id == V.EOS_ID
    # text that spells a reserved token stays text
    assert all(i >= V.TEXT_OFFSET for i in tokenizer.encode_text("<s> <bin_3>"))
    assert tokenizer.decode([tokenizer.bin_id(3), *tokenizer.encode_text("a dog")]) == "<bin_3> a dog"
    pieces = tokenizer.encode_text("a red circle")
    assert sum(tokenizer.is_word_start(i) for i in pieces) == 3 and tokenizer.is_word_start(pieces[0])


def test_saved_and_loaded_alone_and_by_the_processor(tmp_path, tokenizer):
    tokenizer.save_pretrained(tmp_path / "tok")
    loaded = AutoTokenizer.from_pretrained(tmp_path / "tok")
    assert type(loaded) is OFAPlusBPETokenizer
    assert all(loaded.encode_text(t) == tokenizer.encode_text(t) for t in TEXTS)
    processor = OFAPlusProcessor.for_config(OFAPlusConfig.from_preset("ofa-tiny"), tokenizer)
    processor.save_pretrained(tmp_path / "proc")
    again = OFAPlusProcessor.from_pretrained(tmp_path / "proc")
    assert type(again.tokenizer) is OFAPlusBPETokenizer
    assert again.tokenizer.encode_text(TEXTS[0]) == tokenizer.encode_text(TEXTS[0])
    assert pickle.loads(pickle.dumps(tokenizer)).encode_text(TEXTS[1]) == tokenizer.encode_text(TEXTS[1])


def test_processor_encodes_an_instruction_with_bpe_text(tokenizer):
    processor = OFAPlusProcessor.for_config(OFAPlusConfig.from_preset("ofa-tiny", image_size=64), tokenizer)
    batch = processor("[TEXT:question] -> [TEXT:answer]", question="what is in the picture?", answer="a dog")
    ids = batch["input_ids"][0].tolist()
    assert ids[0] == V.BOS_ID and ids[-1] == V.EOS_ID
    assert ids[1:-1] == tokenizer.encode_text("what is in the picture?")
    labels = [i for i in batch["labels"][0].tolist() if i != -100]
    assert processor.tokenizer.decode_text(labels) == "a dog"
