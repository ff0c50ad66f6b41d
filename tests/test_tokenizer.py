"""Tests of the unified OFA+ tokenizer (ofa_plus/tokenization_ofa_plus.py) and its shipped asset."""

from __future__ import annotations

import itertools
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from ofa_plus import vocabulary as V  # noqa: E402
from ofa_plus.tokenization_ofa_plus import DEFAULT_TOKENIZER_DIR, OFAPlusTokenizer  # noqa: E402
from ofa_plus.tokenizer_training import default_corpus, train_tokenizer  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

SENTENCES = [
    "A man riding a brown horse along the beach at sunset.",
    "Two dogs play with a red frisbee in the park; one of them jumps 3 feet high!",
    "The meeting starts at 10:45 on 2024-03-17, and costs $1,250.99 (tax included).",
    "I love pizza 🍕 and coffee ☕, don't you?",
    "SELECT name, COUNT(*) FROM users WHERE age >= 21 GROUP BY name ORDER BY 2 DESC;",
    "5 : 3 : 0 | 6 : 0 : 0",
    "Ça coûte 12,50 € — c'est un café naïve.",
    'He said: "Quoting `code` and [brackets] {braces} <angles> is fine."',
    "  leading spaces, double  spaces,\ttabs and\nnewlines ",
    "Return the number of items in a container.",
]


@pytest.fixture(scope="module")
def tok() -> OFAPlusTokenizer:
    return OFAPlusTokenizer.from_default()


def _register_auto_classes():
    """What the package __init__ does: register config + tokenizer with the Auto classes (guarded)."""
    from transformers import AutoConfig, AutoTokenizer
    from transformers.models.auto.tokenization_auto import REGISTERED_TOKENIZER_CLASSES

    import ofa_plus  # noqa: F401  (its __init__ may already register everything)

    if REGISTERED_TOKENIZER_CLASSES.get("OFAPlusTokenizer") is OFAPlusTokenizer:
        return
    try:
        from ofa_plus.configuration_ofa_plus import OFAPlusConfig
    except ImportError:
        from transformers import PretrainedConfig

        class OFAPlusConfig(PretrainedConfig):  # stand-in until configuration_ofa_plus.py exists;
            model_type = "ofa_plus_tokenizer_test"  # its own model_type, so the real one stays free

        try:
            AutoConfig.register(OFAPlusConfig.model_type, OFAPlusConfig)
        except ValueError:
            pass
    AutoTokenizer.register(OFAPlusConfig, slow_tokenizer_class=OFAPlusTokenizer, exist_ok=True)


# ------------------------------------------------------------------------------------------ layout
def test_layout_ids(tok):
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id, tok.unk_token_id, tok.mask_token_id) == (
        0,
        1,
        2,
        3,
        4,
    )
    assert (tok.pad_token, tok.bos_token, tok.eos_token, tok.unk_token, tok.mask_token) == (
        "<pad>",
        "<s>",
        "</s>",
        "<unk>",
        "<mask>",
    )
    assert tok.text_offset == V.TEXT_OFFSET == 9512
    assert tok.num_text_pieces == 8000
    assert len(tok) == tok.vocab_size == V.TEXT_OFFSET + tok.num_text_pieces

    assert tok.convert_tokens_to_ids("<image>") == V.IMAGE_ID == 5
    assert tok.bin_id(0) == V.BIN_OFFSET == 64 and tok.bin_id(999) == V.BIN_OFFSET + 999
    assert tok.convert_tokens_to_ids("<bin_3>") == V.BIN_OFFSET + 3
    assert tok.code_id(0) == V.CODE_OFFSET and tok.code_id(8191) == V.CODE_OFFSET + 8191
    assert tok.convert_tokens_to_ids("<code_7>") == V.CODE_OFFSET + 7
    assert tok.phone_id("ə") == V.PHONE_OFFSET + V.PHONES.index("ə") == tok.convert_tokens_to_ids("<phone_ə>")
    assert tok.phone_id("<phone_ʃ>") == V.PHONE_OFFSET + V.PHONES.index("ʃ")
    assert tok.is_bin(tok.bin_id(5)) and not tok.is_bin(tok.code_id(0)) and not tok.is_bin(V.BIN_OFFSET - 1)
    with pytest.raises(ValueError):
        tok.bin_id(V.NUM_BINS)
    with pytest.raises(KeyError):
        tok.phone_id("not-a-phone")

    # every reserved id converts to the string of vocabulary.reserved_tokens() and back
    reserved = V.reserved_tokens()
    assert tok.convert_ids_to_tokens(list(range(V.TEXT_OFFSET))) == reserved
    assert tok.convert_tokens_to_ids(reserved[::97]) == list(range(0, V.TEXT_OFFSET, 97))
    vocab = tok.get_vocab()
    assert all(vocab[t] == i for i, t in enumerate(reserved))
    assert max(vocab.values()) == len(tok) - 1


def test_no_bos_eos_added_and_attention_mask(tok):
    enc = tok("a b")
    assert enc["input_ids"] == tok.encode_text("a b")
    assert enc["attention_mask"] == [1] * len(enc["input_ids"])
    assert V.BOS_ID not in enc["input_ids"] and V.EOS_ID not in enc["input_ids"]
    assert tok.build_inputs_with_special_tokens([10000, 10001]) == [10000, 10001]
    assert tok.encode("a b", add_special_tokens=True) == tok.encode("a b", add_special_tokens=False)


# ------------------------------------------------------------------------------------------ round trips
@pytest.mark.parametrize("text", SENTENCES)
def test_round_trip(tok, text):
    ids = tok(text)["input_ids"]
    assert ids == tok.encode_text(text) == tok.encode(text)
    assert all(V.TEXT_OFFSET <= i < len(tok) for i in ids), "plain text must only give text ids"
    assert tok.decode(ids) == text
    assert tok.decode_text(ids) == text
    # the slow path (tokens -> ids) agrees with the fast path
    assert tok.convert_tokens_to_ids(tok.tokenize(text)) == ids


def test_digits_are_split_and_unknown_chars_use_bytes(tok):
    ids = tok.encode_text("year 2024")
    pieces = tok.convert_ids_to_tokens(ids)
    assert pieces[-4:] == ["2", "0", "2", "4"]
    rare = "𓀀 ꙮ"  # egyptian hieroglyph, cyrillic multiocular o: not in the vocabulary
    ids = tok.encode_text(rare)
    assert V.UNK_ID not in ids
    assert any(p.startswith("<0x") for p in tok.convert_ids_to_tokens(ids))
    assert tok.decode(ids) == rare


def test_special_strings_in_text_stay_text(tok):
    text = "<bin_3> <s> </s> <pad> <mask> <image> <code_12> <phone_ə>"
    ids = tok(text)["input_ids"]
    assert all(i >= V.TEXT_OFFSET for i in ids)
    assert tok.decode(ids) == text
    assert tok.tokenize("<s>") != ["<s>"]


def test_reserved_ids_decode_to_their_strings(tok):
    ids = [V.BOS_ID, tok.bin_id(3), tok.bin_id(999)] + tok.encode_text("a dog") + [tok.code_id(5), V.EOS_ID, V.PAD_ID]
    assert tok.decode(ids) == "<s><bin_3><bin_999> a dog<code_5></s><pad>"
    # skip_special_tokens drops pad/bos/eos/unk/mask only
    ids = [V.BOS_ID, tok.bin_id(3), V.IMAGE_ID, V.UNK_ID, V.MASK_ID] + tok.encode_text("cat") + [V.EOS_ID, V.PAD_ID]
    assert tok.decode(ids, skip_special_tokens=True) == "<bin_3><image> cat"
    assert tok.decode([tok.bin_id(i) for i in (1, 2, 3, 4)]) == "<bin_1><bin_2><bin_3><bin_4>"
    assert tok.convert_ids_to_tokens(tok.bin_id(7)) == "<bin_7>"
    assert tok.decode_text([V.BOS_ID] + tok.encode_text("just text") + [V.EOS_ID]) == "just text"


def test_batch_padding(tok):
    torch = pytest.importorskip("torch")
    batch = tok(["a cat", "a much longer sentence about a cat"], padding=True, return_tensors="pt")
    assert batch["input_ids"].dtype == torch.long and batch["input_ids"].shape[0] == 2
    n = len(tok.encode_text("a cat"))
    assert batch["input_ids"][0, n:].eq(V.PAD_ID).all()
    assert batch["attention_mask"][0].sum().item() == n
    assert batch["attention_mask"][1].all()


# ------------------------------------------------------------------------------------------ persistence
def test_save_load_identical(tok, tmp_path):
    tok.save_pretrained(tmp_path)
    assert (tmp_path / "spiece.model").is_file()
    cfg = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert cfg["tokenizer_class"] == "OFAPlusTokenizer"
    loaded = OFAPlusTokenizer.from_pretrained(tmp_path)
    assert len(loaded) == len(tok)
    for text in SENTENCES:
        assert loaded(text)["input_ids"] == tok(text)["input_ids"]
    assert loaded.decode([1, 64, 9512 + 100, 2]) == tok.decode([1, 64, 9512 + 100, 2])
    assert (tmp_path / "spiece.model").read_bytes() == (DEFAULT_TOKENIZER_DIR / "spiece.model").read_bytes()


def test_auto_tokenizer(tok, tmp_path):
    _register_auto_classes()
    from transformers import AutoTokenizer

    tok.save_pretrained(tmp_path)
    auto = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(auto, OFAPlusTokenizer)
    assert auto(SENTENCES[0])["input_ids"] == tok(SENTENCES[0])["input_ids"]


def test_pickle_round_trip(tok):
    clone = pickle.loads(pickle.dumps(tok))
    assert isinstance(clone, OFAPlusTokenizer) and len(clone) == len(tok)
    for text in SENTENCES:
        assert clone(text)["input_ids"] == tok(text)["input_ids"]
        assert clone.decode(tok.encode_text(text)) == text


def test_added_tokens_get_new_ids(tok, tmp_path):
    t = OFAPlusTokenizer.from_default()
    assert t.add_tokens(["<bin_5>"]) == 0 and t.convert_tokens_to_ids("<bin_5>") == V.BIN_OFFSET + 5
    assert t.add_tokens(["<new_token>"]) == 1
    assert t.convert_tokens_to_ids("<new_token>") == len(tok) and len(t) == len(tok) + 1
    t.save_pretrained(tmp_path)
    assert OFAPlusTokenizer.from_pretrained(tmp_path).convert_tokens_to_ids("<new_token>") == len(tok)


# ------------------------------------------------------------------------------------------ training
def test_default_corpus_is_real_deterministic_text():
    first = list(itertools.islice(default_corpus(), 300))
    assert first == list(itertools.islice(default_corpus(), 300))
    assert len(first) == 300 and len(set(first)) == 300
    words = " ".join(first).split()
    assert len(words) > 3000
    assert sum(w.lower() in {"the", "a", "of", "to", "is"} for w in words) > 300  # English prose


def test_train_small_tokenizer(tmp_path):
    texts = list(itertools.islice(default_corpus(), 400))
    out = tmp_path / "small"
    t = train_tokenizer(texts, out, vocab_size=500)
    assert isinstance(t, OFAPlusTokenizer)
    assert (out / "spiece.model").is_file() and (out / "tokenizer_config.json").is_file()
    assert 300 <= t.num_text_pieces <= 500 and len(t) == V.TEXT_OFFSET + t.num_text_pieces
    for text in texts[:50] + SENTENCES:
        ids = t.encode_text(text)
        assert all(V.TEXT_OFFSET <= i < len(t) for i in ids)
        assert t.decode(ids) == text
    assert t.convert_tokens_to_ids("<bin_3>") == V.BIN_OFFSET + 3
    # deterministic: same texts, same model
    t2 = train_tokenizer(texts, tmp_path / "again", vocab_size=500)
    assert (tmp_path / "again" / "spiece.model").read_bytes() == (out / "spiece.model").read_bytes()
    assert OFAPlusTokenizer.from_pretrained(out).encode_text(texts[0]) == t2.encode_text(texts[0])


def test_cli_help():
    res = subprocess.run(
        [sys.executable, "-m", "ofa_plus.tokenization_ofa_plus", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 0, res.stderr
    assert "--output" in res.stdout and "--corpus" in res.stdout and "--vocab-size" in res.stdout


@pytest.mark.slow
def test_cli_trains_from_corpus_file(tmp_path):
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(itertools.islice(default_corpus(), 300)) + "\n", encoding="utf-8")
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "ofa_plus.tokenization_ofa_plus",
            "--output",
            str(tmp_path / "tok"),
            "--corpus",
            str(corpus),
            "--vocab-size",
            "400",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 0, res.stderr
    t = OFAPlusTokenizer.from_pretrained(tmp_path / "tok")
    assert t.num_text_pieces <= 400 and t.decode(t.encode_text(SENTENCES[1])) == SENTENCES[1]


def test_shipped_asset_is_small():
    files = list(DEFAULT_TOKENIZER_DIR.iterdir())
    assert {"spiece.model", "tokenizer_config.json"} <= {f.name for f in files}
    assert sum(f.stat().st_size for f in files) < 1_000_000
